import { describe, expect, it } from 'vitest';
import { celOfOperand, evaluatePlanFilter } from './filter-eval.js';
import type { PlanOperand } from './plan-filter.js';

const v = (variable: string): PlanOperand => ({ variable });
const val = (value: unknown): PlanOperand => ({ value: value as never });
const e = (operator: string, ...operands: PlanOperand[]): PlanOperand => ({ expression: { operator, operands } });
const cond = (condition: PlanOperand) => ({ kind: 'KIND_CONDITIONAL' as const, condition });

describe('evaluatePlanFilter', () => {
  it('answers the constant kinds without a resource', () => {
    expect(evaluatePlanFilter({ kind: 'KIND_ALWAYS_ALLOWED' }, { kind: 'tool' })).toBe(true);
    expect(evaluatePlanFilter({ kind: 'KIND_ALWAYS_DENIED' }, { kind: 'tool' })).toBe(false);
  });

  it('compares attributes with the numbers of the filter, integers included', () => {
    const f = cond(e('lt', v('request.resource.attr.amount'), val(500)));
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { amount: 499.5 } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { amount: 500 } })).toBe(false);
  });

  it('treats a missing attribute as a failed condition, not an error', () => {
    const f = cond(e('eq', v('request.resource.attr.owner'), val('alice')));
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: {} })).toBe(false);
    expect(evaluatePlanFilter(cond(e('not', f.condition)), { kind: 'tool', attr: {} })).toBe(false);
  });

  it('reads a field a struct of the residual lacks as a failed condition, whatever the types of its values', () => {
    // Cerbos's (and Warden's) residual of `P.attr.level <= -1` for a principal without `level`.
    const principal = e('struct', e('set-field', val('dept'), val('hr')), e('set-field', val('name'), val('ann')));
    const low = e('le', e('get-field', principal, v('level')), val(-1));
    const f = cond(e('not', e('and', e('eq', v('request.resource.attr.owner'), val('bob')), low)));
    // Another owner: `false && <error>` is false, so the negation holds.
    expect(evaluatePlanFilter(f, { kind: 'doc', attr: { owner: 'alice' } })).toBe(true);
    // Bob: `true && <error>` is an error, and so is its negation: the condition fails.
    expect(evaluatePlanFilter(f, { kind: 'doc', attr: { owner: 'bob' } })).toBe(false);
    // A field the struct has is read as usual; so is one of a map value.
    expect(evaluatePlanFilter(cond(e('eq', e('get-field', principal, v('dept')), val('hr'))), { kind: 'doc' })).toBe(true);
    expect(evaluatePlanFilter(cond(e('eq', e('get-field', val({ dept: 'hr' }), v('dept')), val('hr'))), { kind: 'doc' })).toBe(true);
    expect(evaluatePlanFilter(cond(e('le', e('get-field', val({ dept: 'hr' }), v('level')), val(1))), { kind: 'doc' })).toBe(false);
  });

  it('compares a number of the filter for equality with ints as with doubles', () => {
    // The residual of `int(R.attr.level) == 2`: the filter carries the JSON number 2.
    const f = cond(e('eq', e('int', v('request.resource.attr.level')), val(2)));
    expect(evaluatePlanFilter(f, { kind: 'doc', attr: { level: 2 } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'doc', attr: { level: 3 } })).toBe(false);
    expect(evaluatePlanFilter(cond(e('ne', val(2), e('int', v('request.resource.attr.level')))), { kind: 'doc', attr: { level: 3 } })).toBe(true);
    expect(evaluatePlanFilter(cond(e('eq', v('request.resource.attr.amount'), val(2.5))), { kind: 'doc', attr: { amount: 2.5 } })).toBe(true);
  });

  it('calls methods on their receiver and globals as globals', () => {
    expect(celOfOperand(e('startsWith', v('request.resource.id'), val('a')))).toBe('request.resource.id.startsWith("a")');
    expect(celOfOperand(e('hasIntersection', v('request.resource.attr.t'), val(['x'])))).toBe('hasIntersection(request.resource.attr.t, ["x"])');
    const f = cond(e('and', e('startsWith', v('request.resource.id'), val('ref')), e('hasIntersection', v('request.resource.attr.t'), val(['x', 'y']))));
    expect(evaluatePlanFilter(f, { kind: 'tool', id: 'refund', attr: { t: ['y'] } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'tool', id: 'refund', attr: { t: ['z'] } })).toBe(false);
  });

  it('evaluates comprehensions written as lambdas', () => {
    const f = cond(e('exists', v('request.resource.attr.tags'), e('lambda', e('eq', v('t'), val('pii')), v('t'))));
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { tags: ['a', 'pii'] } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { tags: ['a'] } })).toBe(false);
  });

  it('evaluates membership in list literals and maps', () => {
    const f = cond(e('in', v('request.resource.attr.region'), val(['eu', 'us'])));
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { region: 'eu' } })).toBe(true);
    expect(evaluatePlanFilter(f, { kind: 'tool', attr: { region: 'ap' } })).toBe(false);
  });
});
