import { describe, expect, it } from 'vitest';
import { compilePolicies, createEngine } from '@warden/decision';
import { PolicyHolder, policyVersionOf, resourceKindsOf, type ActivePolicies } from './policy-holder.js';

const policy = (kind: string, effect: 'EFFECT_ALLOW' | 'EFFECT_DENY') => `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ${kind}
  version: default
  rules:
    - actions: ["invoke"]
      effect: ${effect}
      roles: ["user"]
`;

function snapshot(effect: 'EFFECT_ALLOW' | 'EFFECT_DENY', hash: string): ActivePolicies {
  const { policySet } = compilePolicies([{ path: 'tool.yaml', text: policy('tool', effect) }]);
  if (policySet === undefined) throw new Error('does not compile');
  return { engine: createEngine(policySet), policySet, version: hash, contentHash: hash, commit: undefined, readsRequestExtras: false, kinds: resourceKindsOf(policySet), policies: 1, loadedAt: 0, source: 'disk' };
}

const decide = (p: ActivePolicies): string | undefined =>
  p.engine.check([{ principal: { id: 'alice', roles: ['user'], attr: {} }, resource: { kind: 'tool', id: 't', attr: {} }, actions: ['invoke'] }])[0]?.actions['invoke']?.effect;

describe(PolicyHolder.name, () => {
  it('swaps the whole snapshot at once: a request that read it before keeps deciding and reporting the old set', () => {
    const allow = snapshot('EFFECT_ALLOW', 'sha256:aaaa');
    const sut = new PolicyHolder(allow);
    const inFlight = sut.current;
    const previous = sut.replace(snapshot('EFFECT_DENY', 'sha256:bbbb'));
    expect(previous).toBe(allow);
    // The request that started before the swap: engine and version of the same (old) set.
    expect([decide(inFlight), inFlight.version]).toEqual(['EFFECT_ALLOW', 'sha256:aaaa']);
    // Every request after it: the new one, engine and version together.
    expect([decide(sut.current), sut.current.version]).toEqual(['EFFECT_DENY', 'sha256:bbbb']);
  });

  it('reads without allocating: the same object until the next swap', () => {
    const sut = new PolicyHolder(snapshot('EFFECT_ALLOW', 'sha256:aaaa'));
    expect(sut.current).toBe(sut.current);
  });
});

describe(policyVersionOf.name, () => {
  it('is the content hash, plus the first 12 hex of the commit when the set came from git', () => {
    expect(policyVersionOf('sha256:0123456789abcdef', undefined)).toBe('sha256:0123456789abcdef');
    expect(policyVersionOf('sha256:0123456789abcdef', '4b036f07f99c48796fb50e718d37330e95a73208')).toBe('sha256:0123456789abcdef@4b036f07f99c');
  });
});

describe(resourceKindsOf.name, () => {
  it('lists the resource kinds the set has rules for, sorted', () => {
    const { policySet } = compilePolicies([
      { path: 'tool.yaml', text: policy('tool', 'EFFECT_ALLOW') },
      { path: 'model.yaml', text: policy('model', 'EFFECT_ALLOW') },
    ]);
    expect(resourceKindsOf(policySet!)).toEqual(['model', 'tool']);
  });
});
