/**
 * A {@link CacheStore} in Redis, shared by every broker instance: `getMany` is one MGET, `set`
 * is SET with PX (Redis drops the entry after its retention), `delete` is DEL.
 *
 * An entry is stored as JSON of the whole {@link CacheEntry} (so fields added to it later pass
 * through), in an envelope that tells a remembered not-found (`value: undefined`, which JSON
 * cannot hold) from a found value.
 *
 * A cache must never fail or stall a decision: when Redis is down, slow or answers garbage,
 * `getMany` answers misses and `set`/`delete` do nothing, each within `timeoutMs`, and the error
 * goes to `onError` (for the app's metrics and logs; this lib does not log).
 */
import type { Redis } from 'ioredis';
import type { CacheEntry, CacheStore } from './cache-store.js';
import { TIMED_OUT, within } from './within.js';

/** Which store operation failed. */
export type CacheStoreOperation = 'getMany' | 'set' | 'delete';

/** Options of {@link createRedisCacheStore}. */
export interface RedisCacheStoreOptions {
  /** The connection (the app owns it; tip: `enableOfflineQueue: false` fails fast while it is down). */
  readonly redis: Redis;
  /** Prefix of every Redis key (default `warden:cache:`); give each deployment its own. */
  readonly prefix?: string;
  /** Longest wait for Redis per operation before it counts as failed (default 100 ms). */
  readonly timeoutMs?: number;
  /** Told of every failure that was turned into a miss or a no-op. */
  readonly onError?: (error: unknown, operation: CacheStoreOperation) => void;
}

const FORMAT = 1;

interface Envelope {
  readonly f: number;
  readonly entry: Record<string, unknown>;
  /** Absent: a remembered not-found. */
  readonly value?: unknown;
}

/**
 * Encodes `entry`, or answers undefined when its value cannot be JSON (then it is not cached).
 * Throws what `JSON.stringify` throws (a BigInt, a cycle).
 * @example encodeCacheEntry({ value: undefined, storedAt: 0 }) // '{"f":1,"entry":{"storedAt":0}}'
 */
export function encodeCacheEntry(entry: CacheEntry): string | undefined {
  const { value, ...rest } = entry;
  const restJson = JSON.stringify(rest);
  if (value === undefined) return `{"f":${FORMAT},"entry":${restJson}}`;
  const valueJson = JSON.stringify(value);
  // INVARIANT: a value JSON drops (a function, a symbol) must not come back as a not-found.
  if (valueJson === undefined) return undefined;
  return `{"f":${FORMAT},"entry":${restJson},"value":${valueJson}}`;
}

/**
 * Decodes what {@link encodeCacheEntry} wrote; undefined for anything else.
 * @example decodeCacheEntry('{"f":1,"entry":{"storedAt":0}}') // { storedAt: 0, value: undefined }
 */
export function decodeCacheEntry(text: string): CacheEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const env = parsed as Partial<Envelope>;
  const entry = env.entry;
  if (env.f !== FORMAT || typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
  // The fields the cache wrappers compare must have their types; other fields pass through.
  if (typeof entry['storedAt'] !== 'number') return undefined;
  if (entry['expiresAt'] !== undefined && typeof entry['expiresAt'] !== 'number') return undefined;
  return { ...entry, storedAt: entry['storedAt'], value: Object.hasOwn(env, 'value') ? env.value : undefined };
}

/**
 * The Redis store. Failures never reject: they become misses or no-ops, reported to `onError`.
 * @example const store = createRedisCacheStore({ redis: new Redis(url, { enableOfflineQueue: false }), prefix: 'warden:prod:cache:' });
 */
export function createRedisCacheStore(options: RedisCacheStoreOptions): CacheStore {
  const { redis } = options;
  const prefix = options.prefix ?? 'warden:cache:';
  const timeoutMs = options.timeoutMs ?? 100;
  const report = (error: unknown, operation: CacheStoreOperation): void => {
    try {
      options.onError?.(error, operation);
    } catch {
      // A failing metrics hook must not turn a cache miss into a failed decision.
    }
  };

  async function run<T>(operation: CacheStoreOperation, command: () => Promise<T>): Promise<T | undefined> {
    try {
      const out = await within(timeoutMs, command);
      if (out !== TIMED_OUT) return out;
      report(new Error(`redis ${operation} timed out after ${timeoutMs}ms`), operation);
    } catch (err) {
      report(err, operation);
    }
    return undefined;
  }

  return {
    async getMany(keys) {
      if (keys.length === 0) return [];
      const answers = await run('getMany', () => redis.mget(keys.map((k) => prefix + k)));
      if (answers === undefined || answers.length !== keys.length) return keys.map(() => undefined);
      return answers.map((text) => {
        if (text === null) return undefined;
        const entry = decodeCacheEntry(text);
        if (entry === undefined) report(new Error('a redis cache entry is malformed'), 'getMany');
        return entry;
      });
    },
    async set(key, entry, retainMs) {
      let text: string | undefined;
      try {
        text = encodeCacheEntry(entry);
      } catch (err) {
        report(err, 'set');
        return;
      }
      if (text === undefined || !(retainMs > 0)) return;
      const body = text;
      await run('set', () => (Number.isFinite(retainMs) ? redis.set(prefix + key, body, 'PX', Math.ceil(retainMs)) : redis.set(prefix + key, body)));
    },
    async delete(key) {
      await run('delete', () => redis.del(prefix + key));
    },
  };
}
