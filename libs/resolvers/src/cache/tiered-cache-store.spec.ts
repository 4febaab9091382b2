import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createLruCacheStore, type CacheEntry, type CacheStore } from './cache-store.js';
import { createRedisCacheStore } from './redis-cache-store.js';
import { createRedisInvalidationChannel } from './redis-invalidation-channel.js';
import { createTieredCacheStore, type CacheInvalidations, type TieredCacheStore } from './tiered-cache-store.js';
import { TEST_REDIS_URL } from '../../../../test/support/services.js';

const REDIS_URL = TEST_REDIS_URL;
const run = randomUUID();
const prefix = `warden-test:${run}:`;
const channel = `warden-test:${run}:invalidate`;
const clients: Redis[] = [];
const stores: TieredCacheStore[] = [];

function connect(): Redis {
  const r = new Redis(REDIS_URL);
  r.on('error', () => undefined);
  clients.push(r);
  return r;
}

afterAll(async () => {
  for (const s of stores) s.close();
  const admin = connect();
  const keys = await admin.keys(`${prefix}*`);
  if (keys.length > 0) await admin.del(...keys);
  for (const c of clients) c.disconnect();
});

/** A store that counts the keys it is asked for. */
function counting(inner: CacheStore) {
  const asked: string[][] = [];
  const store: CacheStore = {
    getMany: (keys) => {
      asked.push([...keys]);
      return inner.getMany(keys);
    },
    set: (k, e, ms) => inner.set(k, e, ms),
    delete: (k) => inner.delete(k),
  };
  return { store, asked };
}

/** One broker instance: its own LRU, its own pair of Redis connections, the shared Redis. */
function instance(options: { localTtlMs?: number; invalidations?: boolean } = {}) {
  const redis = connect();
  const local = createLruCacheStore();
  const invalidations = options.invalidations === false ? undefined : createRedisInvalidationChannel({ publisher: redis, subscriber: connect(), channel });
  const sut = createTieredCacheStore({
    local,
    shared: createRedisCacheStore({ redis, prefix }),
    ...(options.localTtlMs !== undefined ? { localTtlMs: options.localTtlMs } : {}),
    ...(invalidations !== undefined ? { invalidations } : {}),
  });
  stores.push(sut);
  return { sut, local };
}

/** Waits until `n` connections subscribe to the channel (SUBSCRIBE is asynchronous). */
async function subscribers(n: number): Promise<void> {
  const admin = connect();
  for (let i = 0; i < 100; i++) {
    const [, count] = (await admin.pubsub('NUMSUB', channel)) as [string, number];
    if (count >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('subscribers did not arrive');
}

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<boolean> {
  const until = performance.now() + withinMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}

const entry = (value: unknown): CacheEntry => ({ value, storedAt: Date.now() });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(createTieredCacheStore.name, () => {
  it('reads the local tier first and asks the shared tier for the misses only', async () => {
    const local = createLruCacheStore();
    const shared = counting(createLruCacheStore());
    const sut = createTieredCacheStore({ local, shared: shared.store });
    const a = entry('a');
    const b = entry('b');
    await sut.set('a', a, 60_000);
    await shared.store.set('b', b, 60_000);
    expect(await sut.getMany(['a', 'b', 'c'])).toEqual([a, b, undefined]);
    expect(shared.asked).toEqual([['b', 'c']]);
    expect(await local.getMany(['b'])).toEqual([b]); // copied locally, without the shared tier's bookkeeping
    expect(await sut.getMany(['a', 'b'])).toEqual([a, b]);
    expect(shared.asked).toHaveLength(1);
  });

  it('keeps a local copy no longer than the shared tier keeps the entry', async () => {
    const one = instance({ localTtlMs: 5_000, invalidations: false });
    const two = instance({ localTtlMs: 5_000, invalidations: false });
    const e = entry({ n: 1 });
    await one.sut.set('short', e, 150);
    expect(await two.sut.getMany(['short'])).toEqual([e]);
    expect(await two.local.getMany(['short'])).toEqual([e]);
    await sleep(250);
    expect(await two.sut.getMany(['short'])).toEqual([undefined]);
  });

  it('two instances sharing Redis: an entry deleted on one is not served by the other past its local ttl', async () => {
    const one = instance({ localTtlMs: 10_000 });
    const two = instance({ localTtlMs: 10_000 });
    await subscribers(2);
    const e = entry({ approvalLimit: 500 });
    await one.sut.set('k1', e, 60_000);
    expect(await two.sut.getMany(['k1'])).toEqual([e]); // now in two's local tier as well
    expect(await two.local.getMany(['k1'])).toEqual([e]);
    await one.sut.delete('k1');
    expect(await one.sut.getMany(['k1'])).toEqual([undefined]);
    // Pub/sub is asynchronous: two drops its copy when the message lands (here, within a few ms).
    expect(await eventually(async () => (await two.sut.getMany(['k1']))[0] === undefined, 1_000)).toBe(true);
    expect(await two.local.getMany(['k1'])).toEqual([undefined]);
    expect(await connect().exists(`${prefix}k1`)).toBe(0);
    one.sut.close();
    two.sut.close();
    const admin = connect();
    expect(await eventually(async () => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1] === 0, 1_000)).toBe(true);
  });

  it('without the message (lost or no channel) the other instance stops serving after localTtlMs', async () => {
    const one = instance({ localTtlMs: 200, invalidations: false });
    const two = instance({ localTtlMs: 200, invalidations: false });
    const e = entry('v');
    await one.sut.set('k2', e, 60_000);
    expect(await two.sut.getMany(['k2'])).toEqual([e]);
    await one.sut.delete('k2');
    expect(await two.sut.getMany(['k2'])).toEqual([e]); // its local copy, for now
    await sleep(300);
    expect(await two.sut.getMany(['k2'])).toEqual([undefined]);
  });

  it('does not copy locally what was read while an invalidation arrived', async () => {
    const listeners: Array<(key: string) => void> = [];
    const bus: CacheInvalidations = {
      publish: (key) => Promise.resolve(listeners.forEach((l) => l(key))),
      subscribe: (onKey) => (listeners.push(onKey), () => undefined),
    };
    const sharedLru = createLruCacheStore();
    let midRead: () => void = () => undefined;
    const slowShared: CacheStore = {
      ...sharedLru,
      getMany: async (keys) => {
        const out = await sharedLru.getMany(keys);
        midRead();
        return out;
      },
    };
    const local = createLruCacheStore();
    const sut = createTieredCacheStore({ local, shared: slowShared, invalidations: bus });
    const e = entry('old');
    await sharedLru.set('k3', e, 60_000);
    midRead = () => listeners.forEach((l) => l('k3')); // another instance deletes k3 during the read
    expect(await sut.getMany(['k3'])).toEqual([e]);
    expect(await local.getMany(['k3'])).toEqual([undefined]);
    midRead = () => undefined;
    await sut.getMany(['k3']);
    expect(await local.getMany(['k3'])).toEqual([e]);
  });

  it('stops listening on close', async () => {
    const listeners = new Set<(key: string) => void>();
    const bus: CacheInvalidations = {
      publish: (key) => Promise.resolve(listeners.forEach((l) => l(key))),
      subscribe: (onKey) => (listeners.add(onKey), () => listeners.delete(onKey)),
    };
    const sut = createTieredCacheStore({ local: createLruCacheStore(), shared: createLruCacheStore(), invalidations: bus });
    expect(listeners.size).toBe(1);
    sut.close();
    expect(listeners.size).toBe(0);
  });

  it('keeps working on its local tier when the shared tier rejects', async () => {
    const errors: unknown[] = [];
    const broken: CacheStore = {
      getMany: () => Promise.reject(new Error('down')),
      set: () => Promise.reject(new Error('down')),
      delete: () => Promise.reject(new Error('down')),
    };
    const sut = createTieredCacheStore({ local: createLruCacheStore(), shared: broken, onError: (e) => errors.push(e) });
    const e = entry(1);
    await sut.set('k', e, 60_000);
    expect(await sut.getMany(['k', 'other'])).toEqual([e, undefined]);
    await sut.delete('k');
    expect(await sut.getMany(['k'])).toEqual([undefined]);
    expect(errors).toHaveLength(4);
  });
});
