/**
 * The cache as a wrapper around a resolver (STYLE 3: wrappers, not forks).
 *
 * - A found value is fresh for `ttlMs`; a not-found (`undefined`) for `negativeTtlMs` (0: never
 *   remembered, so a record created a second later is seen at once).
 * - Single flight: concurrent misses of one key, from any number of requests, share one fetch;
 *   misses of one call go to the inner resolver as one batch.
 * - Stale-while-revalidate (only with `staleMaxAgeMs`, which the registry sets for
 *   `onError: stale`): an expired value younger than `ttlMs + staleMaxAgeMs` is served at once,
 *   marked stale, while one background refresh (single flight) replaces it; a failed refresh keeps
 *   serving it until that age, past which the value is refetched synchronously and a failure
 *   stands (and `onError: stale` then denies). Without `staleMaxAgeMs` an expired value is always
 *   refetched before it is answered.
 * - Failures are never cached.
 * - A value the resolver gives an expiry (`expiresAt`, a token's `exp`) is never served past it,
 *   fresh or stale.
 * - Store keys are a SHA-256 of the key unless `hashKeys: false`: tokens used as keys never reach
 *   the store (or Redis).
 *
 * The shared fetch runs under its own signal (the inner `withTimeout` bounds it), not under the
 * first caller's: one abandoned request must not fail the others waiting on the same key. Each
 * caller still stops waiting when its own signal aborts.
 */
import { hash } from 'node:crypto';
import type { JsonValue } from '@warden/core';
import { isResolverError, ResolverError, toResolverError } from '../resolver-error.js';
import type { CacheInfo, ContextResolver, DetailedContextResolver, DetailedResult, ResolveContext } from '../resolver.types.js';
import { abortedError, NEVER_ABORTED } from '../with-timeout.js';
import type { CacheStore } from './cache-store.js';

/** Cache settings of {@link withCache}, in milliseconds. */
export interface WithCacheOptions {
  readonly ttlMs: number;
  readonly negativeTtlMs?: number;
  readonly staleMaxAgeMs?: number;
  /** Prefix of every store key; defaults to the resolver's name. Change it when the config changes. */
  readonly namespace?: string;
  /** Clock (default `Date.now`). */
  readonly now?: () => number;
  /** Key to string (default: JSON with sorted object keys). */
  readonly keyFn?: (key: unknown) => string;
  /**
   * Store a SHA-256 of each key instead of the key (default true). The registry turns it off for
   * keys read from paths that cannot hold credentials (`principal.id`, `resource.attr.projectId`).
   */
  readonly hashKeys?: boolean;
}

/** JSON with object keys sorted, so equal keys give equal strings (`1` and `"1"` differ). */
export function stableKey(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableKey).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableKey(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

type Fetched = { ok: true; value: unknown; storedAt: number } | { ok: false; error: ResolverError };

// SECURITY: keys may be bearer tokens; only their hash is kept.
function hashKey(text: string): string {
  return hash('sha256', text, 'base64url');
}

const MISS: CacheInfo = Object.freeze({ hit: false, ageMs: 0, stale: false });
const KNOWN_KEYS_MAX = 10_000;

/**
 * Wraps `resolver` with a cache in `store`; the result also reports hit and age per key.
 * @example const cached = withCache(withTimeout(resolver, 200), { ttlMs: 30_000 }, createLruCacheStore());
 */
export function withCache<K = JsonValue, V = unknown>(
  resolver: ContextResolver<K, V>,
  options: WithCacheOptions,
  store: CacheStore,
): DetailedContextResolver<K, V> {
  const name = resolver.name;
  const now = options.now ?? Date.now;
  const keyFn = options.keyFn ?? stableKey;
  const prefix = `${options.namespace ?? name}\u0000`;
  const plainKeyOf = (k: K): string => prefix + keyFn(k);
  // Store keys of plain string keys, remembered: a hit then hashes the short key once instead of
  // building and hashing the long store key. Bounded: cleared when full. Never for hashed keys
  // (a token must not stay in memory as a map key).
  const known = new Map<string, string>();
  const storeKeyOf =
    options.hashKeys !== false
      ? (k: K): string => prefix + hashKey(keyFn(k))
      : options.keyFn !== undefined
        ? plainKeyOf
        : (k: K): string => {
            if (typeof k !== 'string') return plainKeyOf(k);
            let sk = known.get(k);
            if (sk === undefined) {
              if (known.size >= KNOWN_KEYS_MAX) known.clear();
              sk = plainKeyOf(k);
              known.set(k, sk);
            }
            return sk;
          };
  const ttl = options.ttlMs;
  const negativeTtl = options.negativeTtlMs ?? 0;
  const staleMax = options.staleMaxAgeMs ?? 0;
  const inflight = new Map<string, Promise<Fetched>>();
  const revalidating = new Set<string>();

  function fetchBatch(keys: readonly K[], storeKeys: readonly string[], requestId: string): Promise<Fetched>[] {
    // INVARIANT: the map entries are set synchronously, before any await, so a concurrent call
    // in the same tick already sees them.
    const settled = resolver
      .resolveMany(keys, { requestId, signal: NEVER_ABORTED })
      .then(
        (values) =>
          values.length === keys.length
            ? values
            : keys.map(() => new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\` answered ${values.length} values for ${keys.length} keys`)),
        (err: unknown) => keys.map(() => toResolverError(name, err)),
      );
    return storeKeys.map((sk, i) => {
      const p = settled.then(async (values): Promise<Fetched> => {
        const v = values[i];
        if (isResolverError(v)) return { ok: false, error: v };
        const storedAt = now();
        const expiresAt = v === undefined ? undefined : resolver.expiresAt?.(v);
        if (v !== undefined && expiresAt !== undefined) {
          if (expiresAt > storedAt) await store.set(sk, { value: v, storedAt, expiresAt }, Math.min(ttl + staleMax, expiresAt - storedAt));
        } else if (v !== undefined) await store.set(sk, { value: v, storedAt }, ttl + staleMax);
        else if (negativeTtl > 0) await store.set(sk, { value: undefined, storedAt }, negativeTtl);
        return { ok: true, value: v, storedAt };
      });
      inflight.set(sk, p);
      void p.finally(() => {
        if (inflight.get(sk) === p) inflight.delete(sk);
      });
      return p;
    });
  }

  function waitFor(p: Promise<Fetched>, signal: AbortSignal): Promise<Fetched> {
    if (signal.aborted) return Promise.resolve({ ok: false, error: abortedError(name, signal) });
    if (signal === NEVER_ABORTED) return p;
    return new Promise((resolve) => {
      const onAbort = (): void => resolve({ ok: false, error: abortedError(name, signal) });
      signal.addEventListener('abort', onAbort, { once: true });
      void p.then((f) => {
        signal.removeEventListener('abort', onAbort);
        resolve(f);
      });
    });
  }

  async function resolveManyDetailed(keys: readonly K[], ctx: ResolveContext): Promise<DetailedResult<V>[]> {
    const storeKeys = keys.map(storeKeyOf);
    const entries = await store.getMany(storeKeys);
    const t = now();
    const out: (DetailedResult<V> | undefined)[] = new Array(keys.length);
    const pending: (Promise<Fetched> | undefined)[] = new Array(keys.length);
    const revalidateKeys: K[] = [];
    const revalidateStoreKeys: string[] = [];
    const missKeys: K[] = [];
    const missStoreKeys: string[] = [];
    const missIdx: number[] = [];
    const firstOfKey = new Map<string, number>();
    for (let i = 0; i < keys.length; i++) {
      const e = entries[i];
      const sk = storeKeys[i] as string;
      if (e !== undefined && (e.expiresAt === undefined || t < e.expiresAt)) {
        const age = Math.max(0, t - e.storedAt);
        const fresh = e.value === undefined ? age < negativeTtl : age < ttl;
        if (fresh) {
          out[i] = { value: e.value as V | undefined, cache: { hit: true, ageMs: age, stale: false } };
          continue;
        }
        if (e.value !== undefined && age < ttl + staleMax) {
          // Stale-while-revalidate: answer now, refresh in the background (once per key).
          out[i] = { value: e.value as V, cache: { hit: true, ageMs: age, stale: true } };
          if (!inflight.has(sk) && !revalidating.has(sk)) {
            revalidating.add(sk);
            revalidateKeys.push(keys[i] as K);
            revalidateStoreKeys.push(sk);
          }
          continue;
        }
      }
      const running = inflight.get(sk);
      if (running !== undefined) {
        pending[i] = running;
      } else if (!firstOfKey.has(sk)) {
        firstOfKey.set(sk, i);
        missKeys.push(keys[i] as K);
        missStoreKeys.push(sk);
        missIdx.push(i);
      }
    }
    if (revalidateKeys.length > 0) {
      // A failed refresh is not cached, so the stale value keeps being served until its max age.
      for (const p of fetchBatch(revalidateKeys, revalidateStoreKeys, ctx.requestId)) void p.catch(() => undefined);
      void Promise.allSettled(revalidateStoreKeys.map((sk) => inflight.get(sk))).then(() => {
        for (const sk of revalidateStoreKeys) revalidating.delete(sk);
      });
    }
    if (missKeys.length > 0) {
      const started = fetchBatch(missKeys, missStoreKeys, ctx.requestId);
      started.forEach((p, j) => (pending[missIdx[j] as number] = p));
    }
    for (let i = 0; i < keys.length; i++) {
      if (out[i] === undefined && pending[i] === undefined) pending[i] = pending[firstOfKey.get(storeKeys[i] as string) as number];
    }
    await Promise.all(
      pending.map(async (p, i) => {
        if (p === undefined) return;
        const f = await waitFor(p, ctx.signal);
        if (f.ok) {
          out[i] = { value: f.value as V | undefined, cache: MISS };
          return;
        }
        // SECURITY: a failed fetch is an error here; stale values were answered above, within their max age only.
        out[i] = { value: f.error };
      }),
    );
    return out as DetailedResult<V>[];
  }

  function peekDetailed(key: K): DetailedResult<V> | undefined {
    const e = store.peek?.(storeKeyOf(key));
    if (e === undefined) return undefined;
    const t = now();
    if (e.expiresAt !== undefined && t >= e.expiresAt) return undefined;
    const age = Math.max(0, t - e.storedAt);
    // Only fresh entries: stale ones take the slow path, which also starts their refresh.
    if (e.value === undefined ? age >= negativeTtl : age >= ttl) return undefined;
    return { value: e.value as V | undefined, cache: { hit: true, ageMs: age, stale: false } };
  }

  return {
    name,
    resolveManyDetailed,
    peekDetailed,
    async resolveMany(keys, ctx) {
      return (await resolveManyDetailed(keys, ctx)).map((r) => r.value);
    },
  };
}
