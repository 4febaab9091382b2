/**
 * Cerbos's path functions (`basePath`, `dirPath`, `extPath`, `joinPath`, `pathHasPrefix`,
 * `pathMatch`, `pathMatchAnyOf`, `relPath`, `volumeName`). Cerbos 0.55 runs them through its
 * `crosspath` package: a path is "encoded" to a slash form (`\\host\share\x` → `/host/share/x`,
 * `C:\x` → `/C:/x`, `a\b` → `a/b`), processed with Go's Unix `path/filepath` functions and decoded
 * back to its original separator style. Everything here is a lexical port of that behaviour,
 * including Go's error texts and its quirks (a drive path such as `D:x` without any backslash is
 * rejected; `dirPath` on a relative Windows path without a directory part is a Go panic that
 * Cerbos reports as an internal error).
 */
import { quote } from './go-compat.js';

const UNSUPPORTED_WIN32 = 'unsupported Win32 path';

function fail(message: string): never {
  throw new Error(message);
}

// --- Go path/filepath (Unix) -------------------------------------------------------------------

/** Go `filepath.Clean` with `/` as the separator. */
export function goClean(path: string): string {
  if (path === '') return '.';
  const rooted = path.charCodeAt(0) === 0x2f;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    const seg = path.slice(start, i);
    start = i + 1;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** Go `filepath.Base`. */
function goBase(path: string): string {
  if (path === '') return '.';
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  if (end === 0) return '/';
  const trimmed = path.slice(0, end);
  const base = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  return base === '' ? '/' : base;
}

/** Go `filepath.Dir`. */
function goDir(path: string): string {
  return goClean(path.slice(0, path.lastIndexOf('/') + 1));
}

/** Go `filepath.Ext`. */
function goExt(path: string): string {
  for (let i = path.length - 1; i >= 0 && path.charCodeAt(i) !== 0x2f; i--) {
    if (path.charCodeAt(i) === 0x2e) return path.slice(i);
  }
  return '';
}

/** Go `filepath.Join`. */
function goJoin(elems: readonly string[]): string {
  const parts = elems.filter((e) => e !== '');
  return parts.length === 0 ? '' : goClean(parts.join('/'));
}

/** Go `filepath.Rel`: the relative path, or the error text. */
function goRel(basepath: string, targpath: string): string | { error: string } {
  let base = goClean(basepath);
  let targ = goClean(targpath);
  if (targ === base) return '.';
  if (base === '.') base = '';
  if (targ === '.') targ = '';
  const cant = { error: `Rel: can't make ${targpath} relative to ${basepath}` };
  if ((base.charCodeAt(0) === 0x2f) !== (targ.charCodeAt(0) === 0x2f)) return cant;
  const bl = base.length;
  const tl = targ.length;
  let b0 = 0;
  let bi = 0;
  let t0 = 0;
  let ti = 0;
  for (;;) {
    while (bi < bl && base.charCodeAt(bi) !== 0x2f) bi++;
    while (ti < tl && targ.charCodeAt(ti) !== 0x2f) ti++;
    if (targ.slice(t0, ti) !== base.slice(b0, bi)) break;
    if (bi < bl) bi++;
    if (ti < tl) ti++;
    b0 = bi;
    t0 = ti;
  }
  if (base.slice(b0, bi) === '..') return cant;
  if (b0 !== bl) {
    let seps = 0;
    for (let i = b0; i < bl; i++) if (base.charCodeAt(i) === 0x2f) seps++;
    return '..' + '/..'.repeat(seps) + (t0 !== tl ? `/${targ.slice(t0)}` : '');
  }
  return targ.slice(t0);
}

const BAD_PATTERN = 'syntax error in pattern';

/** Go `getEsc` (the Unix escape branch never applies: encoded patterns hold no backslash). */
function getEsc(chunk: string, i: number): { r: number; next: number } | undefined {
  if (i >= chunk.length) return undefined;
  const c = chunk.charCodeAt(i);
  if (c === 0x2d || c === 0x5d) return undefined; // '-' or ']'
  const r = chunk.codePointAt(i) as number;
  const next = i + (r > 0xffff ? 2 : 1);
  if (next >= chunk.length) return undefined;
  return { r, next };
}

/**
 * Go `matchChunk`: the index in `s` after the chunk, -1 when it does not match, or undefined for
 * a malformed chunk (checked whether or not `s` matches).
 */
function matchChunk(chunk: string, s: string, si: number): number | undefined {
  let failed = false;
  let ci = 0;
  while (ci < chunk.length) {
    if (!failed && si >= s.length) failed = true;
    const c = chunk.charCodeAt(ci);
    if (c === 0x5b) {
      // '[' character class
      let r = 0;
      if (!failed) {
        r = s.codePointAt(si) as number;
        si += r > 0xffff ? 2 : 1;
      }
      ci++;
      let negated = false;
      if (ci < chunk.length && chunk.charCodeAt(ci) === 0x5e) {
        negated = true;
        ci++;
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (ci < chunk.length && chunk.charCodeAt(ci) === 0x5d && nrange > 0) {
          ci++;
          break;
        }
        const lo = getEsc(chunk, ci);
        if (!lo) return undefined;
        ci = lo.next;
        let hi = lo.r;
        if (chunk.charCodeAt(ci) === 0x2d) {
          const h = getEsc(chunk, ci + 1);
          if (!h) return undefined;
          ci = h.next;
          hi = h.r;
        }
        if (lo.r <= r && r <= hi) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === 0x3f) {
      // '?' any character but the separator
      if (!failed) {
        if (s.charCodeAt(si) === 0x2f) failed = true;
        si += (s.codePointAt(si) as number) > 0xffff ? 2 : 1;
      }
      ci++;
    } else {
      if (!failed) {
        if (c !== s.charCodeAt(si)) failed = true;
        si++;
      }
      ci++;
    }
  }
  return failed ? -1 : si;
}

/** Go `scanChunk`: splits off a leading run of `*` and the chunk up to the next unbracketed `*`. */
function scanChunks(pattern: string): Array<{ star: boolean; chunk: string }> {
  const chunks: Array<{ star: boolean; chunk: string }> = [];
  let p = 0;
  while (p < pattern.length) {
    let star = false;
    while (p < pattern.length && pattern.charCodeAt(p) === 0x2a) {
      p++;
      star = true;
    }
    let inrange = false;
    let i = p;
    for (; i < pattern.length; i++) {
      const c = pattern.charCodeAt(i);
      if (c === 0x5b) inrange = true;
      else if (c === 0x5d) inrange = false;
      else if (c === 0x2a && !inrange) break;
    }
    chunks.push({ star, chunk: pattern.slice(p, i) });
    p = i;
  }
  return chunks;
}

/** A Go `filepath.Match` pattern split into chunks. */
type Chunks = ReadonlyArray<{ star: boolean; chunk: string }>;

/**
 * Go `filepath.Match` on a pattern split by {@link scanChunks}: whether `name` matches, or
 * undefined for a malformed pattern. Like Go, a malformed part of the pattern is only reported
 * when matching reaches it (`filepath.Match` does not check the rest of the pattern after a
 * mismatch, unlike `path.Match`).
 */
function matchChunks(chunks: Chunks, name: string): boolean | undefined {
  let ni = 0;
  outer: for (let k = 0; k < chunks.length; k++) {
    const { star, chunk } = chunks[k] as { star: boolean; chunk: string };
    const last = k === chunks.length - 1;
    if (star && chunk === '') return name.indexOf('/', ni) < 0;
    const t = matchChunk(chunk, name, ni);
    if (t === undefined) return undefined;
    if (t >= 0 && (t === name.length || !last)) {
      ni = t;
      continue;
    }
    if (star) {
      for (let i = ni; i < name.length && name.charCodeAt(i) !== 0x2f; i++) {
        const t2 = matchChunk(chunk, name, i + 1);
        if (t2 === undefined) return undefined;
        if (t2 >= 0) {
          if (last && t2 < name.length) continue;
          ni = t2;
          continue outer;
        }
      }
    }
    return false;
  }
  return ni === name.length;
}

// --- Cerbos crosspath ----------------------------------------------------------------------------

const enum Kind {
  Unknown,
  Drive,
  Unc,
}

interface Encoded {
  value: string;
  kind: Kind;
  win32: boolean;
  root: boolean;
}

function isDriveLetter(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
}

function isUncPath(path: string): boolean {
  return path.startsWith('\\\\');
}

function isDrivePath(path: string): boolean {
  return path.length > 1 && isDriveLetter(path.charCodeAt(0)) && path.charCodeAt(1) === 0x3a;
}

const toSlash = (p: string) => p.replaceAll('\\', '/');
const toBackslash = (p: string) => p.replaceAll('/', '\\');

/** Go `strings.SplitN(s, "\\", 3)` length. */
function splitN3Length(s: string): number {
  const a = s.indexOf('\\');
  if (a < 0) return 1;
  return s.indexOf('\\', a + 1) < 0 ? 2 : 3;
}

/** crosspath `Encode`: the encoded path, or undefined for an unsupported Win32 path. */
function encode(path: string): Encoded | undefined {
  const win32 = path.includes('\\');
  let kind = Kind.Unknown;
  let value: string;
  let root = false;
  if (isUncPath(path)) {
    kind = Kind.Unc;
    value = toSlash(path);
    root = splitN3Length(path.slice(2)) === 2;
  } else if (isDrivePath(path)) {
    if (!win32 && path.length > 2) return undefined;
    kind = Kind.Drive;
    value = toSlash(`\\${path}`);
    root = path.length === 2 || path.length === 3;
  } else if (win32) {
    value = toSlash(path);
  } else {
    value = path;
    root = path === '/';
  }
  return { value: goClean(value), kind, win32, root };
}

function encodeOrThrow(path: string, what: string): Encoded {
  return encode(path) ?? fail(`failed to encode ${what} ${path}: ${UNSUPPORTED_WIN32}`);
}

/** crosspath `Decode`. */
function decode(e: Encoded): string {
  switch (e.kind) {
    case Kind.Unc:
      return `\\${toBackslash(e.value)}`;
    case Kind.Drive: {
      const s = toBackslash(e.value);
      return s.startsWith('\\') ? s.slice(1) : s;
    }
    default:
      return e.win32 ? toBackslash(e.value) : e.value;
  }
}

/** `basePath(string)`. */
export function basePath(path: string): string {
  return goBase(encodeOrThrow(path, 'path').value);
}

/** `dirPath(string)`. */
export function dirPath(path: string): string {
  const e = encodeOrThrow(path, 'path');
  if (e.kind === Kind.Unknown && !e.win32) return decode({ ...e, value: goDir(e.value) });
  if (e.root && e.kind === Kind.Unc) return decode(e);
  if (e.root && e.kind === Kind.Drive) return `${decode(e)}\\`;
  const idx = e.value.lastIndexOf('/');
  // Go slices value[:-1] here and panics; Cerbos turns the panic into an evaluation error.
  if (idx < 0) fail('internal error: runtime error: slice bounds out of range [:-1]');
  return decode({ ...e, value: e.value.slice(0, idx) });
}

/** `extPath(string)`. */
export function extPath(path: string): string {
  return goExt(encodeOrThrow(path, 'path').value);
}

/** `joinPath(list(string))`. */
export function joinPath(paths: readonly string[]): string {
  if (paths.length === 0) return '';
  if (paths.length === 1) return paths[0] as string;
  const first = paths[0] as string;
  const result = encodeOrThrow(first, 'first path');
  let value = result.value;
  for (let i = 1; i < paths.length; i++) value = goJoin([value, encodeOrThrow(paths[i] as string, 'path').value]);
  return decode({ ...result, value });
}

const PATTERN_MEMO_LIMIT = 1024;
const patternMemo = new Map<string, Chunks | Error>();

/** The encoded pattern split into chunks; throws for an unencodable pattern. Memoised (bounded). */
function patternOf(pattern: string): Chunks {
  let p = patternMemo.get(pattern);
  if (p === undefined) {
    const e = encode(pattern);
    p = e ? scanChunks(e.value) : new Error(`failed to encode pattern ${pattern}: ${UNSUPPORTED_WIN32}`);
    if (patternMemo.size >= PATTERN_MEMO_LIMIT) patternMemo.clear();
    patternMemo.set(pattern, p);
  }
  if (p instanceof Error) throw new Error(p.message);
  return p;
}

/** `pathMatch(path, pattern)`: Go `filepath.Match` on the encoded pattern and path. */
export function pathMatch(path: string, pattern: string): boolean {
  const e = encodeOrThrow(path, 'path');
  const matched = matchChunks(patternOf(pattern), e.value);
  if (matched === undefined) fail(`failed to match pattern ${quote(pattern)} on path ${quote(path)}: ${BAD_PATTERN}`);
  return matched;
}

/** `pathMatchAnyOf(path, list(string))`. */
export function pathMatchAnyOf(path: string, patterns: readonly string[]): boolean {
  for (const p of patterns) if (pathMatch(path, p)) return true;
  return false;
}

/** crosspath `Rel`. */
export function relPath(basePath: string, targetPath: string): string {
  const b = encodeOrThrow(basePath, 'base path');
  const t = encodeOrThrow(targetPath, 'target path');
  const rel = goRel(b.value, t.value);
  if (typeof rel !== 'string') fail(`failed to determine relative path of ${targetPath}: ${rel.error}`);
  if (rel === '.' || rel === '..') return rel;
  if (t.kind === Kind.Unc) return toBackslash(rel);
  return decode({ ...t, value: rel });
}

/** `pathHasPrefix(path, prefix)`: the same string, or a relative path from prefix to path that does not climb. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (path === prefix) return true;
  const rel = relPath(prefix, path);
  return rel.length > 0 && rel[0] !== '.' && rel[0] !== '/';
}

/** `volumeName(string)`: `C:` or `\\host\share`, else "". */
export function volumeName(path: string): string {
  if (isUncPath(path)) {
    const rest = path.slice(2);
    const a = rest.indexOf('\\');
    if (a > 0) {
      const b = rest.indexOf('\\', a + 1);
      const share = b < 0 ? rest.slice(a + 1) : rest.slice(a + 1, b);
      if (share !== '') return `\\\\${rest.slice(0, a)}\\${share}`;
    }
    return '';
  }
  return isDrivePath(path) ? path.slice(0, 2) : '';
}
