/**
 * A {@link BudgetStore} in Redis, shared by every broker instance. Each operation is one Lua
 * script, which Redis runs atomically: a reservation purges the expired holds of its slots,
 * checks `used + reserved + amount <= limit` for every slot and adds the holds in the same step,
 * so concurrent checks on any number of instances can never reserve beyond a limit.
 *
 * Layout (under `prefix`): `s:<slot>` a hash (`used`, `reserved`, `h:<reservation>` = held
 * amount), `z:<slot>` a sorted set of reservation ids scored by when their hold ends (for the
 * purge), `r:<reservation>` the reservation's slots as JSON (for usage reports), `u:<key>` a
 * counted idempotency key and its report's fingerprint. Slot keys expire after their window.
 * Expiry uses the caller's clock (`now`), so instances' clocks should agree within a small fraction
 * of a reservation's time-to-live. The keys of one reservation are not co-located: Redis Cluster
 * is not supported.
 *
 * Failures (Redis down, a timeout, a garbled answer) reject: the caller fails closed.
 */
import type { Redis } from 'ioredis';
import { IDEMPOTENCY_MS, LATE_REPORT_MS, type BudgetSlot, type BudgetStore, type ReservationRequest, type ReserveResult, type SettleResult, type SlotUsage, type UsageSettlement } from './budget-store.js';

/** Options of {@link createRedisBudgetStore}. */
export interface RedisBudgetStoreOptions {
  /** The connection (the app owns and closes it; `enableOfflineQueue: false` fails fast while it is down). */
  readonly redis: Redis;
  /** Prefix of every key (default `warden:budget:`). */
  readonly prefix?: string;
  /** Longest wait for one operation (default 500 ms); past it the operation rejects. */
  readonly timeoutMs?: number;
}

// Shared by the scripts: drop the holds of slot i whose time is up.
const PURGE = `
local function purge(h, z, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(expired) do
    local a = tonumber(redis.call('HGET', h, 'h:' .. id) or '0')
    if a ~= 0 then redis.call('HINCRBY', h, 'reserved', -a) end
    redis.call('HDEL', h, 'h:' .. id)
    redis.call('ZREM', z, id)
  end
end
`;

// KEYS: s_1, z_1, ..., s_n, z_n. ARGV: now. Returns used_1, reserved_1, ...
const READ = `${PURGE}
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z, now)
  out[2 * i - 1] = tonumber(redis.call('HGET', h, 'used') or '0')
  out[2 * i] = tonumber(redis.call('HGET', h, 'reserved') or '0')
end
return out
`;

// KEYS: s_1, z_1, ..., s_n, z_n, r. ARGV: now, id, ttl, recordTtl, record, then per slot amount, limit, expireAt.
// Returns ok (1/0), exhausted index (1-based, 0 if ok), then used_i, reserved_i.
const RESERVE = `${PURGE}
local now, id, ttl, recordTtl, record = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local n = (#KEYS - 1) / 2
local used, reserved = {}, {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z, now)
  used[i] = tonumber(redis.call('HGET', h, 'used') or '0')
  reserved[i] = tonumber(redis.call('HGET', h, 'reserved') or '0')
end
local ok, exhausted = 1, 0
for i = 1, n do
  local amount, limit = tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[4 + 3 * i])
  if used[i] + reserved[i] + amount > limit then
    ok, exhausted = 0, i
    break
  end
end
if ok == 1 then
  for i = 1, n do
    local h, z = KEYS[2 * i - 1], KEYS[2 * i]
    local amount, expireAt = tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[5 + 3 * i])
    redis.call('HINCRBY', h, 'reserved', amount)
    redis.call('HSET', h, 'h:' .. id, amount)
    redis.call('ZADD', z, now + ttl, id)
    redis.call('PEXPIREAT', h, expireAt)
    redis.call('PEXPIREAT', z, expireAt)
    reserved[i] = reserved[i] + amount
  end
  redis.call('SET', KEYS[#KEYS], record, 'PX', recordTtl)
end
local out = { ok, exhausted }
for i = 1, n do
  out[1 + 2 * i] = used[i]
  out[2 + 2 * i] = reserved[i]
end
return out
`;

// KEYS: u, r, s_1, z_1, ... ARGV: fingerprint, tokens, id, keyTtl, then per slot expireAt.
// Returns 1 (settled) then used_i, reserved_i; 2 duplicate; 3 conflict; 4 unknown.
const SETTLE = `
local fingerprint, tokens, id, keyTtl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local prev = redis.call('GET', KEYS[1])
if prev then
  if prev == fingerprint then return { 2 } end
  return { 3 }
end
if redis.call('EXISTS', KEYS[2]) == 0 then return { 4 } end
redis.call('SET', KEYS[1], fingerprint, 'PX', keyTtl)
local out = { 1 }
for i = 1, (#KEYS - 2) / 2 do
  local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local a = redis.call('HGET', h, 'h:' .. id)
  if a then
    redis.call('HINCRBY', h, 'reserved', -tonumber(a))
    redis.call('HDEL', h, 'h:' .. id)
  end
  redis.call('ZREM', z, id)
  redis.call('HINCRBY', h, 'used', tokens)
  local expireAt = tonumber(ARGV[4 + i])
  redis.call('PEXPIREAT', h, expireAt)
  redis.call('PEXPIREAT', z, expireAt)
  out[2 * i] = tonumber(redis.call('HGET', h, 'used') or '0')
  out[2 * i + 1] = tonumber(redis.call('HGET', h, 'reserved') or '0')
end
return out
`;

type Script = 'wardenBudgetRead' | 'wardenBudgetReserve' | 'wardenBudgetSettle';
type ScriptClient = Redis & Record<Script, (...args: Array<string | number>) => Promise<unknown>>;

/** A reservation's record: its slots, for usage reports. */
interface RecordSlot {
  readonly k: string;
  readonly n: string;
  readonly l: number;
  readonly e: number;
}

function numbers(raw: unknown, min: number): number[] {
  if (!Array.isArray(raw) || raw.length < min || !raw.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) throw new Error('unexpected answer from the budget script');
  return raw as number[];
}

/**
 * Creates a Redis budget store over `redis` (the caller's connection).
 * @example const store = createRedisBudgetStore({ redis: new Redis(url, { enableOfflineQueue: false }) });
 */
export function createRedisBudgetStore(options: RedisBudgetStoreOptions): BudgetStore {
  const prefix = options.prefix ?? 'warden:budget:';
  const timeoutMs = options.timeoutMs ?? 500;
  const redis = options.redis as ScriptClient;
  if (typeof redis.wardenBudgetRead !== 'function') {
    // EVALSHA with a fallback to EVAL, by ioredis.
    redis.defineCommand('wardenBudgetRead', { lua: READ });
    redis.defineCommand('wardenBudgetReserve', { lua: RESERVE });
    redis.defineCommand('wardenBudgetSettle', { lua: SETTLE });
  }
  const slotKeys = (key: string): [string, string] => [`${prefix}s:${key}`, `${prefix}z:${key}`];

  function within<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`budget store: no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  return {
    async read(slots: readonly BudgetSlot[], now: number): Promise<SlotUsage[]> {
      if (slots.length === 0) return [];
      const keys = slots.flatMap((s) => slotKeys(s.key));
      const raw = numbers(await within(redis.wardenBudgetRead(keys.length, ...keys, now)), 2 * slots.length);
      return slots.map((_, i) => ({ used: raw[2 * i] as number, reserved: raw[2 * i + 1] as number }));
    },
    async reserve(request: ReservationRequest, now: number): Promise<ReserveResult> {
      const keys = request.slots.flatMap((x) => slotKeys(x.slot.key));
      keys.push(`${prefix}r:${request.id}`);
      const record: RecordSlot[] = request.slots.map((x) => ({ k: x.slot.key, n: x.slot.name, l: x.slot.limit, e: x.slot.expiresAt }));
      const args: Array<string | number> = [now, request.id, request.ttlMs, request.ttlMs + LATE_REPORT_MS, JSON.stringify(record)];
      for (const x of request.slots) args.push(x.amount, x.slot.limit, x.slot.expiresAt);
      const raw = numbers(await within(redis.wardenBudgetReserve(keys.length, ...keys, ...args)), 2 + 2 * request.slots.length);
      const usages = request.slots.map((_, i) => ({ used: raw[2 + 2 * i] as number, reserved: raw[3 + 2 * i] as number }));
      return raw[0] === 1 ? { ok: true, usages } : { ok: false, exhausted: (raw[1] as number) - 1, usages };
    },
    async settle(report: UsageSettlement, now: number): Promise<SettleResult> {
      void now;
      const recordKey = `${prefix}r:${report.reservationId}`;
      const text = await within(redis.get(recordKey));
      let slots: RecordSlot[] = [];
      if (text !== null) {
        try {
          slots = JSON.parse(text) as RecordSlot[];
        } catch {
          throw new Error('budget store: a garbled reservation record');
        }
      }
      const keys = [`${prefix}u:${report.idempotencyKey}`, recordKey, ...slots.flatMap((s) => slotKeys(s.k))];
      const args: Array<string | number> = [`${report.reservationId}:${report.tokens}`, report.tokens, report.reservationId, IDEMPOTENCY_MS, ...slots.map((s) => s.e)];
      const raw = numbers(await within(redis.wardenBudgetSettle(keys.length, ...keys, ...args)), 1);
      switch (raw[0]) {
        case 1:
          if (raw.length !== 1 + 2 * slots.length) throw new Error('unexpected answer from the budget script');
          return { status: 'settled', slots: slots.map((s, i) => ({ name: s.n, limit: s.l, used: raw[1 + 2 * i] as number, reserved: raw[2 + 2 * i] as number })) };
        case 2:
          return { status: 'duplicate' };
        case 3:
          return { status: 'conflict' };
        case 4:
          return { status: 'unknown' };
        default:
          throw new Error('unexpected answer from the budget script');
      }
    },
    close() {
      // The connection is the caller's.
      return Promise.resolve();
    },
  };
}
