/**
 * `@warden/resolvers`: the context-enrichment framework (DESIGN.md section 5). Resolver configs
 * are checked and compiled into a {@link ResolverRegistry}; {@link enrich} runs its DAG over one
 * request's partial input with per-request batching, caching wrappers, provenance and the
 * `onError` failure modes. I/O lives only in `builtins/<kind>/`.
 */
export {
  ATTRIBUTE_ROOTS,
  parseAttributePath,
  getAttribute,
  setAttribute,
  pathsOverlap,
  cloneJson,
} from './attribute-path.js';
export type { AttributeRoot, AttributePath, InputDocument, JsonObject } from './attribute-path.js';
export { parseDurationMs } from './duration.js';
export { ResolverError, ResolverConfigError, isResolverError, toResolverError } from './resolver-error.js';
export type { ResolverFailureCode } from './resolver-error.js';
export { parseResolverConfig, configError, isDetailedResolver } from './resolver.types.js';
export type {
  OnError,
  ResolverCacheConfig,
  ResolverConfig,
  ResolveContext,
  ContextResolver,
  CacheInfo,
  DetailedResult,
  DetailedContextResolver,
  DatasourceConfig,
  ResolverDeps,
  ResolverFactory,
} from './resolver.types.js';
export { compileResolverExpression, celToJson } from './resolver-cel.js';
export type { ResolverExpression } from './resolver-cel.js';
export { withTimeout } from './with-timeout.js';
export { createLruCacheStore } from './cache/cache-store.js';
export type { CacheEntry, CacheStore, LruCacheStoreOptions } from './cache/cache-store.js';
export { withCache, stableKey } from './cache/with-cache.js';
export type { WithCacheOptions } from './cache/with-cache.js';
export { buildResolverRegistry, createResolverRegistry } from './resolver-registry.js';
export type {
  CompiledProvide,
  RegisteredResolver,
  ResolverRegistry,
  ResolverRegistryOptions,
  ResolverRegistryBuild,
} from './resolver-registry.js';
export { enrich } from './scheduler.js';
export type {
  EnrichmentRequest,
  EnrichmentOutcome,
  EnrichedItem,
  EnrichOptions,
  AttributeProvenance,
  ResolverDenial,
  ResolverFailure,
  ResolverRun,
  ResolverRunReport,
} from './scheduler.js';
export { staticResolverFactory, createStaticResolver } from './builtins/static/static.resolver.js';
export type { StaticResolverConfig } from './builtins/static/static.resolver.js';
export {
  createHttpResolverFactory,
  createHttpResolver,
  parseHttpResolverConfig,
} from './builtins/http/http.resolver.js';
export type { HttpResolverConfig, HttpBatchConfig, HttpResolverFactoryOptions } from './builtins/http/http.resolver.js';
export { parseHttpDatasource } from './builtins/http/http-datasource.js';
export type { HttpDatasource, HttpEnv } from './builtins/http/http-datasource.js';
export type {
  RawResolverConfig,
  ResolverChange,
  ResolverChangeAction,
  ResolverRevision,
  ResolverStore,
  StoredResolver,
} from './resolver-store.js';
export { createGraphQLResolverFactory, createGraphQLResolver, parseGraphQLResolverConfig, parseGraphQLDatasource } from './builtins/graphql/index.js';
export type { GraphQLResolverConfig, GraphQLResolverFactoryOptions, GraphQLDatasource } from './builtins/graphql/index.js';
export { createRedisResolverFactory, createRedisResolver, parseRedisResolverConfig, parseRedisDatasource } from './builtins/redis/index.js';
export type { RedisResolverConfig, RedisResolverFactoryOptions, RedisValueType, RedisClient, RedisDatasource } from './builtins/redis/index.js';
export {
  createPostgresResolverFactory,
  createPostgresResolver,
  parsePostgresResolverConfig,
  parsePostgresDatasource,
  createPgReadClient,
  createPgliteReadClient,
} from './builtins/postgres/index.js';
export type { PostgresResolverConfig, PostgresResolverFactoryOptions, PostgresDatasource, SqlReadClient, SqlReadOptions } from './builtins/postgres/index.js';
export { createJwtResolverFactory, createJwtResolver, parseJwtResolverConfig, ASYMMETRIC_JWS_ALGORITHMS } from './builtins/jwt/index.js';
export type { JwtResolverConfig, JwtResolverDeps } from './builtins/jwt/index.js';
export { createOidcUserinfoResolverFactory, createOidcUserinfoResolver, parseOidcUserinfoResolverConfig } from './builtins/oidc-userinfo/index.js';
export type { OidcUserinfoResolverConfig, OidcUserinfoResolverDeps, UserinfoClaims } from './builtins/oidc-userinfo/index.js';
export { createOidcIntrospectionResolverFactory, createOidcIntrospectionResolver, parseOidcIntrospectionResolverConfig } from './builtins/oidc-introspection/index.js';
export type { OidcIntrospectionResolverConfig, OidcIntrospectionResolverDeps, IntrospectionResult } from './builtins/oidc-introspection/index.js';
export { parseOidcDatasource } from './builtins/oidc/index.js';
export type { OidcDatasource, OidcEnv, OidcClientAuth, OidcResolverFactoryOptions, FetchLike } from './builtins/oidc/index.js';
export { createRedisCacheStore } from './cache/redis-cache-store.js';
export type { RedisCacheStoreOptions } from './cache/redis-cache-store.js';
export { createTieredCacheStore } from './cache/tiered-cache-store.js';
export type { CacheInvalidations, TieredCacheStore, TieredCacheStoreOptions } from './cache/tiered-cache-store.js';
export { createRedisInvalidationChannel } from './cache/redis-invalidation-channel.js';
export type { RedisInvalidationChannelOptions } from './cache/redis-invalidation-channel.js';
export { parseCatalogConfig, createCatalogSource } from './builtins/catalog/catalog.js';
export type { CatalogConfig, CatalogEntry, CatalogSource, CatalogDeps, McpToolListing } from './builtins/catalog/catalog.js';
