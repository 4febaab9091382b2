/**
 * The connections resolvers use, owned here (one per datasource name, opened lazily, closed with
 * the app), and the factory of every built-in kind wired to them. A `postgres` datasource with
 * `embedded: true` is Warden's own database (the embedded PGlite when `DATABASE_URL` is unset).
 */
import { Redis } from 'ioredis';
import { closeRedis, codeOf, REDIS_OPTIONS } from '../redis-connections.js';
import pg from 'pg';
import type { SqlDb } from '@warden/persistence';
import {
  createGraphQLResolverFactory,
  createHttpResolverFactory,
  createJwtResolverFactory,
  createLruCacheStore,
  createOidcIntrospectionResolverFactory,
  createOidcUserinfoResolverFactory,
  createPgliteReadClient,
  createPgReadClient,
  createPostgresResolverFactory,
  createRedisCacheStore,
  createRedisInvalidationChannel,
  createRedisResolverFactory,
  createTieredCacheStore,
  parsePostgresDatasource,
  staticResolverFactory,
  type CacheStore,
  type DatasourceConfig,
  type ResolverFactory,
  type SqlReadClient,
} from '@warden/resolvers';

/** Options of {@link createResolverKinds}. */
export interface ResolverKindsOptions {
  /** Warden's own database (target of `embedded: true` postgres datasources). */
  readonly db: SqlDb;
  /** `REDIS_URL`: shared caches; unset: in-process only. */
  readonly redisUrl: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly onError: (message: string) => void;
}

/** The factories, the cache store and what must be closed on shutdown. */
export interface ResolverKinds {
  readonly factories: Readonly<Record<string, ResolverFactory>>;
  readonly cacheStore: CacheStore;
  /** The read client of a `postgres` datasource (shared with its resolvers), for catalogs. */
  sqlClient(datasourceName: string, raw: DatasourceConfig): SqlReadClient;
  close(): Promise<void>;
}

/** Opens nothing yet; connections are made on first use by a resolver. */
export async function createResolverKinds(options: ResolverKindsOptions): Promise<ResolverKinds> {
  const closers: Array<() => Promise<unknown>> = [];
  const pgClients = new Map<string, SqlReadClient>();
  const redisClients = new Map<string, Redis>();

  const ownDb = options.db.handle;
  const embeddedClient = (): SqlReadClient => (ownDb.kind === 'pg' ? createPgReadClient(ownDb.pool) : createPgliteReadClient(ownDb.db));

  const connectSql = (name: string, raw: DatasourceConfig): SqlReadClient => {
    const existing = pgClients.get(name);
    if (existing !== undefined) return existing;
    const ds = parsePostgresDatasource(name, raw, options.env);
    let client: SqlReadClient;
    if (ds.mode === 'embedded') {
      client = embeddedClient();
    } else {
      const pool = new pg.Pool({ connectionString: ds.url, max: ds.maxConnections });
      pool.on('error', (err) => options.onError(`datasource \`${name}\`: idle connection error (${codeOf(err)})`));
      closers.push(() => pool.end());
      client = createPgReadClient(pool);
    }
    pgClients.set(name, client);
    return client;
  };
  const postgres = createPostgresResolverFactory({ connect: connectSql });

  const redis = createRedisResolverFactory({
    connect(name, ds) {
      const existing = redisClients.get(name);
      if (existing !== undefined) return existing;
      const client = ds.url === undefined ? new Redis(REDIS_OPTIONS) : new Redis(ds.url, REDIS_OPTIONS);
      client.on('error', (err) => options.onError(`datasource \`${name}\`: redis error (${codeOf(err)})`));
      closers.push(() => closeRedis(client));
      redisClients.set(name, client);
      return client;
    },
  });

  let cacheStore: CacheStore = createLruCacheStore({ max: 50_000 });
  if (options.redisUrl !== undefined) {
    const shared = new Redis(options.redisUrl, REDIS_OPTIONS);
    const subscriber = new Redis(options.redisUrl, { ...REDIS_OPTIONS, enableOfflineQueue: true });
    for (const c of [shared, subscriber]) c.on('error', (err) => options.onError(`REDIS_URL: redis error (${codeOf(err)})`));
    closers.push(() => closeRedis(shared), () => closeRedis(subscriber));
    await new Promise<void>((resolve) => {
      // Start even when Redis is down: the shared tier then reads as misses until it is back.
      const t = setTimeout(resolve, 2000);
      shared.once('ready', () => {
        clearTimeout(t);
        resolve();
      });
    });
    cacheStore = createTieredCacheStore({
      local: cacheStore,
      shared: createRedisCacheStore({ redis: shared, prefix: 'warden:cache:', onError: (err, op) => options.onError(`redis cache ${op} failed (${codeOf(err)})`) }),
      invalidations: createRedisInvalidationChannel({ publisher: shared, subscriber, channel: 'warden:cache:invalidate', onError: (err) => options.onError(`redis invalidation failed (${codeOf(err)})`) }),
    });
  }

  const env = options.env;
  const factories: Record<string, ResolverFactory> = {};
  for (const f of [
    staticResolverFactory,
    createHttpResolverFactory({ env }),
    createGraphQLResolverFactory({ env }),
    postgres,
    redis,
    createJwtResolverFactory({ env }),
    createOidcUserinfoResolverFactory({ env }),
    createOidcIntrospectionResolverFactory({ env }),
  ] as ResolverFactory[]) {
    factories[f.kind] = f;
  }
  return {
    factories,
    cacheStore,
    sqlClient: connectSql,
    async close() {
      await Promise.all(closers.splice(0).map((c) => c().catch(() => undefined)));
    },
  };
}
