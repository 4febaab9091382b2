/**
 * `GET /healthz` (the process is up: always 200) and `GET /readyz` (200 only when the policies are
 * loaded, Warden's database (Postgres or the embedded PGlite) answers and, when `REDIS_URL` is
 * configured, Redis answers; otherwise 503 naming what is not ready). Public like `/_cerbos/health`:
 * the listeners bind 127.0.0.1 unless configured otherwise.
 *
 * SECURITY: a failed check is reported by its driver's error code only (never a message, which may
 * name a host, nor the URL).
 */
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { SqlDb } from '@warden/persistence';
import { closeRedis, codeOf, REDIS_OPTIONS } from '../redis-connections.js';

/** What the routes need. */
export interface HealthRoutesDeps {
  db: SqlDb;
  /** `REDIS_URL`; undefined when Redis is not configured (then it is not checked). */
  redisUrl: string | undefined;
  /**
   * Whether a compiled policy set is in force (the holder's). A refused reload does not make an
   * instance unready: it keeps serving the set in force, which is what readiness is about.
   */
  policiesLoaded: () => boolean;
}

/** How long one readiness probe may take before it counts as not answering. */
const PROBE_TIMEOUT_MS = 1000;

const LIVE_BODY = JSON.stringify({ status: 'ok' });

async function probe(run: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => (timer = setTimeout(resolve, PROBE_TIMEOUT_MS, 'timeout')));
  try {
    return await Promise.race([run().then(() => 'ok'), timeout]);
  } catch (err) {
    return codeOf(err);
  } finally {
    clearTimeout(timer);
  }
}

async function probeRedis(client: Redis): Promise<string> {
  const result = await probe(() => client.ping());
  return result !== 'ok' && client.status !== 'ready' ? 'not_connected' : result;
}

/** Registers the health routes on `app`; the readiness Redis connection closes with the app. */
export function registerHealth(app: FastifyInstance, deps: HealthRoutesDeps): void {
  // A connection of its own, so readiness reflects Redis itself and not another component's state.
  let redis: Redis | undefined;
  if (deps.redisUrl !== undefined) {
    // The offline queue holds a PING sent while (re)connecting, so a probe right after boot waits
    // for the connection (bounded by the probe timeout); without retries a failed connection
    // fails the queued PING at once instead of holding it.
    redis = new Redis(deps.redisUrl, { ...REDIS_OPTIONS, enableOfflineQueue: true });
    // Failures surface through PING; ioredis reconnects by itself.
    redis.on('error', () => undefined);
    const client = redis;
    app.addHook('onClose', () => closeRedis(client));
  }
  app.get('/healthz', (_request, reply) => {
    void reply.header('content-type', 'application/json').send(LIVE_BODY);
  });
  app.get('/readyz', async (_request, reply) => {
    const [database, cache] = await Promise.all([probe(() => deps.db.query('SELECT 1')), redis === undefined ? undefined : probeRedis(redis)]);
    const checks: Record<string, string> = { policies: deps.policiesLoaded() ? 'ok' : 'not_loaded', database };
    if (cache !== undefined) checks['redis'] = cache;
    const notReady = Object.keys(checks).filter((k) => checks[k] !== 'ok');
    const body = notReady.length === 0 ? { status: 'ready', checks } : { status: 'not_ready', notReady, checks };
    return reply.code(notReady.length === 0 ? 200 : 503).header('content-type', 'application/json').send(JSON.stringify(body));
  });
}
