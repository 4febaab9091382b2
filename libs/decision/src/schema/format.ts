/**
 * Go-flavoured value formatting, so messages read exactly as santhosh-tekuri/jsonschema v5
 * (the validator Cerbos uses) prints them.
 */

/** Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)` with fmt's shortest rules). */
export function goFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const exp = n.toExponential(); // shortest round-trip digits, e.g. "1.2345e+6"
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(exp);
  if (!m) return String(n);
  const sign = m[1] ?? '';
  const digits = (m[2] ?? '') + (m[3] ?? '');
  const e = Number(m[4]);
  if (e < -4 || e >= 6) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const ae = Math.abs(e);
    return `${sign}${mant}e${e < 0 ? '-' : '+'}${ae < 10 ? '0' : ''}${ae}`;
  }
  // shortest %g: exponent form when exp < -4 or exp >= 6 (fmt.Println(1e6) prints 1e+06)
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  if (digits.length <= e + 1) return `${sign}${digits}${'0'.repeat(e + 1 - digits.length)}`;
  return `${sign}${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
}

/** Go's `%q` of a string (strconv.Quote): JSON-like escaping, non-printables as \x / \u. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\x07') out += '\\a';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** jsonschema v5 `quote`: Go-quoted, but with single quotes outside. */
export function v5Quote(s: string): string {
  const q = goQuote(s);
  const inner = q.slice(1, -1).replaceAll('\\"', '"').replaceAll("'", "\\'");
  return `'${inner}'`;
}

/**
 * Go's `%#v` of a value decoded from a schema document (numbers are json.Number, a string
 * type, so they print quoted).
 */
export function goSharpV(v: unknown): string {
  if (v === null) return '<nil>';
  if (typeof v === 'string') return goQuote(v);
  if (typeof v === 'number') return goQuote(String(v));
  if (typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Go's `%v` of an instance value (protojson → float64). */
export function goV(v: unknown): string {
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'number') return goFloat(v);
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(goV).join(' ')}]`;
  const entries = Object.keys(v as object)
    .sort()
    .map((k) => `${k}:${goV((v as Record<string, unknown>)[k])}`);
  return `map[${entries.join(' ')}]`;
}

/** The JSON type name jsonschema v5 reports. */
export function jsonType(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      return 'object';
  }
}

/** One JSON-pointer token made URL-path-safe as Go's url.PathEscape does (after ~0/~1). */
export function pathEscapeToken(token: string): string {
  let out = '';
  for (const b of Buffer.from(token, 'utf8')) {
    const ch = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~$&+,:;=@]/.test(ch)) out += ch;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
