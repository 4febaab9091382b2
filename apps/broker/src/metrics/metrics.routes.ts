/**
 * `GET /metrics` (Prometheus text format) and the request-duration hook. Public like the Cerbos
 * routes: the listeners bind 127.0.0.1 unless configured otherwise.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { BrokerMetrics } from './broker-metrics.js';

/** What the route needs. */
export interface MetricsRoutesDeps {
  metrics: BrokerMetrics;
  /** The aggregate of every cluster worker (in a worker); absent: this process's registry. */
  clusterMetrics?: (() => Promise<string>) | undefined;
}

/**
 * Gives every route registered after this call (call it before any route plugin) its own
 * request-duration hook, and registers `/metrics`.
 */
export function registerMetrics(app: FastifyInstance, deps: MetricsRoutesDeps): void {
  const metrics = deps.metrics;
  // One hook per route, made when the route is registered, bound to that route's histogram cell:
  // per request it reads Fastify's elapsed time (one clock read) and adds to the cell. (A global
  // hook would have to read `request.routeOptions`, a getter that builds an object per call.)
  app.addHook('onRoute', (route) => {
    const cell = metrics.routeDuration(route.url);
    const hook = (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
      cell.observe(reply.elapsedTime / 1000);
      done();
    };
    const own = route.onResponse;
    route.onResponse = own === undefined ? [hook] : Array.isArray(own) ? [...own, hook] : [own, hook];
  });
  const contentType = metrics.registry.contentType;
  app.get('/metrics', async (_request, reply) => {
    const text = deps.clusterMetrics !== undefined ? await deps.clusterMetrics() : await metrics.registry.metrics();
    return reply.header('content-type', contentType).send(text);
  });
}
