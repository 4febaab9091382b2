/**
 * Where cache wrappers keep values. Async and batch-shaped so a Redis store (MGET / SET PX) can
 * implement it later; the in-process store is an LRU.
 */
import { LRUCache } from 'lru-cache';

/** One remembered answer. `value: undefined` is a remembered not-found. */
export interface CacheEntry {
  readonly value: unknown;
  /** Wall-clock ms when the value was fetched. */
  readonly storedAt: number;
  /** Wall-clock ms after which the value must never be served (a token's expiry). */
  readonly expiresAt?: number;
}

/** A key-value store for cache entries. */
export interface CacheStore {
  getMany(keys: readonly string[]): Promise<ReadonlyArray<CacheEntry | undefined>>;
  /** The entry of `key` if this store can tell synchronously (an in-process tier); undefined otherwise. */
  peek?(key: string): CacheEntry | undefined;
  /** Stores `entry`, keeping it at most `retainMs` (the store may drop it earlier). */
  set(key: string, entry: CacheEntry, retainMs: number): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Options of {@link createLruCacheStore}. */
export interface LruCacheStoreOptions {
  /** Entry bound (default 10 000). */
  readonly max?: number;
  /** Clock in ms, shared with the cache wrappers (default `Date.now`). */
  readonly now?: () => number;
}

/**
 * The in-process store: an LRU bounded by entry count, each entry dropped after its retention.
 * @example const store = createLruCacheStore({ max: 50_000 });
 */
export function createLruCacheStore(options: LruCacheStoreOptions = {}): CacheStore {
  const now = options.now ?? Date.now;
  const lru = new LRUCache<string, { entry: CacheEntry }>({ max: options.max ?? 10_000, ttlAutopurge: false, perf: { now } });
  return {
    getMany: (keys) => Promise.resolve(keys.map((k) => lru.get(k)?.entry)),
    peek: (key) => lru.get(key)?.entry,
    set: (key, entry, retainMs) => {
      lru.set(key, { entry }, { ttl: Math.max(1, retainMs) });
      return Promise.resolve();
    },
    delete: (key) => {
      lru.delete(key);
      return Promise.resolve();
    },
  };
}
