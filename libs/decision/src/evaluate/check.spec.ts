import { describe, expect, it } from 'vitest';
import type { CheckInput } from '@warden/core';
import { compilePolicies } from '../compile/compile-policies.js';
import { createEngine } from '../engine.js';

const POLICY = `
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: ["read", "write"]
      roles: ["user"]
      effect: EFFECT_ALLOW
    - actions: ["read"]
      roles: ["user"]
      effect: EFFECT_DENY
      condition:
        match:
          expr: R.attr.amount > 10
    - actions: ["write"]
      roles: ["user"]
      effect: EFFECT_DENY
      condition:
        match:
          none:
            of:
              - expr: R.attr.ok == true
    - actions: ["tag"]
      roles: ["user"]
      effect: EFFECT_ALLOW
      output:
        when:
          ruleActivated: 1 / (R.attr.n - R.attr.n)
`;

function input(attr: Record<string, unknown>, actions: string[]): CheckInput {
  return { principal: { id: 'a', roles: ['user'], attr: {} }, resource: { kind: 'doc', id: '1', attr: attr as never }, actions };
}

describe('CheckEvaluator', () => {
  const { policySet, errors } = compilePolicies([{ path: 'doc.yaml', text: POLICY }]);

  it('compiles the policy', () => {
    expect(errors).toEqual([]);
  });

  it('treats a failing DENY condition as not met by default (Cerbos 0.55 default)', () => {
    const [out] = createEngine(policySet!).check([input({ amount: 'x' }, ['read', 'write'])]);
    expect(out?.actions['read']?.effect).toBe('EFFECT_ALLOW');
    // none(error) is true, so the DENY applies
    expect(out?.actions['write']?.effect).toBe('EFFECT_DENY');
  });

  it('denies an action whose condition fails under strict evaluation', () => {
    const [out] = createEngine(policySet!, { strictEvaluation: true }).check([input({ amount: 'x', ok: true }, ['read', 'write'])]);
    expect(out?.actions['read']).toEqual({ effect: 'EFFECT_DENY', policy: 'resource.doc.vdefault' });
    expect(out?.actions['write']?.effect).toBe('EFFECT_ALLOW');
  });

  it('reports a failing output expression in `error` instead of a value', () => {
    const [out] = createEngine(policySet!).check([input({ n: 1 }, ['tag'])]);
    expect(out?.actions['tag']?.effect).toBe('EFFECT_ALLOW');
    expect(out?.outputs).toHaveLength(1);
    expect(out?.outputs[0]?.src).toBe('resource.doc.vdefault#rule-004');
    expect(out?.outputs[0]?.error).toBeTypeOf('string');
    expect(out?.outputs[0]?.val).toBeUndefined();
  });

  it('names the deciding rule only when asked (includeRules): the allowing rule, or the first denying one', () => {
    const engine = createEngine(policySet!);
    const [plain] = engine.check([input({ amount: 20, ok: true }, ['read', 'write'])]);
    expect(plain?.actions['read']).toEqual({ effect: 'EFFECT_DENY', policy: 'resource.doc.vdefault' });
    const [out] = engine.check([input({ amount: 20, ok: true }, ['read', 'write'])], { includeRules: true });
    expect(out?.actions['read']).toEqual({ effect: 'EFFECT_DENY', policy: 'resource.doc.vdefault', rule: 'resource.doc.vdefault#rule-002' });
    expect(out?.actions['write']).toEqual({ effect: 'EFFECT_ALLOW', policy: 'resource.doc.vdefault', rule: 'resource.doc.vdefault#rule-001' });
    const [strict] = createEngine(policySet!, { strictEvaluation: true }).check([input({ amount: 'x', ok: true }, ['read'])], { includeRules: true });
    expect(strict?.actions['read']?.rule).toBe('resource.doc.vdefault#rule-002');
    // No rule decided: no rule is named.
    const [none] = engine.check([{ ...input({}, ['read']), resource: { kind: 'other', id: '2', attr: {} } }], { includeRules: true });
    expect(none?.actions['read']).toEqual({ effect: 'EFFECT_DENY', policy: 'NO_MATCH' });
  });

  it('denies with NO_MATCH when no policy exists for the resource kind', () => {
    const [out] = createEngine(policySet!).check([{ ...input({}, ['read']), resource: { kind: 'other', id: '2', attr: {} } }]);
    expect(out?.actions['read']).toEqual({ effect: 'EFFECT_DENY', policy: 'NO_MATCH' });
  });

  it('uses the instant passed as now for every expression of one call', () => {
    const { policySet: ps } = compilePolicies([
      {
        path: 't.yaml',
        text: `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: t
  version: default
  rules:
    - actions: ["go"]
      roles: ["user"]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: now() == timestamp("2030-01-01T00:00:00Z")
`,
      },
    ]);
    const engine = createEngine(ps!);
    const base = { principal: { id: 'a', roles: ['user'], attr: {} }, resource: { kind: 't', id: '1', attr: {} }, actions: ['go'] };
    expect(engine.check([base], { now: new Date('2030-01-01T00:00:00Z') })[0]?.actions['go']?.effect).toBe('EFFECT_ALLOW');
    expect(engine.check([base], { now: new Date('2030-01-01T00:00:01Z') })[0]?.actions['go']?.effect).toBe('EFFECT_DENY');
  });

  it('reuses principal-only conditions within one call only for the same principal', () => {
    const { policySet: ps, errors: errs } = compilePolicies([
      {
        path: 'p.yaml',
        text: `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: ["read"]
      roles: ["user"]
      effect: EFFECT_ALLOW
      condition:
        match:
          all:
            of:
              - expr: P.attr.level > 2
              - expr: R.attr.open == true
`,
      },
    ]);
    expect(errs).toEqual([]);
    const engine = createEngine(ps!);
    const senior = { id: 's', roles: ['user'], attr: { level: 3 } };
    const junior = { id: 'j', roles: ['user'], attr: { level: 1 } };
    const doc = (id: string, open: boolean) => ({ kind: 'doc', id, attr: { open } });
    const out = engine.check([
      { principal: senior, resource: doc('1', true), actions: ['read'] },
      { principal: senior, resource: doc('2', false), actions: ['read'] },
      { principal: junior, resource: doc('3', true), actions: ['read'] },
      { principal: senior, resource: doc('4', true), actions: ['read'] },
    ]);
    expect(out.map((o) => o.actions['read']?.effect)).toEqual(['EFFECT_ALLOW', 'EFFECT_DENY', 'EFFECT_DENY', 'EFFECT_ALLOW']);
  });

  it('shows the gateway context and a verified delegation as request.context and request.delegation, and nothing when absent', () => {
    const { policySet: ps, errors: errs } = compilePolicies([
      {
        path: 'agent.yaml',
        text: `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: ["invoke"]
      roles: ["agent"]
      effect: EFFECT_ALLOW
      condition:
        match:
          all:
            of:
              - expr: request.context.env == "production"
              - expr: request.delegation.depth <= 2 && request.delegation.actor == P.id
              - expr: request.delegation.chain[0].from == request.delegation.subject
`,
      },
    ]);
    expect(errs).toEqual([]);
    const base: CheckInput = { principal: { id: 'bot', roles: ['agent'], attr: {} }, resource: { kind: 'tool', id: 't', attr: {} }, actions: ['invoke'] };
    const delegation = { subject: 'alice', actor: 'bot', depth: 1, chain: [{ id: 'd1', from: 'alice', to: 'bot', canSubDelegate: false }] };
    const effect = (i: CheckInput) => createEngine(ps!).check([i])[0]?.actions['invoke']?.effect;
    expect(effect({ ...base, context: { env: 'production' }, delegation })).toBe('EFFECT_ALLOW');
    expect(effect({ ...base, context: { env: 'staging' }, delegation })).toBe('EFFECT_DENY');
    expect(effect({ ...base, context: { env: 'production' }, delegation: { ...delegation, depth: 3 } })).toBe('EFFECT_DENY');
    // A Cerbos request has neither: the condition cannot be evaluated and is not met.
    expect(effect(base)).toBe('EFFECT_DENY');
  });
});
