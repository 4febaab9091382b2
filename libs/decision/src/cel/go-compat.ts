/**
 * Go / cel-go behaviours the Cerbos CEL environment has and JavaScript lacks: code-point string
 * indexing, ASCII-only case mapping, `strconv` float formatting, the strings extension's
 * `format` and `quote`, and RE2 pattern syntax translated to JavaScript regular expressions.
 */
import { formatDuration, formatTimestamp, unboxUint } from './cel-values.js';

function fail(message: string): never {
  throw new Error(message);
}

/** True when the string holds only BMP characters (UTF-16 index == code-point index). */
const ASTRAL = /[\uD800-\uDFFF]/;

/** Code-point index of UTF-16 offset `u` in `s`. */
function cpIndex(s: string, u: number): number {
  if (!ASTRAL.test(s)) return u;
  return [...s.slice(0, u)].length;
}

/** UTF-16 offset of code-point index `c` in `s` (c may equal the length). */
function utf16Offset(s: string, c: number): number {
  if (!ASTRAL.test(s)) return c;
  let off = 0;
  for (let i = 0; i < c; i++) off += (s.codePointAt(off) ?? 0) > 0xffff ? 2 : 1;
  return off;
}

function cpLength(s: string): number {
  return ASTRAL.test(s) ? [...s].length : s.length;
}

/** cel-go `indexOf`: code-point offsets; a start past the end finds nothing. */
export function indexOf(s: string, sub: string, from = 0n): bigint {
  if (from < 0n) fail(`index out of range: ${from}`);
  const len = cpLength(s);
  if (from > BigInt(len)) return -1n;
  const at = s.indexOf(sub, utf16Offset(s, Number(from)));
  return at < 0 ? -1n : BigInt(cpIndex(s, at));
}

/** cel-go `lastIndexOf`: code-point offsets; a start past the end finds nothing. */
export function lastIndexOf(s: string, sub: string, from?: bigint): bigint {
  const len = cpLength(s);
  if (from === undefined) {
    const at = s.lastIndexOf(sub);
    return at < 0 ? -1n : BigInt(cpIndex(s, at));
  }
  if (from < 0n) fail(`index out of range: ${from}`);
  if (from >= BigInt(len) && !(len === 0 && from === 0n)) return -1n;
  const at = s.lastIndexOf(sub, utf16Offset(s, Number(from)));
  return at < 0 ? -1n : BigInt(cpIndex(s, at));
}

/** cel-go `substring`: code-point offsets. */
export function substring(s: string, start: bigint, end?: bigint): string {
  const len = BigInt(cpLength(s));
  const e = end ?? len;
  if (start < 0n || start > len) fail(`index out of range: ${start}`);
  if (e < 0n || e > len) fail(`index out of range: ${e}`);
  if (start > e) fail(`invalid substring range. start: ${start}, end: ${e}`);
  return s.slice(utf16Offset(s, Number(start)), utf16Offset(s, Number(e)));
}

/** Go `strings.SplitN` (n < 0: all), splitting an empty separator into code points. */
export function split(s: string, sep: string, n = -1n): string[] {
  if (n === 0n) return [];
  const parts = sep === '' ? [...s] : s.split(sep);
  if (n < 0n || BigInt(parts.length) <= n) return parts;
  const k = Number(n);
  const head = parts.slice(0, k - 1);
  head.push(parts.slice(k - 1).join(sep));
  return head;
}

/** Go `strings.Replace` (n < 0: all); an empty `old` matches at every code-point boundary. */
export function replace(s: string, old: string, repl: string, n = -1n): string {
  if (n === 0n) return s;
  if (old !== '') {
    if (n < 0n) return s.split(old).join(repl);
    let out = '';
    let rest = s;
    for (let k = 0n; k < n; k++) {
      const idx = rest.indexOf(old);
      if (idx < 0) break;
      out += rest.slice(0, idx) + repl;
      rest = rest.slice(idx + old.length);
    }
    return out + rest;
  }
  const cps = [...s];
  let out = '';
  let done = 0n;
  for (let i = 0; i <= cps.length; i++) {
    if (n < 0n || done < n) {
      out += repl;
      done++;
    }
    if (i < cps.length) out += cps[i];
  }
  return out;
}

export const lowerAscii = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
export const upperAscii = (s: string): string => s.replace(/[a-z]+/g, (m) => m.toUpperCase());

const QUOTE_ESCAPES: Record<string, string> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '\\': '\\\\',
  '"': '\\"',
};

/** cel-go `strings.quote`. */
export function quote(s: string): string {
  return `"${s.replace(/[\x07\b\f\n\r\t\v\\"]/g, (c) => QUOTE_ESCAPES[c] ?? c).replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')}"`;
}

/** The shortest round-trip digits of |x| and its decimal exponent (x = 0.d1d2... × 10^exp). */
function shortestDigits(x: number): { digits: string; exp: number } {
  const [mant = '', e = '0'] = Math.abs(x).toExponential().split('e');
  return { digits: mant.replace('.', ''), exp: Number(e) + 1 };
}

function plainFromDigits(digits: string, exp: number): string {
  if (exp <= 0) return `0.${'0'.repeat(-exp)}${digits}`;
  if (exp >= digits.length) return digits + '0'.repeat(exp - digits.length);
  return `${digits.slice(0, exp)}.${digits.slice(exp)}`;
}

/** Go `strconv.FormatFloat(x, 'f', -1, 64)`. */
export function formatFloatPlain(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const { digits, exp } = shortestDigits(x);
  return (x < 0 ? '-' : '') + plainFromDigits(digits, exp);
}

/** Go `strconv.FormatFloat(x, 'g', -1, 64)`, which cel-go's `string(double)` uses. */
export function formatFloatG(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const { digits, exp } = shortestDigits(x);
  const e = exp - 1;
  const sign = x < 0 ? '-' : '';
  if (e < -4 || e >= 6) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const abs = Math.abs(e);
    return `${sign}${mant}e${e < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
  }
  return sign + plainFromDigits(digits, exp);
}

/** Go `%.<prec>f`: exact decimal value, ties to even. */
export function toFixedGo(x: number, prec: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  let out: string;
  if (ax >= 1e21) {
    out = BigInt(ax).toString() + (prec > 0 ? `.${'0'.repeat(prec)}` : '');
  } else {
    out = ax.toFixed(prec);
    // toFixed rounds exact ties away from zero; Go rounds them to even.
    const exact = ax.toFixed(Math.min(100, prec + 30));
    const tail = exact.slice(exact.indexOf('.') + 1 + prec);
    if (/^50*$/.test(tail)) {
      const down = exact.slice(0, exact.indexOf('.') + (prec > 0 ? 1 + prec : 0));
      const lastDigit = Number(down.replace('.', '').slice(-1));
      if (lastDigit % 2 === 0) out = down;
    }
  }
  return (neg && /[1-9]/.test(out) ? '-' : neg && Object.is(x, -0) ? '-' : '') + out;
}

function goExp(x: number, prec: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  return x.toExponential(prec).replace(/e([+-])(\d)$/, 'e$10$2');
}

function isDurationLike(v: object): v is { seconds: bigint; nanos: number } {
  return typeof (v as { seconds?: unknown }).seconds === 'bigint' && typeof (v as { nanos?: unknown }).nanos === 'number';
}

/** cel-go's `%s` rendering of a value (lists and maps recursively, map keys sorted). */
export function formatS(a: unknown): string {
  switch (typeof a) {
    case 'string':
      return a;
    case 'boolean':
      return String(a);
    case 'bigint':
      return String(a);
    case 'number':
      if (Number.isNaN(a)) return 'NaN';
      if (!Number.isFinite(a)) return a > 0 ? 'Infinity' : '-Infinity';
      return formatFloatPlain(a);
    case 'undefined':
      return 'null';
    default:
      break;
  }
  if (a === null) return 'null';
  if (Array.isArray(a)) return `[${a.map(formatS).join(', ')}]`;
  if (a instanceof Date) return formatTimestamp(a);
  if (a instanceof Uint8Array) return Buffer.from(a).toString('utf8');
  if (a instanceof Map) {
    const entries = [...a.entries()].map(([k, v]) => [formatS(k), formatS(v)] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return `{${entries.map(([k, v]) => `${k}: ${v}`).join(', ')}}`;
  }
  if (typeof a === 'object') {
    if (isDurationLike(a)) return formatDuration(a);
    const u = unboxUint(a);
    if (typeof u === 'bigint') return String(u);
    const proto = Object.getPrototypeOf(a) as object | null;
    if (proto === Object.prototype || proto === null) {
      const entries = Object.keys(a)
        .sort()
        .map((k) => `${k}: ${formatS((a as Record<string, unknown>)[k])}`);
      return `{${entries.join(', ')}}`;
    }
  }
  return String(a);
}

function integerArg(a: unknown, what: string): bigint {
  const u = unboxUint(a);
  if (typeof u === 'bigint') return u;
  return fail(`error during formatting: ${what}`);
}

/** cel-go `string.format(list)`. */
export function formatString(fmt: string, args: readonly unknown[]): string {
  let i = 0;
  let out = '';
  for (let p = 0; p < fmt.length; p++) {
    const c = fmt[p];
    if (c !== '%') {
      out += c;
      continue;
    }
    let q = p + 1;
    if (fmt[q] === '%') {
      out += '%';
      p = q;
      continue;
    }
    let prec: number | undefined;
    if (fmt[q] === '.') {
      let r = q + 1;
      while (r < fmt.length && /\d/.test(fmt[r] as string)) r++;
      prec = Number(fmt.slice(q + 1, r) || '0');
      q = r;
    }
    const verb = fmt[q];
    if (verb === undefined || !'sdfeboxX'.includes(verb)) fail(`could not parse formatting clause: unrecognized formatting clause "${verb ?? ''}"`);
    if (i >= args.length) fail(`index ${i} out of range`);
    const a = args[i++];
    p = q;
    switch (verb) {
      case 's':
        out += formatS(a);
        break;
      case 'd': {
        const u = unboxUint(a);
        if (typeof u === 'bigint') out += String(u);
        else if (typeof u === 'number') out += Number.isFinite(u) ? formatFloatPlain(Math.trunc(u)) : formatS(u);
        else fail('error during formatting: decimal clause can only be used on integers, was given ' + typeof a);
        break;
      }
      case 'f':
      case 'e': {
        const u = unboxUint(a);
        const n = typeof u === 'bigint' ? Number(u) : typeof u === 'number' ? u : fail('error during formatting: fixed-point clause can only be used on doubles');
        if (!Number.isFinite(n)) out += Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
        else out += verb === 'f' ? toFixedGo(n, prec ?? 6) : goExp(n, prec ?? 6);
        break;
      }
      case 'b': {
        if (typeof a === 'boolean') out += a ? '1' : '0';
        else out += integerArg(a, 'only integers and bools can be formatted as binary').toString(2);
        break;
      }
      case 'o':
        out += integerArg(a, 'octal clause can only be used on integers').toString(8);
        break;
      default: {
        let hex: string;
        if (typeof a === 'string') hex = Buffer.from(a).toString('hex');
        else if (a instanceof Uint8Array) hex = Buffer.from(a).toString('hex');
        else hex = integerArg(a, 'only integers, byte buffers, and strings can be formatted as hex').toString(16);
        out += verb === 'X' ? hex.toUpperCase() : hex;
      }
    }
  }
  return out;
}

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const GENERAL_CATEGORY = /^(?:[LMNPSZC][a-z]?|Any)$/;

/** Translates an RE2 pattern to a JavaScript `RegExp` (flag `u`); throws on what RE2 rejects. */
export function re2ToRegExp(re: string): RegExp {
  let flags = 'u';
  let src = re;
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1] as string) {
      if (f === 'U') return fail(`invalid matches argument`);
      if (!flags.includes(f)) flags += f;
    }
    src = src.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) fail('invalid matches argument: trailing backslash');
      if (n === 'A' && !inClass) out += '(?<![\\s\\S])';
      else if (n === 'z' && !inClass) out += '(?![\\s\\S])';
      else if (n === 'x' && src[i + 2] === '{') {
        const end = src.indexOf('}', i);
        out += `\\u{${src.slice(i + 3, end)}}`;
        i = end;
        continue;
      } else if ((n === 'p' || n === 'P') && src[i + 2] !== '{') {
        out += `\\${n}{${src[i + 2] ?? ''}}`;
        i += 2;
        continue;
      } else if ((n === 'p' || n === 'P') && src[i + 2] === '{') {
        const end = src.indexOf('}', i);
        const name = src.slice(i + 3, end);
        out += GENERAL_CATEGORY.test(name) ? `\\${n}{${name === 'Any' ? 'Any' : name}}` : `\\${n}{Script=${name}}`;
        i = end;
        continue;
      } else if (/[1-9]/.test(n)) fail('invalid matches argument: backreferences are not supported');
      else if (n === 's' && !inClass) out += '[\\t\\n\\f\\r ]';
      else if (n === 'S' && !inClass) out += '[^\\t\\n\\f\\r ]';
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        const name = end > 0 ? src.slice(i + 2, end) : '';
        const neg = name.startsWith('^');
        const cls = POSIX[neg ? name.slice(1) : name];
        if (cls === undefined || neg) fail('invalid matches argument: invalid character class range');
        out += cls;
        i = end + 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (src[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (src[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (/^(?:=|!|<=|<!)/.test(rest)) fail('invalid matches argument: lookaround is not supported');
      if (/^[imsU-]+[:)]/.test(rest)) fail('invalid matches argument: inline flags are not supported here');
    }
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch {
    return fail(`invalid matches argument: ${re}`);
  }
}

const REGEX_MEMO_LIMIT = 1024;
const regexMemo = new Map<string, RegExp | Error>();

/** Memoised {@link re2ToRegExp}; rethrows the translation error for a bad pattern. */
export function re2Cached(re: string): RegExp {
  let r = regexMemo.get(re);
  if (r === undefined) {
    try {
      r = re2ToRegExp(re);
    } catch (err) {
      r = err as Error;
    }
    if (regexMemo.size >= REGEX_MEMO_LIMIT) regexMemo.clear();
    regexMemo.set(re, r);
  }
  if (r instanceof Error) throw r;
  r.lastIndex = 0;
  return r;
}
