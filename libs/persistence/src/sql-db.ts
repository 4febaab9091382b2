/**
 * The one SQL surface the persistence lib needs, implemented by node-postgres (`DATABASE_URL`)
 * and by the embedded PGlite. Both speak PostgreSQL; only connection handling and the way
 * notifications travel differ (LISTEN/NOTIFY on a dedicated connection; in-process for PGlite).
 */

/** A row as the driver returns it. */
export type Row = Record<string, unknown>;

/** Runs statements; inside {@link SqlDb.transaction} they share one transaction. */
export interface SqlQueryable {
  query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
}

/** The driver object under a {@link SqlDb}, for code that needs the driver's own API. */
export type SqlDriverHandle = { readonly kind: 'pg'; readonly pool: import('pg').Pool } | { readonly kind: 'pglite'; readonly db: import('@electric-sql/pglite').PGlite };

/** A database handle. */
export interface SqlDb extends SqlQueryable {
  /** `pg` or `pglite`. */
  readonly kind: 'pg' | 'pglite';
  readonly handle: SqlDriverHandle;
  /**
   * Runs `statement` (a `COPY ... FROM STDIN`) with `rows` in its format, on one connection;
   * rejects as the statement fails (a SQL error as the driver reports it; a connection that fails
   * or ends under it as `ERR_STORAGE_UNAVAILABLE`). Only node-postgres has
   * it; PGlite's COPY goes through a virtual file instead.
   */
  readonly copyFrom?: (statement: string, rows: Buffer) => Promise<void>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /** Delivers every NOTIFY on `channel` (from any connection or instance) to `onPayload`. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
