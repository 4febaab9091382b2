/**
 * SPIFFE values for Cerbos's `spiffeID`, `spiffeTrustDomain` and `spiffeMatch*` functions.
 * Parsing and validation follow go-spiffe v2 (`spiffeid.FromString`,
 * `spiffeid.TrustDomainFromString`) with its error texts; parsed values are immutable and
 * memoised per input string (bounded).
 */

const SCHEME = 'spiffe://';

/** go-spiffe's validation errors, word for word. */
export const SPIFFE_ERRORS = {
  empty: 'cannot be empty',
  scheme: 'scheme is missing or invalid',
  missingTrustDomain: 'trust domain is missing',
  trustDomainChar: 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  pathChar: 'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
  dotSegment: 'path cannot contain dot segments',
  emptySegment: 'path cannot contain empty segments',
  trailingSlash: 'path cannot have a trailing slash',
  leadingSlash: 'path must have a leading slash',
} as const;

/** A valid SPIFFE trust domain (`cerbos.lib.spiffeTrustDomain`). */
export class SpiffeTrustDomain {
  constructor(readonly name: string) {}

  /** `spiffe://<name>`. */
  idString(): string {
    return SCHEME + this.name;
  }

  toString(): string {
    return this.name;
  }
}

/** A valid SPIFFE ID (`cerbos.lib.spiffeID`). */
export class SpiffeId {
  #td: SpiffeTrustDomain | undefined;

  constructor(
    /** The whole ID as written (`spiffe://td/path`). */
    readonly id: string,
    /** Index of the path (or the end of the string when there is none). */
    private readonly pathIdx: number,
  ) {}

  /** The path, `""` or starting with `/`. */
  path(): string {
    return this.id.slice(this.pathIdx);
  }

  trustDomainName(): string {
    return this.id.slice(SCHEME.length, this.pathIdx);
  }

  trustDomain(): SpiffeTrustDomain {
    return (this.#td ??= trustDomainOf(this.trustDomainName()));
  }

  memberOf(td: SpiffeTrustDomain): boolean {
    return this.trustDomainName() === td.name;
  }

  toString(): string {
    return this.id;
  }
}

const EMPTY_SET: ReadonlySet<string> = new Set();

/** A matcher (`cerbos.lib.spiffeMatcher`): any ID, exact IDs, or members of a trust domain. */
export class SpiffeMatcher {
  private constructor(
    private readonly kind: 'any' | 'ids' | 'td',
    private readonly ids: ReadonlySet<string>,
    private readonly td: string,
  ) {}

  static readonly #any = new SpiffeMatcher('any', EMPTY_SET, '');

  static any(): SpiffeMatcher {
    return SpiffeMatcher.#any;
  }

  static oneOf(ids: readonly SpiffeId[]): SpiffeMatcher {
    return new SpiffeMatcher('ids', new Set(ids.map((x) => x.id)), '');
  }

  static memberOf(td: SpiffeTrustDomain): SpiffeMatcher {
    return new SpiffeMatcher('td', EMPTY_SET, td.name);
  }

  matches(id: SpiffeId): boolean {
    if (this.kind === 'any') return true;
    if (this.kind === 'ids') return this.ids.has(id.id);
    return id.trustDomainName() === this.td;
  }
}


function isTrustDomainChar(c: number): boolean {
  // a-z 0-9 - . _
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
}

function isPathChar(c: number): boolean {
  // a-z A-Z 0-9 - . _
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
}

/** go-spiffe `ValidatePath`: the error text, or undefined when valid. */
function validatePath(path: string): string | undefined {
  if (path === '') return undefined;
  if (path.charCodeAt(0) !== 0x2f) return SPIFFE_ERRORS.leadingSlash;
  let start = 0;
  for (let end = 0; end < path.length; end++) {
    const c = path.charCodeAt(end);
    if (c === 0x2f) {
      const seg = path.slice(start, end);
      if (seg === '/') return SPIFFE_ERRORS.emptySegment;
      if (seg === '/.' || seg === '/..') return SPIFFE_ERRORS.dotSegment;
      start = end;
      continue;
    }
    if (!isPathChar(c)) return SPIFFE_ERRORS.pathChar;
  }
  const last = path.slice(start);
  if (last === '/') return SPIFFE_ERRORS.trailingSlash;
  if (last === '/.' || last === '/..') return SPIFFE_ERRORS.dotSegment;
  return undefined;
}

/** go-spiffe `spiffeid.FromString`: the ID, or the error text. */
function parseId(s: string): SpiffeId | string {
  if (s === '') return SPIFFE_ERRORS.empty;
  if (!s.startsWith(SCHEME)) return SPIFFE_ERRORS.scheme;
  let i = SCHEME.length;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2f) break;
    if (!isTrustDomainChar(c)) return SPIFFE_ERRORS.trustDomainChar;
  }
  if (i === SCHEME.length) return SPIFFE_ERRORS.missingTrustDomain;
  const err = validatePath(s.slice(i));
  return err ?? new SpiffeId(s, i);
}

/** go-spiffe `spiffeid.TrustDomainFromString` (a bare name or an ID): the trust domain, or the error text. */
function parseTrustDomain(s: string): SpiffeTrustDomain | string {
  if (s === '') return SPIFFE_ERRORS.missingTrustDomain;
  if (s.includes(':/')) {
    const id = lookupId(s);
    return typeof id === 'string' ? id : id.trustDomain();
  }
  for (let i = 0; i < s.length; i++) if (!isTrustDomainChar(s.charCodeAt(i))) return SPIFFE_ERRORS.trustDomainChar;
  return new SpiffeTrustDomain(s);
}

// Policies parse the same few IDs over and over: results (errors included) are memoised per
// string, bounded and cleared when full.
const MEMO_LIMIT = 4096;
const idMemo = new Map<string, SpiffeId | string>();
const tdMemo = new Map<string, SpiffeTrustDomain | string>();

function memo<T>(m: Map<string, T>, key: string, parse: (s: string) => T): T {
  const hit = m.get(key);
  if (hit !== undefined) return hit;
  const v = parse(key);
  if (m.size >= MEMO_LIMIT) m.clear();
  m.set(key, v);
  return v;
}

function lookupId(s: string): SpiffeId | string {
  return memo(idMemo, s, parseId);
}

function lookupTrustDomain(s: string): SpiffeTrustDomain | string {
  return memo(tdMemo, s, parseTrustDomain);
}

function trustDomainOf(name: string): SpiffeTrustDomain {
  const td = lookupTrustDomain(name);
  return typeof td === 'string' ? new SpiffeTrustDomain(name) : td;
}

/** Parses a SPIFFE ID or returns undefined. */
export function tryParseSpiffeId(s: string): SpiffeId | undefined {
  const r = lookupId(s);
  return typeof r === 'string' ? undefined : r;
}

/** Parses a SPIFFE trust domain (name or ID) or returns undefined. */
export function tryParseSpiffeTrustDomain(s: string): SpiffeTrustDomain | undefined {
  const r = lookupTrustDomain(s);
  return typeof r === 'string' ? undefined : r;
}

/** `spiffeID(string)`: throws `failed to parse SPIFFE ID: <reason>`. */
export function spiffeIdOf(s: string, prefix = 'failed to parse SPIFFE ID'): SpiffeId {
  const r = lookupId(s);
  if (typeof r === 'string') throw new Error(`${prefix}: ${r}`);
  return r;
}

/** `spiffeTrustDomain(string)`: throws `failed to parse SPIFFE trust domain: <reason>`. */
export function spiffeTrustDomainOf(s: string): SpiffeTrustDomain {
  const r = lookupTrustDomain(s);
  if (typeof r === 'string') throw new Error(`failed to parse SPIFFE trust domain: ${r}`);
  return r;
}

/**
 * `spiffeMatchOneOf(list)`: every element a SPIFFE ID or a string that parses as one; anything
 * else (including an invalid ID string) is `no such overload`, as in Cerbos.
 */
export function spiffeMatchOneOf(list: readonly unknown[]): SpiffeMatcher {
  const ids: SpiffeId[] = [];
  for (const x of list) {
    if (x instanceof SpiffeId) ids.push(x);
    else if (typeof x === 'string') {
      const id = tryParseSpiffeId(x);
      if (!id) throw new Error('no such overload');
      ids.push(id);
    } else throw new Error('no such overload');
  }
  return SpiffeMatcher.oneOf(ids);
}
