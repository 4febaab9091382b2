/**
 * Boots the real broker for end-to-end tests: configuration read from `cwd` (a `warden.yaml`
 * there is picked up), one in-process worker, listening on a free port of 127.0.0.1, on a fresh
 * database of the test PostgreSQL server (dropped on close) unless `databaseUrl` is given.
 */
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadBrokerConfig } from '../../apps/broker/src/config/load-broker-config.js';
import { createBrokerApp } from '../../apps/broker/src/create-broker-app.js';
import { createTestDatabase } from './services.js';

export interface TestBroker {
  app: NestFastifyApplication;
  /** `http://127.0.0.1:<port>` */
  base: string;
  close(): Promise<void>;
}

/** Options of {@link startTestBroker}. */
export interface TestBrokerOptions {
  cwd: string;
  policyDir: string;
  /** A database to share (e.g. between two brokers); default: a fresh one, dropped on close. */
  databaseUrl?: string;
  /** More environment (REDIS_URL, secrets for `${NAME}` placeholders, WARDEN_CONFIG). */
  env?: Record<string, string>;
}

/** Starts a broker over `policyDir` with the configuration found in `cwd`. */
export async function startTestBroker(opts: TestBrokerOptions): Promise<TestBroker> {
  const own = opts.databaseUrl === undefined ? await createTestDatabase() : undefined;
  const config = loadBrokerConfig({
    cwd: opts.cwd,
    env: {
      WARDEN_HTTP_ADDR: '127.0.0.1:0',
      WARDEN_POLICY_DIR: opts.policyDir,
      WARDEN_WORKERS: '1',
      DATABASE_URL: opts.databaseUrl ?? (own?.url as string),
      ...opts.env,
    },
  });
  let app: NestFastifyApplication;
  try {
    app = await createBrokerApp(config);
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await own?.drop();
    throw err;
  }
  const addr = app.getHttpServer().address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    app,
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      await app.close();
      await own?.drop();
    },
  };
}
