import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/services.js';
import { createPgDb } from './pg-db.js';
import type { SqlDb } from './sql-db.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP proxy on 127.0.0.1 to the test server whose connections can be cut (no FATAL message first, as in a crash or a network cut). */
async function cuttableProxy(target: URL): Promise<{ url: string; cut: () => void; close: () => Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    cut: () => {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A connection that ends while it is checked out of the pool (a server restart, a terminated
 * backend, a cut network) must fail the statement or transaction on it, and nothing else:
 * pg-pool takes its own error listener off a checked-out client, and the client's 'error' event
 * then escaped as an uncaught exception (it ended the decision log's writer thread in the
 * Postgres fault e2e).
 */
describe('createPgDb: a connection that ends while checked out', () => {
  let t: TestDatabase;
  let proxy: Awaited<ReturnType<typeof cuttableProxy>>;
  /** Through the proxy. */
  let db: SqlDb;
  /** Straight to the server: sets up, watches and terminates the other pool's backends. */
  let admin: SqlDb;
  const escaped: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    escaped.push(err);
  };

  /** The pid of the backend running `statement` (each test's own text: a cut one's backend may still run its statement), once it runs. */
  async function backendRunning(statement: string): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const { rows } = await admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and query = $1', [statement]);
      if (rows[0] !== undefined) return rows[0].pid;
      await sleep(20);
    }
    throw new Error(`no backend ran \`${statement}\``);
  }

  /** Starts `statement` (a COPY into slow_copied) with one row `x` through the proxy: 'written', or the error it failed with. */
  function slowCopy(statement: string, x: string): Promise<unknown> {
    const copying = db.copyFrom?.(statement, Buffer.from(`${x}\n`));
    if (copying === undefined) throw new Error('createPgDb has no copyFrom');
    return copying.then(
      () => 'written',
      (err: unknown) => err,
    );
  }

  beforeAll(async () => {
    t = await createTestDatabase();
    proxy = await cuttableProxy(new URL(t.url));
    db = createPgDb({ url: proxy.url, max: 2 });
    admin = createPgDb({ url: t.url, max: 1 });
    await admin.query('create table copied (x text)');
    await admin.query('create table slow_copied (x text)');
    // Each row takes a second, so a COPY is still in flight when its connection ends.
    await admin.query(`create function slow_row() returns trigger language plpgsql as $$ begin perform pg_sleep(1); return new; end $$`);
    await admin.query('create trigger slow before insert on slow_copied for each row execute function slow_row()');
  });
  afterAll(async () => {
    await db.close();
    await admin.close();
    await proxy.close();
    await t.drop();
  });
  beforeEach(() => {
    escaped.length = 0;
    process.on('uncaughtException', onUncaught);
  });
  afterEach(async () => {
    // The client's 'error' comes with the end of its socket: give it time to come before looking.
    await sleep(100);
    process.off('uncaughtException', onUncaught);
    expect(escaped).toEqual([]);
  });

  it('cut inside a transaction: the transaction fails with ERR_STORAGE_UNAVAILABLE and the pool serves the next one', async () => {
    const done = db.transaction(async (tx) => {
      await tx.query('select 1');
      proxy.cut();
      // The client learns of the end while the callback holds it, between two statements.
      await sleep(200);
      await tx.query('select 1');
    });
    await expect(done).rejects.toMatchObject({ code: 'ERR_STORAGE_UNAVAILABLE' });
    await expect(db.transaction((tx) => tx.query<{ one: number }>('select 1 as one'))).resolves.toEqual({ rows: [{ one: 1 }] });
  });

  it('cut under a COPY: copyFrom fails with ERR_STORAGE_UNAVAILABLE and the next COPY is written', async () => {
    const statement = 'copy slow_copied (x) from stdin';
    const outcome = slowCopy(statement, 'a');
    await backendRunning(statement);
    proxy.cut();
    expect(await outcome).toMatchObject({ code: 'ERR_STORAGE_UNAVAILABLE' });
    await db.copyFrom?.('copy copied (x) from stdin', Buffer.from('b\n'));
    expect((await admin.query<{ x: string }>('select x from copied')).rows).toEqual([{ x: 'b' }]);
  });

  it('the backend terminated under a COPY (FATAL 57P01, as at a server shutdown): ERR_STORAGE_UNAVAILABLE, not a statement error', async () => {
    const statement = 'copy slow_copied from stdin';
    const outcome = slowCopy(statement, 'c');
    await admin.query('select pg_terminate_backend($1)', [await backendRunning(statement)]);
    expect(await outcome).toMatchObject({ code: 'ERR_STORAGE_UNAVAILABLE', message: 'database copy failed (57P01)' });
    expect((await admin.query<{ x: string }>("select x from slow_copied where x = 'c'")).rows).toEqual([]);
  });
});
