/**
 * {@link SqlDb} on the embedded PGlite (no `DATABASE_URL`): one in-process PostgreSQL session.
 * NOTIFY reaches listeners of the same instance, which is every listener there is when embedded.
 * Statements outside a transaction wait for a running transaction to finish (one session).
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Row, SqlDb, SqlQueryable } from './sql-db.js';

/**
 * Starts PGlite, in memory or persisted in `dataDir`. Takes a few seconds (WebAssembly compile).
 * @example const db = await createPgliteDb();
 */
export async function createPgliteDb(dataDir?: string): Promise<SqlDb> {
  // A fresh checkout has no data directory yet (PGlite creates only the last path segment).
  if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const q = <R extends Row>(via: Pick<PGlite, 'query'>, text: string, params?: readonly unknown[]): Promise<{ rows: R[] }> =>
    via.query<R>(text, params as unknown[] | undefined).then((r) => ({ rows: r.rows }));
  return {
    kind: 'pglite',
    handle: { kind: 'pglite', db },
    query: (text, params) => q(db, text, params),
    transaction: <T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> => db.transaction((tx) => fn({ query: (text, params) => q(tx, text, params) })),
    async listen(channel, onPayload) {
      const unlisten = await db.listen(channel, onPayload);
      return () => unlisten();
    },
    close: () => db.close(),
  };
}
