/**
 * The `redis` resolver kind: public names, re-exported by `libs/resolvers/src/index.ts`.
 */
export { createRedisResolverFactory, createRedisResolver, parseRedisResolverConfig } from './redis.resolver.js';
export type { RedisResolverConfig, RedisResolverFactoryOptions, RedisValueType, RedisClient } from './redis.resolver.js';
export { parseRedisDatasource } from './redis-datasource.js';
export type { RedisDatasource } from './redis-datasource.js';
export { parseRedisKeyTemplate } from './redis-key.js';
export type { RedisKeyTemplate } from './redis-key.js';
