/**
 * Boots the real broker for end-to-end tests: configuration read from `cwd` (a `warden.yaml`
 * there is picked up), one in-process worker, listening on a free port of 127.0.0.1.
 */
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadBrokerConfig } from '../../apps/broker/src/config/load-broker-config.js';
import { createBrokerApp } from '../../apps/broker/src/create-broker-app.js';

export interface TestBroker {
  app: NestFastifyApplication;
  /** `http://127.0.0.1:<port>` */
  base: string;
  close(): Promise<void>;
}

/** Starts a broker over `policyDir` with the configuration found in `cwd`. */
export async function startTestBroker(opts: { cwd: string; policyDir: string }): Promise<TestBroker> {
  const config = loadBrokerConfig({
    cwd: opts.cwd,
    env: { WARDEN_HTTP_ADDR: '127.0.0.1:0', WARDEN_POLICY_DIR: opts.policyDir, WARDEN_WORKERS: '1' },
  });
  const app = await createBrokerApp(config);
  await app.listen(0, '127.0.0.1');
  const addr = app.getHttpServer().address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { app, base: `http://127.0.0.1:${port}`, close: () => app.close() };
}
