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
      if (err instanceof Error && 'severity' in err) throw err; // a SQL error: the caller maps it
      throw storageError('query', err);
    }
  }

  return {
    kind: 'pg',
    handle: { kind: 'pg', pool },
    query: (text, params) => query(text, params),
    async copyFrom(statement, rows) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw storageError('connect', err);
      }
      let broken: Error | undefined;
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
        if (err instanceof Error && 'severity' in err) throw err; // a SQL error: the caller maps it; the connection stays usable
        broken = err instanceof Error ? err : new Error(String(err));
        throw storageError('copy', err);
      } finally {
        client.release(broken);
      }
    },
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw storageError('connect', err);
      }
      try {
        await client.query('begin');
        const out = await fn({ query: (text, params) => query(text, params, client) });
        await client.query('commit');
        return out;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
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
