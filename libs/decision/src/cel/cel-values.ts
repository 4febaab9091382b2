import type { JsonValue } from '@warden/core';
import { Optional } from '@marcbachmann/cel-js';

/** Duration shape of cel-js (`seconds` bigint, `nanos` number). */
interface DurationLike {
  readonly seconds: bigint;
  readonly nanos: number;
}

function isDuration(v: object): v is DurationLike {
  return typeof (v as DurationLike).seconds === 'bigint' && typeof (v as DurationLike).nanos === 'number';
}

/**
 * Formats a duration as cel-go prints it (seconds as the shortest decimal, then `s`): `3600s`,
 * `1.5s`, `-0.1s`, `0.000000001s`.
 */
export function formatDuration(d: DurationLike): string {
  const negative = d.seconds < 0n || d.nanos < 0;
  const secs = d.seconds < 0n ? -d.seconds : d.seconds;
  const nanos = Math.abs(d.nanos);
  if (nanos === 0) return `${negative ? '-' : ''}${secs}s`;
  const frac = String(nanos).padStart(9, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${secs}.${frac}s`;
}

/** Formats a timestamp as Go's RFC 3339 (nano) layout does: UTC, `Z`, fraction without trailing zeros. */
export function formatTimestamp(d: Date): string {
  const iso = d.toISOString();
  const ms = d.getUTCMilliseconds();
  if (ms === 0) return `${iso.slice(0, -5)}Z`;
  return `${iso.slice(0, -5)}.${String(ms).padStart(3, '0').replace(/0+$/, '')}Z`;
}

const MAX_JSON_INT = 2n ** 53n - 1n;

/** cel-go's rule for ints and uints in JSON: a number within ±(2^53 - 1), a decimal string beyond. */
function jsonInt(v: bigint): JsonValue {
  return v <= MAX_JSON_INT && v >= -MAX_JSON_INT ? Number(v) : String(v);
}

/** Map keys must be strings in a protobuf Struct, as in Cerbos's output conversion. */
function jsonKey(k: unknown): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'bigint') throw new Error("unsupported type conversion from 'int' to string");
  if (typeof k === 'boolean') throw new Error("type conversion error from bool to 'string'");
  throw new Error(`unsupported type conversion from '${typeof k}' to string`);
}

/**
 * Converts a CEL runtime value to JSON as Cerbos's protobuf `Value` output does: ints and uints to
 * numbers (decimal strings beyond ±(2^53 - 1)), Date to an RFC 3339 string, durations to
 * `"3600s"`, bytes to base64, Map to object. Throws (as Cerbos reports an output error) for an
 * empty optional, non-string map keys and values Struct cannot hold (IP addresses, CIDRs).
 */
export function celValueToJson(value: unknown): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return jsonInt(value);
    case 'undefined':
      return null;
    case 'object':
      break;
    default:
      return String(value);
  }
  if (value === null) return null;
  if (Array.isArray(value)) return value.map(celValueToJson);
  if (value instanceof Date) return formatTimestamp(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Optional) {
    if (!value.hasValue()) throw new Error('optional.none() dereference');
    return celValueToJson(value.value());
  }
  // Map keys come out sorted, as protobuf's Struct JSON encoding prints them in Cerbos.
  if (value instanceof Map) {
    const out: Record<string, JsonValue> = {};
    const entries = [...value.entries()].map(([k, v]) => [jsonKey(k), v] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [k, v] of entries) out[k] = celValueToJson(v);
    return out;
  }
  if (isDuration(value)) return formatDuration(value);
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    // cel-js UnsignedInt and other boxed scalars expose valueOf.
    const prim = (value as { valueOf(): unknown }).valueOf();
    if (typeof prim === 'bigint') return jsonInt(prim);
    if (typeof prim === 'number') return Number(prim);
    if (Array.isArray(value)) return (value as unknown[]).map(celValueToJson);
    throw new Error("unsupported type conversion to '*structpb.Value'");
  }
  const out: Record<string, JsonValue> = {};
  for (const k of Object.keys(value).sort()) out[k] = celValueToJson((value as Record<string, unknown>)[k]);
  return out;
}

/** The bigint inside a cel-js `uint` (any boxed bigint); other values unchanged. */
export function unboxUint(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Date) return v;
  const prim = (v as { valueOf(): unknown }).valueOf();
  return typeof prim === 'bigint' ? prim : v;
}

/** CEL equality over cel-js runtime values (numbers compare across int/uint/double). */
export function celEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'object' && typeof b !== 'object') a = unboxUint(a);
  else if (typeof b === 'object' && typeof a !== 'object') b = unboxUint(b);
  const ta = typeof a;
  const tb = typeof b;
  if ((ta === 'bigint' || ta === 'number') && (tb === 'bigint' || tb === 'number')) {
    return Number(a) === Number(b) && (ta === tb || Number.isSafeInteger(Number(a)));
  }
  if (ta !== 'object' || tb !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!celEquals(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Uint8Array) {
    return b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  const pa = Object.getPrototypeOf(a) as object | null;
  const pb = Object.getPrototypeOf(b) as object | null;
  if ((pa === Object.prototype || pa === null) && (pb === Object.prototype || pb === null)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    const ka = Object.keys(ra);
    if (ka.length !== Object.keys(rb).length) return false;
    for (const k of ka) {
      if (!Object.hasOwn(rb, k)) return false;
      if (!celEquals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    }
    return true;
  }
  if (pa === pb) {
    const va = (a as { valueOf(): unknown }).valueOf();
    const vb = (b as { valueOf(): unknown }).valueOf();
    if (va !== a && vb !== b) return celEquals(va, vb);
  }
  return false;
}

/** Orders two comparable CEL values (numbers, strings, bools, timestamps); throws on mixed kinds. */
export function celCompare(a: unknown, b: unknown): number {
  if (typeof a === 'object' && typeof b !== 'object') a = unboxUint(a);
  else if (typeof b === 'object' && typeof a !== 'object') b = unboxUint(b);
  const ta = typeof a;
  const tb = typeof b;
  if ((ta === 'bigint' || ta === 'number') && (tb === 'bigint' || tb === 'number')) {
    if (ta === 'bigint' && tb === 'bigint') return (a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0;
    const na = Number(a);
    const nb = Number(b);
    return na < nb ? -1 : na > nb ? 1 : 0;
  }
  if (ta === 'string' && tb === 'string') return (a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0;
  if (ta === 'boolean' && tb === 'boolean') return Number(a) - Number(b);
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (ta === 'object' && tb === 'object' && a !== null && b !== null && Object.getPrototypeOf(a) === Object.getPrototypeOf(b)) {
    const va = (a as { valueOf(): unknown }).valueOf();
    const vb = (b as { valueOf(): unknown }).valueOf();
    if (typeof va === 'number' || typeof va === 'bigint') return celCompare(va, vb);
  }
  throw new Error('no such overload');
}
