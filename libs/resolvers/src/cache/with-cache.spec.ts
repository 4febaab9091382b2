import { describe, expect, it } from 'vitest';
import { isResolverError, ResolverError } from '../resolver-error.js';
import type { ContextResolver, ResolveContext } from '../resolver.types.js';
import { withTimeout } from '../with-timeout.js';
import { createLruCacheStore } from './cache-store.js';
import { withCache } from './with-cache.js';

const ctx: ResolveContext = { requestId: 'r', signal: new AbortController().signal };

/** A resolver over a mutable table that counts its calls and can be made to fail or wait. */
function table(data: Record<string, unknown>) {
  const calls: string[][] = [];
  const state = { fail: false, gate: undefined as Promise<void> | undefined };
  const resolver: ContextResolver<string> = {
    name: 'users',
    async resolveMany(keys) {
      calls.push([...keys]);
      if (state.gate !== undefined) await state.gate;
      return keys.map((k) => (state.fail ? new ResolverError('users', 'ERR_RESOLVER_FAILED', 'down') : data[k]));
    },
  };
  return { resolver, calls, state };
}

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe(withCache.name, () => {
  it('never serves a value past the expiry its resolver gives it (a token\'s exp), fresh or stale', async () => {
    const c = clock();
    const { resolver, calls, state } = table({ tok: { sub: 'alice', exp: 1_000_500 } });
    const expiring: ContextResolver<string> = { ...resolver, expiresAt: (v) => (v as { exp: number }).exp };
    const sut = withCache(withTimeout(expiring, 1000), { ttlMs: 10_000, staleMaxAgeMs: 60_000, now: c.now }, createLruCacheStore({ now: c.now }));
    await sut.resolveMany(['tok'], ctx);
    c.t += 400;
    expect((await sut.resolveManyDetailed(['tok'], ctx))[0]?.cache?.hit).toBe(true);
    c.t += 200; // past exp, well within ttl and staleMaxAge
    state.fail = true;
    expect(isResolverError((await sut.resolveMany(['tok'], ctx))[0])).toBe(true);
    expect(calls).toHaveLength(2);
  });

  it('keeps only a hash of the key in the store (keys may be bearer tokens)', async () => {
    const seen: string[] = [];
    const inner = createLruCacheStore();
    const store = { ...inner, set: (k: string, e: Parameters<typeof inner.set>[1], ms: number) => (seen.push(k), inner.set(k, e, ms)) };
    const { resolver } = table({ 'eyJhbGciOi.secret.sig': { sub: 'alice' } });
    await withCache(resolver, { ttlMs: 1000 }, store).resolveMany(['eyJhbGciOi.secret.sig'], ctx);
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toContain('secret');
  });

  it('serves hits within the ttl, with their age, and refetches after it', async () => {
    const c = clock();
    const { resolver, calls } = table({ alice: { dept: 'sales' } });
    const sut = withCache(resolver, { ttlMs: 1000, now: c.now }, createLruCacheStore({ now: c.now }));
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: { dept: 'sales' }, cache: { hit: false, ageMs: 0, stale: false } }]);
    c.t += 400;
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: { dept: 'sales' }, cache: { hit: true, ageMs: 400, stale: false } }]);
    expect(calls).toEqual([['alice']]);
    c.t += 700;
    expect((await sut.resolveManyDetailed(['alice'], ctx))[0]?.cache?.hit).toBe(false);
    expect(calls).toEqual([['alice'], ['alice']]);
  });

  it('fetches only the misses of a call, as one batch, and keeps result order', async () => {
    const { resolver, calls } = table({ a: 1, b: 2, c: 3 });
    const sut = withCache(resolver, { ttlMs: 60_000 }, createLruCacheStore());
    await sut.resolveMany(['b'], ctx);
    expect(await sut.resolveMany(['a', 'b', 'c', 'a'], ctx)).toEqual([1, 2, 3, 1]);
    expect(calls).toEqual([['b'], ['a', 'c']]);
  });

  it('single-flights concurrent misses of one key across callers', async () => {
    const { resolver, calls, state } = table({ alice: 'A' });
    let open!: () => void;
    state.gate = new Promise((res) => (open = res));
    const sut = withCache(resolver, { ttlMs: 60_000 }, createLruCacheStore());
    const pending = Promise.all([sut.resolveMany(['alice'], ctx), sut.resolveMany(['alice'], ctx), sut.resolveMany(['alice'], ctx)]);
    await new Promise((res) => setTimeout(res, 5));
    open();
    expect(await pending).toEqual([['A'], ['A'], ['A']]);
    expect(calls).toEqual([['alice']]);
  });

  it('remembers not-found only for negativeTtl', async () => {
    const c = clock();
    const { resolver, calls } = table({});
    const store = createLruCacheStore({ now: c.now });
    const negative = withCache(resolver, { ttlMs: 60_000, negativeTtlMs: 500, now: c.now }, store);
    expect(await negative.resolveManyDetailed(['ghost'], ctx)).toEqual([{ value: undefined, cache: { hit: false, ageMs: 0, stale: false } }]);
    c.t += 100;
    expect(await negative.resolveManyDetailed(['ghost'], ctx)).toEqual([{ value: undefined, cache: { hit: true, ageMs: 100, stale: false } }]);
    expect(calls.length).toBe(1);
    c.t += 500;
    await negative.resolveMany(['ghost'], ctx);
    expect(calls.length).toBe(2);

    const { resolver: r2, calls: calls2 } = table({});
    const noNegative = withCache(r2, { ttlMs: 60_000, namespace: 'other', now: c.now }, store);
    await noNegative.resolveMany(['ghost'], ctx);
    await noNegative.resolveMany(['ghost'], ctx);
    expect(calls2.length).toBe(2);
  });

  it('never caches failures', async () => {
    const { resolver, calls, state } = table({ alice: 'A' });
    state.fail = true;
    const sut = withCache(resolver, { ttlMs: 60_000 }, createLruCacheStore());
    expect(isResolverError((await sut.resolveMany(['alice'], ctx))[0])).toBe(true);
    state.fail = false;
    expect(await sut.resolveMany(['alice'], ctx)).toEqual(['A']);
    expect(calls.length).toBe(2);
  });

  it('serves the last good value when a refresh fails, up to staleMaxAge, then fails', async () => {
    const c = clock();
    const { resolver, state } = table({ alice: 'A' });
    const sut = withCache(resolver, { ttlMs: 1000, staleMaxAgeMs: 5000, now: c.now }, createLruCacheStore({ now: c.now }));
    await sut.resolveMany(['alice'], ctx);
    state.fail = true;
    c.t += 3000;
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: 'A', cache: { hit: true, ageMs: 3000, stale: true } }]);
    c.t += 3001;
    const [late] = await sut.resolveManyDetailed(['alice'], ctx);
    expect(isResolverError(late?.value)).toBe(true);
    expect(late?.cache).toBeUndefined();
  });

  it('stale-while-revalidate: answers the stale value at once and refreshes it once in the background', async () => {
    const c = clock();
    const data: Record<string, unknown> = { alice: 'A' };
    const { resolver, calls, state } = table(data);
    const sut = withCache(resolver, { ttlMs: 1000, staleMaxAgeMs: 5000, now: c.now }, createLruCacheStore({ now: c.now }));
    await sut.resolveMany(['alice'], ctx);
    c.t += 2000;
    data['alice'] = 'B';
    let open!: () => void;
    state.gate = new Promise((res) => (open = res)); // the refresh hangs until opened
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: 'A', cache: { hit: true, ageMs: 2000, stale: true } }]);
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: 'A', cache: { hit: true, ageMs: 2000, stale: true } }]);
    expect(calls).toHaveLength(2); // one background refresh for both calls
    open();
    state.gate = undefined;
    await new Promise((r) => setTimeout(r, 0));
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: 'B', cache: { hit: true, ageMs: 0, stale: false } }]);
  });

  it('serves stale on a timeout of the inner resolver', async () => {
    const c = clock();
    const { resolver, state } = table({ alice: 'A' });
    const sut = withCache(withTimeout(resolver, 30), { ttlMs: 1000, staleMaxAgeMs: 5000, now: c.now }, createLruCacheStore({ now: c.now }));
    await sut.resolveMany(['alice'], ctx);
    c.t += 2000;
    state.gate = new Promise(() => undefined); // never answers
    expect(await sut.resolveManyDetailed(['alice'], ctx)).toEqual([{ value: 'A', cache: { hit: true, ageMs: 2000, stale: true } }]);
  });

  it('stops waiting when the caller aborts, without failing the shared fetch for others', async () => {
    const { resolver, state } = table({ alice: 'A' });
    let open!: () => void;
    state.gate = new Promise((res) => (open = res));
    const sut = withCache(resolver, { ttlMs: 60_000 }, createLruCacheStore());
    const abandoning = new AbortController();
    const first = sut.resolveMany(['alice'], { requestId: 'r1', signal: abandoning.signal });
    const second = sut.resolveMany(['alice'], ctx);
    await new Promise((res) => setTimeout(res, 5));
    abandoning.abort();
    expect((await first)[0]).toMatchObject({ code: 'ERR_RESOLVER_ABORTED' });
    open();
    expect(await second).toEqual(['A']);
  });
});
