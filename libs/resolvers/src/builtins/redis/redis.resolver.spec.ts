import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import type { ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from '../../resolver-registry.js';
import type { DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import type { RedisDatasource } from './redis-datasource.js';
import { createRedisResolverFactory, parseRedisResolverConfig } from './redis.resolver.js';
import { TEST_REDIS_URL } from '../../../../../test/support/services.js';

const REDIS_URL = TEST_REDIS_URL;
/** What the app should pass too: a Redis that is down fails at once instead of queueing. */
const FAIL_FAST: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 1000 };
// A unique prefix per run; `.` separates it so that keys may still contain `-`.
const PREFIX = `warden-test.${process.pid}.${randomUUID()}`;

let redis: Redis;
const clients: Redis[] = [];

async function connected(url: string, options: RedisOptions = FAIL_FAST): Promise<Redis> {
  const client = new Redis(url, options);
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** A client to a port nothing listens on (it never connects). */
async function downClient(options: RedisOptions): Promise<Redis> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const client = new Redis(`redis://127.0.0.1:${port}`, { ...options, retryStrategy: () => 1000 });
  client.on('error', () => undefined); // connection refused, reported through the resolver instead
  clients.push(client);
  return client;
}

beforeAll(async () => {
  redis = await connected(REDIS_URL);
});

afterAll(async () => {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    if (found.length > 0) await redis.del(...found);
    cursor = next;
  } while (cursor !== '0');
  for (const c of clients) c.disconnect();
});

/** Counts the client calls a resolver makes: which methods, and how many pipelines it executes. */
function counted(client: Redis): { client: Redis; calls: string[]; execs: () => number } {
  const calls: string[] = [];
  let execs = 0;
  const proxy = new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => {
        calls.push(prop);
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (prop === 'pipeline') {
          const pipeline = result as { exec: (...a: unknown[]) => unknown };
          const exec = pipeline.exec.bind(pipeline);
          pipeline.exec = (...a: unknown[]) => {
            execs++;
            return exec(...a);
          };
        }
        return result;
      };
    },
  });
  return { client: proxy, calls, execs: () => execs };
}

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });
const PASSWORD = 'hunter2-redis-password';
const base = { name: 'profiles', kind: 'redis', datasource: 'sessions', key: 'principal.id', keyTemplate: `${PREFIX}:user:{key}:profile`, type: 'string', provides: { 'principal.attr.p': 'result' } };
const datasource: DatasourceConfig = { kind: 'redis', url: REDIS_URL };
const k = (id: string) => `${PREFIX}:user:${id}:profile`;

function resolverFor(options: Record<string, unknown>, client: Redis = redis) {
  const factory = createRedisResolverFactory({ connect: () => client });
  return factory.create(factory.parseConfig({ ...base, ...options }), { now: Date.now, datasource });
}

const resolve = (options: Record<string, unknown>, keys: JsonValue[], client?: Redis) => resolverFor(options, client).resolveMany(keys, ctx());
const messages = (out: ReadonlyArray<unknown>) => (out as ResolverError[]).map((e) => [e.code, e.message]);

describe(createRedisResolverFactory.name, () => {
  it('reads strings in key order, with a missing key as not-found', async () => {
    await redis.mset(k('alice'), 'gold', k('bob'), 'silver', k('42'), 'numeric');
    expect(await resolve({ type: 'string' }, ['bob', 'nobody', 'alice', 42, 'bob'])).toEqual(['silver', undefined, 'gold', 'numeric', 'silver']);
  });

  it('parses json values; malformed JSON is ERR_RESOLVER_RESULT_INVALID for that key only', async () => {
    await redis.mset(k('j1'), JSON.stringify({ tier: 'gold', n: [1, 2] }), k('j2'), '{"tier": ', k('j3'), 'null');
    const out = await resolve({ type: 'json' }, ['j1', 'j2', 'j3', 'j4']);
    expect(out[0]).toEqual({ tier: 'gold', n: [1, 2] });
    expect(messages([out[1]])).toEqual([['ERR_RESOLVER_RESULT_INVALID', `resolver \`profiles\`: redis json \`${base.keyTemplate}\`: the value is not JSON`]]);
    expect(out.slice(2)).toEqual([undefined, undefined]);
  });

  it('reads hashes with HGETALL; an empty or missing hash is not-found', async () => {
    await redis.hset(k('h1'), { tier: 'gold', region: 'eu' });
    expect(await resolve({ type: 'hash' }, ['h1', 'h2'])).toEqual([{ tier: 'gold', region: 'eu' }, undefined]);
  });

  it('reads counters as integers: missing is 0 by default or not-found with missingAs, junk is invalid', async () => {
    await redis.incrby(k('c1'), 7);
    await redis.decrby(k('c2'), 3);
    await redis.mset(k('c3'), 'abc', k('c4'), '1.5', k('c5'), '99999999999999999999');
    const out = await resolve({ type: 'counter' }, ['c1', 'c2', 'missing', 'c3', 'c4', 'c5']);
    expect(out.slice(0, 3)).toEqual([7, -3, 0]);
    expect((out.slice(3) as ResolverError[]).map((e) => e.code)).toEqual(Array(3).fill('ERR_RESOLVER_RESULT_INVALID'));
    expect(await resolve({ type: 'counter', missingAs: 'notFound' }, ['missing', 'c1'])).toEqual([undefined, 7]);
  });

  it('answers WRONGTYPE with ERR_RESOLVER_RESULT_INVALID, without failing the other keys', async () => {
    await redis.hset(k('wt-hash'), { a: '1' });
    await redis.set(k('wt-str'), 'plain');
    const asString = await resolve({ type: 'string' }, ['wt-hash', 'wt-str']);
    expect(messages([asString[0]])).toEqual([['ERR_RESOLVER_RESULT_INVALID', `resolver \`profiles\`: redis string \`${base.keyTemplate}\`: the Redis key holds another type`]]);
    expect(asString[1]).toBe('plain');
    const asHash = await resolve({ type: 'hash' }, ['wt-str', 'wt-hash']);
    expect((asHash[0] as ResolverError).code).toBe('ERR_RESOLVER_RESULT_INVALID');
    expect(asHash[1]).toEqual({ a: '1' });
    const asCounter = await resolve({ type: 'counter' }, ['wt-hash']);
    expect((asCounter[0] as ResolverError).code).toBe('ERR_RESOLVER_RESULT_INVALID');
  });

  it('loads 50 resources in one pipeline round trip, de-duplicated, through the registry and enrich', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `proj-${i}`);
    await redis.mset(...ids.flatMap((id) => [`${PREFIX}:project:${id}`, JSON.stringify({ owner: `owner-${id}` })]));
    const spy = counted(redis);
    const connectedWith: Array<[string, RedisDatasource]> = [];
    const registry = createResolverRegistry({
      configs: [{ name: 'projects', kind: 'redis', datasource: 'cache', key: 'resource.attr.projectId', keyTemplate: `${PREFIX}:project:{key}`, type: 'json', provides: { 'resource.attr.owner': 'result.owner' } }],
      factories: {
        redis: createRedisResolverFactory({
          connect: (name, ds) => {
            connectedWith.push([name, ds]);
            return spy.client;
          },
        }),
      },
      datasources: { cache: datasource },
    });
    const resources = Array.from({ length: 60 }, (_, i) => ({ kind: 'doc', id: `d${i}`, attr: { projectId: ids[i % 50] as string } }));
    const out = await enrich(registry, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(out.items.map((i) => i.input.resource?.['attr'])).toEqual(resources.map((r) => ({ projectId: r.attr.projectId, owner: `owner-${r.attr.projectId}` })));
    expect(out.runs).toEqual([expect.objectContaining({ resolver: 'projects', calls: 1, keys: 50 })]);
    expect(spy.calls).toEqual(['pipeline']); // no direct GET/MGET: everything went through the pipeline
    expect(spy.execs()).toBe(1);
    expect(connectedWith).toEqual([['cache', { kind: 'redis', url: REDIS_URL }]]);
  });

  it('refuses keys that would forge the template separators, failing only those keys', async () => {
    await redis.set(k('eve'), 'eve-value');
    await redis.set(`${PREFIX}:user:1:admin:profile`, 'admin-value');
    await redis.set(k('dollar$&'), 'literal');
    const spy = counted(redis);
    const out = await resolve({ type: 'string' }, ['1:admin', 'eve', '', 'line\nbreak', { nested: 1 }, 'dollar$&'], spy.client);
    const refused = `resolver \`profiles\`: redis string \`${base.keyTemplate}\`: the key is not usable in the key template`;
    expect(messages([out[0], out[2], out[3], out[4]])).toEqual(Array(4).fill(['ERR_RESOLVER_FAILED', refused]));
    expect(out[1]).toBe('eve-value');
    expect(out[5]).toBe('literal'); // `$&` is taken literally, not expanded by String.replace
    expect(spy.execs()).toBe(1);
  });

  it('answers ERR_RESOLVER_FAILED at once when Redis is down (fail-fast client options)', async () => {
    const down = await downClient(FAIL_FAST);
    const t0 = performance.now();
    const out = await resolve({ type: 'string' }, ['alice', 'bob'], down);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(messages(out)).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', `resolver \`profiles\`: redis string \`${base.keyTemplate}\`: Redis is not connected`]));
  });

  it('stops waiting when the signal aborts (a queueing client under withTimeout)', async () => {
    const queueing = await downClient({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    const sut = withTimeout(resolverFor({ type: 'string' }, queueing), 50);
    const t0 = performance.now();
    const out = await sut.resolveMany(['alice'], ctx());
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect((out as ResolverError[]).map((e) => e.code)).toEqual(['ERR_RESOLVER_TIMEOUT']);
    const controller = new AbortController();
    controller.abort();
    const spy = counted(redis);
    const aborted = await resolverFor({ type: 'string' }, spy.client).resolveMany(['alice'], { requestId: 'r', signal: controller.signal });
    expect((aborted as ResolverError[]).map((e) => e.code)).toEqual(['ERR_RESOLVER_ABORTED']);
    expect(await resolverFor({ type: 'string' }, spy.client).resolveMany([], ctx())).toEqual([]);
    expect(spy.calls).toEqual([]);
  });
});

describe(parseRedisResolverConfig.name, () => {
  const bad = (extra: Record<string, unknown>) => () => parseRedisResolverConfig({ ...base, ...extra });

  it('accepts a valid config with defaults', () => {
    expect(parseRedisResolverConfig({ ...base, type: 'counter' })).toMatchObject({ kind: 'redis', datasource: 'sessions', keyTemplate: base.keyTemplate, type: 'counter', missingAs: 'zero' });
  });

  it('refuses bad fields, naming the resolver and the field', () => {
    expect(bad({ keyTemplate: 'user:profile' })).toThrow('resolver `profiles`: field `keyTemplate`: expected the placeholder `{key}`');
    expect(bad({ keyTemplate: 'user:{id}:{key}' })).toThrow('field `keyTemplate`: only the placeholder `{key}` is allowed');
    expect(bad({ keyTemplate: 42 })).toThrow('field `keyTemplate`');
    expect(bad({ type: 'list' })).toThrow('field `type`: expected `string`, `json`, `hash` or `counter`');
    expect(bad({ type: undefined })).toThrow('field `type`');
    expect(bad({ missingAs: 'zero' })).toThrow('field `missingAs`: only with `type: counter`');
    expect(bad({ type: 'counter', missingAs: 'one' })).toThrow('field `missingAs`: expected `zero` or `notFound`');
    expect(bad({ ttl: 5 })).toThrow('field `ttl`: unknown field');
    expect(bad({ datasource: undefined })).toThrow('field `datasource`');
    expect(bad({ kind: 'http' })).toThrow('field `kind`');
  });

  it('checks the datasource when building, never echoing its URL', () => {
    const factory = createRedisResolverFactory({ connect: () => redis });
    const build = (ds: DatasourceConfig) => buildResolverRegistry({ configs: [base], factories: { redis: factory }, datasources: { sessions: ds } }).errors.map((e) => e.message);
    const badUrl = build({ kind: 'redis', url: `http://:${PASSWORD}@127.0.0.1:6379` });
    expect(badUrl[0]).toContain('field `datasource.url`: expected a `redis://` or `rediss://` URL with a host');
    expect(badUrl[0]).not.toContain(PASSWORD);
    const notUrl = build({ kind: 'redis', url: `${PASSWORD} not a url` });
    expect(notUrl[0]).toContain('field `datasource.url`');
    expect(notUrl[0]).not.toContain(PASSWORD);
    expect(build({ kind: 'redis', url: 'redis://127.0.0.1:6379', pool: 2 })[0]).toContain('field `datasource.pool`: unknown field');
    expect(build({ kind: 'http', url: 'http://127.0.0.1' })[0]).toContain('expected a datasource of kind `redis`, got `http`');
    expect(build({ kind: 'redis' })).toEqual([]);
    expect(build({ kind: 'redis', url: `rediss://:${PASSWORD}@127.0.0.1:6380/2` })).toEqual([]);
  });
});
