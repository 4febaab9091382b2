import { EvaluationError, ParseError, TypeError as CelTypeError } from '@marcbachmann/cel-js';
import { CelCompileError, CelEvaluationError } from './cel-errors.js';
import { celEnvironment, normalizeTimeZone, nowHolder } from './cel-environment.js';
import { re2ToRegExp } from './go-compat.js';

/** A principal as CEL sees it. */
export interface CelPrincipal {
  id: string;
  roles: readonly string[];
  attr?: Record<string, unknown>;
  policyVersion?: string;
  scope?: string;
}

/** A resource as CEL sees it. */
export interface CelResource {
  kind: string;
  id: string;
  attr?: Record<string, unknown>;
  policyVersion?: string;
  scope?: string;
}

/** The `request` variable. */
export interface CelRequest {
  principal: CelPrincipal;
  resource: CelResource;
  auxData?: { jwt?: Record<string, unknown>; jwts?: Record<string, unknown> };
  /** Warden extensions, present only when the request has them (Cerbos requests never do). */
  context?: Record<string, unknown>;
  delegation?: object;
}

/** What one evaluation sees. */
export interface CelScope {
  request: CelRequest;
  constants: Record<string, unknown>;
  variables: Record<string, unknown>;
  globals: Record<string, unknown>;
  effectiveDerivedRoles: readonly string[];
  now: Date;
}

/** Opaque evaluation context, prepared once per scope by {@link createCelContext}. */
export type CelContext = unknown;

const NOW = Symbol('cerbos.now');

interface ContextShape {
  [NOW]: Date;
  [name: string]: unknown;
}

const EMPTY: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

function principalView(p: CelPrincipal): Record<string, unknown> {
  return { id: p.id, roles: p.roles, attr: p.attr ?? EMPTY, policyVersion: p.policyVersion ?? '', scope: p.scope ?? '' };
}

function resourceView(r: CelResource): Record<string, unknown> {
  return { kind: r.kind, id: r.id, attr: r.attr ?? EMPTY, policyVersion: r.policyVersion ?? '', scope: r.scope ?? '' };
}

/** `request`, `R` and `P` as CEL sees them, built once per request and shared by its contexts. */
export interface PreparedCelRequest {
  readonly request: Record<string, unknown>;
  readonly R: Record<string, unknown>;
  readonly P: Record<string, unknown>;
}

/**
 * Builds the request views once; pass the result to {@link createCelContextFor}. A batch sharing
 * one principal can pass the `P` view of an earlier prepared request to reuse it.
 */
export function prepareCelRequest(request: CelRequest, sharedP?: Record<string, unknown>): PreparedCelRequest {
  const P = sharedP ?? principalView(request.principal);
  const R = resourceView(request.resource);
  const aux = { jwt: request.auxData?.jwt ?? EMPTY, jwts: request.auxData?.jwts ?? EMPTY };
  // Warden's extensions are absent unless given, so a policy reading them behaves as under Cerbos
  // (no such key); a Cerbos request keeps the one shape every other request has.
  if (request.context === undefined && request.delegation === undefined) return { request: { principal: P, resource: R, auxData: aux, aux_data: aux }, R, P };
  const req: Record<string, unknown> = { principal: P, resource: R, auxData: aux, aux_data: aux };
  if (request.context !== undefined) req['context'] = request.context;
  if (request.delegation !== undefined) req['delegation'] = request.delegation;
  return { request: req, R, P };
}

/**
 * Builds the cel-js activation for one scope from a prepared request. `variables` may be a plain
 * object or a `Map` (cel-js reads maps through `get`, which lets the engine evaluate variables
 * lazily).
 */
export function createCelContextFor(
  prepared: PreparedCelRequest,
  constants: Record<string, unknown>,
  variables: Record<string, unknown> | ReadonlyMap<string, unknown>,
  globals: Record<string, unknown>,
  effectiveDerivedRoles: readonly string[],
  now: Date,
): CelContext {
  const ctx: ContextShape = {
    [NOW]: now,
    request: prepared.request,
    R: prepared.R,
    P: prepared.P,
    V: variables,
    variables,
    C: constants,
    constants,
    G: globals,
    globals,
    runtime: { effectiveDerivedRoles, effective_derived_roles: effectiveDerivedRoles },
  };
  return ctx;
}

/**
 * Builds the cel-js activation for one scope: `request` (with `aux_data`/`auxData`), `R`, `P`,
 * `V`/`variables`, `C`/`constants`, `G`/`globals`, `runtime` and the hidden `now`. Missing
 * `attr`, `policyVersion` and `scope` default to `{}`/`""` as protobuf messages do in Cerbos.
 */
export function createCelContext(scope: CelScope): CelContext {
  return createCelContextFor(prepareCelRequest(scope.request), scope.constants, scope.variables, scope.globals, scope.effectiveDerivedRoles, scope.now);
}

/** A compiled expression. `evaluate` throws {@link CelEvaluationError} on any CEL error. */
export interface CelProgram {
  readonly source: string;
  evaluate(ctx: CelContext): unknown;
}

interface AstNode {
  op: string;
  args: unknown;
  start?: number;
  pos?: number;
}

class CompiledProgram implements CelProgram {
  constructor(
    readonly source: string,
    private readonly run: (ctx: unknown) => unknown,
    readonly ast: AstNode,
  ) {}

  evaluate(ctx: CelContext): unknown {
    nowHolder.now = (ctx as ContextShape)[NOW];
    // Missing attributes make CEL throw often on the hot path; a stack trace is never used, and
    // capturing one costs more than the evaluation itself.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return this.run(ctx);
    } catch (err) {
      throw toEvaluationError(err);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

function toEvaluationError(err: unknown): CelEvaluationError {
  if (err instanceof CelEvaluationError) return err;
  const e = err as { code?: string; message?: string; summary?: string };
  let msg = (e.summary ?? e.message ?? String(err)).split('\n')[0] ?? '';
  if (e.code === 'no_such_key' || /^No such key/.test(msg)) msg = msg.replace(/^No such key/, 'no such key');
  return new CelEvaluationError(msg, { cause: err });
}

function lineColumn(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source[i] === '\n') {
      line++;
      col = 1;
    } else col++;
  }
  return { line, column: col };
}

function toCompileError(source: string, err: unknown): CelCompileError {
  const e = err as { message?: string; summary?: string; range?: { start: number }; node?: { start?: number; pos?: number } };
  const offset = e.range?.start ?? e.node?.start ?? e.node?.pos ?? 0;
  const { line, column } = lineColumn(source, offset);
  const msg = ((e.summary ?? e.message ?? String(err)).split('\n')[0] ?? 'invalid expression').replace(/cerbos_/g, '');
  return new CelCompileError(msg, line, column, { cause: err });
}

const TZ_METHODS = new Set([
  'getDate',
  'getDayOfMonth',
  'getDayOfWeek',
  'getDayOfYear',
  'getFullYear',
  'getHours',
  'getMilliseconds',
  'getMinutes',
  'getMonth',
  'getSeconds',
]);

function walk(node: unknown, visit: (n: AstNode) => void, seen = new Set<unknown>()): void {
  if (node === null || typeof node !== 'object' || seen.has(node)) return;
  seen.add(node);
  if (Array.isArray(node)) {
    for (const x of node) walk(x, visit, seen);
    return;
  }
  const n = node as AstNode;
  if (typeof n.op === 'string') {
    visit(n);
    walk(n.args, visit, seen);
  }
}

/** Rewrites literal fixed-offset time zones (`"-05:00"`) into IANA names cel-js understands. */
function normalizeTimeZoneLiterals(ast: AstNode): void {
  walk(ast, (n) => {
    if (n.op !== 'rcall') return;
    const [name, , args] = n.args as [string, unknown, AstNode[]];
    if (!TZ_METHODS.has(name) || args.length !== 1) return;
    const arg = args[0];
    if (arg?.op === 'value' && typeof arg.args === 'string') arg.args = normalizeTimeZone(arg.args);
  });
}

/** cel-js built-ins whose JavaScript semantics differ from cel-go: calls are renamed to `cerbos_<name>`. */
const RENAMED_METHODS = new Set(['indexOf', 'lastIndexOf', 'lowerAscii', 'upperAscii', 'substring', 'split', 'matches']);
const RENAMED_FUNCTIONS = new Set(['matches', 'string', 'int', 'uint']);

function renameBuiltins(ast: AstNode): void {
  walk(ast, (n) => {
    if (n.op !== 'rcall' && n.op !== 'call') return;
    const args = n.args as unknown[];
    const name = args[0] as string;
    if ((n.op === 'rcall' ? RENAMED_METHODS : RENAMED_FUNCTIONS).has(name)) args[0] = `cerbos_${name}`;
  });
}

type StaticKind = 'int' | 'uint' | 'double' | 'string' | 'bool' | 'null' | 'bytes' | 'list' | 'map' | 'timestamp' | 'duration' | 'dyn';

function staticKind(n: AstNode | undefined): StaticKind {
  if (!n) return 'dyn';
  if (n.op === 'list') return 'list';
  if (n.op === 'map') return 'map';
  if (n.op === 'call') {
    const name = (n.args as unknown[])[0];
    if (name === 'timestamp') return 'timestamp';
    if (name === 'duration') return 'duration';
    return 'dyn';
  }
  if (n.op !== 'value') return 'dyn';
  const v = n.args;
  switch (typeof v) {
    case 'bigint':
      return 'int';
    case 'number':
      return 'double';
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    default:
      if (v === null) return 'null';
      if (v instanceof Uint8Array) return 'bytes';
      if (typeof v === 'object' && typeof (v as { valueOf(): unknown }).valueOf() === 'bigint') return 'uint';
      return 'dyn';
  }
}

/** The common element kind of a list literal: a kind, `empty`, or `dyn` (unknown or mixed). */
function listElementKind(n: AstNode | undefined): StaticKind | 'empty' | undefined {
  if (!n || n.op !== 'list') return undefined;
  const items = n.args as AstNode[];
  if (items.length === 0) return 'empty';
  const first = staticKind(items[0]);
  return items.every((x) => staticKind(x) === first) ? first : 'dyn';
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const GO_DURATION = /^[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/;
const FORMAT_ACCEPTS: Record<string, readonly StaticKind[]> = {
  d: ['int', 'uint', 'double'],
  f: ['int', 'uint', 'double'],
  e: ['int', 'uint', 'double'],
  b: ['int', 'uint', 'bool'],
  o: ['int', 'uint'],
  x: ['int', 'uint', 'string', 'bytes'],
  X: ['int', 'uint', 'string', 'bytes'],
};
const FORMAT_NAMES: Record<string, string> = {
  d: 'decimal clause can only be used on ints, uints, and doubles',
  f: 'fixed-point clause can only be used on ints, uints, and doubles',
  e: 'scientific clause can only be used on ints, uints, and doubles',
  b: 'only ints, uints, and bools can be formatted as binary',
  o: 'octal clause can only be used on ints and uints',
  x: 'only ints, uints, bytes, and strings can be formatted as hex',
  X: 'only ints, uints, bytes, and strings can be formatted as hex',
};
const SET_FUNCTIONS = new Set(['intersect', 'except', 'hasIntersection', 'has_intersection', 'isSubset', 'is_subset', 'contains', 'equivalent', 'intersects']);

function validateFormat(fmt: string, args: AstNode): void {
  const items = args.op === 'list' ? (args.args as AstNode[]) : undefined;
  let i = 0;
  for (let p = 0; p < fmt.length; p++) {
    if (fmt[p] !== '%') continue;
    let q = p + 1;
    if (fmt[q] === '%') {
      p = q;
      continue;
    }
    if (fmt[q] === '.') {
      q++;
      while (q < fmt.length && /\d/.test(fmt[q] as string)) q++;
    }
    const verb = fmt[q] ?? '';
    if (!'sdfeboxX'.includes(verb) || verb === '') throw new Error(`could not parse formatting clause: unrecognized formatting clause "${verb}"`);
    p = q;
    if (!items) {
      i++;
      continue;
    }
    if (i >= items.length) throw new Error(`index ${i} out of range`);
    const kind = staticKind(items[i++]);
    const ok = FORMAT_ACCEPTS[verb];
    if (ok && kind !== 'dyn' && !ok.includes(kind)) throw new Error(`error during formatting: ${FORMAT_NAMES[verb]}, was given ${kind}`);
  }
}

/**
 * The checks cel-go's compiler runs on literal arguments (Cerbos rejects these at policy compile
 * time): timestamp/duration strings, regular expressions, format strings, empty `math.greatest`
 * lists and set functions over literal lists of different element types.
 */
function validateLiterals(ast: AstNode): void {
  walk(ast, (n) => {
    if (n.op !== 'call' && n.op !== 'rcall') return;
    const parts = n.args as unknown[];
    const name = String(parts[0]).replace(/^cerbos_/, '');
    const receiver = n.op === 'rcall' ? (parts[1] as AstNode) : undefined;
    const args = (n.op === 'rcall' ? parts[2] : parts[1]) as AstNode[];
    const lit = (x: AstNode | undefined) => (x?.op === 'value' && typeof x.args === 'string' ? x.args : undefined);
    const err = (msg: string): never => {
      throw Object.assign(new Error(msg), { node: n });
    };
    if (n.op === 'call' && args.length === 1) {
      const s = lit(args[0]);
      if (s !== undefined && name === 'timestamp' && (!RFC3339.test(s) || Number.isNaN(Date.parse(s)))) err('invalid timestamp argument');
      if (s !== undefined && name === 'duration' && !GO_DURATION.test(s)) err('invalid duration argument');
      if (name === 'hierarchy' || name === 'spiffeMatchOneOf' || name === 'joinPath') {
        // Cerbos declares list(string) (and list(spiffeID) for spiffeMatchOneOf; calls count as dyn).
        const k = listElementKind(args[0]);
        if (k !== undefined && k !== 'empty' && k !== 'string' && k !== 'dyn') err(`found no matching overload for '${name}' applied to '(list(${k}))'`);
      }
    }
    if (name === 'pathMatchAnyOf' && args.length === (n.op === 'rcall' ? 1 : 2)) {
      // Cerbos declares list(string) for the patterns.
      const k = listElementKind(args[args.length - 1]);
      if (k !== undefined && k !== 'empty' && k !== 'string' && k !== 'dyn') err(`found no matching overload for '${name}' applied to '(string, list(${k}))'`);
    }
    if (name === 'matches') {
      const re = lit(n.op === 'rcall' ? args[0] : args[1]);
      if (re !== undefined) {
        try {
          re2ToRegExp(re);
        } catch {
          err('invalid matches argument');
        }
      }
    }
    if (n.op === 'rcall' && name === 'format' && args.length === 1) {
      const fmt = lit(receiver);
      if (fmt !== undefined && args[0]) {
        try {
          validateFormat(fmt, args[0]);
        } catch (e) {
          err((e as Error).message);
        }
      }
    }
    const ns = receiver?.op === 'id' ? receiver.args : undefined;
    if ((name === 'greatest' || name === 'least') && ns === 'math' && args.length === 1 && listElementKind(args[0]) === 'empty') {
      err(`math.${name}() invalid single argument value`);
    }
    if (SET_FUNCTIONS.has(name) && (args.length === 2 || (args.length === 1 && receiver && ns !== 'sets'))) {
      if ((name === 'contains' || name === 'equivalent' || name === 'intersects') && ns !== 'sets') return;
      const [a, b] = args.length === 2 ? args : [receiver, args[0]];
      const ka = listElementKind(a);
      const kb = listElementKind(b);
      if (ka && kb && ka !== 'empty' && kb !== 'empty' && ka !== 'dyn' && kb !== 'dyn' && ka !== kb) {
        err(`found no matching overload for '${ns === 'sets' ? `sets.${name}` : name}' applied to '(list(${ka}), list(${kb}))'`);
      }
    }
  });
}

/**
 * Parses and type-checks `source` once (undeclared identifiers, unknown functions and static type
 * errors are compile errors). Throws {@link CelCompileError}.
 */
export function compileCelExpression(source: string): CelProgram {
  const env = celEnvironment();
  let parsed: ((ctx: unknown) => unknown) & { ast: AstNode };
  try {
    parsed = env.parse(source) as unknown as typeof parsed;
  } catch (err) {
    if (err instanceof ParseError || err instanceof CelTypeError || err instanceof EvaluationError) {
      throw toCompileError(source, err);
    }
    throw toCompileError(source, err);
  }
  renameBuiltins(parsed.ast);
  try {
    validateLiterals(parsed.ast);
  } catch (err) {
    throw toCompileError(source, err);
  }
  let checked: { valid: boolean; error?: unknown };
  try {
    // Checking the parsed AST itself (not a second parse) annotates it with types, so
    // evaluation skips cel-js's per-call type check.
    checked = (parsed as unknown as { check(): { valid: boolean; error?: unknown } }).check();
  } catch (err) {
    throw toCompileError(source, err);
  }
  if (!checked.valid) throw toCompileError(source, checked.error);
  normalizeTimeZoneLiterals(parsed.ast);
  return new CompiledProgram(source, parsed, parsed.ast);
}

const VARIABLE_ROOTS = new Set(['V', 'variables']);
const CONSTANT_ROOTS = new Set(['C', 'constants']);

/**
 * Names used as `V.x` / `variables.x` / `V["x"]` and `C.x` / `constants.x` / `C["x"]`, sorted and
 * de-duplicated.
 */
export function celReferences(program: CelProgram): { variables: string[]; constants: string[] } {
  const variables = new Set<string>();
  const constants = new Set<string>();
  const ast = program instanceof CompiledProgram ? program.ast : compiledAst(program.source);
  walk(ast, (n) => {
    let root: unknown;
    let name: unknown;
    if (n.op === '.' || n.op === '.?') {
      [root, name] = n.args as [AstNode, string];
    } else if (n.op === '[]' || n.op === '[?]') {
      const [r, idx] = n.args as [AstNode, AstNode];
      root = r;
      if (idx.op === 'value') name = idx.args;
    } else return;
    const r = root as AstNode;
    if (r.op !== 'id' || typeof name !== 'string') return;
    if (VARIABLE_ROOTS.has(r.args as string)) variables.add(name);
    else if (CONSTANT_ROOTS.has(r.args as string)) constants.add(name);
  });
  return { variables: [...variables].sort(), constants: [...constants].sort() };
}

function compiledAst(source: string): AstNode {
  return (compileCelExpression(source) as CompiledProgram).ast;
}

const NAMESPACE_ROOTS = new Set(['V', 'variables', 'C', 'constants', 'G', 'globals']);

/**
 * The namespace (`V`, `C`, `G` or their long names) that the expression indexes with `[...]`, if
 * any. Cerbos types these as `cerbos.Variables`, which supports field selection only, so
 * `V["x"]` is a compile error there.
 */
export function celNamespaceIndexing(program: CelProgram): string | undefined {
  const ast = program instanceof CompiledProgram ? program.ast : compiledAst(program.source);
  let found: string | undefined;
  walk(ast, (n) => {
    if (found !== undefined || (n.op !== '[]' && n.op !== '[?]')) return;
    const root = (n.args as [AstNode, AstNode])[0];
    if (root.op === 'id' && NAMESPACE_ROOTS.has(root.args as string)) found = root.args as string;
  });
  return found;
}

/** Whether the expression reads the top-level identifier `name` (e.g. `runtime`). */
export function celUsesIdentifier(program: CelProgram, name: string): boolean {
  const ast = program instanceof CompiledProgram ? program.ast : compiledAst(program.source);
  let found = false;
  walk(ast, (n) => {
    if (!found && n.op === 'id' && n.args === name) found = true;
  });
  return found;
}

/**
 * When the whole expression is a variable reference (`V.x`, `variables.x`) or its negation
 * (`!V.x`), its name, so the engine can read the already evaluated variable instead of running
 * CEL for it.
 */
export function celVariableAlias(program: CelProgram): { name: string; negate: boolean } | undefined {
  const ast = program instanceof CompiledProgram ? program.ast : compiledAst(program.source);
  let negate = false;
  let node: AstNode = ast;
  if (node.op === '!_') {
    negate = true;
    node = node.args as AstNode;
  }
  if (node.op !== '.') return undefined;
  const [root, name] = node.args as [AstNode, unknown];
  if (root.op !== 'id' || !VARIABLE_ROOTS.has(root.args as string) || typeof name !== 'string') return undefined;
  return { name, negate };
}
