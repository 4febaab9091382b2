import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgReadClient } from './pg-read-client.js';
import { TEST_DATABASE_URL } from '../../../../../test/support/services.js';

const DATABASE_URL = TEST_DATABASE_URL;
const pools: pg.Pool[] = [];
let admin: pg.Pool;

function newPool(max: number): pg.Pool {
  const p = new pg.Pool({ connectionString: DATABASE_URL, max });
  p.on('error', () => undefined);
  pools.push(p);
  return p;
}

beforeAll(() => {
  admin = newPool(2);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
});

const opts = (timeoutMs = 1_000, signal = new AbortController().signal) => ({ timeoutMs, signal });

/** Rows of pg_stat_activity running a query that contains `marker`. */
async function running(marker: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid()`, [marker]);
  return rows[0]?.n ?? 0;
}

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<boolean> {
  const until = performance.now() + withinMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

describe(createPgReadClient.name, () => {
  it('runs the query in a READ ONLY transaction with the statement timeout set, binding $1', async () => {
    const sut = createPgReadClient(newPool(1));
    const rows = await sut.readOnlyQuery(
      `select current_setting('transaction_read_only') as ro, current_setting('statement_timeout') as st, $1::text[] as keys, now() = statement_timestamp() as fresh`,
      [['a', 'b"c']],
      opts(250),
    );
    expect(rows).toEqual([{ ro: 'on', st: '250ms', keys: ['a', 'b"c'], fresh: false }]);
  });

  it('rolls back a failed query and reuses the connection', async () => {
    const pool = newPool(1);
    const sut = createPgReadClient(pool);
    const [before] = await sut.readOnlyQuery('select pg_backend_pid() as pid, $1::text[] as k', [[]], opts());
    await expect(sut.readOnlyQuery('select 1/0 as key, $1::text[] as k', [[]], opts())).rejects.toMatchObject({ code: '22012' });
    const [after] = await sut.readOnlyQuery('select pg_backend_pid() as pid, $1::text[] as k, current_setting($2) as iso', [[], 'transaction_isolation'], opts());
    expect(after?.['pid']).toBe(before?.['pid']);
    expect(pool.totalCount).toBe(1);
  });

  it('on abort stops waiting at once, destroys the connection and the server stops the statement', async () => {
    const pool = newPool(1);
    const sut = createPgReadClient(pool);
    const [before] = await sut.readOnlyQuery('select pg_backend_pid() as pid, $1::text[] as k', [[]], opts());
    const marker = `abort_${randomBytes(4).toString('hex')}`;
    const controller = new AbortController();
    const pending = sut.readOnlyQuery(`select pg_sleep(3), $1::text[] as ${marker}`, [[]], opts(400, controller.signal));
    expect(await eventually(async () => (await running(marker)) === 1, 2_000)).toBe(true);
    const t0 = performance.now();
    controller.abort(new Error('gone'));
    await expect(pending).rejects.toThrow('gone');
    expect(performance.now() - t0).toBeLessThan(50);
    // The runaway statement ends by its statement_timeout (400 ms), not its 3 s sleep.
    expect(await eventually(async () => (await running(marker)) === 0, 1_500)).toBe(true);
    const [after] = await sut.readOnlyQuery('select pg_backend_pid() as pid, $1::text[] as k', [[]], opts());
    expect(after?.['pid']).not.toBe(before?.['pid']);
    expect(pool.totalCount).toBe(1);
  });

  it('on abort while waiting for a pooled connection gives it back when it arrives', async () => {
    const pool = newPool(1);
    const sut = createPgReadClient(pool);
    const held = await pool.connect();
    const controller = new AbortController();
    const pending = sut.readOnlyQuery('select 1 as key, $1::text[] as k', [[]], opts(1_000, controller.signal));
    await new Promise((r) => setTimeout(r, 20));
    controller.abort(new Error('gone'));
    await expect(pending).rejects.toThrow('gone');
    held.release();
    expect(await sut.readOnlyQuery('select 2 as key, $1::text[] as k', [[]], opts())).toEqual([{ key: 2, k: [] }]);
    expect(pool.totalCount).toBe(1);
    expect(pool.waitingCount).toBe(0);
  });

  it('a connection terminated under its query: the query fails, nothing escapes the client, the pool serves the next one', async () => {
    const pool = newPool(1);
    const sut = createPgReadClient(pool);
    const escaped: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      escaped.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const marker = `terminated_${randomBytes(4).toString('hex')}`;
      const pending = sut.readOnlyQuery(`select pg_sleep(2), $1::text[] as k /* ${marker} */`, [[]], opts(5_000)).then(
        () => 'answered',
        (err: unknown) => err,
      );
      expect(await eventually(async () => (await running(marker)) === 1, 1_000)).toBe(true);
      // What a server shutdown does to its backends (FATAL 57P01, then the socket closes).
      await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid()`, [marker]);
      expect(await pending).toMatchObject({ code: '57P01' });
      // The client's 'error' comes with the end of its socket, after the query's.
      await new Promise((r) => setTimeout(r, 200));
      expect(escaped).toEqual([]);
      expect(await sut.readOnlyQuery('select 3 as key, $1::text[] as k', [[]], opts())).toEqual([{ key: 3, k: [] }]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('rejects at once when the signal is already aborted, without taking a connection', async () => {
    const pool = newPool(1);
    const controller = new AbortController();
    controller.abort(new Error('before'));
    await expect(createPgReadClient(pool).readOnlyQuery('select $1::text[]', [[]], opts(1_000, controller.signal))).rejects.toThrow('before');
    expect(pool.totalCount).toBe(0);
  });
});
