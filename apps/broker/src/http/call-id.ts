/**
 * Cerbos-style call ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford base32).
 * Random bytes come from a pooled buffer so a call id costs no syscall on the hot path.
 */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const POOL_SIZE = 16 * 1024;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;

/** A new ULID. */
export function newCallId(now: number = Date.now()): string {
  if (offset + 16 > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  let out = '';
  let t = now;
  const time: string[] = new Array<string>(10);
  for (let i = 9; i >= 0; i--) {
    time[i] = ALPHABET[t % 32] as string;
    t = Math.floor(t / 32);
  }
  out = time.join('');
  for (let i = 0; i < 16; i++) out += ALPHABET[(pool[offset + i] as number) & 31];
  offset += 16;
  return out;
}
