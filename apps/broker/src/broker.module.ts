/**
 * Composition root of the broker's Nest application. It wires already-validated pieces (config
 * slices, the compiled engine, the aux-data verifier) and registers the Cerbos API routes on the
 * Fastify instance; no logic lives here.
 */
import { Inject, Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { registerCerbosApi, type CerbosApiDeps } from './http/cerbos-api.routes.js';

/** DI token of the Cerbos API dependencies. */
export const CERBOS_API_DEPS = Symbol('CERBOS_API_DEPS');

@Injectable()
class CerbosApiRegistrar implements OnModuleInit {
  constructor(
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    @Inject(CERBOS_API_DEPS) private readonly deps: CerbosApiDeps,
  ) {}

  async onModuleInit(): Promise<void> {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    await registerCerbosApi(fastify, this.deps);
  }
}

/** Options of {@link BrokerModule.register}. */
export interface BrokerModuleOptions {
  cerbosApi: CerbosApiDeps;
}

@Module({})
export class BrokerModule {
  static register(options: BrokerModuleOptions): DynamicModule {
    return {
      module: BrokerModule,
      providers: [{ provide: CERBOS_API_DEPS, useValue: options.cerbosApi }, CerbosApiRegistrar],
    };
  }
}
