/**
 * The Cerbos-compatible CEL environment on top of @marcbachmann/cel-js: declares Cerbos's
 * variables and registers the functions cel-js lacks (Cerbos library, cel-go extensions).
 */
import { Environment, Optional } from '@marcbachmann/cel-js';
import {
  ancestorOf,
  commonAncestors,
  descendentOf,
  immediateChildOf,
  immediateParentOf,
  overlaps,
  siblingOf,
  toHierarchy,
} from './hierarchy.js';
import { CelCidr, CelIp, inIpAddrRange, parseCidr, parseIp } from './network.js';
import { basePath, dirPath, extPath, joinPath, pathHasPrefix, pathMatch, pathMatchAnyOf, relPath, volumeName } from './paths.js';
import { SpiffeId, SpiffeMatcher, SpiffeTrustDomain, spiffeIdOf, spiffeMatchOneOf, spiffeTrustDomainOf, tryParseSpiffeTrustDomain } from './spiffe.js';
import { celCompare, celEquals, celValueToJson, formatDuration, formatTimestamp } from './cel-values.js';
import {
  formatFloatG,
  formatString,
  indexOf,
  lastIndexOf,
  lowerAscii,
  quote,
  re2Cached,
  replace,
  split,
  substring,
  upperAscii,
} from './go-compat.js';

/** The identifiers Cerbos declares. */
export const CEL_VARIABLES = [
  'request',
  'R',
  'P',
  'V',
  'variables',
  'C',
  'constants',
  'G',
  'globals',
  'runtime',
] as const;

/** Holder for the evaluation-scoped `now`; set by the program right before each (synchronous) evaluation. */
export const nowHolder: { now: Date } = { now: new Date(0) };

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;
interface DurationCtor {
  fromMilliseconds(ms: number): unknown;
}

function fail(message: string): never {
  throw new Error(message);
}

function asList(v: unknown): unknown[] {
  if (!Array.isArray(v)) fail('no such overload');
  return v;
}

function contains(list: readonly unknown[], item: unknown): boolean {
  for (const x of list) if (celEquals(x, item)) return true;
  return false;
}

function entriesOf(v: unknown): Array<[unknown, unknown]> {
  if (Array.isArray(v)) return v.map((x, i) => [BigInt(i), x]);
  if (v instanceof Map) return [...v.entries()];
  if (v !== null && typeof v === 'object') return Object.entries(v);
  return fail('no such overload');
}

function isZero(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === 0n || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (v instanceof Uint8Array) return v.length === 0;
  if (v instanceof Map) return v.size === 0;
  if (v instanceof Date) return v.getTime() === 0;
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto === Object.prototype || proto === null) return Object.keys(v).length === 0;
    const prim = (v as { valueOf(): unknown }).valueOf();
    if (prim !== v) return isZero(prim);
  }
  return false;
}

const FIXED_OFFSET_ZONES: Record<string, string> = {
  '+05:30': 'Asia/Kolkata',
  '+05:45': 'Asia/Kathmandu',
  '+09:30': 'Australia/Darwin',
  '+03:30': 'Asia/Tehran',
  '+04:30': 'Asia/Kabul',
  '+06:30': 'Asia/Yangon',
  '-03:30': 'America/St_Johns',
  '-09:30': 'Pacific/Marquesas',
};

/**
 * Maps a fixed UTC offset (`-05:00`) to an IANA zone with that constant offset, because cel-js
 * only understands IANA names. Returns the input unchanged when it is not an offset.
 */
export function normalizeTimeZone(tz: string): string {
  const m = /^([+-])?(\d{2}):(\d{2})$/.exec(tz);
  if (!m) return tz;
  const [, sign = '+', hh, mm] = m;
  if (mm === '00') {
    const h = Number(hh);
    if (h === 0) return 'UTC';
    // Etc/GMT zones have inverted signs.
    return `Etc/GMT${sign === '+' ? '-' : '+'}${h}`;
  }
  return FIXED_OFFSET_ZONES[`${sign}${hh}:${mm}`] ?? tz;
}

function rePattern(re: string): RegExp {
  try {
    return new RegExp(re, 'gu');
  } catch {
    return fail(`invalid regular expression: ${re}`);
  }
}

function goReplacement(repl: string): string {
  return repl.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1').replace(/\\\\/g, '\\');
}

function numericArgs(args: readonly unknown[]): readonly unknown[] {
  const list: readonly unknown[] = args.length === 1 && Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
  if (list.length === 0) fail('math.greatest() requires at least one argument');
  for (const x of list) if (typeof x !== 'number' && typeof x !== 'bigint' && typeof x !== 'object') fail('no such overload');
  return list;
}

function registerNamespace(env: Environment, typeName: string, constName: string): void {
  const Ns = { [typeName]: class {} }[typeName] as new () => object;
  env.registerType(typeName, Ns);
  env.registerConstant(constName, typeName, new Ns());
}

interface MacroCtx {
  forkWithVariable(name: string, type: unknown): MacroCtx & { reuse(p: unknown): Any; setIterValue(v: unknown, ev: unknown): Any };
}

/** Two-variable comprehension macro factory (cel-go ext two-var comprehensions). */
function twoVarMacro(
  run: (items: Array<[unknown, unknown]>, body: (k: unknown, v: unknown, node: Any) => unknown, m: Any) => unknown,
  returnType: string,
) {
  return ({ args, receiver }: { args: Any[]; receiver: Any }) => {
    const [v1, v2, ...rest] = args;
    if (v1?.op !== 'id' || v2?.op !== 'id') throw new Error('invalid iteration variable');
    return {
      async: false,
      receiver,
      v1: v1.args as string,
      v2: v2.args as string,
      exprs: rest,
      c1: undefined as Any,
      c2: undefined as Any,
      typeCheck(checker: Any, m: Any, ctx: MacroCtx) {
        checker.check(m.receiver, ctx);
        const dyn = checker.getType('dyn');
        m.c1 = ctx.forkWithVariable(m.v1, dyn);
        m.c2 = m.c1.forkWithVariable(m.v2, dyn);
        for (const e of m.exprs) checker.check(e, m.c2);
        return checker.getType(returnType);
      },
      evaluate(ev: Any, m: Any, ctx: Any) {
        const target = ev.run(m.receiver, ctx);
        const items = entriesOf(target);
        const body = (k: unknown, v: unknown, node: Any): unknown => {
          const c1 = m.c1.reuse(ctx).setIterValue(k, ev);
          const c2 = m.c2.reuse(c1).setIterValue(v, ev);
          return ev.run(node, c2);
        };
        return run(items, body, m);
      },
    };
  };
}

function boolOf(v: unknown): boolean {
  if (typeof v !== 'boolean') fail('no such overload');
  return v;
}

let cached: Environment | undefined;

/** Returns the shared, fully configured environment (built once). */
export function celEnvironment(): Environment {
  if (cached) return cached;
  const env = new Environment({
    unlistedVariablesAreDyn: false,
    homogeneousAggregateLiterals: false,
    enableOptionalTypes: true,
  });
  for (const name of CEL_VARIABLES) env.registerVariable(name, 'dyn');
  const Duration = (env.evaluate('duration("1s")') as object).constructor as unknown as DurationCtor;
  const fn = (sig: string, handler: (...a: Any[]) => unknown) => env.registerFunction(sig, handler);

  // --- Cerbos library ---
  fn('now(): google.protobuf.Timestamp', () => nowHolder.now);
  fn('timeSince(google.protobuf.Timestamp): google.protobuf.Duration', (ts: Date) =>
    Duration.fromMilliseconds(nowHolder.now.getTime() - ts.getTime()),
  );
  fn('google.protobuf.Timestamp.timeSince(): google.protobuf.Duration', (ts: Date) =>
    Duration.fromMilliseconds(nowHolder.now.getTime() - ts.getTime()),
  );
  fn('id(dyn): dyn', (v: unknown) => v);
  fn('hierarchy(string): list<string>', (s: string) => toHierarchy(s));
  fn('hierarchy(string, string): list<string>', (s: string, d: string) => toHierarchy(s, d));
  fn('hierarchy(list): list<string>', (l: unknown[]) => {
    for (const x of l) if (typeof x !== 'string') fail('failed to convert list to string slice');
    return [...(l as string[])];
  });
  const hier: Array<[string, (a: string[], b: string[]) => unknown, string]> = [
    ['ancestorOf', ancestorOf, 'bool'],
    ['descendentOf', descendentOf, 'bool'],
    ['immediateChildOf', immediateChildOf, 'bool'],
    ['immediateParentOf', immediateParentOf, 'bool'],
    ['overlaps', overlaps, 'bool'],
    ['siblingOf', siblingOf, 'bool'],
    ['commonAncestors', commonAncestors, 'list<string>'],
  ];
  for (const [name, impl, ret] of hier) fn(`list.${name}(list): ${ret}`, (a: string[], b: string[]) => impl(a, b));
  fn('string.inIPAddrRange(string): bool', inIpAddrRange);
  const setOps: Array<[string, (a: unknown[], b: unknown[]) => unknown, string]> = [
    ['intersect', (a, b) => (a.length > b.length ? b.filter((x) => contains(a, x)) : a.filter((x) => contains(b, x))), 'list'],
    ['except', (a, b) => a.filter((x) => !contains(b, x)), 'list'],
    ['hasIntersection', (a, b) => a.some((x) => contains(b, x)), 'bool'],
    ['has_intersection', (a, b) => a.some((x) => contains(b, x)), 'bool'],
    ['isSubset', (a, b) => a.every((x) => contains(b, x)), 'bool'],
    ['is_subset', (a, b) => a.every((x) => contains(b, x)), 'bool'],
  ];
  for (const [name, impl, ret] of setOps) {
    fn(`${name}(list, list): ${ret}`, (a: unknown, b: unknown) => impl(asList(a), asList(b)));
    fn(`list.${name}(list): ${ret}`, (a: unknown, b: unknown) => impl(asList(a), asList(b)));
  }

  // --- strings extension ---
  fn('string.charAt(int): string', (s: string, i: bigint) => {
    const cps = [...s];
    if (i < 0n || i > BigInt(cps.length)) fail(`index out of range: ${i}`);
    return cps[Number(i)] ?? '';
  });
  fn('string.replace(string, string): string', (s: string, a: string, b: string) => replace(s, a, b));
  fn('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => replace(s, a, b, n));
  // cel-js built-ins with JavaScript semantics are shadowed: the compiler renames these calls to
  // the `cerbos_` versions (see RENAMED_* in cel-program.ts).
  fn('string.cerbos_indexOf(string): int', (s: string, a: string) => indexOf(s, a));
  fn('string.cerbos_indexOf(string, int): int', (s: string, a: string, i: bigint) => indexOf(s, a, i));
  fn('string.cerbos_lastIndexOf(string): int', (s: string, a: string) => lastIndexOf(s, a));
  fn('string.cerbos_lastIndexOf(string, int): int', (s: string, a: string, i: bigint) => lastIndexOf(s, a, i));
  fn('string.cerbos_lowerAscii(): string', lowerAscii);
  fn('string.cerbos_upperAscii(): string', upperAscii);
  fn('string.cerbos_substring(int): string', (s: string, a: bigint) => substring(s, a));
  fn('string.cerbos_substring(int, int): string', (s: string, a: bigint, b: bigint) => substring(s, a, b));
  fn('string.cerbos_split(string): list<string>', (s: string, sep: string) => split(s, sep));
  fn('string.cerbos_split(string, int): list<string>', (s: string, sep: string, n: bigint) => split(s, sep, n));
  fn('string.cerbos_matches(string): bool', (s: string, re: string) => re2Cached(re).test(s));
  fn('cerbos_matches(string, string): bool', (s: string, re: string) => re2Cached(re).test(s));
  const UInt = (env.evaluate('1u') as object).constructor as new (v: bigint) => object;
  const MAX_I64 = 2n ** 63n - 1n;
  const MIN_I64 = -(2n ** 63n);
  const MAX_U64 = 2n ** 64n - 1n;
  fn('cerbos_string(string): string', (v: string) => v);
  fn('cerbos_string(bool): string', (v: boolean) => String(v));
  fn('cerbos_string(int): string', (v: bigint) => String(v));
  fn('cerbos_string(uint): string', (v: object) => String(v));
  fn('cerbos_string(double): string', formatFloatG);
  fn('cerbos_string(bytes): string', (v: Uint8Array) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(v);
    } catch {
      return fail('invalid UTF-8 in bytes, cannot convert to string');
    }
  });
  fn('cerbos_string(google.protobuf.Timestamp): string', (v: Date) => formatTimestamp(v));
  fn('cerbos_string(google.protobuf.Duration): string', (v: { seconds: bigint; nanos: number }) => formatDuration(v));
  fn('cerbos_int(int): int', (v: bigint) => v);
  fn('cerbos_int(uint): int', (v: object) => {
    const n = BigInt(v.valueOf() as bigint);
    return n > MAX_I64 ? fail('integer overflow') : n;
  });
  fn('cerbos_int(double): int', (v: number) =>
    v > -9223372036854775808 && v < 9223372036854775808 ? BigInt(Math.trunc(v)) : fail('integer overflow'),
  );
  fn('cerbos_int(string): int', (v: string) => {
    if (!/^[+-]?\d+$/.test(v)) fail(`cannot convert string to int`);
    const n = BigInt(v);
    return n > MAX_I64 || n < MIN_I64 ? fail('integer overflow') : n;
  });
  fn('cerbos_int(google.protobuf.Timestamp): int', (v: Date) => BigInt(Math.floor(v.getTime() / 1000)));
  fn('cerbos_int(google.protobuf.Duration): int', (v: { seconds: bigint; nanos: number }) => v.seconds * 1_000_000_000n + BigInt(v.nanos));
  fn('cerbos_uint(uint): uint', (v: object) => v);
  fn('cerbos_uint(int): uint', (v: bigint) => (v < 0n ? fail('unsigned integer overflow') : new UInt(v)));
  fn('cerbos_uint(double): uint', (v: number) =>
    v >= 0 && v < 18446744073709551616 ? new UInt(BigInt(Math.trunc(v))) : fail('unsigned integer overflow'),
  );
  fn('cerbos_uint(string): uint', (v: string) => {
    if (!/^\+?\d+$/.test(v)) fail(`cannot convert string to uint`);
    const n = BigInt(v);
    return n > MAX_U64 ? fail('unsigned integer overflow') : new UInt(n);
  });
  fn('string.reverse(): string', (s: string) => [...s].reverse().join(''));
  fn('string.format(list): string', (s: string, l: unknown[]) => formatString(s, l));
  registerNamespace(env, 'CerbosStringsNs', 'strings');
  fn('CerbosStringsNs.quote(string): string', (_ns: unknown, s: string) => quote(s));

  // --- lists extension ---
  fn('list.sort(): list', (l: unknown[]) => {
    const kind = (x: unknown) => (x !== null && typeof x === 'object' ? Object.getPrototypeOf(x) : typeof x) as unknown;
    const k0 = l.length ? kind(l[0]) : undefined;
    for (const x of l) if (kind(x) !== k0) fail('list elements must have the same type');
    return [...l].sort(celCompare);
  });
  fn('list.reverse(): list', (l: unknown[]) => [...l].reverse());
  fn('list.distinct(): list', (l: unknown[]) => {
    const out: unknown[] = [];
    for (const x of l) if (!contains(out, x)) out.push(x);
    return out;
  });
  fn('list.slice(int, int): list', (l: unknown[], a: bigint, b: bigint) => {
    if (a < 0n || b < 0n) fail(`cannot slice(${a}, ${b}), negative indexes not supported`);
    if (a > b) fail(`cannot slice(${a}, ${b}), start index must be less than or equal to end index`);
    if (b > BigInt(l.length)) fail(`cannot slice(${a}, ${b}), list is length ${l.length}`);
    return l.slice(Number(a), Number(b));
  });
  const flatten = (l: unknown[], depth: number): unknown[] =>
    l.flatMap((x) => (Array.isArray(x) && depth > 0 ? flatten(x, depth - 1) : [x]));
  fn('list.flatten(): list', (l: unknown[]) => flatten(l, 1));
  fn('list.flatten(int): list', (l: unknown[], d: bigint) => {
    if (d < 0n) fail('level must be non-negative');
    return flatten(l, Number(d));
  });
  fn('list.first(): optional<dyn>', (l: unknown[]) => (l.length ? Optional.of(l[0]) : Optional.none()));
  fn('list.last(): optional<dyn>', (l: unknown[]) => (l.length ? Optional.of(l[l.length - 1]) : Optional.none()));
  registerNamespace(env, 'CerbosListsNs', 'lists');
  fn('CerbosListsNs.range(int): list<int>', (_ns: unknown, n: bigint) => {
    if (n < 0n) fail(`lists.range: size must be non-negative, got ${n}`);
    const out: bigint[] = [];
    for (let i = 0n; i < n; i++) out.push(i);
    return out;
  });
  env.registerFunction('list.sortBy(ast, ast): list', ({ args, receiver }: { args: Any[]; receiver: Any }) => {
    const [v, key] = args;
    if (v?.op !== 'id') throw new Error('sortBy(var, key) invalid iteration variable');
    return {
      async: false,
      receiver,
      v: v.args as string,
      key,
      c: undefined as Any,
      typeCheck(checker: Any, m: Any, ctx: MacroCtx) {
        checker.check(m.receiver, ctx);
        m.c = ctx.forkWithVariable(m.v, checker.getType('dyn'));
        checker.check(m.key, m.c);
        return checker.getType('list');
      },
      evaluate(ev: Any, m: Any, ctx: Any) {
        const list = asList(ev.run(m.receiver, ctx));
        const keyed = list.map((x) => [ev.run(m.key, m.c.reuse(ctx).setIterValue(x, ev)), x] as const);
        return keyed.sort((a, b) => celCompare(a[0], b[0])).map((e) => e[1]);
      },
    };
  });

  // --- two-variable comprehensions ---
  const quant = (name: string, pred: (items: Array<[unknown, unknown]>, test: (k: unknown, v: unknown) => boolean) => boolean) =>
    env.registerFunction(
      `dyn.${name}(ast, ast, ast): bool`,
      twoVarMacro((items, body, m) => pred(items, (k, v) => boolOf(body(k, v, m.exprs[0]))), 'bool'),
    );
  quant('all', (items, t) => items.every(([k, v]) => t(k, v)));
  quant('exists', (items, t) => items.some(([k, v]) => t(k, v)));
  const one = (items: Array<[unknown, unknown]>, t: (k: unknown, v: unknown) => boolean) =>
    items.filter(([k, v]) => t(k, v)).length === 1;
  quant('existsOne', one);
  quant('exists_one', one);
  env.registerFunction(
    'dyn.transformList(ast, ast, ast): list',
    twoVarMacro((items, body, m) => items.map(([k, v]) => body(k, v, m.exprs[0])), 'list'),
  );
  env.registerFunction(
    'dyn.transformList(ast, ast, ast, ast): list',
    twoVarMacro(
      (items, body, m) => items.filter(([k, v]) => boolOf(body(k, v, m.exprs[0]))).map(([k, v]) => body(k, v, m.exprs[1])),
      'list',
    ),
  );
  const toMap = (pairs: Array<[unknown, unknown]>) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of pairs) out[String(k)] = v;
    return out;
  };
  env.registerFunction(
    'dyn.transformMap(ast, ast, ast): map',
    twoVarMacro((items, body, m) => toMap(items.map(([k, v]) => [k, body(k, v, m.exprs[0])])), 'map'),
  );
  env.registerFunction(
    'dyn.transformMap(ast, ast, ast, ast): map',
    twoVarMacro(
      (items, body, m) =>
        toMap(items.filter(([k, v]) => boolOf(body(k, v, m.exprs[0]))).map(([k, v]) => [k, body(k, v, m.exprs[1])])),
      'map',
    ),
  );
  const mergeEntries = (maps: unknown[]) => {
    const out: Record<string, unknown> = {};
    for (const mp of maps) {
      for (const [k, v] of entriesOf(mp)) {
        const key = String(k);
        if (Object.hasOwn(out, key)) fail(`insert failed: key ${key} already exists`);
        out[key] = v;
      }
    }
    return out;
  };
  env.registerFunction(
    'dyn.transformMapEntry(ast, ast, ast): map',
    twoVarMacro((items, body, m) => mergeEntries(items.map(([k, v]) => body(k, v, m.exprs[0]))), 'map'),
  );
  env.registerFunction(
    'dyn.transformMapEntry(ast, ast, ast, ast): map',
    twoVarMacro(
      (items, body, m) =>
        mergeEntries(items.filter(([k, v]) => boolOf(body(k, v, m.exprs[0]))).map(([k, v]) => body(k, v, m.exprs[1]))),
      'map',
    ),
  );

  // --- sets extension ---
  registerNamespace(env, 'CerbosSetsNs', 'sets');
  fn('CerbosSetsNs.contains(list, list): bool', (_n: unknown, a: unknown[], b: unknown[]) => b.every((x) => contains(a, x)));
  fn('CerbosSetsNs.equivalent(list, list): bool', (_n: unknown, a: unknown[], b: unknown[]) =>
    b.every((x) => contains(a, x)) && a.every((x) => contains(b, x)),
  );
  fn('CerbosSetsNs.intersects(list, list): bool', (_n: unknown, a: unknown[], b: unknown[]) => a.some((x) => contains(b, x)));

  // --- math extension ---
  registerNamespace(env, 'CerbosMathNs', 'math');
  const pick = (dir: number) => (_n: unknown, ...args: unknown[]) => {
    const list = numericArgs(args);
    let best = list[0];
    for (const x of list) if (celCompare(x, best) * dir > 0) best = x;
    return best;
  };
  for (let n = 1; n <= 8; n++) {
    const params = new Array(n).fill('dyn').join(', ');
    fn(`CerbosMathNs.greatest(${params}): dyn`, pick(1));
    fn(`CerbosMathNs.least(${params}): dyn`, pick(-1));
  }
  const dbl = (name: string, f: (x: number) => unknown, ret = 'double') =>
    fn(`CerbosMathNs.${name}(double): ${ret}`, (_n: unknown, x: number) => f(x));
  dbl('ceil', Math.ceil);
  dbl('floor', Math.floor);
  dbl('round', (x) => (x < 0 ? -Math.round(-x) : Math.round(x)));
  dbl('trunc', Math.trunc);
  dbl('sqrt', Math.sqrt);
  dbl('isNaN', Number.isNaN, 'bool');
  dbl('isInf', (x) => x === Infinity || x === -Infinity, 'bool');
  dbl('isFinite', Number.isFinite, 'bool');
  fn('CerbosMathNs.abs(dyn): dyn', (_n: unknown, x: unknown) => {
    if (typeof x === 'bigint') {
      if (x === -(2n ** 63n)) fail('integer overflow');
      return x < 0n ? -x : x;
    }
    if (typeof x === 'number') return Math.abs(x);
    return x;
  });
  fn('CerbosMathNs.sign(dyn): dyn', (_n: unknown, x: unknown) => {
    if (x instanceof UInt) return new UInt(uv(x) > 0n ? 1n : 0n);
    if (typeof x === 'bigint') return x > 0n ? 1n : x < 0n ? -1n : 0n;
    if (typeof x === 'number') return Number.isNaN(x) ? x : Math.sign(x);
    return fail('no such overload');
  });
  const i64 = (v: bigint) => BigInt.asIntN(64, v);
  const u64 = (v: bigint) => new UInt(BigInt.asUintN(64, v));
  const uv = (v: object) => v.valueOf() as bigint;
  fn('CerbosMathNs.bitAnd(uint, uint): uint', (_n: unknown, a: object, b: object) => u64(uv(a) & uv(b)));
  fn('CerbosMathNs.bitOr(uint, uint): uint', (_n: unknown, a: object, b: object) => u64(uv(a) | uv(b)));
  fn('CerbosMathNs.bitXor(uint, uint): uint', (_n: unknown, a: object, b: object) => u64(uv(a) ^ uv(b)));
  fn('CerbosMathNs.bitNot(uint): uint', (_n: unknown, a: object) => u64(~uv(a)));
  fn('CerbosMathNs.bitShiftLeft(uint, int): uint', (_n: unknown, a: object, b: bigint) => {
    if (b < 0n) fail(`math.bitShiftLeft() negative offset: ${b}`);
    return u64(b > 63n ? 0n : uv(a) << b);
  });
  fn('CerbosMathNs.bitShiftRight(uint, int): uint', (_n: unknown, a: object, b: bigint) => {
    if (b < 0n) fail(`math.bitShiftRight() negative offset: ${b}`);
    return u64(b > 63n ? 0n : uv(a) >> b);
  });
  fn('CerbosMathNs.sqrt(int): double', (_n: unknown, x: bigint) => Math.sqrt(Number(x)));
  fn('CerbosMathNs.sqrt(uint): double', (_n: unknown, x: object) => Math.sqrt(Number(uv(x))));
  fn('CerbosMathNs.bitAnd(int, int): int', (_n: unknown, a: bigint, b: bigint) => a & b);
  fn('CerbosMathNs.bitOr(int, int): int', (_n: unknown, a: bigint, b: bigint) => a | b);
  fn('CerbosMathNs.bitXor(int, int): int', (_n: unknown, a: bigint, b: bigint) => a ^ b);
  fn('CerbosMathNs.bitNot(int): int', (_n: unknown, a: bigint) => ~a);
  fn('CerbosMathNs.bitShiftLeft(int, int): int', (_n: unknown, a: bigint, b: bigint) => {
    if (b < 0n) fail(`math.bitShiftLeft() negative offset: ${b}`);
    return b > 63n ? 0n : i64(a << b);
  });
  fn('CerbosMathNs.bitShiftRight(int, int): int', (_n: unknown, a: bigint, b: bigint) => {
    if (b < 0n) fail(`math.bitShiftRight() negative offset: ${b}`);
    return b > 63n ? 0n : i64(BigInt.asUintN(64, a) >> b);
  });

  // --- encoders, json, regex ---
  registerNamespace(env, 'CerbosBase64Ns', 'base64');
  fn('CerbosBase64Ns.encode(bytes): string', (_n: unknown, b: Uint8Array) => Buffer.from(b).toString('base64'));
  fn('CerbosBase64Ns.decode(string): bytes', (_n: unknown, s: string) => {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) fail('illegal base64 data');
    return new Uint8Array(Buffer.from(s, 'base64'));
  });
  registerNamespace(env, 'CerbosJsonNs', 'json');
  fn('CerbosJsonNs.encode(dyn): string', (_n: unknown, v: unknown) => JSON.stringify(celValueToJson(v)));
  registerNamespace(env, 'CerbosRegexNs', 'regex');
  const regexReplace = (s: string, re: string, repl: string, n: bigint) => {
    if (n === 0n) return s;
    let count = 0n;
    const r = goReplacement(repl);
    return s.replace(rePattern(re), (...m: Any[]) => {
      if (n > 0n && count >= n) return m[0] as string;
      count++;
      return (m[0] as string).replace(new RegExp(re, 'u'), r);
    });
  };
  fn('CerbosRegexNs.replace(string, string, string): string', (_n: unknown, s: string, re: string, repl: string) =>
    regexReplace(s, re, repl, -1n),
  );
  fn('CerbosRegexNs.replace(string, string, string, int): string', (_n: unknown, s: string, re: string, repl: string, n: bigint) =>
    regexReplace(s, re, repl, n),
  );
  const groupOf = (m: RegExpMatchArray) => {
    if (m.length > 2) fail('multiple capture groups are not supported');
    return m.length === 2 ? (m[1] ?? '') : m[0];
  };
  fn('CerbosRegexNs.extract(string, string): optional<string>', (_n: unknown, s: string, re: string) => {
    const m = rePattern(re).exec(s);
    return m ? Optional.of(groupOf(m)) : Optional.none();
  });
  fn('CerbosRegexNs.extractAll(string, string): list<string>', (_n: unknown, s: string, re: string) =>
    [...s.matchAll(rePattern(re))].map(groupOf),
  );

  // --- optional extras ---
  fn('OptionalNamespace.ofNonZeroValue(dyn): optional<dyn>', (_n: unknown, v: unknown) =>
    isZero(v) ? Optional.none() : Optional.of(v),
  );

  const optEq = (a: Optional, b: Optional) =>
    a.hasValue() === b.hasValue() && (!a.hasValue() || celEquals(a.value(), b.value()));
  env.registerOperator('optional<dyn> == optional<dyn>', optEq);

  // --- network extension ---
  env.registerType('net.IP', CelIp);
  env.registerType('net.CIDR', CelCidr);
  const ipOrThrow = (s: string) => parseIp(s) ?? fail(`IP Address '${s}' parse error during conversion from string`);
  const cidrOrThrow = (s: string) => parseCidr(s) ?? fail(`network address parse error during conversion from string`);
  fn('isIP(string): bool', (s: string) => parseIp(s) !== undefined);
  fn('isCIDR(string): bool', (s: string) => parseCidr(s) !== undefined);
  fn('ip(string): net.IP', ipOrThrow);
  fn('cidr(string): net.CIDR', cidrOrThrow);
  fn('cerbos_string(net.IP): string', (ip: CelIp) => ip.toString());
  fn('cerbos_string(net.CIDR): string', (c: CelCidr) => `${c.ip.toString()}/${c.prefix}`);
  fn('net.IP.family(): int', (ip: CelIp) => BigInt(ip.family()));
  const b4 = (ip: CelIp) => ip.to4();
  fn('net.IP.isLoopback(): bool', (ip: CelIp) => {
    const v4 = b4(ip);
    return v4 ? v4[0] === 127 : ip.bytes.every((x, i) => x === (i === 15 ? 1 : 0));
  });
  fn('net.IP.isUnspecified(): bool', (ip: CelIp) => {
    const v4 = b4(ip);
    return (v4 ?? ip.bytes).every((x) => x === 0);
  });
  fn('net.IP.isLinkLocalUnicast(): bool', (ip: CelIp) => {
    const v4 = b4(ip);
    return v4 ? v4[0] === 169 && v4[1] === 254 : ip.bytes[0] === 0xfe && ((ip.bytes[1] ?? 0) & 0xc0) === 0x80;
  });
  fn('net.IP.isLinkLocalMulticast(): bool', (ip: CelIp) => {
    const v4 = b4(ip);
    return v4 ? v4[0] === 224 && v4[1] === 0 && v4[2] === 0 : ip.bytes[0] === 0xff && ((ip.bytes[1] ?? 0) & 0x0f) === 0x02;
  });
  fn('net.IP.isGlobalUnicast(): bool', (ip: CelIp) => {
    const v4 = b4(ip);
    if (v4) {
      if (v4.every((x) => x === 255)) return false;
      return !(v4[0] === 0 || v4[0] === 127 || (v4[0] ?? 0) >= 224 || (v4[0] === 169 && v4[1] === 254));
    }
    const b = ip.bytes;
    if (b.every((x) => x === 0) || b.every((x, i) => x === (i === 15 ? 1 : 0))) return false;
    if (b[0] === 0xff || (b[0] === 0xfe && ((b[1] ?? 0) & 0xc0) === 0x80)) return false;
    return true;
  });
  registerNamespace(env, 'CerbosIpNs', 'ip');
  fn('CerbosIpNs.isCanonical(string): bool', (_n: unknown, s: string) => ipOrThrow(s).toString() === s);
  fn('net.CIDR.containsIP(string): bool', (c: CelCidr, s: string) => c.contains(ipOrThrow(s)));
  fn('net.CIDR.containsIP(net.IP): bool', (c: CelCidr, ip: CelIp) => c.contains(ip));
  fn('net.CIDR.containsCIDR(string): bool', (c: CelCidr, s: string) => c.containsCidr(cidrOrThrow(s)));
  fn('net.CIDR.containsCIDR(net.CIDR): bool', (c: CelCidr, o: CelCidr) => c.containsCidr(o));
  fn('net.CIDR.ip(): net.IP', (c: CelCidr) => c.ip);
  fn('net.CIDR.prefixLength(): int', (c: CelCidr) => BigInt(c.prefix));
  fn('net.CIDR.isMask(): bool', (c: CelCidr) => c.isMasked());

  // --- Cerbos SPIFFE library ---
  const SID = 'cerbos.lib.spiffeID';
  const STD = 'cerbos.lib.spiffeTrustDomain';
  const SM = 'cerbos.lib.spiffeMatcher';
  env.registerType(SID, SpiffeId);
  env.registerType(STD, SpiffeTrustDomain);
  env.registerType(SM, SpiffeMatcher);
  fn(`spiffeID(string): ${SID}`, (s: string) => spiffeIdOf(s));
  fn(`spiffeTrustDomain(string): ${STD}`, (s: string) => spiffeTrustDomainOf(s));
  fn(`spiffeMatchAny(): ${SM}`, () => SpiffeMatcher.any());
  fn(`spiffeMatchExact(${SID}): ${SM}`, (id: SpiffeId) => SpiffeMatcher.oneOf([id]));
  fn(`spiffeMatchExact(string): ${SM}`, (s: string) => SpiffeMatcher.oneOf([spiffeIdOf(s)]));
  // list(spiffeID) and list(string) in Cerbos; element types of literals are checked in cel-program.ts.
  fn(`spiffeMatchOneOf(list): ${SM}`, (l: unknown[]) => spiffeMatchOneOf(l));
  fn(`spiffeMatchTrustDomain(${STD}): ${SM}`, (td: SpiffeTrustDomain) => SpiffeMatcher.memberOf(td));
  fn(`spiffeMatchTrustDomain(string): ${SM}`, (s: string) => SpiffeMatcher.memberOf(spiffeTrustDomainOf(s)));
  fn(`${SID}.isMemberOf(${STD}): bool`, (id: SpiffeId, td: SpiffeTrustDomain) => id.memberOf(td));
  fn(`${SID}.path(): string`, (id: SpiffeId) => id.path());
  fn(`${SID}.trustDomain(): ${STD}`, (id: SpiffeId) => id.trustDomain());
  // Cerbos 0.55 quirk: its global `id(dyn)` identity function shadows the trust domain's `id()`
  // method at run time, so `td.id()` is the trust domain itself (typed dyn here so the run-time
  // behaviour follows: it compares equal to a string naming the same trust domain, and string
  // functions on it fail).
  fn(`${STD}.id(): dyn`, (td: SpiffeTrustDomain) => td);
  fn(`${STD}.name(): string`, (td: SpiffeTrustDomain) => td.name);
  fn(`${SM}.matchesID(${SID}): bool`, (m: SpiffeMatcher, id: SpiffeId) => m.matches(id));
  fn(`${SM}.matchesID(string): bool`, (m: SpiffeMatcher, s: string) => m.matches(spiffeIdOf(s, 'invalid SPIFFE ID')));
  env.registerOperator(`${SID} == ${SID}`, (a: SpiffeId, b: SpiffeId) => a.id === b.id);
  env.registerOperator(`${STD} == ${STD}`, (a: SpiffeTrustDomain, b: SpiffeTrustDomain) => a.name === b.name);
  // A trust domain equals a string that parses to the same trust domain (name or ID form).
  env.registerOperator(`dyn<${STD}> == string`, (a: SpiffeTrustDomain, b: string) => {
    const td = tryParseSpiffeTrustDomain(b);
    return td !== undefined && td.name === a.name;
  });
  // Cerbos matchers are never equal, not even to themselves.
  env.registerOperator(`${SM} == ${SM}`, () => false);

  // --- Cerbos path library (crosspath: Unix and Windows paths) ---
  const stringList = (l: unknown[]): string[] => {
    for (const x of l) if (typeof x !== 'string') fail('failed to convert list to string slice');
    return l as string[];
  };
  fn('basePath(string): string', basePath);
  fn('dirPath(string): string', dirPath);
  fn('extPath(string): string', extPath);
  fn('volumeName(string): string', volumeName);
  fn('joinPath(list): string', (l: unknown[]) => joinPath(stringList(l)));
  fn('relPath(string, string): string', relPath);
  for (const [name, impl] of [
    ['pathHasPrefix', pathHasPrefix],
    ['pathMatch', pathMatch],
  ] as const) {
    fn(`${name}(string, string): bool`, impl);
    fn(`string.${name}(string): bool`, impl);
  }
  fn('pathMatchAnyOf(string, list): bool', (s: string, l: unknown[]) => pathMatchAnyOf(s, stringList(l)));
  fn('string.pathMatchAnyOf(list): bool', (s: string, l: unknown[]) => pathMatchAnyOf(s, stringList(l)));

  cached = env;
  return env;
}
