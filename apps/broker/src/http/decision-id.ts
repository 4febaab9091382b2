/**
 * Decision ids: random (version 4) UUIDs, as `crypto.randomUUID()` makes them, written straight
 * into a scratch buffer from a pooled block of random bytes. `randomUUID()` builds its string from
 * sixteen two-character pieces, about 600 bytes of garbage per call; this makes one 36-character
 * string. The random bytes come from the same CSPRNG (`randomFillSync`), 16 per id.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 16 * 256;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;
const out = Buffer.alloc(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Positions of the 32 hex digits in `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`. */
const DIGITS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
out[8] = out[13] = out[18] = out[23] = 0x2d; // '-'

/** A new random UUID (RFC 9562 version 4, lowercase). */
export function newDecisionId(): string {
  if (offset + 16 > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  for (let i = 0; i < 16; i++) {
    let b = pool[offset + i] as number;
    if (i === 6) b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // variant 10xx
    const at = DIGITS[i] as number;
    out[at] = HEX[b >> 4] as number;
    out[at + 1] = HEX[b & 0x0f] as number;
  }
  offset += 16;
  return out.toString('latin1', 0, 36);
}
