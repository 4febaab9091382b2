/**
 * Two cache tiers as one {@link CacheStore}: a small in-process store (the LRU) in front of a
 * store every broker instance shares (Redis).
 *
 * - `getMany` reads the local tier, then asks the shared tier for the misses only, and copies
 *   what it found into the local tier for at most `localTtlMs`, and never past the moment the
 *   shared tier drops the entry.
 * - `set` writes both tiers; `delete` deletes from both and publishes the key on the
 *   invalidation channel so every other instance drops its local copy at once.
 *
 * Why local copies are short-lived: pub/sub delivers at most once (a message sent while an
 * instance is reconnecting is lost), so `localTtlMs` is the bound on how long an instance can
 * serve an entry that another instance deleted. With the channel working, it drops it as soon as
 * the message arrives.
 *
 * The shared copy carries the wall-clock ms when the shared tier drops it (`tierRetainUntil`),
 * which is how a reader on another instance bounds its local copy; the field is stripped before
 * an entry is returned, so callers see exactly the entry that was set.
 */
import type { CacheEntry, CacheStore } from './cache-store.js';

/** A broadcast of deleted keys between broker instances. */
export interface CacheInvalidations {
  /** Tells every subscriber (other instances, and this one) that `key` was deleted. Never rejects. */
  publish(key: string): Promise<void>;
  /** Calls `onKey` for every published key; answers the function that stops it. */
  subscribe(onKey: (key: string) => void): () => void;
}

/** Options of {@link createTieredCacheStore}. */
export interface TieredCacheStoreOptions {
  /** The in-process tier (an LRU). */
  readonly local: CacheStore;
  /** The tier shared by every instance (Redis). */
  readonly shared: CacheStore;
  /** Longest time a local copy of a shared entry is kept (default 5 000 ms). */
  readonly localTtlMs?: number;
  /** Where deletes are announced; without it other instances keep their copy up to `localTtlMs`. */
  readonly invalidations?: CacheInvalidations;
  /** Wall clock in ms, shared with the cache wrappers (default `Date.now`). */
  readonly now?: () => number;
  /** Told when the shared tier rejects (it is then treated as a miss or a no-op). */
  readonly onError?: (error: unknown) => void;
}

/** A tiered store; `close` stops listening for invalidations. */
export interface TieredCacheStore extends CacheStore {
  close(): void;
}

const RETAIN_UNTIL = 'tierRetainUntil';
const DEFAULT_LOCAL_TTL_MS = 5_000;

/** Splits a shared copy into the entry as set and its retention deadline (undefined when unknown). */
function unwrap(stored: CacheEntry): { entry: CacheEntry; retainUntil: number | undefined } {
  const { [RETAIN_UNTIL]: until, ...entry } = stored as CacheEntry & Record<string, unknown>;
  return { entry: entry as CacheEntry, retainUntil: typeof until === 'number' ? until : undefined };
}

/**
 * A local tier in front of a shared one, kept coherent across instances by `invalidations`.
 * @example
 * const store = createTieredCacheStore({
 *   local: createLruCacheStore(),
 *   shared: createRedisCacheStore({ redis }),
 *   invalidations: createRedisInvalidationChannel({ publisher: redis, subscriber: redis.duplicate(), channel: 'warden:cache:invalidate' }),
 * });
 */
export function createTieredCacheStore(options: TieredCacheStoreOptions): TieredCacheStore {
  const { local, shared } = options;
  const now = options.now ?? Date.now;
  const localTtlMs = options.localTtlMs ?? DEFAULT_LOCAL_TTL_MS;
  const report = (err: unknown): void => {
    try {
      options.onError?.(err);
    } catch {
      // A failing hook must not fail a cache operation.
    }
  };
  /** Bumped by every invalidation received. */
  let invalidations = 0;
  const unsubscribe =
    options.invalidations?.subscribe((key) => {
      invalidations++;
      void local.delete(key).catch(report);
    }) ?? (() => undefined);

  return {
    // Only the local tier answers synchronously; a local miss goes through getMany.
    peek: (key) => local.peek?.(key),
    async getMany(keys) {
      const seen = invalidations;
      const out: Array<CacheEntry | undefined> = [...(await local.getMany(keys))];
      const missIdx: number[] = [];
      out.forEach((e, i) => {
        if (e === undefined) missIdx.push(i);
      });
      if (missIdx.length === 0) return out;
      let found: ReadonlyArray<CacheEntry | undefined>;
      try {
        found = await shared.getMany(missIdx.map((i) => keys[i] as string));
      } catch (err) {
        report(err);
        return out;
      }
      const t = now();
      const fills: Promise<void>[] = [];
      missIdx.forEach((i, j) => {
        const stored = found[j];
        if (stored === undefined) return;
        const { entry, retainUntil } = unwrap(stored);
        const remaining = retainUntil === undefined ? localTtlMs : retainUntil - t;
        if (remaining <= 0) return; // the shared tier is about to drop it: a miss
        out[i] = entry;
        // INVARIANT: a key deleted while this read was in flight (a message arrived since it
        // started) is not copied locally: the copy could predate the delete and would outlive it.
        if (invalidations === seen) fills.push(local.set(keys[i] as string, entry, Math.min(localTtlMs, remaining)));
      });
      await Promise.all(fills);
      return out;
    },

    async set(key, entry, retainMs) {
      const stored = { ...entry, [RETAIN_UNTIL]: now() + retainMs };
      await Promise.all([local.set(key, entry, Math.min(localTtlMs, retainMs)), shared.set(key, stored, retainMs).catch(report)]);
    },

    async delete(key) {
      await Promise.all([local.delete(key), shared.delete(key).catch(report), options.invalidations?.publish(key).catch(report)]);
    },

    close: unsubscribe,
  };
}
