/**
 * {@link SqlReadClient} over an embedded PGlite database, typed structurally so this lib does not
 * load PGlite (the app does, only when a datasource says `embedded: true`).
 *
 * PGlite is one session: its transactions run one after another, which is fine for the dev and
 * test setups it serves. It runs queries on the JavaScript thread and (in wasm) has no timer
 * signals, so `statement_timeout` is set for parity but is not enforced there, and an abort only
 * stops the caller waiting: the query runs to its end and its transaction is then closed.
 */
import type { SqlReadClient, SqlReadOptions } from './sql-read-client.js';
import { unlessAborted } from './unless-aborted.js';

/** The part of a PGlite transaction the client uses. */
export interface PgliteQueryable {
  query(text: string, params?: unknown[]): Promise<{ readonly rows: readonly unknown[] }>;
}

/** The part of a `PGlite` instance the client uses (`PGlite` itself satisfies it). */
export interface PgliteLike {
  transaction<T>(callback: (tx: PgliteQueryable) => Promise<T>): Promise<T>;
}

/**
 * A {@link SqlReadClient} over `db`.
 * @example const client = createPgliteReadClient(await PGlite.create());
 */
export function createPgliteReadClient(db: PgliteLike): SqlReadClient {
  return {
    async readOnlyQuery(text: string, params: readonly unknown[], options: SqlReadOptions): Promise<ReadonlyArray<Record<string, unknown>>> {
      const { signal } = options;
      signal.throwIfAborted();
      const timeoutMs = Math.max(1, Math.ceil(options.timeoutMs));
      // PGlite's transaction() sends BEGIN and COMMIT (ROLLBACK when the callback throws).
      const work = db.transaction(async (tx) => {
        // INVARIANT: the first statement of the transaction, so it applies to the user query.
        await tx.query('SET TRANSACTION READ ONLY');
        await tx.query(`SET LOCAL statement_timeout = ${timeoutMs}`);
        const result = await tx.query(text, [...params]);
        // The driver answers objects per row (its default row mode); the resolver checks each one.
        return result.rows as ReadonlyArray<Record<string, unknown>>;
      });
      return unlessAborted(work, signal, () => undefined);
    },
  };
}
