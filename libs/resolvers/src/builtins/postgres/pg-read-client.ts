/**
 * {@link SqlReadClient} over a node-postgres pool: check a client out, `BEGIN READ ONLY` with
 * `SET LOCAL statement_timeout`, run the query, `COMMIT` (or `ROLLBACK` on error), release.
 *
 * Abort: the caller stops waiting at once. A client still being checked out goes straight back to
 * the pool when it arrives; a client running the query is released with an error, which makes
 * the pool destroy its connection instead of reusing it (a connection with a query in flight
 * would otherwise hold a pool slot, or answer the next user with the old result). The server
 * notices the closed socket no later than `statement_timeout`, so a runaway statement is bounded
 * by the resolver's timeout either way.
 */
import type { Pool, PoolClient } from 'pg';
import type { SqlReadClient, SqlReadOptions } from './sql-read-client.js';
import { unlessAborted } from './unless-aborted.js';

type Rows = ReadonlyArray<Record<string, unknown>>;

async function checkout(pool: Pool, signal: AbortSignal): Promise<PoolClient> {
  const pending = pool.connect();
  let gaveUp = false;
  try {
    return await unlessAborted(pending, signal, () => (gaveUp = true));
  } finally {
    // INVARIANT: a client that arrives after the caller gave up was never used: back to the pool.
    if (gaveUp) pending.then((c) => c.release(), () => undefined);
  }
}

async function inReadOnlyTransaction(client: PoolClient, text: string, params: readonly unknown[], timeoutMs: number): Promise<{ rows: Rows; reusable: boolean } | { error: unknown; reusable: boolean }> {
  try {
    // INVARIANT: `timeoutMs` is a positive integer (checked by the caller), so the interpolation
    // is not an injection point; SET cannot take a bind parameter.
    await client.query(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${timeoutMs}`);
    const result = await client.query<Record<string, unknown>>({ text, values: [...params] });
    await client.query('COMMIT');
    return { rows: result.rows, reusable: true };
  } catch (error) {
    const reusable = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    return { error, reusable };
  }
}

/**
 * A {@link SqlReadClient} over `pool` (the app creates one pool per datasource and ends it at
 * shutdown; attach a `pool.on('error', ...)` listener there, since destroyed clients report through it).
 * @example const client = createPgReadClient(new pg.Pool({ connectionString: ds.url, max: ds.maxConnections }));
 */
export function createPgReadClient(pool: Pool): SqlReadClient {
  return {
    async readOnlyQuery(text: string, params: readonly unknown[], options: SqlReadOptions): Promise<Rows> {
      const { signal } = options;
      const timeoutMs = Math.max(1, Math.ceil(options.timeoutMs));
      signal.throwIfAborted();
      const client = await checkout(pool, signal);
      // While the client is checked out, pg-pool's own error listener is off it: a connection that
      // ends then (the datasource restarted, the backend terminated) emits 'error' on the client,
      // an uncaught exception without this. The query in flight fails by itself.
      let broken = false;
      const onError = (): void => {
        broken = true;
      };
      client.on('error', onError);
      let released = false;
      const release = (destroy: boolean): void => {
        if (released) return;
        released = true;
        client.removeListener('error', onError);
        client.release(destroy || broken ? new Error('abandoned after abort or a broken transaction') : undefined);
      };
      const work = inReadOnlyTransaction(client, text, params, timeoutMs).then((outcome) => {
        release(!outcome.reusable);
        if ('error' in outcome) throw outcome.error;
        return outcome.rows;
      });
      // SECURITY: on abort the connection is destroyed, never returned mid-query to the pool.
      return unlessAborted(work, signal, () => release(true));
    },
  };
}
