/**
 * The `postgres` resolver kind: its factory and config, the datasource check, the read-only
 * client contract and its node-postgres and PGlite implementations.
 */
export {
  createPostgresResolverFactory,
  createPostgresResolver,
  parsePostgresResolverConfig,
} from './postgres.resolver.js';
export type { PostgresResolverConfig, PostgresResolverFactoryOptions } from './postgres.resolver.js';
export { parsePostgresDatasource } from './postgres-datasource.js';
export type { PostgresDatasource, PostgresEnv } from './postgres-datasource.js';
export { checkKeysQuery } from './postgres-query.js';
export { classifySqlFailure } from './sql-read-client.js';
export type { SqlReadClient, SqlReadOptions, SqlFailure } from './sql-read-client.js';
export { createPgReadClient } from './pg-read-client.js';
export { createPgliteReadClient } from './pglite-read-client.js';
export type { PgliteLike, PgliteQueryable } from './pglite-read-client.js';
