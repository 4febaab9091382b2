/**
 * Glob matching for actions, roles and resource kinds with Cerbos's rules: `*` alone matches
 * anything; otherwise `*` matches within one `:`-separated segment and `?` one character.
 * Matchers are built once at compile time.
 */

/** A compiled glob. */
export type Matcher = (value: string) => boolean;

const cache = new Map<string, Matcher>();

/** True when the pattern contains glob syntax. */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?') || pattern.includes('[') || pattern.includes('{');
}

function escapeRe(s: string): string {
  return s.replace(/[.+^${}()|\\/]/g, '\\$&');
}

/** Builds (and memoises) a matcher for `pattern`. */
export function compileGlob(pattern: string): Matcher {
  let m = cache.get(pattern);
  if (m) return m;
  if (pattern === '*') {
    m = () => true;
  } else if (!isGlob(pattern)) {
    m = (v) => v === pattern;
  } else {
    let re = '^';
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i] as string;
      if (c === '*') {
        if (pattern[i + 1] === '*') {
          re += '.*';
          i++;
        } else {
          re += '[^:]*';
        }
      } else if (c === '?') {
        re += '[^:]';
      } else if (c === '[' || c === ']') {
        re += c === '[' ? '[' : ']';
      } else {
        re += escapeRe(c);
      }
    }
    re += '$';
    let rx: RegExp;
    try {
      rx = new RegExp(re);
    } catch {
      rx = new RegExp(`^${escapeRe(pattern)}$`);
    }
    m = (v) => rx.test(v);
  }
  cache.set(pattern, m);
  return m;
}

/** `value === pattern` or the glob matches. */
export function matchesGlob(pattern: string, value: string): boolean {
  return pattern === value || compileGlob(pattern)(value);
}
