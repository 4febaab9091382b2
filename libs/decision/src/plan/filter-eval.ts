/**
 * Evaluates a PlanResources filter on one concrete resource, for the tests that hold a plan to
 * the check (the property test of tool discovery, the differential test against Cerbos) and for
 * callers that hold a conditional plan and later see the resource. The condition tree is turned
 * back into CEL and evaluated by the engine's own CEL environment, so operators and functions mean
 * exactly what they mean in a check. A condition that fails to evaluate does not hold.
 */
import type { JsonValue } from '@warden/core';
import { CelEvaluationError, compileCelExpression, createCelContext, type CelProgram } from '../cel/index.js';
import type { PlanFilter, PlanOperand } from './plan-filter.js';

/** The resource a filter is evaluated on. */
export interface FilterResource {
  readonly kind: string;
  readonly id?: string;
  readonly attr?: Readonly<Record<string, JsonValue>>;
  readonly policyVersion?: string;
  readonly scope?: string;
}

const BINARY: Readonly<Record<string, string>> = {
  eq: '==',
  ne: '!=',
  lt: '<',
  le: '<=',
  gt: '>',
  ge: '>=',
  in: 'in',
  add: '+',
  sub: '-',
  mult: '*',
  div: '/',
  mod: '%',
};
const MACROS = new Set(['all', 'exists', 'exists_one', 'filter', 'map']);
/**
 * Functions a filter names that CEL only has as methods (the filter writes every call as
 * `operator(target, args...)`, as Cerbos does); every other function is called as a global.
 */
const RECEIVER_ONLY = new Set([
  'startsWith',
  'endsWith',
  'contains',
  'upperAscii',
  'lowerAscii',
  'charAt',
  'indexOf',
  'lastIndexOf',
  'replace',
  'split',
  'substring',
  'trim',
  'join',
  'reverse',
  'format',
  'sort',
  'distinct',
  'slice',
  'flatten',
  'first',
  'last',
  'timeSince',
  'ancestorOf',
  'descendentOf',
  'immediateChildOf',
  'immediateParentOf',
  'siblingOf',
  'overlaps',
  'inIPAddrRange',
  'containsIP',
  'containsCIDR',
  'getFullYear',
  'getMonth',
  'getDate',
  'getDayOfMonth',
  'getDayOfWeek',
  'getDayOfYear',
  'getHours',
  'getMinutes',
  'getSeconds',
  'getMilliseconds',
]);

function literal(v: JsonValue): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  // A filter's numbers are JSON numbers; attributes reach CEL as doubles, so these do too.
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 1e21 ? `${v}.0` : `${v}`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`;
  return dynMap(Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${literal(x)}`));
}

const isNumberValue = (o: PlanOperand | undefined): boolean => o !== undefined && 'value' in o && typeof o.value === 'number';

/**
 * A map literal typed `dyn`. A residual may read a field the map lacks (a principal attribute the
 * request did not carry, compared with a number): the type checker would refuse
 * `{"dept": "hr"}.level <= -1.0` (its values are strings), where Cerbos's residual evaluates and
 * fails on the missing key at run time, which makes the condition false (or, under `!`, an error).
 */
function dynMap(entries: readonly string[]): string {
  return `dyn({${entries.join(', ')}})`;
}

/**
 * The CEL source of a filter operand.
 * @example celOfOperand({ expression: { operator: 'lt', operands: [{ variable: 'request.resource.attr.amount' }, { value: 500 }] } }) // '(request.resource.attr.amount < 500.0)'
 */
export function celOfOperand(o: PlanOperand): string {
  if ('variable' in o) return o.variable;
  if ('value' in o) return literal(o.value);
  const { operator, operands } = o.expression;
  const args = operands.map(celOfOperand);
  const bin = BINARY[operator];
  if (bin !== undefined && args.length === 2) {
    // A number of the filter lost its CEL type (`int(x) == 2` prints as the JSON number 2): compared
    // for equality as `dyn`, it equals an int or a double of the same value, as the residual did.
    if (operator === 'eq' || operator === 'ne') for (let i = 0; i < 2; i++) if (isNumberValue(operands[i])) args[i] = `dyn(${args[i] as string})`;
    return `(${args[0]} ${bin} ${args[1]})`;
  }
  switch (operator) {
    case 'and':
      return args.length === 0 ? 'true' : `(${args.join(' && ')})`;
    case 'or':
      return args.length === 0 ? 'false' : `(${args.join(' || ')})`;
    case 'not':
      return `!(${args[0]})`;
    case 'if':
      return `(${args[0]} ? ${args[1]} : ${args[2]})`;
    case 'index':
      return `${args[0]}[${args[1]}]`;
    case 'list':
      return `[${args.join(', ')}]`;
    // Cerbos prints a field read from a known message it could not resolve as
    // get-field(struct(set-field(k, v)...), name).
    case 'struct':
      return dynMap(operands.map((f) => ('expression' in f && f.expression.operator === 'set-field' ? `${celOfOperand(f.expression.operands[0] as PlanOperand)}: ${celOfOperand(f.expression.operands[1] as PlanOperand)}` : celOfOperand(f))));
    case 'get-field': {
      const name = operands[1];
      return name !== undefined && 'variable' in name ? `${args[0]}.${name.variable}` : `${args[0]}[${args[1]}]`;
    }
    default:
      break;
  }
  const lambda = operands[1];
  if (MACROS.has(operator) && operands.length === 2 && lambda !== undefined && 'expression' in lambda && lambda.expression.operator === 'lambda') {
    const [body, ...vars] = lambda.expression.operands.map(celOfOperand);
    return `${args[0]}.${operator}(${[...vars, body].join(', ')})`;
  }
  if (RECEIVER_ONLY.has(operator) && args.length >= 1) return `${args[0]}.${operator}(${args.slice(1).join(', ')})`;
  return `${operator}(${args.join(', ')})`;
}

const programs = new Map<string, CelProgram>();

/**
 * Whether `resource` passes `filter`: always for `KIND_ALWAYS_ALLOWED`, never for
 * `KIND_ALWAYS_DENIED`, and for a conditional filter when its condition evaluates to true.
 * @example evaluatePlanFilter({ kind: 'KIND_CONDITIONAL', condition }, { kind: 'tool', attr: { amount: 100 } })
 */
export function evaluatePlanFilter(filter: PlanFilter, resource: FilterResource, now: Date = new Date()): boolean {
  if (filter.kind === 'KIND_ALWAYS_ALLOWED') return true;
  if (filter.kind === 'KIND_ALWAYS_DENIED' || filter.condition === undefined) return filter.kind !== 'KIND_ALWAYS_DENIED';
  const source = celOfOperand(filter.condition);
  let program = programs.get(source);
  if (program === undefined) {
    program = compileCelExpression(source);
    if (programs.size > 1000) programs.clear();
    programs.set(source, program);
  }
  const ctx = createCelContext({
    request: {
      principal: { id: '', roles: [] },
      resource: { kind: resource.kind, id: resource.id ?? '', attr: { ...(resource.attr ?? {}) }, policyVersion: resource.policyVersion ?? '', scope: resource.scope ?? '' },
    },
    constants: {},
    variables: {},
    globals: {},
    effectiveDerivedRoles: [],
    now,
  });
  try {
    return program.evaluate(ctx) === true;
  } catch (err) {
    if (err instanceof CelEvaluationError) return false;
    throw err;
  }
}
