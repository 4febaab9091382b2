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
 * Adds the duration hook to `app` itself (call before any route plugin is registered, so every
 * route inherits it) and registers `/metrics`.
 */
export function registerMetrics(app: FastifyInstance, deps: MetricsRoutesDeps): void {
  const metrics = deps.metrics;
  // One hook function for the app's life: per request it reads Fastify's own elapsed time (one
  // clock read) and adds to a pre-created cell.
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    metrics.request(request.routeOptions.url, reply.elapsedTime / 1000);
    done();
  });
  const contentType = metrics.registry.contentType;
  app.get('/metrics', async (_request, reply) => {
    const text = deps.clusterMetrics !== undefined ? await deps.clusterMetrics() : await metrics.registry.metrics();
    return reply.header('content-type', contentType).send(text);
  });
}
