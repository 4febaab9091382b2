/**
 * The `redis` kind: strings, JSON strings, hashes and counters read from a Redis the app connects to.
 *
 * ```yaml
 * - name: profiles
 *   kind: redis
 *   datasource: sessions            # a `redis` datasource from warden.yaml (required)
 *   key: principal.id
 *   keyTemplate: "user:{key}:profile"
 *   type: json                      # string | json | hash | counter
 *   provides: { principal.attr.tier: result.tier }
 * - name: failed-logins
 *   kind: redis
 *   datasource: sessions
 *   key: principal.id
 *   keyTemplate: "user:{key}:failed"
 *   type: counter
 *   missingAs: zero                 # counters only: zero (default) | notFound
 *   provides: { principal.attr.failedLogins: result }
 * ```
 * `string`: the value (a missing key is not-found). `json`: the value parsed (malformed JSON is
 * `ERR_RESOLVER_RESULT_INVALID`; `null` is not-found). `hash`: HGETALL as an object of strings (an
 * empty or missing hash is not-found). `counter`: the value as a safe integer; a missing counter
 * reads as `0` because counters (INCR) start at zero, unless `missingAs: notFound`; a value that is
 * not an integer is `ERR_RESOLVER_RESULT_INVALID`.
 *
 * One `resolveMany` call is ONE round trip: a pipeline with one GET or HGETALL per distinct key.
 * Not MGET: MGET answers nil for a key of another type, which would turn a WRONGTYPE (a
 * configuration or data bug, `ERR_RESOLVER_RESULT_INVALID`) into a silent not-found.
 *
 * Failures: a key holding another type is `ERR_RESOLVER_RESULT_INVALID` for that key; any other
 * command error, or Redis being unreachable, is `ERR_RESOLVER_FAILED`. The call stops waiting when
 * `ctx.signal` aborts (a Redis command cannot be cancelled, its answer is dropped). Messages name the
 * resolver, the type and the key template only, never a key value, the URL or Redis's own text.
 */
import type { Redis } from 'ioredis';
import type { JsonValue } from '@warden/core';
import { ResolverError } from '../../resolver-error.js';
import {
  configError,
  parseResolverConfig,
  type ContextResolver,
  type ResolverConfig,
  type ResolverDeps,
  type ResolverFactory,
} from '../../resolver.types.js';
import { abortedError } from '../../with-timeout.js';
import { parseRedisDatasource, type RedisDatasource } from './redis-datasource.js';
import { parseRedisKeyTemplate, type RedisKeyTemplate } from './redis-key.js';

/** What a `redis` resolver reads at its key. */
export type RedisValueType = 'string' | 'json' | 'hash' | 'counter';

/** Config of a `redis` resolver. */
export interface RedisResolverConfig extends ResolverConfig {
  readonly kind: 'redis';
  readonly datasource: string;
  /** The Redis key template, with `{key}` (checked). */
  readonly keyTemplate: string;
  readonly type: RedisValueType;
  /** Counters only: what a missing counter reads as. */
  readonly missingAs: 'zero' | 'notFound';
}

/** The part of an ioredis client a `redis` resolver uses. */
export type RedisClient = Pick<Redis, 'pipeline' | 'status'>;

/** Options of {@link createRedisResolverFactory}. */
export interface RedisResolverFactoryOptions {
  /**
   * Returns the client of a datasource; called once per resolver when the registry is built, so
   * return one shared client per datasource name. Recommended client options, so that a Redis that
   * is down fails at once (`ERR_RESOLVER_FAILED`) instead of queueing until the resolver times out:
   * `{ enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 1000 }` (and await the
   * client's `ready` event at start, since nothing is queued before it).
   */
  readonly connect: (datasourceName: string, datasource: RedisDatasource) => Redis;
}

type Slot = unknown;

const FIELDS = new Set(['keyTemplate', 'type', 'missingAs']);
const TYPES: readonly RedisValueType[] = ['string', 'json', 'hash', 'counter'];
const INTEGER = /^-?\d{1,20}$/;
const REPLY_CODE = /^([A-Z]{2,20})\b/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and checks a `redis` resolver config (the datasource is checked when the resolver is created).
 * @example parseRedisResolverConfig({ name: 'profiles', kind: 'redis', datasource: 'sessions', key: 'principal.id', keyTemplate: 'user:{key}:profile', type: 'json', provides: { 'principal.attr.tier': 'result.tier' } })
 */
export function parseRedisResolverConfig(raw: unknown): RedisResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'redis') throw configError(name, 'kind', `expected \`redis\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'a `redis` resolver must name a `redis` datasource');
  for (const field of Object.keys(options)) if (!FIELDS.has(field)) throw configError(name, field, 'unknown field');
  const keyTemplate = parseRedisKeyTemplate(name, options['keyTemplate']).template;
  const type = options['type'];
  if (typeof type !== 'string' || !(TYPES as readonly string[]).includes(type)) throw configError(name, 'type', 'expected `string`, `json`, `hash` or `counter`');
  const missingAs = options['missingAs'] ?? 'zero';
  if (options['missingAs'] !== undefined && type !== 'counter') throw configError(name, 'missingAs', 'only with `type: counter`');
  if (missingAs !== 'zero' && missingAs !== 'notFound') throw configError(name, 'missingAs', 'expected `zero` or `notFound`');
  return { ...base, kind: 'redis', datasource: base.datasource, keyTemplate, type: type as RedisValueType, missingAs };
}

/**
 * The resolver of a `redis` config over a client the app owns.
 * @example createRedisResolver(config, new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }))
 */
export function createRedisResolver(config: RedisResolverConfig, client: RedisClient): ContextResolver {
  const name = config.name;
  const template: RedisKeyTemplate = parseRedisKeyTemplate(name, config.keyTemplate);
  const label = `redis ${config.type} \`${template.template}\``;
  const fail = (code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID', why: string): ResolverError =>
    new ResolverError(name, code, `resolver \`${name}\`: ${label}: ${why}`);

  /** A command error as a failure. SECURITY: only Redis's uppercase error code is kept, never its text. */
  const commandError = (err: Error): ResolverError => {
    const code = REPLY_CODE.exec(err.message)?.[1];
    if (code === 'WRONGTYPE') return fail('ERR_RESOLVER_RESULT_INVALID', 'the Redis key holds another type');
    if (client.status !== 'ready') return fail('ERR_RESOLVER_FAILED', 'Redis is not connected');
    return fail('ERR_RESOLVER_FAILED', `the Redis command failed${code !== undefined ? ` (${code})` : ''}`);
  };

  const decode = (reply: unknown): Slot => {
    switch (config.type) {
      case 'string':
        return reply === null ? undefined : typeof reply === 'string' ? reply : fail('ERR_RESOLVER_RESULT_INVALID', 'expected a string');
      case 'json': {
        if (reply === null) return undefined;
        if (typeof reply !== 'string') return fail('ERR_RESOLVER_RESULT_INVALID', 'expected a string');
        try {
          const parsed = JSON.parse(reply) as JsonValue;
          return parsed === null ? undefined : parsed;
        } catch {
          return fail('ERR_RESOLVER_RESULT_INVALID', 'the value is not JSON');
        }
      }
      case 'hash':
        if (!isRecord(reply)) return fail('ERR_RESOLVER_RESULT_INVALID', 'expected a hash');
        return Object.keys(reply).length === 0 ? undefined : { ...reply };
      case 'counter': {
        if (reply === null) return config.missingAs === 'zero' ? 0 : undefined;
        const n = typeof reply === 'string' && INTEGER.test(reply) ? Number(reply) : Number.NaN;
        return Number.isSafeInteger(n) ? n : fail('ERR_RESOLVER_RESULT_INVALID', 'the counter is not a safe integer');
      }
    }
  };

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      if (ctx.signal.aborted) return keys.map(() => abortedError(name, ctx.signal));
      const redisKeys = keys.map((k) => template.fill(k));
      const unique = [...new Set(redisKeys.filter((k): k is string => k !== undefined))];
      const bySlot = new Map<string, Slot>();
      if (unique.length > 0) {
        const pipeline = client.pipeline();
        for (const k of unique) {
          if (config.type === 'hash') pipeline.hgetall(k);
          else pipeline.get(k);
        }
        let onAbort: () => void = () => undefined;
        const aborted = new Promise<ResolverError>((resolve) => {
          onAbort = () => resolve(abortedError(name, ctx.signal));
          ctx.signal.addEventListener('abort', onAbort, { once: true });
        });
        try {
          const replies = await Promise.race([pipeline.exec(), aborted]);
          if (replies instanceof ResolverError) return keys.map(() => replies);
          if (replies === null || replies.length !== unique.length) {
            const err = fail('ERR_RESOLVER_FAILED', 'the Redis pipeline was discarded');
            return keys.map(() => err);
          }
          unique.forEach((k, i) => {
            const [err, reply] = replies[i] ?? [new Error('missing reply'), null];
            bySlot.set(k, err !== null ? commandError(err) : decode(reply));
          });
        } catch (err) {
          const e = err instanceof Error ? commandError(err) : fail('ERR_RESOLVER_FAILED', 'the Redis command failed');
          return keys.map(() => e);
        } finally {
          ctx.signal.removeEventListener('abort', onAbort);
        }
      }
      const badKey = fail('ERR_RESOLVER_FAILED', 'the key is not usable in the key template');
      return redisKeys.map((k) => (k === undefined ? badKey : bySlot.get(k)));
    },
  };
}

/**
 * The factory of the `redis` kind; `connect` gives the client of each datasource (the app owns
 * the connections).
 * @example createResolverRegistry({ configs, datasources, factories: { redis: createRedisResolverFactory({ connect: (name) => clients.get(name) }) } })
 */
export function createRedisResolverFactory(options: RedisResolverFactoryOptions): ResolverFactory<RedisResolverConfig> {
  return {
    kind: 'redis',
    parseConfig: parseRedisResolverConfig,
    create: (config: RedisResolverConfig, deps: ResolverDeps) => {
      const datasource = parseRedisDatasource(config.name, deps.datasource);
      return createRedisResolver(config, options.connect(config.datasource, datasource));
    },
  };
}
