import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContextResolver, ResolveContext } from '../resolver.types.js';
import type { CacheEntry } from './cache-store.js';
import { createRedisCacheStore, decodeCacheEntry, encodeCacheEntry, type CacheStoreOperation } from './redis-cache-store.js';
import { withCache } from './with-cache.js';
import { TEST_REDIS_URL } from '../../../../test/support/services.js';

const REDIS_URL = TEST_REDIS_URL;
const prefix = `warden-test:${randomUUID()}:`;
const clients: Redis[] = [];
let redis: Redis;

function connect(options: RedisOptions = {}, url = REDIS_URL): Redis {
  const r = new Redis(url, options);
  r.on('error', () => undefined);
  clients.push(r);
  return r;
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeAll(() => {
  redis = connect();
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  for (const c of clients) c.disconnect();
});

const ctx: ResolveContext = { requestId: 'r', signal: new AbortController().signal };

describe(createRedisCacheStore.name, () => {
  it('round-trips entries through MGET, keeping every field and telling not-found from null', async () => {
    const sut = createRedisCacheStore({ redis, prefix });
    const found: CacheEntry = { value: { dept: 'sales', tags: ['a'], n: 1.5 }, storedAt: 1_000, expiresAt: 9_000 };
    const withFutureField = { value: null, storedAt: 2_000, someFutureField: { x: 1 } } as CacheEntry;
    await sut.set('found', found, 60_000);
    await sut.set('null', withFutureField, 60_000);
    await sut.set('not-found', { value: undefined, storedAt: 3_000 }, 60_000);
    const out = await sut.getMany(['found', 'absent', 'null', 'not-found']);
    expect(out).toEqual([found, undefined, withFutureField, { value: undefined, storedAt: 3_000 }]);
    expect(out[3] !== undefined && Object.hasOwn(out[3], 'value')).toBe(true);
    expect(await redis.get(`${prefix}not-found`)).toBe('{"f":1,"entry":{"storedAt":3000}}');
    expect(await sut.getMany([])).toEqual([]);
  });

  it('keeps an entry for its retention only (SET PX), and deletes on request', async () => {
    const sut = createRedisCacheStore({ redis, prefix });
    await sut.set('short', { value: 1, storedAt: 0 }, 150);
    await sut.set('long', { value: 2, storedAt: 0 }, 60_000);
    const pttl = await redis.pttl(`${prefix}short`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(150);
    await new Promise((r) => setTimeout(r, 250));
    expect(await sut.getMany(['short', 'long'])).toEqual([undefined, { value: 2, storedAt: 0 }]);
    await sut.delete('long');
    expect(await sut.getMany(['long'])).toEqual([undefined]);
    expect(await redis.exists(`${prefix}long`)).toBe(0);
  });

  it('keeps stores with different prefixes apart', async () => {
    const a = createRedisCacheStore({ redis, prefix: `${prefix}a:` });
    const b = createRedisCacheStore({ redis, prefix: `${prefix}b:` });
    await a.set('k', { value: 'a', storedAt: 0 }, 60_000);
    expect(await b.getMany(['k'])).toEqual([undefined]);
    expect(await a.getMany(['k'])).toEqual([{ value: 'a', storedAt: 0 }]);
  });

  it('answers a miss for a malformed entry and reports it', async () => {
    const errors: CacheStoreOperation[] = [];
    const sut = createRedisCacheStore({ redis, prefix, onError: (_e, op) => errors.push(op) });
    await redis.set(`${prefix}garbage`, 'not json');
    await redis.set(`${prefix}other-format`, '{"f":2,"entry":{"storedAt":1}}');
    expect(await sut.getMany(['garbage', 'other-format'])).toEqual([undefined, undefined]);
    expect(errors).toEqual(['getMany', 'getMany']);
    expect(decodeCacheEntry('{"f":1,"entry":{"storedAt":"x"}}')).toBeUndefined();
    expect(decodeCacheEntry('{"f":1,"entry":{"storedAt":1,"expiresAt":"soon"}}')).toBeUndefined();
  });

  it('never rejects on values JSON cannot hold: they are not cached', async () => {
    const errors: unknown[] = [];
    const sut = createRedisCacheStore({ redis, prefix, onError: (e) => errors.push(e) });
    await expect(sut.set('bigint', { value: 10n, storedAt: 0 }, 60_000)).resolves.toBeUndefined();
    await expect(sut.set('fn', { value: () => 1, storedAt: 0 }, 60_000)).resolves.toBeUndefined();
    expect(await sut.getMany(['bigint', 'fn'])).toEqual([undefined, undefined]);
    expect(errors).toHaveLength(1);
    expect(encodeCacheEntry({ value: () => 1, storedAt: 0 })).toBeUndefined();
  });

  it('turns a Redis outage into misses and no-ops within its timeout, never a rejection', async () => {
    const port = await closedPort();
    for (const options of [{ enableOfflineQueue: false, lazyConnect: true }, { maxRetriesPerRequest: 50 }] satisfies RedisOptions[]) {
      const errors: CacheStoreOperation[] = [];
      const down = connect(options, `redis://127.0.0.1:${port}`);
      const sut = createRedisCacheStore({ redis: down, prefix, timeoutMs: 50, onError: (_e, op) => errors.push(op) });
      const t0 = performance.now();
      expect(await sut.getMany(['a', 'b'])).toEqual([undefined, undefined]);
      await expect(sut.set('a', { value: 1, storedAt: 0 }, 1_000)).resolves.toBeUndefined();
      await expect(sut.delete('a')).resolves.toBeUndefined();
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(errors).toEqual(['getMany', 'set', 'delete']);
      down.disconnect();
    }
  });

  it('shares a resolver cache between two broker instances', async () => {
    const calls: string[][] = [];
    const resolver: ContextResolver<string> = {
      name: 'users',
      resolveMany: (keys) => {
        calls.push([...keys]);
        return Promise.resolve(keys.map((k) => (k === 'nobody' ? undefined : { id: k })));
      },
    };
    const options = { ttlMs: 60_000, negativeTtlMs: 60_000, namespace: `${randomUUID()}` };
    const one = withCache(resolver, options, createRedisCacheStore({ redis: connect(), prefix }));
    const two = withCache(resolver, options, createRedisCacheStore({ redis: connect(), prefix }));
    expect(await one.resolveMany(['alice', 'nobody'], ctx)).toEqual([{ id: 'alice' }, undefined]);
    const served = await two.resolveManyDetailed(['alice', 'nobody'], ctx);
    expect(served.map((r) => [r.value, r.cache?.hit])).toEqual([
      [{ id: 'alice' }, true],
      [undefined, true],
    ]);
    expect(calls).toEqual([['alice', 'nobody']]);
  });
});
