/**
 * Cerbos's `hierarchy` helpers. A hierarchy is represented as a plain list of strings so that
 * `size()`, indexing and equality come from the CEL runtime for free.
 */

/** Splits `value` on `delimiter` (Go `strings.Split` semantics: empty string gives `[""]`). */
export function toHierarchy(value: string, delimiter = '.'): string[] {
  return value.split(delimiter);
}

function isPrefix(short: readonly string[], long: readonly string[]): boolean {
  for (let i = 0; i < short.length; i++) if (short[i] !== long[i]) return false;
  return true;
}

/** True when `h` is a strict ancestor of `other`. */
export function ancestorOf(h: readonly string[], other: readonly string[]): boolean {
  return other.length > h.length && isPrefix(h, other);
}

/** True when `h` is a strict descendant of `other`. */
export function descendentOf(h: readonly string[], other: readonly string[]): boolean {
  return ancestorOf(other, h);
}

/** True when `h` is exactly one level above `other`. */
export function immediateParentOf(h: readonly string[], other: readonly string[]): boolean {
  return other.length === h.length + 1 && isPrefix(h, other);
}

/** True when `h` is exactly one level below `other`. */
export function immediateChildOf(h: readonly string[], other: readonly string[]): boolean {
  return immediateParentOf(other, h);
}

/** True when one hierarchy is a prefix of the other (or they are equal). */
export function overlaps(h: readonly string[], other: readonly string[]): boolean {
  return h.length <= other.length ? isPrefix(h, other) : isPrefix(other, h);
}

/** True when both have the same length and the same parent (Cerbos counts equal hierarchies as siblings). */
export function siblingOf(h: readonly string[], other: readonly string[]): boolean {
  if (h.length !== other.length) return false;
  for (let i = 0; i < h.length - 1; i++) if (h[i] !== other[i]) return false;
  return true;
}

/** Longest common prefix; for equal-length inputs the last segment is dropped first (as Cerbos does). */
export function commonAncestors(h: readonly string[], other: readonly string[]): string[] {
  let short = h.length <= other.length ? h : other;
  let long = h.length <= other.length ? other : h;
  if (short.length === long.length) {
    short = short.slice(0, -1);
    long = long.slice(0, -1);
  }
  const out: string[] = [];
  for (let i = 0; i < short.length; i++) {
    if (long[i] !== short[i]) break;
    out.push(short[i] as string);
  }
  return out;
}
