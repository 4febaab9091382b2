/**
 * Entry point of the broker. Loads and validates the configuration and the policies once (a bad
 * value or a policy compile error stops the process with a message on stderr and exit code 1),
 * then serves HTTP and gRPC on 127.0.0.1 — in this process when `WARDEN_WORKERS` is 1, otherwise in N
 * `node:cluster` workers sharing the listening socket (the primary only supervises). Each serving
 * process follows the policy source itself (hot reload); the primary takes no part in it.
 */
import cluster from 'node:cluster';
import { isWardenError } from '@warden/core';
import { loadBrokerConfig } from './config/load-broker-config.js';
import type { BrokerConfig } from './config/broker-config.js';
import { createBrokerApp } from './create-broker-app.js';
import { listenGrpc } from './grpc/grpc-listener.js';
import { createAuxDataVerifier } from './http/aux-data.verifier.js';
import { answerClusterMetrics } from './metrics/cluster-metrics.js';
import { loadPolicySetOrThrow } from './policy-source/load-policy-set.js';
import { applyV8InterruptBudget } from './v8-tiering.js';

/**
 * How long a serving process waits after SIGTERM / SIGINT for its in-flight requests (Fastify stops
 * accepting connections, answers new requests on open ones 503, and lets the running ones finish
 * before the database and Redis connections close) before exiting anyway. Below the primary's own
 * 10 s, so a worker exits by itself first.
 */
const SHUTDOWN_GRACE_MS = 8_000;

function exitAfterGrace(): void {
  setTimeout(() => {
    process.stderr.write(`warden: requests still in flight ${SHUTDOWN_GRACE_MS} ms after the stop signal; exiting\n`);
    process.exit(1);
  }, SHUTDOWN_GRACE_MS).unref();
}

function fail(err: unknown): never {
  const message = isWardenError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`warden: cannot start: ${message}\n`);
  process.exit(1);
}

async function serve(config: BrokerConfig): Promise<string> {
  const app = await createBrokerApp(config);
  // SECURITY: the listeners bind the configured hosts, 127.0.0.1 by default; never 0.0.0.0 implicitly.
  const grpc = await listenGrpc(app);
  await app.listen(config.http.port, config.http.host);
  return `${await app.getUrl()} (gRPC ${grpc})`;
}

function supervise(config: BrokerConfig): void {
  let ready = 0;
  let stopping = false;
  let restarts = 0;
  const startup = new Set<number>();
  // Each worker holds a slot (0..workers-1) that a restarted worker takes over: per-worker files
  // (the decision log's spill file) outlive the process that wrote them.
  const slots = new Map<number, number>();
  const fork = (slot: number): void => {
    const worker = cluster.fork({ WARDEN_WORKER_SLOT: String(slot) });
    slots.set(worker.id, slot);
    startup.add(worker.id);
    worker.on('message', (msg: unknown) => {
      // A worker serving `/metrics` asks for every worker's metrics, summed.
      answerClusterMetrics(worker, msg);
      if (typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'listening') {
        startup.delete(worker.id);
        ready += 1;
        if (ready === config.workers) {
          process.stdout.write(`warden: broker listening on ${(msg as { url: string }).url} (${config.workers} workers)\n`);
        }
      }
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    if (startup.has(worker.id)) {
      // A worker that dies before listening hits the same error the others will: give up.
      process.stderr.write(`warden: worker ${worker.id} failed to start (code ${code ?? signal})\n`);
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(1);
    }
    restarts += 1;
    process.stderr.write(`warden: worker ${worker.id} exited (${code ?? signal}); restarting\n`);
    if (restarts > 10 * config.workers) {
      process.stderr.write('warden: too many worker restarts, stopping\n');
      process.exit(1);
    }
    fork(slots.get(worker.id) ?? 0);
    slots.delete(worker.id);
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for (let i = 0; i < config.workers; i++) fork(i);
}

async function main(): Promise<void> {
  let config: BrokerConfig;
  try {
    config = loadBrokerConfig();
  } catch (err) {
    fail(err);
  }
  if (cluster.isPrimary && config.workers > 1) {
    try {
      // Fail fast, once, with every error listed, before any worker starts. (A git source is
      // cloned by each worker, which follows it on its own; a failed clone fails the start too.)
      if (config.storage.driver === 'disk') loadPolicySetOrThrow(config.storage.directory);
      createAuxDataVerifier(config.auxData);
    } catch (err) {
      fail(err);
    }
    supervise(config);
    return;
  }
  applyV8InterruptBudget(config.v8InterruptBudget);
  // Nest's shutdown hooks (`enableShutdownHooks`) close the app on these signals; this bounds the drain.
  process.once('SIGTERM', exitAfterGrace);
  process.once('SIGINT', exitAfterGrace);
  try {
    const url = await serve(config);
    if (cluster.isWorker) process.send?.({ type: 'listening', url });
    else process.stdout.write(`warden: broker listening on ${url}\n`);
  } catch (err) {
    fail(err);
  }
}

void main();
