/**
 * The parse-time check of a `postgres` resolver's query: one statement whose only parameter is
 * `$1` (the list of keys). The text is scanned the way the Postgres lexer splits it, so a `;` or a
 * `$2` inside a string literal, a quoted identifier, a dollar-quoted body or a comment does not
 * count.
 *
 * SECURITY: this check is for early, clear errors. It is not the guard: the query always runs with
 * a bind parameter (the extended protocol, which refuses several statements) inside a READ ONLY
 * transaction, and the datasource's role should hold SELECT only.
 */

/** Longest query accepted, in characters. */
export const MAX_QUERY_CHARS = 100_000;

const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/** Index just past the closing quote of a literal opened at `start` (or -1 when unterminated). */
function endOfQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  for (let i = start + 1; i < sql.length; i++) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') {
      i++;
    } else if (c === quote) {
      if (sql[i + 1] === quote) i++;
      else return i + 1;
    }
  }
  return -1;
}

/** Index just past a block comment opened at `start` (comments nest in Postgres), or -1. */
function endOfBlockComment(sql: string, start: number): number {
  let depth = 0;
  for (let i = start; i < sql.length - 1; i++) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i++;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i++;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Checks `sql`; answers why it is refused, or undefined when it is acceptable.
 * @example checkKeysQuery('select id as key from users where id = any($1)') // undefined
 */
export function checkKeysQuery(sql: string): string | undefined {
  if (sql.trim() === '') return 'expected a non-empty SQL query';
  if (sql.length > MAX_QUERY_CHARS) return `expected at most ${MAX_QUERY_CHARS} characters`;
  const params = new Set<number>();
  let ended = false;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    const prev = i > 0 ? (sql[i - 1] as string) : ' ';
    let next = i + 1;
    if (/\s/.test(c)) {
      i = next;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const eol = sql.indexOf('\n', i);
      i = eol === -1 ? sql.length : eol + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      next = endOfBlockComment(sql, i);
      if (next === -1) return 'unterminated comment';
      i = next;
      continue;
    }
    if (ended) return 'expected one statement (found more SQL after `;`)';
    if (c === ';') {
      ended = true;
    } else if (c === "'") {
      // E'...' (and e'...') strings take backslash escapes; the E must start a token.
      const escaped = (prev === 'E' || prev === 'e') && !IDENT_CHAR.test(i > 1 ? (sql[i - 2] as string) : ' ');
      next = endOfQuoted(sql, i, "'", escaped);
      if (next === -1) return 'unterminated string literal';
    } else if (c === '"') {
      next = endOfQuoted(sql, i, '"', false);
      if (next === -1) return 'unterminated quoted identifier';
    } else if (c === '$' && !IDENT_CHAR.test(prev)) {
      const digits = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      const tag = digits === null ? DOLLAR_TAG.exec(sql.slice(i, i + 70)) : null;
      if (digits !== null) {
        params.add(Number(digits[1]));
        next = i + digits[0].length;
      } else if (tag !== null) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        if (close === -1) return 'unterminated dollar-quoted string';
        next = close + tag[0].length;
      }
    } else if (IDENT_CHAR.test(c)) {
      while (next < sql.length && IDENT_CHAR.test(sql[next] as string)) next++;
    }
    i = next;
  }
  const others = [...params].filter((n) => n !== 1).sort((a, b) => a - b);
  if (others.length > 0) return `only \`$1\` (the list of keys) is available, found \`$${others[0] ?? ''}\``;
  if (!params.has(1)) return 'expected `$1` (the list of keys), as in `where id = any($1)`';
  return undefined;
}
