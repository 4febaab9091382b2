/**
 * {@link SqlDb} on node-postgres: a pool for statements and, per `listen`, one dedicated
 * connection that runs `LISTEN` and reconnects (with backoff) when it drops, calling the listener
 * once after a reconnect so a change missed while disconnected is still picked up.
 */
import pg from 'pg';
import { from as copyStream } from 'pg-copy-streams';
import { WardenError } from '@warden/core';
import type { Row, SqlDb, SqlQueryable } from './sql-db.js';

/** Options of {@link createPgDb}. */
export interface PgDbOptions {
  /** A `postgres://` URL. SECURITY: may hold a password; never logged or echoed. */
  readonly url: string;
  /** Pool size (default 10). */
  readonly max?: number;
  /** Called when the listener connection fails (for logs and metrics); the message names no URL. */
  readonly onError?: (message: string) => void;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

function storageError(action: string, err: unknown): WardenError {
  // SECURITY: driver messages can carry the host; the code is what callers need.
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'unknown';
  return new WardenError('ERR_STORAGE_UNAVAILABLE', `database ${action} failed (${code})`, { cause: err });
}

/**
 * Whether `err` is the server's answer to a statement with the session still open (a constraint,
 * a syntax error: the caller maps it). FATAL and PANIC end the session (57P01 when the server
 * shuts down or terminates the backend): those are storage failures like a dropped socket.
 */
const isStatementError = (err: unknown): boolean => {
  if (!(err instanceof Error) || !('severity' in err)) return false;
  const severity = (err as { severity?: unknown }).severity;
  return severity !== 'FATAL' && severity !== 'PANIC';
};

/**
 * Opens a pool on `url` (connections are made lazily).
 * @example const db = createPgDb({ url: 'postgres://postgres@127.0.0.1:5432/warden' });
 */
export function createPgDb(options: PgDbOptions): SqlDb {
  const pool = new pg.Pool({ connectionString: options.url, max: options.max ?? 10 });
  // An idle client's error must not crash the process; the next query reports it.
  pool.on('error', (err) => options.onError?.(`idle connection error: ${(err as { code?: string }).code ?? 'unknown'}`));
  const listeners: Array<() => Promise<void>> = [];

  async function query<R extends Row>(text: string, params?: readonly unknown[], via: pg.Pool | pg.PoolClient = pool): Promise<{ rows: R[] }> {
    try {
      const res = await via.query<R>(text, params as unknown[] | undefined);
      return { rows: res.rows };
    } catch (err) {
      if (isStatementError(err)) throw err; // a SQL error: the caller maps it
      throw storageError('query', err);
    }
  }

  /**
   * Runs `fn` on a connection of its own, checked out of the pool, and gives it back (destroyed
   * when it broke). While a client is checked out, pg-pool takes its own error listener off it,
   * and a connection that ends then (the server restarted or stopped, the backend terminated)
   * emits 'error' on the client: with no listener, an uncaught exception that ended the audit
   * writer's thread, and the entries in its memory with it (the Postgres fault e2e, 2026-11-30).
   * The statement in flight fails by itself; the listener only keeps the error from escaping.
   */
  async function withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw storageError('connect', err);
    }
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      return await fn(client);
    } catch (err) {
      // The connection failed under a statement (not the server refusing it, not the caller's own error): in doubt.
      if (err instanceof WardenError && err.code === 'ERR_STORAGE_UNAVAILABLE') broken ??= err;
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  return {
    kind: 'pg',
    handle: { kind: 'pg', pool },
    query: (text, params) => query(text, params),
    copyFrom: (statement, rows) =>
      withClient(async (client) => {
        try {
          await new Promise<void>((resolve, reject) => {
            const stream = client.query(copyStream(statement));
            stream.on('finish', resolve);
            stream.on('error', reject);
            // One CopyData message. 'finish' comes once the server has answered the whole COPY, so
            // the caller may reuse `rows`'s memory after this resolves.
            stream.end(rows);
          });
        } catch (err) {
          if (isStatementError(err)) throw err; // a SQL error: the caller maps it; the connection stays usable
          throw storageError('copy', err);
        }
      }),
    transaction: <T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> =>
      withClient(async (client) => {
        await query('begin', undefined, client);
        try {
          const out = await fn({ query: (text, params) => query(text, params, client) });
          await query('commit', undefined, client);
          return out;
        } catch (err) {
          await client.query('rollback').catch(() => undefined);
          throw err;
        }
      }),
    async listen(channel, onPayload) {
      if (!CHANNEL.test(channel)) throw new WardenError('ERR_INTERNAL', `BUG: bad channel name \`${channel}\``);
      let stopped = false;
      let client: pg.Client | undefined;
      let retry: NodeJS.Timeout | undefined;
      let attempt = 0;
      const connect = async (first: boolean): Promise<void> => {
        const c = new pg.Client({ connectionString: options.url });
        c.on('notification', (msg) => {
          if (msg.channel === channel) onPayload(msg.payload ?? '');
        });
        c.on('error', (err) => {
          options.onError?.(`listener connection error: ${(err as { code?: string }).code ?? 'unknown'}`);
          void c.end().catch(() => undefined);
          if (client === c) client = undefined;
          schedule();
        });
        await c.connect();
        await c.query(`listen ${channel}`);
        if (stopped) {
          await c.end();
          return;
        }
        client = c;
        attempt = 0;
        // A change may have been missed while the connection was down.
        if (!first) onPayload('');
      };
      const schedule = (): void => {
        if (stopped || retry !== undefined) return;
        const delay = Math.min(5000, 100 * 2 ** attempt++);
        retry = setTimeout(() => {
          retry = undefined;
          connect(false).catch((err: unknown) => {
            options.onError?.(`listener reconnect failed: ${(err as { code?: string }).code ?? 'unknown'}`);
            schedule();
          });
        }, delay);
        retry.unref();
      };
      try {
        await connect(true);
      } catch (err) {
        throw storageError('listen', err);
      }
      const stop = async (): Promise<void> => {
        stopped = true;
        if (retry !== undefined) clearTimeout(retry);
        await client?.end().catch(() => undefined);
      };
      listeners.push(stop);
      return stop;
    },
    async close() {
      await Promise.all(listeners.splice(0).map((stop) => stop()));
      await pool.end();
    },
  };
}
