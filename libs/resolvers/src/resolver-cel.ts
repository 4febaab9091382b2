/**
 * The small CEL environment of resolver expressions (`provides` and `when`), on the same CEL
 * library the engine uses. Variables: `result` (the resolver's answer for one key), the input
 * roots (`principal`, `agent`, `resource`, `context`, `delegation`, `subject`) and the policy
 * shorthands `P`, `R` and `A`. Compiling also lists the input paths an expression reads, which is
 * how the registry finds dependencies between resolvers.
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import { WardenError, type JsonValue } from '@warden/core';
import { ATTRIBUTE_ROOTS, type AttributePath, type AttributeRoot, type InputDocument } from './attribute-path.js';

const ALIASES: Readonly<Record<string, AttributeRoot>> = { P: 'principal', R: 'resource', A: 'agent' };
const ROOT_NAMES: Readonly<Record<string, AttributeRoot>> = {
  ...Object.fromEntries(ATTRIBUTE_ROOTS.map((r) => [r, r])),
  ...ALIASES,
};

let env: Environment | undefined;

function environment(): Environment {
  if (env !== undefined) return env;
  const e = new Environment({ unlistedVariablesAreDyn: false, homogeneousAggregateLiterals: false, enableOptionalTypes: true });
  e.registerVariable('result', 'dyn');
  for (const name of Object.keys(ROOT_NAMES)) e.registerVariable(name, 'dyn');
  env = e;
  return e;
}

/** A compiled resolver expression. */
export interface ResolverExpression {
  readonly source: string;
  /** Input paths the expression reads (a path may be a prefix such as `resource.attr`). */
  readonly reads: readonly AttributePath[];
  /** Set when the expression is exactly `R.kind == "<kind>"`: the kind it admits. */
  readonly kindEquals?: string;
  /** True when the value depends on `result` alone (`result.a.b`): equal results give equal values. */
  readonly resultOnly?: true;
  /** Evaluates against one item's input and (for `provides`) the resolver's result. Throws on CEL errors. */
  evaluate(input: InputDocument, result?: unknown): unknown;
}

type Evaluator = ((ctx: Record<string, unknown>) => unknown) & { check(): { valid: boolean; error?: unknown } };

/** Compiles `source`; throws `ERR_RESOLVER_CEL_INVALID` with the CEL message. */
export function compileResolverExpression(source: string): ResolverExpression {
  let fn: Evaluator;
  try {
    fn = environment().parse(source) as unknown as Evaluator;
    const checked = fn.check();
    if (!checked.valid) throw checked.error ?? new Error('type check failed');
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
    throw new WardenError('ERR_RESOLVER_CEL_INVALID', `invalid CEL expression \`${source}\`: ${message}`, { cause: err });
  }
  const reads = readsOf((fn as unknown as { ast: ASTNode }).ast);
  const fieldPath = RESULT_FIELDS.exec(source.trim());
  if (fieldPath !== null) {
    // Fast path for the common `result.a.b`: the same answer as CEL (a missing field is an error)
    // without building an activation.
    const fields = fieldPath[1] === undefined || fieldPath[1] === '' ? [] : fieldPath[1].slice(1).split('.');
    return { source, reads, resultOnly: true, evaluate: (_input, result) => selectFields(result, fields) };
  }
  const kindGuard = KIND_GUARD.exec(source.trim());
  if (kindGuard !== null) {
    // Fast path for the common guard `R.kind == "tool"`: the same answer as CEL, no activation.
    const kind = kindGuard[1] ?? kindGuard[2] ?? '';
    return {
      source,
      reads,
      kindEquals: kind,
      evaluate: (input) => {
        const k = input.resource?.['kind'];
        if (k === undefined) throw new Error('No such key: kind');
        return k === kind;
      },
    };
  }
  // Only the variables the expression names are put in its activation.
  const used = Object.entries(ROOT_NAMES).filter(([name]) => namesOf((fn as unknown as { ast: ASTNode }).ast).has(name));
  return {
    source,
    reads,
    evaluate(input, result) {
      const ctx: Record<string, unknown> = { result: result ?? null };
      for (const [name, root] of used) ctx[name] = input[root] ?? {};
      return fn(ctx);
    },
  };
}

const RESULT_FIELDS = /^result((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$/;
const KIND_GUARD = /^(?:R|resource)\.kind\s*==\s*(?:"([A-Za-z0-9_.:@/-]*)"|'([A-Za-z0-9_.:@/-]*)')$/;
function selectFields(result: unknown, fields: readonly string[]): unknown {
  let cur: unknown = result ?? null;
  // The source already parsed as CEL, so no field here is a reserved word.
  for (const f of fields) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, f)) {
      throw new Error(typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? `No such key: ${f}` : `no such field \`${f}\``);
    }
    cur = (cur as Record<string, unknown>)[f];
  }
  return cur;
}

interface Node {
  op: string;
  args: unknown;
}

function chainOf(node: Node): { root: AttributeRoot; segments: string[] } | undefined {
  const segments: string[] = [];
  let cur: Node = node;
  for (;;) {
    if (cur.op === 'id') {
      const root = typeof cur.args === 'string' ? ROOT_NAMES[cur.args] : undefined;
      return root === undefined ? undefined : { root, segments: segments.reverse() };
    }
    if (cur.op === '.' || cur.op === '.?') {
      const [obj, field] = cur.args as [Node, string];
      segments.push(field);
      cur = obj;
    } else if (cur.op === '[]' || cur.op === '[?]') {
      const [obj, index] = cur.args as [Node, Node];
      if (index.op !== 'value' || typeof index.args !== 'string') return undefined;
      segments.push(index.args);
      cur = obj;
    } else {
      return undefined;
    }
  }
}

/** Every identifier the expression names (variables, including comprehension variables). */
function namesOf(ast: ASTNode): Set<string> {
  const names = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isNode(v) || v.op === 'value') return;
    if (v.op === 'id' && typeof v.args === 'string') names.add(v.args);
    visit(v.args);
  };
  visit(ast);
  return names;
}

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && 'op' in v && 'args' in v;
}

function readsOf(ast: ASTNode): AttributePath[] {
  const found = new Map<string, AttributePath>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isNode(v) || v.op === 'value') return;
    const chain = chainOf(v);
    if (chain !== undefined) {
      const text = [chain.root, ...chain.segments].join('.');
      found.set(text, { text, root: chain.root, segments: chain.segments });
      return;
    }
    visit(v.args);
  };
  visit(ast);
  return [...found.values()].sort((a, b) => a.text.localeCompare(b.text));
}

/**
 * Converts a CEL result to JSON: ints become numbers (strings beyond 2^53), maps become objects,
 * timestamps ISO strings. Throws for values JSON cannot hold.
 */
export function celToJson(value: unknown): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`non-finite number \`${value}\``);
    return value;
  }
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (Array.isArray(value)) return value.map(celToJson);
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of value) out[String(k)] = celToJson(v);
    return out;
  }
  if (typeof value === 'object' && typeof (value as { valueOf(): unknown }).valueOf === 'function') {
    const inner = (value as { valueOf(): unknown }).valueOf();
    if (typeof inner === 'bigint') return celToJson(inner);
  }
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = celToJson(v);
    return out;
  }
  throw new Error(`value of type \`${typeof value}\` is not JSON`);
}
