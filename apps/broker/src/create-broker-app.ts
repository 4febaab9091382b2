/**
 * Builds the broker application from a validated config: compiles the policy directory, loads
 * the JWT key sets and creates the Nest app on Fastify. Used by `main.ts` and by the end-to-end
 * tests, so both run exactly the same wiring.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { LogLevel } from '@nestjs/common';
import { createEngine } from '@warden/decision';
import { BrokerModule } from './broker.module.js';
import { readBuildInfo } from './build-info.js';
import type { BrokerConfig } from './config/broker-config.js';
import { createAuxDataVerifier } from './http/aux-data.verifier.js';
import { BrokerErrorFilter } from './http/broker-error.filter.js';
import { DEFAULT_BODY_LIMIT } from './http/cerbos-api.routes.js';
import { loadPolicySetOrThrow } from './policy-source/load-policy-set.js';

/** Options of {@link createBrokerApp}. */
export interface CreateBrokerAppOptions {
  /** Nest log levels (default: errors and warnings only). */
  logLevels?: LogLevel[];
}

/** Creates (but does not start) the broker. Throws `WardenError` on bad policies or keys. */
export async function createBrokerApp(
  config: BrokerConfig,
  options: CreateBrokerAppOptions = {},
): Promise<NestFastifyApplication> {
  const policySet = loadPolicySetOrThrow(config.policyDir);
  const engine = createEngine(policySet, config.engine);
  const verifier = createAuxDataVerifier(config.auxData);
  const adapter = new FastifyAdapter({ bodyLimit: DEFAULT_BODY_LIMIT, return503OnClosing: true });
  const app = await NestFactory.create<NestFastifyApplication>(
    BrokerModule.register({
      cerbosApi: { engine, limits: config.requestLimits, verifier, serverInfo: readBuildInfo(), bodyLimit: DEFAULT_BODY_LIMIT },
    }),
    adapter,
    { logger: options.logLevels ?? ['error', 'warn'], abortOnError: false },
  );
  app.useGlobalFilters(new BrokerErrorFilter());
  app.enableShutdownHooks();
  return app;
}
