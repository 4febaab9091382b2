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

/** Formats a duration as protojson does: `3600s`, `1.500s`, `-0.1s`. */
export function formatDuration(d: DurationLike): string {
  const negative = d.seconds < 0n || d.nanos < 0;
  const secs = d.seconds < 0n ? -d.seconds : d.seconds;
  const nanos = Math.abs(d.nanos);
  if (nanos === 0) return `${negative ? '-' : ''}${secs}s`;
  let frac = String(nanos).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${negative ? '-' : ''}${secs}.${frac}s`;
}

/** Formats a timestamp as protojson does (UTC, `Z`, fractional seconds only when non-zero). */
export function formatTimestamp(d: Date): string {
  const iso = d.toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

/**
 * Converts a CEL runtime value to JSON: BigInt and uint to number, Date to an RFC 3339 string,
 * durations to `"3600s"`, bytes to base64, Map to object, optional none to null.
 */
export function celValueToJson(value: unknown): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return Number(value);
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
  if (value instanceof Optional) return value.hasValue() ? celValueToJson(value.value()) : null;
  // Map keys come out sorted, as protobuf's Struct JSON encoding prints them in Cerbos.
  if (value instanceof Map) {
    const out: Record<string, JsonValue> = {};
    const entries = [...value.entries()].map(([k, v]) => [String(k), v] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [k, v] of entries) out[k] = celValueToJson(v);
    return out;
  }
  if (isDuration(value)) return formatDuration(value);
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    // cel-js UnsignedInt and other boxed scalars expose valueOf.
    const prim = (value as { valueOf(): unknown }).valueOf();
    if (typeof prim === 'bigint' || typeof prim === 'number') return Number(prim);
    if (Array.isArray(value)) return (value as unknown[]).map(celValueToJson);
    return String(value);
  }
  const out: Record<string, JsonValue> = {};
  for (const k of Object.keys(value).sort()) out[k] = celValueToJson((value as Record<string, unknown>)[k]);
  return out;
}

/** CEL equality over cel-js runtime values (numbers compare across int/uint/double). */
export function celEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
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
