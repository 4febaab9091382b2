/**
 * IP address and CIDR helpers for `inIPAddrRange` and the network extension (`ip()`, `cidr()`).
 * Parsing follows Go's `net.ParseIP` / `net.ParseCIDR` (no leading zeros in IPv4 octets, no zones).
 */

/** A parsed IP address: 16 bytes, IPv4 stored as IPv4-mapped IPv6. */
export class CelIp {
  constructor(
    readonly bytes: Uint8Array,
    /** True when parsed from dotted-quad IPv4 notation. */
    readonly v4: boolean,
  ) {}

  /** 4 or 6. */
  family(): number {
    return this.v4 ? 4 : 6;
  }

  /** The IPv4 bytes when the address is IPv4 or IPv4-mapped, otherwise undefined. */
  to4(): Uint8Array | undefined {
    const b = this.bytes;
    for (let i = 0; i < 10; i++) if (b[i] !== 0) return undefined;
    if (b[10] !== 0xff || b[11] !== 0xff) return undefined;
    return b.subarray(12);
  }

  /** Canonical text form (RFC 5952 for IPv6). */
  toString(): string {
    const v4 = this.v4 ? this.to4() : undefined;
    if (v4) return Array.from(v4).join('.');
    const groups: number[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((this.bytes[i] ?? 0) << 8) | (this.bytes[i + 1] ?? 0));
    let bestStart = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === 0) j++;
      if (j - i > bestLen && j - i >= 2) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    }
    const hex = groups.map((g) => g.toString(16));
    if (bestStart < 0) return hex.join(':');
    return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
  }
}

/** A parsed CIDR block. */
export class CelCidr {
  constructor(
    /** The address as written. */
    readonly ip: CelIp,
    /** Prefix length in bits relative to the family (0-32 for IPv4, 0-128 for IPv6). */
    readonly prefix: number,
  ) {}

  /** Whether `ip` falls inside this block (Go `IPNet.Contains` semantics). */
  contains(ip: CelIp): boolean {
    const netBytes = this.ip.v4 ? this.ip.to4() : this.ip.bytes;
    const ipBytes = ip.to4() ?? ip.bytes;
    if (!netBytes || netBytes.length !== ipBytes.length) return false;
    return prefixEqual(netBytes, ipBytes, this.prefix);
  }

  /** Whether `other` is fully inside this block. */
  containsCidr(other: CelCidr): boolean {
    if (other.ip.v4 !== this.ip.v4 || other.prefix < this.prefix) return false;
    return this.contains(other.ip);
  }

  /** True when the address has no bits set beyond the prefix. */
  isMasked(): boolean {
    const b = this.ip.v4 ? (this.ip.to4() as Uint8Array) : this.ip.bytes;
    for (let bit = this.prefix; bit < b.length * 8; bit++) {
      if (((b[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) return false;
    }
    return true;
  }
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let bit = 0; bit < bits; bit++) {
    const m = 1 << (7 - (bit & 7));
    if (((a[bit >> 3] ?? 0) & m) !== ((b[bit >> 3] ?? 0) & m)) return false;
  }
  return true;
}

function parseV4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** Parses an IPv4 or IPv6 address; undefined when invalid. */
export function parseIp(s: string): CelIp | undefined {
  const v4 = parseV4(s);
  if (v4) return new CelIp(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]), true);
  if (!s.includes(':') || s.includes('%')) return undefined;
  let tail: number[] = [];
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const embedded = parseV4(text.slice(lastColon + 1));
    if (!embedded) return undefined;
    tail = embedded;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const gs: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      gs.push(parseInt(g, 16));
    }
    return gs;
  };
  const head = toGroups(halves[0] ?? '');
  const rest = halves.length === 2 ? toGroups(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  if (tail.length === 4) bytes.set(tail, 12);
  return new CelIp(bytes, false);
}

/** Parses `addr/prefix`; undefined when invalid. */
export function parseCidr(s: string): CelCidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > (ip.v4 ? 32 : 128)) return undefined;
  return new CelCidr(ip, prefix);
}

// Policies test the same few addresses and ranges over and over; parsed values are immutable,
// so they are memoised (bounded, cleared when full).
const MEMO_LIMIT = 4096;
const ipMemo = new Map<string, CelIp | undefined>();
const cidrMemo = new Map<string, CelCidr | undefined>();

function memo<T>(m: Map<string, T>, key: string, parse: (s: string) => T): T {
  if (m.has(key)) return m.get(key) as T;
  const v = parse(key);
  if (m.size >= MEMO_LIMIT) m.clear();
  m.set(key, v);
  return v;
}

/** Cerbos `inIPAddrRange(ip, cidr)`; throws with Go's messages on invalid input. */
export function inIpAddrRange(ipText: string, cidrText: string): boolean {
  const ip = memo(ipMemo, ipText, parseIp);
  if (!ip) throw new Error(`invalid IP address: ${ipText}`);
  const cidr = memo(cidrMemo, cidrText, parseCidr);
  if (!cidr) throw new Error(`invalid CIDR address: ${cidrText}`);
  return goNetContains(cidr, ip);
}

/**
 * Go `net.IPNet.Contains` as `inIPAddrRange` uses it: an IPv4-mapped IPv6 network
 * (`::ffff:10.0.0.0/104`) behaves as its IPv4 form with the last 32 bits of the mask.
 */
function goNetContains(cidr: CelCidr, ip: CelIp): boolean {
  if (cidr.ip.v4 || !cidr.ip.to4()) return cidr.contains(ip);
  const ip4 = ip.to4();
  if (!ip4) return false;
  return prefixEqual(cidr.ip.to4() as Uint8Array, ip4, Math.max(0, cidr.prefix - 96));
}
