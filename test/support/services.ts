/**
 * The real services tests talk to: the machine's PostgreSQL, Redis and NATS (CI exports the URLs;
 * the defaults are this machine's). `createTestDatabase` makes a throwaway database per broker so
 * test files running in parallel never see each other's rows.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Admin connection of the test PostgreSQL server. */
export const TEST_DATABASE_URL = process.env['WARDEN_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
/** The test Redis. */
export const TEST_REDIS_URL = process.env['WARDEN_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/** The test NATS server (JetStream on). */
export const TEST_NATS_URL = process.env['WARDEN_TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';

/** A database created for one test; `drop` removes it (terminating leftover connections). */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates an empty database on the test server. */
export async function createTestDatabase(prefix = 'warden_t'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin(async (c) => {
        await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
        await c.query(`drop database if exists ${name}`);
      }),
  };
}
