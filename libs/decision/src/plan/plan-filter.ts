/**
 * The PlanResources filter, as Cerbos prints it: `KIND_ALWAYS_ALLOWED`, `KIND_ALWAYS_DENIED`, or
 * `KIND_CONDITIONAL` with a condition tree of operands (a `value`, a `variable`, or an
 * `expression` of an operator over operands). `normalizeFilter` is the last step of planning:
 * constants folded, trivial branches removed, membership in a literal container rewritten, the
 * policy shorthands expanded (`R.` → `request.resource.`, `P.` → `request.principal.`, `V.` →
 * `variables.`, `C.` → `constants.`, `G.` → `globals.`), and a constant condition turned into its
 * kind. `filterDebug` prints a filter the way Cerbos's `meta.filterDebug` does.
 */
import type { JsonValue } from '@warden/core';

/** A node of the condition tree. */
export type PlanOperand = { readonly value: JsonValue } | { readonly variable: string } | { readonly expression: PlanExpression };

/** An operator over operands (`and`, `or`, `not`, `eq`, `in`, ... or any CEL function by name). */
export interface PlanExpression {
  readonly operator: string;
  readonly operands: readonly PlanOperand[];
}

/** The kinds of a plan. */
export type PlanKind = 'KIND_ALWAYS_ALLOWED' | 'KIND_ALWAYS_DENIED' | 'KIND_CONDITIONAL';

/** A plan's filter. */
export interface PlanFilter {
  readonly kind: PlanKind;
  readonly condition?: PlanOperand;
}

const SHORTHANDS: ReadonlyArray<readonly [string, string]> = [
  ['R.', 'request.resource.'],
  ['P.', 'request.principal.'],
  ['V.', 'variables.'],
  ['C.', 'constants.'],
  ['G.', 'globals.'],
];

function expandVariable(name: string): string {
  if (name === 'R') return 'request.resource';
  if (name === 'P') return 'request.principal';
  for (const [short, long] of SHORTHANDS) if (name.startsWith(short)) return long + name.slice(short.length);
  return name;
}

const isValue = (o: PlanOperand): o is Extract<PlanOperand, { readonly value: JsonValue }> => 'value' in o;
const isTrue = (o: PlanOperand): boolean => isValue(o) && o.value === true;
const isFalse = (o: PlanOperand): boolean => isValue(o) && o.value === false;
const TRUE: PlanOperand = { value: true };
const FALSE: PlanOperand = { value: false };

function expr(operator: string, operands: readonly PlanOperand[]): PlanOperand {
  return { expression: { operator, operands } };
}

/** Equal operands once. */
function dedupe(xs: PlanOperand[]): PlanOperand[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = JSON.stringify(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * The operator of a negation the planner makes itself (of a DENY, of a `none` condition), told
 * apart from a CEL `!` while planning (negating it again unwraps it) and printed as `not`.
 */
export const PLANNER_NOT = 'planner:not';

/** `o` with the planner's own negations printed as `not`. */
function publicOperand(o: PlanOperand): PlanOperand {
  if (!('expression' in o)) return o;
  const { operator, operands } = o.expression;
  return expr(operator === PLANNER_NOT ? 'not' : operator, operands.map(publicOperand));
}

/** One operand simplified, bottom up. */
export function simplifyOperand(o: PlanOperand): PlanOperand {
  if ('variable' in o) return { variable: expandVariable(o.variable) };
  if (isValue(o)) return o;
  const { operator } = o.expression;
  const operands = o.expression.operands.map(simplifyOperand);
  switch (operator) {
    case 'and': {
      if (operands.some(isFalse)) return FALSE;
      const rest = dedupe(operands.filter((x) => !isTrue(x)));
      return rest.length === 0 ? TRUE : rest.length === 1 ? (rest[0] as PlanOperand) : expr('and', rest);
    }
    case 'or': {
      if (operands.some(isTrue)) return TRUE;
      const rest = dedupe(operands.filter((x) => !isFalse(x)));
      return rest.length === 0 ? FALSE : rest.length === 1 ? (rest[0] as PlanOperand) : expr('or', rest);
    }
    case 'not':
    case PLANNER_NOT: {
      const [x] = operands;
      if (operands.length === 1 && x !== undefined && isValue(x) && typeof x.value === 'boolean') return { value: !x.value };
      return expr(operator, operands);
    }
    case 'in': {
      const [needle, hay] = operands;
      if (operands.length !== 2 || needle === undefined || hay === undefined || !isValue(hay)) return expr('in', operands);
      const v = hay.value;
      if (Array.isArray(v)) {
        if (v.length === 0) return FALSE;
        if (v.length === 1) return expr('eq', [needle, { value: v[0] as JsonValue }]);
        return expr('in', operands);
      }
      if (typeof v === 'object' && v !== null) {
        const keys = Object.keys(v);
        if (keys.length === 0) return FALSE;
        if (keys.length === 1) return expr('eq', [needle, { value: keys[0] as string }]);
        return expr('in', operands);
      }
      // Membership in something that is not a container is an equality.
      return expr('eq', [needle, hay]);
    }
    default:
      return expr(operator, operands);
  }
}

/**
 * `filter` normalised: simplified, shorthands expanded, and a constant condition turned into
 * `KIND_ALWAYS_ALLOWED` or `KIND_ALWAYS_DENIED` (a conditional filter without a condition is
 * always allowed).
 * @example normalizeFilter({ kind: 'KIND_CONDITIONAL', condition: { value: true } }).kind // 'KIND_ALWAYS_ALLOWED'
 */
export function normalizeFilter(filter: PlanFilter): PlanFilter {
  if (filter.kind !== 'KIND_CONDITIONAL') return { kind: filter.kind };
  if (filter.condition === undefined) return { kind: 'KIND_ALWAYS_ALLOWED' };
  const c = simplifyOperand(filter.condition);
  if (isTrue(c)) return { kind: 'KIND_ALWAYS_ALLOWED' };
  if (isFalse(c)) return { kind: 'KIND_ALWAYS_DENIED' };
  return { kind: 'KIND_CONDITIONAL', condition: publicOperand(c) };
}

function operandString(o: PlanOperand): string {
  if ('variable' in o) return o.variable;
  if (isValue(o)) return JSON.stringify(o.value);
  return `(${[o.expression.operator, ...o.expression.operands.map(operandString)].join(' ')})`;
}

/**
 * A filter as Cerbos's `meta.filterDebug` prints it: `(true)`, `(false)`, or the condition as
 * nested `(operator operand ...)`.
 * @example filterDebug({ kind: 'KIND_ALWAYS_DENIED' }) // '(false)'
 */
export function filterDebug(filter: PlanFilter): string {
  if (filter.kind === 'KIND_ALWAYS_ALLOWED') return '(true)';
  if (filter.kind === 'KIND_ALWAYS_DENIED') return '(false)';
  if (filter.condition === undefined) return '(true)';
  const s = operandString(filter.condition);
  return 'expression' in filter.condition ? s : `(${s})`;
}
