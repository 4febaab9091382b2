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
