/**
 * Boots the real broker for end-to-end tests: configuration read from `cwd` (a `warden.yaml`
 * there is picked up), one in-process worker, listening on a free port of 127.0.0.1 (and, with
 * `grpc: true`, its gRPC listener on another free port), on a fresh
 * database of the test PostgreSQL server (dropped on close) unless `databaseUrl` is given.
 */
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadBrokerConfig } from '../../apps/broker/src/config/load-broker-config.js';
import { createBrokerApp } from '../../apps/broker/src/create-broker-app.js';
import { listenGrpc } from '../../apps/broker/src/grpc/grpc-listener.js';
import { createTestDatabase } from './services.js';

export interface TestBroker {
  app: NestFastifyApplication;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** `127.0.0.1:<port>` of the gRPC listener, when started (`grpc: true`). */
  grpcAddr: string | undefined;
  close(): Promise<void>;
}

/** Options of {@link startTestBroker}. */
export interface TestBrokerOptions {
  cwd: string;
  /** `WARDEN_POLICY_DIR`; omit it when the configuration names the policy source (e.g. `storage.driver: git`). */
  policyDir?: string;
  /** A database to share (e.g. between two brokers); default: a fresh one, dropped on close. */
  databaseUrl?: string;
  /** More environment (REDIS_URL, secrets for `${NAME}` placeholders, WARDEN_CONFIG). */
  env?: Record<string, string>;
  /** Also start the gRPC listener (on a free port). */
  grpc?: boolean;
  /** The clock of token budgets (epoch ms). */
  now?: () => number;
  /** Where the broker's JSON log lines go (default: stderr). */
  logDestination?: import('pino').DestinationStream;
}

/** Starts a broker over `policyDir` (or the configured policy source) with the configuration found in `cwd`. */
export async function startTestBroker(opts: TestBrokerOptions): Promise<TestBroker> {
  const own = opts.databaseUrl === undefined ? await createTestDatabase() : undefined;
  const config = loadBrokerConfig({
    cwd: opts.cwd,
    env: {
      WARDEN_HTTP_ADDR: '127.0.0.1:0',
      // A free port whenever the gRPC listener is started: brokers of parallel tests never collide.
      WARDEN_GRPC_ADDR: '127.0.0.1:0',
      ...(opts.policyDir !== undefined ? { WARDEN_POLICY_DIR: opts.policyDir } : {}),
      WARDEN_WORKERS: '1',
      DATABASE_URL: opts.databaseUrl ?? (own?.url as string),
      ...opts.env,
    },
  });
  let app: NestFastifyApplication | undefined;
  let grpcAddr: string | undefined;
  try {
    app = await createBrokerApp(config, {
      ...(opts.now !== undefined ? { now: opts.now } : {}),
      ...(opts.logDestination !== undefined ? { logDestination: opts.logDestination } : {}),
    });
    if (opts.grpc === true) grpcAddr = await listenGrpc(app);
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app?.close().catch(() => undefined);
    await own?.drop();
    throw err;
  }
  const addr = app.getHttpServer().address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    app,
    base: `http://127.0.0.1:${port}`,
    grpcAddr,
    close: async () => {
      await app.close();
      await own?.drop();
    },
  };
}
