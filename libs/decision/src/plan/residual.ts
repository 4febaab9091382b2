/**
 * Partial evaluation of one CEL expression for planning: what is known (the principal, globals,
 * constants, `now`, aux data, the resource's kind, version and scope and any attributes the plan
 * request gives) is folded to values, and what depends on the unknown resource is kept as a
 * condition tree in Cerbos's plan format: `request.resource...` paths become variables,
 * operators and functions become `{operator, operands}`, comprehensions become a `lambda`
 * operand, and policy variables (`V.x`) are inlined.
 *
 * A known subtree is evaluated by compiling its source slice with the engine's CEL environment,
 * so folding answers exactly what a check would. Anything this cannot express throws
 * {@link PlanUnsupported}; the planner then gives no plan rather than a wrong one.
 */
import type { JsonValue } from '@warden/core';
import { celEnvironment } from '../cel/cel-environment.js';
import { CelEvaluationError, compileCelExpression, type CelContext } from '../cel/index.js';
import { celValueToJson } from '../cel/cel-values.js';
import type { PlanOperand } from './plan-filter.js';

/** Raised for an expression (or a part of one) the planner cannot express. */
export class PlanUnsupported extends Error {}

interface Node {
  op: string;
  args: unknown;
  start?: number;
  end?: number;
}

/** What a residual computation knows. */
export interface ResidualScope {
  /** Evaluates a fully known expression source (throws on CEL errors). */
  evaluate(source: string): unknown;
  /** The residual of policy variable `name` (inlined where it is read). */
  variable(name: string): Residual;
  /**
   * How `has()` of an unknown field is planned: as Cerbos does (taken as present, the default), or
   * exactly (kept as a `has` condition), for callers that must never disagree with the check.
   */
  readonly exactPresence?: boolean;
  /** `runtime.effectiveDerivedRoles` where this expression is evaluated (an empty list when absent); worked out on first use. */
  effectiveDerivedRoles?(): Residual;
  /** Resource fields and attributes known at planning time. */
  readonly knownResource: { readonly kind: string; readonly id?: string; readonly policyVersion: string; readonly scope: string; readonly attr: Readonly<Record<string, unknown>> };
}

/** A residual: a known value, or an operand depending on the unknown resource. */
export type Residual =
  | { readonly known: true; readonly value: unknown }
  | { readonly known: false; readonly operand: PlanOperand; readonly choices?: Choices; readonly error?: boolean; readonly prunable?: boolean };

const isError = (r: Residual): boolean => !r.known && r.error === true;

/** A value that is one of a known container's entries, chosen by an unknown key (a variable `V.x = P.attr.m[R.attr.k]`). */
interface Choices {
  readonly key: PlanOperand;
  readonly entries: ReadonlyArray<readonly [unknown, unknown]>;
}

const BINARY: Readonly<Record<string, string>> = {
  '==': 'eq',
  '!=': 'ne',
  '<': 'lt',
  '<=': 'le',
  '>': 'gt',
  '>=': 'ge',
  '&&': 'and',
  '||': 'or',
  in: 'in',
  '+': 'add',
  '-': 'sub',
  '*': 'mult',
  '/': 'div',
  '%': 'mod',
};
const MACROS = new Set(['all', 'exists', 'exists_one', 'filter', 'map']);
/**
 * Cerbos's own list functions: the first argument that is unknown or fails decides, in order
 * (read off the binary: `hasIntersection(R.attr.x, P.attr.missing)` stays in the plan,
 * `hasIntersection(P.attr.missing, R.attr.x)` fails). CEL's operators and other functions fail
 * when any argument fails.
 */
const LEFT_FIRST = new Set(['hasIntersection', 'intersect', 'except', 'isSubset']);

/** A call of a {@link LEFT_FIRST} function: an error only when its first argument that is not known is one. */
function leftFirst(name: string, args: readonly Node[], bound: Bound, scope: ResidualScope, source: string): Residual {
  const rs = args.map((a) => residualOf(a, bound, scope, source));
  const first = rs.find((r) => !r.known);
  const operand: PlanOperand = { expression: { operator: name, operands: rs.map(operandOf) } };
  return { known: false, operand, ...(first !== undefined && isError(first) ? { error: true } : {}) };
}

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && 'op' in v;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;

/** A known value a filter can carry as a JSON value (others, such as hierarchies, stay calls). */
function isPlainValue(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return true;
  if (Array.isArray(v)) return v.every(isPlainValue);
  if (v instanceof Map) return [...v.values()].every(isPlainValue);
  return isPlainObject(v) && Object.values(v).every(isPlainValue);
}

function toJson(v: unknown): JsonValue {
  return celValueToJson(v) as JsonValue;
}

function operandOf(r: Residual): PlanOperand {
  return r.known ? { value: toJson(r.value) } : r.operand;
}

/** The unknown-resource path a node reads (`request.resource.attr.x`), if it is one. */
function resourcePath(n: Node, scope: ResidualScope): string | undefined | { known: unknown } {
  const segments: string[] = [];
  let cur: Node = n;
  for (;;) {
    if (cur.op === '.' && Array.isArray(cur.args)) {
      const [obj, field] = cur.args as [Node, string];
      segments.unshift(field);
      cur = obj;
      continue;
    }
    if (cur.op === 'id') {
      const root = cur.args as string;
      if (root === 'R' && segments.length > 0) return fieldOf(segments, scope);
      if (root === 'request' && segments[0] === 'resource' && segments.length > 1) return fieldOf(segments.slice(1), scope);
      return undefined;
    }
    return undefined;
  }
}

function fieldOf(segments: string[], scope: ResidualScope): string | { known: unknown } {
  const [first, second] = segments;
  const k = scope.knownResource;
  if (first === 'kind') return { known: k.kind };
  if (first === 'id' && k.id !== undefined) return { known: k.id };
  if (first === 'policyVersion') return { known: k.policyVersion };
  if (first === 'scope') return { known: k.scope };
  if (first === 'attr' && second !== undefined && Object.hasOwn(k.attr, second)) {
    let v: unknown = k.attr[second];
    for (const s of segments.slice(2)) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[s] : undefined;
    return { known: v };
  }
  return ['request', 'resource', ...segments].join('.');
}

/**
 * Variables bound by enclosing comprehensions: `unknown` when they range over resource data,
 * `iter` when over a known range (known while the comprehension is evaluated, so a subtree that
 * reads one is not evaluated on its own).
 */
type Binding = 'unknown' | 'iter' | { readonly value: unknown };
/** Comprehension variables by name, and subtrees fixed to a known value (an index chosen per entry of a known map). */
type Bound = ReadonlyMap<string | Node, Binding>;

function bind(bound: Bound, names: readonly (string | Node)[], how: Binding | readonly Binding[]): Bound {
  const m = new Map(bound);
  names.forEach((n, i) => m.set(n, Array.isArray(how) ? (how[i] as Binding) : (how as Binding)));
  return m;
}

/** The value a subtree is fixed to, if it is. */
function fixedValue(n: Node, bound: Bound): { readonly value: unknown } | undefined {
  const b = bound.get(n);
  return b !== undefined && typeof b === 'object' ? b : undefined;
}

/** True when `n` reads a comprehension variable bound over a known range (so it cannot be evaluated alone). */
function readsIter(n: unknown, bound: Bound): boolean {
  if (Array.isArray(n)) return n.some((x) => readsIter(x, bound));
  if (!isNode(n)) return false;
  if (n.op === 'id') return bound.get(n.args as string) === 'iter';
  if (n.op === 'value') return false;
  return readsIter(n.args, bound);
}

function dependsOnUnknown(n: Node, bound: Bound, scope: ResidualScope, source: string): boolean {
  if (fixedValue(n, bound) !== undefined) return false;
  // Planned apart from the known parts around it (see hasOfKnownAttr).
  if (scope.exactPresence !== true && hasOfKnownAttr(n, scope) !== undefined) return true;
  const p = resourcePath(n, scope);
  if (typeof p === 'string') return true;
  if (p !== undefined) return false;
  switch (n.op) {
    case 'value':
      return false;
    case 'id':
      if (n.args === 'runtime') throw new PlanUnsupported('runtime as a value');
      return bound.get(n.args as string) === 'unknown' || n.args === 'R';
    case '.':
    case '.?': {
      const [obj, field] = n.args as [Node, string];
      if (obj.op === 'id' && (obj.args === 'V' || obj.args === 'variables')) return !scope.variable(field).known;
      if (isRuntimeRoles(n)) return !runtimeRoles(scope).known;
      return dependsOnUnknown(obj, bound, scope, source);
    }
    case 'rcall': {
      const [name, target, args] = n.args as [string, Node, Node[]];
      if (MACROS.has(name) && args.length >= 2 && args.slice(0, -1).every((a) => a.op === 'id')) {
        const targetUnknown = dependsOnUnknown(target, bound, scope, source);
        const inner = bind(bound, args.slice(0, -1).map((a) => a.args as string), targetUnknown ? 'unknown' : 'iter');
        return targetUnknown || dependsOnUnknown(args[args.length - 1] as Node, inner, scope, source);
      }
      return dependsOnUnknown(target, bound, scope, source) || args.some((a) => dependsOnUnknown(a, bound, scope, source));
    }
    case 'call': {
      const [, args] = n.args as [string, Node[]];
      return args.some((a) => dependsOnUnknown(a, bound, scope, source));
    }
    case 'map': {
      const entries = n.args as Array<[Node, Node]>;
      return entries.some(([k, v]) => dependsOnUnknown(k, bound, scope, source) || dependsOnUnknown(v, bound, scope, source));
    }
    default: {
      const args = n.args;
      if (Array.isArray(args)) return args.some((a) => isNode(a) && dependsOnUnknown(a, bound, scope, source));
      if (isNode(args)) return dependsOnUnknown(args, bound, scope, source);
      return false;
    }
  }
}

/**
 * A field read from a known map that lacks it (`P.attr.active` with no `active`): as Cerbos does,
 * the read stays in the plan as `get-field(struct(set-field(k, v)...), active)`, an error when the
 * filter is evaluated, so `x || P.attr.active` still holds where `x` does.
 */
function missingField(n: Node, bound: Bound, scope: ResidualScope, source: string): Residual | undefined {
  if (n.op !== '.' || !Array.isArray(n.args)) return undefined;
  const [obj, field] = n.args as [Node, string];
  let holder: Residual;
  try {
    holder = residualOf(obj, bound, scope, source);
  } catch (err) {
    if (err instanceof CelEvaluationError) return undefined;
    throw err;
  }
  if (!holder.known) return undefined;
  const v = holder.value;
  const entries = v instanceof Map ? [...v] : isPlainObject(v) ? Object.entries(v) : undefined;
  if (entries === undefined || entries.some(([k]) => k === field)) return undefined;
  const struct: PlanOperand = {
    expression: { operator: 'struct', operands: entries.map(([k, x]) => ({ expression: { operator: 'set-field', operands: [{ value: toJson(k) }, { value: toJson(x) }] } })) },
  };
  return { known: false, error: true, operand: { expression: { operator: 'get-field', operands: [struct, { variable: field }] } } };
}

/** The entries of a known list (index, element) or map (key, value), or none for anything else. */
function entriesOf(v: unknown): Array<[unknown, unknown, boolean]> | undefined {
  if (Array.isArray(v)) return v.map((x, i) => [BigInt(i), x, true]);
  if (v instanceof Map) return [...v].map(([k, x]) => [k, x, false]);
  if (isPlainObject(v)) return Object.entries(v).map(([k, x]) => [k, x, false]);
  return undefined;
}

/** A CEL literal of a known JSON-like value (numbers as doubles, as attributes reach CEL). */
function celLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return `${v}`;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new PlanUnsupported('a non-finite number');
    return Number.isInteger(v) ? `${v}.0` : `${v}`;
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(celLiteral).join(', ')}]`;
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `${celLiteral(k)}: ${celLiteral(x)}`).join(', ')}}`;
  if (isPlainObject(v)) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${celLiteral(x)}`).join(', ')}}`;
  throw new PlanUnsupported('a comprehension value without a literal');
}

const NO_ROLES: Residual = { known: true, value: [] };

const runtimeRoles = (scope: ResidualScope): Residual => scope.effectiveDerivedRoles?.() ?? NO_ROLES;

/** `runtime.effectiveDerivedRoles` (or its snake-case spelling). */
function isRuntimeRoles(n: Node): boolean {
  if (n.op !== '.' || !Array.isArray(n.args)) return false;
  const [obj, field] = n.args as [Node, string];
  return obj.op === 'id' && obj.args === 'runtime' && (field === 'effectiveDerivedRoles' || field === 'effective_derived_roles');
}

/** The source of `n`, with every identifier bound to a known value (and known runtime roles) replaced by its literal. */
function sliceOf(n: Node, source: string, bound: Bound, scope: ResidualScope): string {
  const start = n.start as number;
  const edits: Array<{ start: number; end: number; text: string }> = [];
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) {
      for (const y of x) visit(y);
      return;
    }
    if (!isNode(x)) return;
    const fixed = fixedValue(x, bound);
    if (fixed !== undefined && x.start !== undefined && x.end !== undefined) {
      edits.push({ start: x.start, end: x.end, text: celLiteral(fixed.value) });
      return;
    }
    if (x.op === 'id') {
      const b = bound.get(x.args as string);
      if (b !== undefined && typeof b === 'object' && x.start !== undefined && x.end !== undefined) edits.push({ start: x.start, end: x.end, text: celLiteral(b.value) });
      return;
    }
    if (x.op === 'value') return;
    if (isRuntimeRoles(x) && x.start !== undefined && x.end !== undefined) {
      const r = runtimeRoles(scope);
      if (r.known) edits.push({ start: x.start, end: x.end, text: celLiteral(r.value) });
      return;
    }
    visit(x.args);
  };
  visit(n);
  let text = source.slice(start, n.end);
  for (const e of edits.sort((a, b) => b.start - a.start)) text = text.slice(0, e.start - start) + e.text + text.slice(e.end - start);
  return balanced(text);
}

/**
 * `text` with its grouping parentheses balanced: a node's source range can stop short of a
 * closing parenthesis (`!(a in b)` ends after `b`) or start after an opening one.
 */
function balanced(text: string): string {
  let depth = 0;
  let missingOpen = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '(') depth++;
    else if (c === ')') {
      if (depth === 0) missingOpen++;
      else depth--;
    }
  }
  return '('.repeat(missingOpen) + text + ')'.repeat(depth);
}

/** `has(R.attr.<k>)` (or `request.resource.attr.<k>`) of an attribute the plan request gives. */
function hasOfKnownAttr(n: Node, scope: ResidualScope): string | undefined {
  if (n.op !== 'call') return undefined;
  const [name, args] = n.args as [string, Node[]];
  if (name !== 'has' || args.length !== 1) return undefined;
  const sel = args[0] as Node;
  if (sel.op !== '.' || !Array.isArray(sel.args)) return undefined;
  const [attr, key] = sel.args as [Node, string];
  if (attr.op !== '.' || !Array.isArray(attr.args)) return undefined;
  const [root, field] = attr.args as [Node, string];
  if (field !== 'attr') return undefined;
  const isR = root.op === 'id' && root.args === 'R';
  const isRequestResource = root.op === '.' && Array.isArray(root.args) && (root.args as [Node, string])[1] === 'resource' && ((root.args as [Node, string])[0] as Node).op === 'id' && ((root.args as [Node, string])[0] as Node).args === 'request';
  if (!isR && !isRequestResource) return undefined;
  return Object.hasOwn(scope.knownResource.attr, key) ? key : undefined;
}

function residualOf(n: Node, bound: Bound, scope: ResidualScope, source: string): Residual {
  const fixed = fixedValue(n, bound);
  if (fixed !== undefined) return { known: true, value: fixed.value };
  // Read off the Cerbos binary: `has()` of a resource attribute the plan request gives fails
  // (so `has(R.attr.x)` and `!has(R.attr.x)` both leave a rule unmet). Exact presence tests it.
  const knownKey = scope.exactPresence === true ? undefined : hasOfKnownAttr(n, scope);
  if (knownKey !== undefined) return { known: false, error: true, prunable: true, operand: { expression: { operator: 'has', operands: [{ variable: `request.resource.attr.${knownKey}` }] } } };
  if (!dependsOnUnknown(n, bound, scope, source) && !readsIter(n, bound)) {
    const p = resourcePath(n, scope);
    if (p !== undefined && typeof p !== 'string') return { known: true, value: p.known };
    if (n.start === undefined || n.end === undefined) throw new PlanUnsupported(`no source position for ${n.op}`);
    let value: unknown;
    try {
      value = scope.evaluate(sliceOf(n, source, bound, scope));
    } catch (err) {
      if (!(err instanceof CelEvaluationError)) throw err;
      return erroneous(n, bound, scope, source, err);
    }
    // Hierarchies evaluate to lists of segments here, but Cerbos keeps hierarchy(...) as a call.
    const keepCall = n.op === 'call' && (n.args as [string])[0] === 'hierarchy';
    if (!keepCall && isPlainValue(value)) return { known: true, value };
    // A known duration or timestamp is printed as the call that makes it, from its canonical text.
    if (!keepCall && value instanceof Date) return { known: false, operand: { expression: { operator: 'timestamp', operands: [{ value: toJson(value) }] } } };
    if (!keepCall && typeof value === 'object' && value !== null && typeof (value as { seconds?: unknown }).seconds === 'bigint') {
      return { known: false, operand: { expression: { operator: 'duration', operands: [{ value: toJson(value) }] } } };
    }
    // A value a filter cannot carry (a hierarchy, a timestamp): the call stays, its arguments folded.
    if (n.op === 'call') {
      const [name, args] = n.args as [string, Node[]];
      return { known: false, operand: { expression: { operator: name, operands: args.map((a) => operandOf(residualOf(a, bound, scope, source))) } } };
    }
    return { known: true, value };
  }
  const path = resourcePath(n, scope);
  if (typeof path === 'string') return { known: false, operand: { variable: path } };
  return structural(n, bound, scope, source);
}

/**
 * A known part that fails to evaluate, kept as Cerbos keeps it: the expression with its parts
 * folded (a field missing from a known map as `get-field(struct(...), name)`), marked as an error
 * that spreads through strict operators and is absorbed by `&&`/`||` as CEL absorbs errors. A
 * condition that is an error in the end is not met.
 */
function erroneous(n: Node, bound: Bound, scope: ResidualScope, source: string, err: CelEvaluationError): Residual {
  const missing = missingField(n, bound, scope, source);
  if (missing !== undefined) return missing;
  let r: Residual;
  try {
    r = structural(n, bound, scope, source);
  } catch (e) {
    if (e instanceof PlanUnsupported) throw err;
    throw e;
  }
  if (r.known) throw err;
  return { ...r, error: true };
}

/** The residual of a node from its parts; an error in a part makes the whole an error (strict operators). */
function structural(n: Node, bound: Bound, scope: ResidualScope, source: string): Residual {
  let failed = false;
  const subR = (x: Node, b: Bound = bound): Residual => {
    const r = residualOf(x, b, scope, source);
    if (isError(r)) failed = true;
    return r;
  };
  const r = structuralOf(n, bound, scope, source, subR);
  return failed && !r.known ? { ...r, error: true } : r;
}

function structuralOf(n: Node, bound: Bound, scope: ResidualScope, source: string, subR: (x: Node, b?: Bound) => Residual): Residual {
  const sub = (x: Node, b?: Bound): PlanOperand => operandOf(subR(x, b));
  const op = (operator: string, operands: PlanOperand[]): Residual => ({ known: false, operand: { expression: { operator, operands } } });
  switch (n.op) {
    case 'id':
      if (bound.has(n.args as string)) {
        const b = bound.get(n.args as string);
        if (b !== undefined && typeof b === 'object') return { known: true, value: b.value };
        return { known: false, operand: { variable: n.args as string } };
      }
      throw new PlanUnsupported(`bare identifier ${String(n.args)}`);
    case 'value':
      return { known: true, value: n.args };
    case '.': {
      const [obj, field] = n.args as [Node, string];
      if (obj.op === 'id' && (obj.args === 'V' || obj.args === 'variables')) {
        const v = scope.variable(field);
        if (!v.known && v.choices !== undefined) throw new PlanUnsupported(`variable ${field} indexed by an unknown key inside a comprehension`);
        return v;
      }
      if (isRuntimeRoles(n)) return runtimeRoles(scope);
      if (obj.op === 'id' && bound.has(obj.args as string)) return { known: false, operand: { variable: `${obj.args as string}.${field}` } };
      if (obj.op === '.' && readsIter(obj, bound)) {
        const inner = residualOf(obj, bound, scope, source);
        if (!inner.known && 'variable' in inner.operand) return { known: false, operand: { variable: `${inner.operand.variable}.${field}` } };
      }
      throw new PlanUnsupported(`field ${field} of an unknown value`);
    }
    case '!_':
      return op('not', [sub(n.args as Node)]);
    case '?:': {
      const [c, a, b] = n.args as [Node, Node, Node];
      return op('if', [sub(c), sub(a), sub(b)]);
    }
    case 'rcall': {
      const [name, target, args] = n.args as [string, Node, Node[]];
      const vars = args.slice(0, -1);
      if (MACROS.has(name) && (args.length === 2 || args.length === 3) && vars.every((a) => a.op === 'id')) {
        const names = vars.map((a) => a.args as string);
        // Cerbos unrolls exists/all over a known range: the body for each element, OR-ed or AND-ed.
        // Other comprehensions keep the known range as a value.
        // Inside a comprehension over an unknown or iterated range Cerbos keeps the lambda form.
        const nested = [...bound.values()].some((b) => typeof b !== 'object');
        if ((name === 'exists' || name === 'all') && !nested && !dependsOnUnknown(target, bound, scope, source)) {
          const range = residualOf(target, bound, scope, source);
          // A range that fails to evaluate fails the comprehension (strict).
          if (isError(range)) return { known: false, error: true, operand: operandOf(range) };
          if (!range.known) throw new PlanUnsupported(`${name} over a known range`);
          const entries = entriesOf(range.value);
          if (entries === undefined) throw new PlanUnsupported(`${name} over a known non-collection`);
          // One variable ranges over a list's elements or a map's keys; two over (index, element) or (key, value).
          const bodies = entries.map(([k, v, isList]) =>
            sub(args[args.length - 1] as Node, bind(bound, names, names.length === 2 ? [{ value: k }, { value: v }] : [{ value: isList ? v : k }])),
          );
          return op(name === 'exists' ? 'or' : 'and', bodies);
        }
        // A filter or map over a range that fails is an error, printed as Cerbos prints it: the
        // lambda form over the failed range (get-field(...)).
        const range = residualOf(target, bound, scope, source);
        const rangeFailed = isError(range);
        const inner = bind(bound, names, rangeFailed || dependsOnUnknown(target, bound, scope, source) ? 'unknown' : 'iter');
        const form: PlanOperand = { expression: { operator: name, operands: [operandOf(range), { expression: { operator: 'lambda', operands: [sub(args[args.length - 1] as Node, inner), ...names.map((v) => ({ variable: v }))] } }] } };
        return { known: false, operand: form, ...(rangeFailed ? { error: true } : {}) };
      }
      if (LEFT_FIRST.has(name)) return leftFirst(name, [target, ...args], bound, scope, source);
      return op(name, [sub(target), ...args.map((a) => sub(a))]);
    }
    case 'call': {
      const [name, args] = n.args as [string, Node[]];
      // As Cerbos plans it (read off the real binary): an unknown field is taken to be present;
      // with exact presence the test stays in the plan.
      if (name === 'has' && args.length === 1) return scope.exactPresence === true ? op('has', [sub(args[0] as Node)]) : { known: true, value: true };
      if (LEFT_FIRST.has(name)) return leftFirst(name, args, bound, scope, source);
      return op(name, args.map((a) => sub(a)));
    }
    case '[]': {
      const [target, index] = n.args as [Node, Node];
      if (!dependsOnUnknown(target, bound, scope, source)) throw new PlanUnsupported('index of a known value by an unknown key');
      return op('index', [sub(target), sub(index)]);
    }
    case 'list':
      return op('list', (n.args as Node[]).map((a) => sub(a)));
    case 'map':
      throw new PlanUnsupported('map literal with unknown entries');
    default: {
      const name = BINARY[n.op];
      if (name === undefined) throw new PlanUnsupported(`operator ${n.op}`);
      const [a, b] = n.args as [Node, Node];
      if (name === 'and' || name === 'or') {
        // Non-strict: an error on one side is absorbed by a deciding value on the other.
        const ra = residualOf(a, bound, scope, source);
        const rb = residualOf(b, bound, scope, source);
        if (!isError(ra) && !isError(rb)) return op(name, [operandOf(ra), operandOf(rb)]);
        const [e, x] = isError(ra) ? [ra, rb] : [rb, ra];
        if (x.known) return (name === 'or') === (x.value === true) ? { known: true, value: name === 'or' } : e;
        // `has()` of a given attribute fails, and beside an unknown side Cerbos leaves it out.
        if (!isError(x) && !e.known && e.prunable === true) return x;
        const operand: PlanOperand = { expression: { operator: name, operands: [operandOf(ra), operandOf(rb)] } };
        return { known: false, operand, ...(isError(x) ? { error: true } : {}) };
      }
      if (name === 'in') {
        // Membership in a known map is membership in its keys.
        const right = subR(b);
        if (right.known && right.value instanceof Map) return op('in', [sub(a), { value: [...right.value.keys()].map((k) => toJson(k)) }]);
        if (right.known && isPlainObject(right.value)) return op('in', [sub(a), { value: Object.keys(right.value) }]);
        return op('in', [sub(a), operandOf(right)]);
      }
      return op(name, [sub(a), sub(b)]);
    }
  }
}

/**
 * The residual of `source` in `scope`.
 * @example residual('P.attr.userQid == R.id', scope) // { known: false, operand: { expression: { operator: 'eq', operands: [{ value: 'z0' }, { variable: 'request.resource.id' }] } } }
 */
export function residual(source: string, scope: ResidualScope): Residual {
  const parsed = celEnvironment().parse(source) as unknown as { ast: Node };
  const r = withChoices(parsed.ast, new Map(), scope, source);
  // A condition that is an error whatever the resource is not met.
  if (isError(r)) throw new CelEvaluationError(`the condition fails to evaluate: ${source}`);
  return r;
}

/**
 * The residual of a policy variable's `source`. A variable that is a known container indexed by
 * an unknown key stays a choice, resolved where a condition reads it.
 */
export function residualValue(source: string, scope: ResidualScope): Residual {
  const parsed = celEnvironment().parse(source) as unknown as { ast: Node };
  const n = parsed.ast;
  const choice = n.op === '[]' ? indexChoice(n, new Map(), scope, source) : undefined;
  if (choice !== n) return withChoices(n, new Map(), scope, source);
  const [target, index] = n.args as [Node, Node];
  const container = residualOf(target, new Map(), scope, source);
  const entries = container.known ? entriesOf(container.value) : undefined;
  if (entries === undefined) throw new CelEvaluationError('index of a value that is not a list or map');
  const key = operandOf(residualOf(index, new Map(), scope, source));
  return { known: false, operand: { expression: { operator: 'index', operands: [operandOf(container), key] } }, choices: { key, entries: entries.map(([k, v]) => [k, v] as const) } };
}

/** The choices of `V.x` when the variable is one. */
function variableChoices(n: Node, scope: ResidualScope): Choices | undefined {
  if (n.op !== '.' || !Array.isArray(n.args)) return undefined;
  const [obj, field] = n.args as [Node, string];
  if (obj.op !== 'id' || (obj.args !== 'V' && obj.args !== 'variables')) return undefined;
  const r = scope.variable(field);
  return r.known ? undefined : r.choices;
}

/**
 * A known map or list indexed by an unknown key (`P.attr.roles[R.attr.id] == "admin"`): as Cerbos
 * does, the expression becomes the OR over the container's entries of "the key is this entry's
 * key and the expression holds with this entry's value".
 */
function withChoices(ast: Node, bound: Bound, scope: ResidualScope, source: string): Residual {
  const choice = indexChoice(ast, bound, scope, source);
  if (choice === undefined) return residualOf(ast, bound, scope, source);
  let entries: ReadonlyArray<readonly [unknown, unknown]> | undefined;
  let key: PlanOperand;
  const chosenVariable = variableChoices(choice, scope);
  if (chosenVariable !== undefined) {
    ({ entries, key } = chosenVariable);
  } else {
    const [target, index] = choice.args as [Node, Node];
    const container = residualOf(target, bound, scope, source);
    if (isError(container)) throw new CelEvaluationError('the indexed value fails to evaluate');
    entries = container.known ? entriesOf(container.value)?.map(([k, v]) => [k, v] as const) : undefined;
    // Indexing a known value that is not a list or map fails, as in a check.
    if (entries === undefined) throw new CelEvaluationError('index of a value that is not a list or map');
    key = operandOf(residualOf(index, bound, scope, source));
  }
  const parts: PlanOperand[] = [];
  for (const [k, v] of entries) {
    const r = withChoices(ast, bind(bound, [choice], { value: v }), scope, source);
    if ((r.known && r.value !== true) || isError(r)) continue;
    const eq: PlanOperand = { expression: { operator: 'eq', operands: [key, { value: toJson(k) }] } };
    parts.push(r.known ? eq : { expression: { operator: 'and', operands: [eq, r.operand] } });
  }
  if (parts.length === 0) return { known: true, value: false };
  return { known: false, operand: parts.length === 1 ? (parts[0] as PlanOperand) : { expression: { operator: 'or', operands: parts } } };
}

/** The first `known[unknown]` outside comprehensions not fixed yet, if any. */
function indexChoice(n: unknown, bound: Bound, scope: ResidualScope, source: string): Node | undefined {
  if (Array.isArray(n)) {
    for (const x of n) {
      const c = indexChoice(x, bound, scope, source);
      if (c !== undefined) return c;
    }
    return undefined;
  }
  if (!isNode(n) || n.op === 'value' || n.op === 'id' || fixedValue(n, bound) !== undefined) return undefined;
  if (variableChoices(n, scope) !== undefined) return n;
  if (n.op === 'rcall' && MACROS.has((n.args as [string])[0])) return indexChoice((n.args as [string, Node])[1], bound, scope, source);
  if (n.op === '[]') {
    const [target, index] = n.args as [Node, Node];
    if (!readsIter(n, bound) && !dependsOnUnknown(target, bound, scope, source) && dependsOnUnknown(index, bound, scope, source)) return n;
  }
  return indexChoice(n.args, bound, scope, source);
}

/** A scope evaluating known slices against one CEL context. */
export function contextEvaluator(ctx: CelContext): (source: string) => unknown {
  const programs = new Map<string, ReturnType<typeof compileCelExpression>>();
  return (source) => {
    let p = programs.get(source);
    if (p === undefined) {
      p = compileCelExpression(source);
      programs.set(source, p);
    }
    return p.evaluate(ctx);
  };
}
