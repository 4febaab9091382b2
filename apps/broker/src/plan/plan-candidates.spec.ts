import { describe, expect, it } from 'vitest';
import { compilePolicies, createEngine, evaluatePlanFilter, planResources, type PlanOperand } from '@warden/decision';
import { closedAttributes, scopeCondition, withKnownId } from './plan-candidates.js';
import { conditionAttributes, conditionText } from './condition-text.js';

const POLICY = `---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - name: owner
      actions: ["invoke"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          expr: has(R.attr.owner) && R.attr.owner == P.id
    - name: refunds
      actions: ["invoke"]
      effect: EFFECT_ALLOW
      roles: ["approver"]
      condition:
        match:
          all:
            of:
              - expr: R.attr.risk == "high"
              - expr: R.attr.arguments.amount < P.attr.limit
`;

const { policySet } = compilePolicies([{ path: 'tool.yaml', text: POLICY }]);
const engine = createEngine(policySet!);
const now = new Date('2026-01-01T00:00:00Z');
const plan = (roles: string[], attr: Record<string, string>) =>
  planResources(engine.policySet, engine.config, { principal: { id: 'alice', roles, attr: { limit: 500 } }, resource: { kind: 'tool', id: 't1', attr: closedAttributes(attr) }, actions: ['invoke'], exactPresence: true }, now);

describe(closedAttributes.name, () => {
  it('makes an attribute enrichment did not produce known to be absent (the check sees no such key)', () => {
    // Without closing, `owner` would be unknown and the plan conditional (or unsupported: has()).
    expect(plan(['user'], { risk: 'low' })).toEqual({ kind: 'KIND_ALWAYS_DENIED' });
    expect(plan(['user'], { risk: 'low', owner: 'alice' })).toEqual({ kind: 'KIND_ALWAYS_ALLOWED' });
  });

  it('keeps the call arguments unknown, so their conditions remain', () => {
    const f = plan(['approver'], { risk: 'high' });
    expect(f.kind).toBe('KIND_CONDITIONAL');
    expect(conditionText(f.condition as PlanOperand)).toBe('arguments.amount < 500');
    expect(evaluatePlanFilter(f, { kind: 'tool', id: 't1', attr: { arguments: { amount: 499 } } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'tool', id: 't1', attr: { arguments: { amount: 500 } } })).toBe(false);
    expect(evaluatePlanFilter(f, { kind: 'tool', id: 't1', attr: { arguments: {} } })).toBe(false);
    expect(plan(['approver'], { risk: 'low' })).toEqual({ kind: 'KIND_ALWAYS_DENIED' });
  });

  it('drops an `arguments` attribute given as known (arguments are always the unknown part)', () => {
    const attr = closedAttributes({ risk: 'high', arguments: { amount: 1 } });
    expect(Object.keys(attr)).toEqual(['risk']);
    expect(Object.hasOwn(attr, 'arguments')).toBe(false);
    expect(Object.hasOwn(attr, 'owner')).toBe(true);
    expect(attr['owner']).toBeUndefined();
  });
});

describe(scopeCondition.name, () => {
  it('is true for a covering grant without caps, false for none, and caps bound the arguments', () => {
    expect(scopeCondition([{ kind: 'tool', actions: ['*'] }], 'tool', 'a', 'invoke')).toEqual({ value: true });
    expect(scopeCondition([{ kind: 'tool', actions: ['read'] }], 'tool', 'a', 'invoke')).toEqual({ value: false });
    expect(scopeCondition([{ kind: 'tool', actions: ['invoke'], ids: ['b'] }], 'tool', 'a', 'invoke')).toEqual({ value: false });
    expect(scopeCondition([{ kind: 'model', actions: ['invoke'] }], 'tool', 'a', 'invoke')).toEqual({ value: false });
    const capped = scopeCondition([{ kind: 'tool', actions: ['invoke'], ids: ['a'], caps: { amount: 300 } }], 'tool', 'a', 'invoke');
    expect(conditionText(capped)).toBe('arguments.amount <= 300');
    expect(evaluatePlanFilter({ kind: 'KIND_CONDITIONAL', condition: capped }, { kind: 'tool', id: 'a', attr: { arguments: { amount: 300 } } })).toBe(true);
    expect(evaluatePlanFilter({ kind: 'KIND_CONDITIONAL', condition: capped }, { kind: 'tool', id: 'a', attr: { arguments: { amount: '300' } } })).toBe(false);
    const two = scopeCondition([{ kind: 'tool', actions: ['invoke'], caps: { amount: 300 } }, { kind: 'tool', actions: ['invoke'], caps: { amount: 100, qty: 2 } }], 'tool', 'a', 'invoke');
    expect(conditionText(two)).toBe('arguments.amount <= 300 || (arguments.amount <= 100 && arguments.qty <= 2)');
  });
});

describe(conditionText.name, () => {
  it('prints operators infix, other functions by name, and lists the attributes read', () => {
    const c: PlanOperand = {
      expression: {
        operator: 'and',
        operands: [
          { expression: { operator: 'not', operands: [{ expression: { operator: 'eq', operands: [{ variable: 'request.resource.attr.arguments.mode' }, { value: 'force' }] } }] } },
          { expression: { operator: 'startsWith', operands: [{ variable: 'request.resource.attr.arguments.path' }, { value: '/tmp/' }] } },
          { expression: { operator: 'exists', operands: [{ variable: 'request.resource.attr.arguments.tags' }, { expression: { operator: 'lambda', operands: [{ expression: { operator: 'eq', operands: [{ variable: 't' }, { value: 'x' }] } }, { variable: 't' }] } }] } },
        ],
      },
    };
    expect(conditionText(c)).toBe('!(arguments.mode == "force") && startsWith(arguments.path, "/tmp/") && exists(arguments.tags, lambda(t == "x", t))');
    expect(conditionAttributes(c)).toEqual(['arguments.mode', 'arguments.path', 'arguments.tags']);
  });
});

describe(withKnownId.name, () => {
  const id = (o: PlanOperand) => o;
  it('replaces the id and folds the comparisons it takes part in', () => {
    const c = id({ expression: { operator: 'or', operands: [{ expression: { operator: 'eq', operands: [{ variable: 'request.resource.id' }, { value: 'issue_refund' }] } }, { expression: { operator: 'in', operands: [{ variable: 'request.resource.id' }, { value: ['a', 'b'] }] } }] } });
    expect(withKnownId(c, 'b')).toEqual({ expression: { operator: 'or', operands: [{ value: false }, { value: true }] } });
    expect(withKnownId(c, 'zzz')).toEqual({ expression: { operator: 'or', operands: [{ value: false }, { value: false }] } });
  });

  it('gives up where the id feeds something it cannot fold (the candidate is then planned with its id)', () => {
    expect(withKnownId({ expression: { operator: 'startsWith', operands: [{ variable: 'request.resource.id' }, { value: 'x' }] } }, 'xy')).toBeUndefined();
    expect(withKnownId({ expression: { operator: 'eq', operands: [{ variable: 'request.resource.id' }, { value: 1 }] } }, 'x')).toBeUndefined();
    const untouched: PlanOperand = { expression: { operator: 'lt', operands: [{ variable: 'request.resource.attr.arguments.amount' }, { value: 5 }] } };
    expect(withKnownId(untouched, 'x')).toBe(untouched);
  });
});
