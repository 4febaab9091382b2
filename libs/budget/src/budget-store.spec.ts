/**
 * The {@link BudgetStore} contract, run against both implementations: the in-process store and
 * the Redis store on the test Redis (`WARDEN_TEST_REDIS_URL`, default 127.0.0.1:6379).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from '../../../test/support/services.js';
import type { BudgetSlot, BudgetStore } from './budget-store.js';
import { createMemoryBudgetStore } from './memory-budget.store.js';
import { createRedisBudgetStore } from './redis-budget.store.js';

const prefix = `warden-test:budget:${randomUUID()}:`;
const clients: Redis[] = [];
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  clients.push(redis);
  await new Promise((resolve) => redis.once('ready', resolve));
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  for (const c of clients) c.disconnect();
});

// The Redis store expires slot keys at the slot's `expiresAt` by Redis's own clock, so the tests'
// time must be the real one: a fixed date turns every Redis case red once it is a day old.
const T0 = Date.now();
let n = 0;
const slot = (limit: number, name = 'daily'): BudgetSlot => ({ key: `${name}|${randomUUID()}|w`, name, limit, expiresAt: T0 + 86_400_000 });
const rid = (): string => `rsv_${randomUUID()}_${n++}`;

const stores: Array<[string, () => BudgetStore]> = [
  ['in-process', () => createMemoryBudgetStore()],
  ['redis', () => createRedisBudgetStore({ redis, prefix })],
];

describe.each(stores)('budget store contract (%s)', (_name, make) => {
  it('admits reservations while used + reserved + amount stays within the limit, and reports the state', async () => {
    const sut = make();
    const s = slot(100);
    expect(await sut.read([s], T0)).toEqual([{ used: 0, reserved: 0 }]);
    expect(await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 60 }], ttlMs: 60_000 }, T0)).toEqual({ ok: true, usages: [{ used: 0, reserved: 60 }] });
    expect(await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 40 }], ttlMs: 60_000 }, T0)).toEqual({ ok: true, usages: [{ used: 0, reserved: 100 }] });
    expect(await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 1 }], ttlMs: 60_000 }, T0)).toEqual({ ok: false, exhausted: 0, usages: [{ used: 0, reserved: 100 }] });
    expect(await sut.read([s], T0)).toEqual([{ used: 0, reserved: 100 }]);
  });

  it('never overspends under 200 concurrent reservations against room for 10', async () => {
    const sut = make();
    const s = slot(1000);
    const results = await Promise.all(Array.from({ length: 200 }, () => sut.reserve({ id: rid(), slots: [{ slot: s, amount: 100 }], ttlMs: 60_000 }, T0)));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(await sut.read([s], T0)).toEqual([{ used: 0, reserved: 1000 }]);
  });

  it('reserves in several slots all or none', async () => {
    const sut = make();
    const roomy = slot(1000, 'team');
    const tight = slot(50, 'subject');
    const r = await sut.reserve({ id: rid(), slots: [{ slot: roomy, amount: 80 }, { slot: tight, amount: 80 }], ttlMs: 60_000 }, T0);
    expect(r).toMatchObject({ ok: false, exhausted: 1 });
    expect(await sut.read([roomy, tight], T0)).toEqual([
      { used: 0, reserved: 0 },
      { used: 0, reserved: 0 },
    ]);
  });

  it('releases a reservation nobody settles once its time-to-live passes', async () => {
    const sut = make();
    const s = slot(100);
    await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 100 }], ttlMs: 5_000 }, T0);
    expect((await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 1 }], ttlMs: 5_000 }, T0 + 4_999)).ok).toBe(false);
    expect(await sut.read([s], T0 + 5_000)).toEqual([{ used: 0, reserved: 0 }]);
    expect((await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 100 }], ttlMs: 5_000 }, T0 + 5_000)).ok).toBe(true);
  });

  it('settles with the real count: releases the hold, records usage beyond the estimate, counts a repeated key once', async () => {
    const sut = make();
    const s = slot(1000);
    const id = rid();
    await sut.reserve({ id, slots: [{ slot: s, amount: 100 }], ttlMs: 60_000 }, T0);
    const report = { reservationId: id, tokens: 130, idempotencyKey: `gw:${randomUUID()}` };
    expect(await sut.settle(report, T0 + 10)).toEqual({ status: 'settled', slots: [{ name: 'daily', limit: 1000, used: 130, reserved: 0 }] });
    expect(await sut.settle(report, T0 + 20)).toEqual({ status: 'duplicate' });
    const again = await Promise.all(Array.from({ length: 20 }, () => sut.settle(report, T0 + 30)));
    expect(again.every((r) => r.status === 'duplicate')).toBe(true);
    expect(await sut.read([s], T0 + 40)).toEqual([{ used: 130, reserved: 0 }]);
    expect(await sut.settle({ ...report, tokens: 5 }, T0 + 50)).toEqual({ status: 'conflict' });
    // Another key for the same reservation is another report (e.g. a stream reported in parts).
    expect(await sut.settle({ ...report, tokens: 5, idempotencyKey: `gw:${randomUUID()}` }, T0 + 60)).toMatchObject({ status: 'settled', slots: [{ used: 135, reserved: 0 }] });
  });

  it('counts one report once even when many arrive at the same time', async () => {
    const sut = make();
    const s = slot(1000);
    const id = rid();
    await sut.reserve({ id, slots: [{ slot: s, amount: 100 }], ttlMs: 60_000 }, T0);
    const report = { reservationId: id, tokens: 70, idempotencyKey: `gw:${randomUUID()}` };
    const results = await Promise.all(Array.from({ length: 50 }, () => sut.settle(report, T0 + 1)));
    expect(results.filter((r) => r.status === 'settled')).toHaveLength(1);
    expect(await sut.read([s], T0 + 2)).toEqual([{ used: 70, reserved: 0 }]);
  });

  it('records a late report after the hold expired, and answers unknown for a reservation it never made', async () => {
    const sut = make();
    const s = slot(1000);
    const id = rid();
    await sut.reserve({ id, slots: [{ slot: s, amount: 100 }], ttlMs: 1_000 }, T0);
    expect(await sut.settle({ reservationId: id, tokens: 40, idempotencyKey: `gw:${randomUUID()}` }, T0 + 2_000)).toEqual({ status: 'settled', slots: [{ name: 'daily', limit: 1000, used: 40, reserved: 0 }] });
    expect(await sut.settle({ reservationId: rid(), tokens: 40, idempotencyKey: `gw:${randomUUID()}` }, T0)).toEqual({ status: 'unknown' });
  });

  it('refuses even an empty reservation once usage went past the limit', async () => {
    const sut = make();
    const s = slot(100);
    const id = rid();
    await sut.reserve({ id, slots: [{ slot: s, amount: 50 }], ttlMs: 60_000 }, T0);
    await sut.settle({ reservationId: id, tokens: 150, idempotencyKey: `gw:${randomUUID()}` }, T0);
    expect(await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 0 }], ttlMs: 60_000 }, T0)).toEqual({ ok: false, exhausted: 0, usages: [{ used: 150, reserved: 0 }] });
  });
});

describe(createRedisBudgetStore.name, () => {
  it('rejects (so the broker fails closed) while Redis is unreachable', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const down = new Redis(port, '127.0.0.1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: false });
    down.on('error', () => undefined);
    clients.push(down);
    const sut = createRedisBudgetStore({ redis: down, prefix, timeoutMs: 300 });
    const s = slot(100);
    await expect(sut.read([s], T0)).rejects.toThrow();
    await expect(sut.reserve({ id: rid(), slots: [{ slot: s, amount: 1 }], ttlMs: 1000 }, T0)).rejects.toThrow();
    await expect(sut.settle({ reservationId: rid(), tokens: 1, idempotencyKey: 'k' }, T0)).rejects.toThrow();
  });

  it('lets slot keys expire after their window', async () => {
    const sut = createRedisBudgetStore({ redis, prefix });
    const s = { ...slot(100), expiresAt: Date.now() + 60_000 };
    await sut.reserve({ id: rid(), slots: [{ slot: s, amount: 1 }], ttlMs: 1000 }, T0);
    const ttl = await redis.pttl(`${prefix}s:${s.key}`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});
