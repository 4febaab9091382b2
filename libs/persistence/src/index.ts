/**
 * `@warden/persistence`: PostgreSQL (or embedded PGlite) implementations of the store interfaces
 * other libs declare, and the migration runner. The only lib that talks SQL for Warden's own state.
 */
export type { Row, SqlDb, SqlDriverHandle, SqlQueryable } from './sql-db.js';
export { createPgDb } from './pg-db.js';
export type { PgDbOptions } from './pg-db.js';
export { createPgliteDb } from './pglite-db.js';
export { migrate } from './migrate.js';
export { createSqlResolverStore } from './sql-resolver-store.js';
export { createSqlDelegationStore, ensureDelegationKeys } from './sql-delegation-store.js';
export { createPostgresAuditSink, ensureAuditPartitions, pruneAuditLog, queryAuditLog } from './postgres-audit.sink.js';
export type { AuditLogQuery, PostgresAuditSinkOptions } from './postgres-audit.sink.js';
