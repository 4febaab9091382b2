/**
 * Where an entry's JSON is written as it is composed: {@link TextJsonOut} makes a string,
 * {@link BytesJsonOut} writes UTF-8 straight into a byte range (the decision path's ring), with no
 * string, no cons-string and no flattened copy made on the way. One composer writes both, so the
 * two cannot drift apart; the bytes are, byte for byte, the UTF-8 of the text.
 *
 * The bytes writer takes plain JSON data only (what a request body parses to, and Warden's own
 * records): a value it cannot write as `JSON.stringify` would (an object with `toJSON` or a
 * prototype other than Object's, a bigint) throws {@link NotPlainJson}, and the caller composes
 * the entry as text instead, where `JSON.stringify` decides.
 */
import { jsonString, maskChild, maskedJson, maskElement, MASKED_JSON, type MaskNode } from './mask.js';

/** The target an entry is composed into. */
export interface JsonOut {
  /** `text` as it is: JSON already (a literal of the entry's layout). */
  raw(text: string): void;
  /** `s` as a JSON string, as `JSON.stringify(s)` writes it. */
  str(s: string): void;
  /** What {@link str} writes between the quotes. */
  strBody(s: string): void;
  /** `v` as `maskedJson(v, node)` writes it; `null` where that gives undefined (an array element's rule). */
  value(v: unknown, node: MaskNode | undefined): void;
  /** `prefix` and the value as {@link value}, or nothing where `maskedJson(v, node)` gives undefined (an object member's rule). */
  member(prefix: string, v: unknown, node: MaskNode | undefined): void;
  /** The members of the object `o` (`"k":v,...`, no braces) as `JSON.stringify(o)` writes them; whether it wrote any. */
  members(o: object): boolean;
}

/** Composes into a string. */
export class TextJsonOut implements JsonOut {
  text = '';

  raw(text: string): void {
    this.text += text;
  }
  str(s: string): void {
    this.text += jsonString(s);
  }
  strBody(s: string): void {
    this.text += jsonString(s).slice(1, -1);
  }
  value(v: unknown, node: MaskNode | undefined): void {
    this.text += maskedJson(v, node) ?? 'null';
  }
  member(prefix: string, v: unknown, node: MaskNode | undefined): void {
    const t = maskedJson(v, node);
    if (t !== undefined) this.text += prefix + t;
  }
  members(o: object): boolean {
    const t = JSON.stringify(o);
    if (t.length <= 2) return false;
    this.text += t.slice(1, -1);
    return true;
  }
}

/** Thrown by {@link BytesJsonOut} for a value that is not plain JSON data. */
export class NotPlainJson extends Error {
  constructor(what: string) {
    super(`not plain JSON data: ${what}`);
    this.name = 'NotPlainJson';
  }
}

/** A safe integer's digits, least significant first. */
const DIGITS = new Uint8Array(16);
const HEX = '0123456789abcdef';
/** The escapes JSON.stringify writes for these control characters; the others are `\u00XX`. */
const SHORT_ESCAPES: Record<number, number> = { 8: 0x62, 9: 0x74, 10: 0x6e, 12: 0x66, 13: 0x72 };
/** Objects deeper than this are written as text (JSON.stringify's own limit, and its cycles error, decide). */
const MAX_DEPTH = 200;

/**
 * Composes UTF-8 into `buf` from `start` up to `end`. When the text does not fit, {@link over} is
 * set and the rest is not written: the caller discards the range.
 */
export class BytesJsonOut implements JsonOut {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  over = false;
  private depth = 0;

  /** Starts a record at `start` of `buf`, up to `end`. */
  reset(buf: Uint8Array, start: number, end: number): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.over = false;
    this.depth = 0;
  }

  raw(text: string): void {
    this.utf8(text, false);
  }
  str(s: string): void {
    this.byte(0x22);
    this.utf8(s, true);
    this.byte(0x22);
  }
  strBody(s: string): void {
    this.utf8(s, true);
  }

  value(v: unknown, node: MaskNode | undefined): void {
    if (node !== undefined && node.masked) return this.raw(MASKED_JSON);
    switch (typeof v) {
      case 'string':
        return this.str(v);
      case 'number':
        return this.number(v);
      case 'boolean':
        return this.raw(v ? 'true' : 'false');
      case 'undefined':
      case 'function':
      case 'symbol':
        return this.raw('null');
      case 'object':
        if (v === null) return this.raw('null');
        if (++this.depth > MAX_DEPTH) throw new NotPlainJson('nested too deep');
        if (Array.isArray(v)) this.array(v, node);
        else this.object(plainObject(v), node);
        this.depth--;
        return;
      default:
        throw new NotPlainJson(typeof v);
    }
  }

  member(prefix: string, v: unknown, node: MaskNode | undefined): void {
    if (dropped(v, node)) return;
    this.raw(prefix);
    this.value(v, node);
  }

  members(o: object): boolean {
    return this.membersOf(plainObject(o), undefined);
  }

  /** `"k":v,...` of `o`'s own members, masked under `node`; whether it wrote any. */
  private membersOf(o: Record<string, unknown>, node: MaskNode | undefined): boolean {
    let first = true;
    for (const k in o) {
      if (!Object.hasOwn(o, k)) continue;
      const c = maskChild(node, k);
      const v = o[k];
      if (dropped(v, c)) continue;
      if (!first) this.byte(0x2c);
      first = false;
      this.str(k);
      this.byte(0x3a);
      this.value(v, c);
    }
    return !first;
  }

  private array(a: readonly unknown[], node: MaskNode | undefined): void {
    this.byte(0x5b);
    for (let k = 0; k < a.length; k++) {
      if (k > 0) this.byte(0x2c);
      this.value(a[k], node === undefined ? undefined : maskElement(node, k));
    }
    this.byte(0x5d);
  }

  private object(o: Record<string, unknown>, node: MaskNode | undefined): void {
    this.byte(0x7b);
    this.membersOf(o, node);
    this.byte(0x7d);
  }

  private number(n: number): void {
    if (!Number.isSafeInteger(n)) return this.raw(Number.isFinite(n) ? String(n) : 'null');
    if (n < 0) {
      this.byte(0x2d);
      n = -n;
    }
    // The digits from the least significant (exact for safe integers), then written in order.
    let k = 0;
    do {
      const d = n % 10;
      DIGITS[k++] = 0x30 + d;
      n = (n - d) / 10;
    } while (n > 0);
    while (k > 0) this.byte(DIGITS[--k] as number);
  }

  private byte(b: number): void {
    if (this.pos < this.end) this.buf[this.pos++] = b;
    else this.over = true;
  }

  /** `s` as UTF-8; with `escape`, as the inside of JSON.stringify's string (lone surrogates as `\udXXX`). */
  private utf8(s: string, escape: boolean): void {
    const n = s.length;
    // Each code unit takes at most 6 bytes (`\uXXXX`): a string that may not fit so is taken as
    // not fitting (the caller tries a larger range, or composes text).
    if (this.pos + 6 * n > this.end) {
      this.over = true;
      return;
    }
    const buf = this.buf;
    let p = this.pos;
    let i = 0;
    // ASCII that is written as it is, nearly all of an entry: one test per character here, the
    // rest from the first other character on (this loop was most of composing an entry).
    if (escape) {
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x20 || c >= 0x80 || c === 0x22 || c === 0x5c) break;
        buf[p++] = c;
      }
    } else {
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
    }
    this.pos = i === n ? p : utf8From(buf, p, s, i, escape);
  }
}

/** {@link BytesJsonOut}'s `utf8` from code unit `i` of `s` on, written at `p`; the position after it. */
function utf8From(buf: Uint8Array, p: number, s: string, i: number, escape: boolean): number {
  const n = s.length;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (escape && (c < 0x20 || c === 0x22 || c === 0x5c)) p = escapeAscii(buf, p, c);
      else buf[p++] = c;
    } else if (c < 0x800) {
      buf[p++] = 0xc0 | (c >> 6);
      buf[p++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      buf[p++] = 0xe0 | (c >> 12);
      buf[p++] = 0x80 | ((c >> 6) & 0x3f);
      buf[p++] = 0x80 | (c & 0x3f);
    } else {
      const d = c < 0xdc00 && i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        buf[p++] = 0xf0 | (cp >> 18);
        buf[p++] = 0x80 | ((cp >> 12) & 0x3f);
        buf[p++] = 0x80 | ((cp >> 6) & 0x3f);
        buf[p++] = 0x80 | (cp & 0x3f);
        i++;
      } else p = escapeUnit(buf, p, c);
    }
  }
  return p;
}

function escapeAscii(buf: Uint8Array, p: number, c: number): number {
  buf[p++] = 0x5c;
  if (c === 0x22 || c === 0x5c) {
    buf[p++] = c;
    return p;
  }
  const short = SHORT_ESCAPES[c];
  if (short !== undefined) {
    buf[p++] = short;
    return p;
  }
  p--;
  return escapeUnit(buf, p, c);
}

/** `\uXXXX`, lowercase, as JSON.stringify writes control characters and lone surrogates. */
function escapeUnit(buf: Uint8Array, p: number, c: number): number {
  buf[p++] = 0x5c;
  buf[p++] = 0x75;
  buf[p++] = HEX.charCodeAt((c >> 12) & 15);
  buf[p++] = HEX.charCodeAt((c >> 8) & 15);
  buf[p++] = HEX.charCodeAt((c >> 4) & 15);
  buf[p++] = HEX.charCodeAt(c & 15);
  return p;
}

/** Whether an object member `v` under `node` is left out, as JSON.stringify leaves out what has no JSON (and a masked one is not). */
function dropped(v: unknown, node: MaskNode | undefined): boolean {
  return (node === undefined || !node.masked) && (v === undefined || typeof v === 'function' || typeof v === 'symbol');
}

/** Whether JSON.stringify writes `v` as its own enumerable members (no prototype but Object's, no `toJSON`). */
export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return (proto === Object.prototype || proto === null) && typeof (v as { toJSON?: unknown }).toJSON !== 'function';
}

/** `v` when JSON.stringify writes it as its own enumerable members; throws {@link NotPlainJson} otherwise. */
function plainObject(v: object): Record<string, unknown> {
  if (!isPlainObject(v)) throw new NotPlainJson('an object with a prototype or toJSON');
  return v as Record<string, unknown>;
}
