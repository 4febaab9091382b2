/**
 * Composition root of the broker's Nest application. It wires already-validated pieces (config
 * slices, the policy holder, the aux-data verifier, the resolver runtime) and registers the
 * Cerbos API, `/v1/check`, `/v1/ext-authz/*`, `/v1/usage`, `/v1/plan`, `/mcp`, the admin, the
 * delegation and the decision-log routes on the Fastify instance, and the controllers of the gRPC services (Cerbos API,
 * Envoy ext_authz, agentgateway's extMcp); no logic lives here.
 */
import { Inject, Injectable, Module, type DynamicModule, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { CERBOS_GRPC_DEPS, CerbosGrpcController } from './grpc/cerbos-grpc.controller.js';
import { EXT_MCP_GRPC_DEPS, ExtMcpGrpcController } from './grpc/ext-mcp-grpc.controller.js';
import { ENVOY_EXT_AUTHZ_DEPS, EnvoyExtAuthzController } from './grpc/envoy-ext-authz.controller.js';
import { registerAdminPolicies, type AdminPoliciesDeps } from './http/admin-policies.routes.js';
import { registerAdminResolvers, type AdminResolversDeps } from './http/admin-resolvers.routes.js';
import { registerAuditRoutes, type AuditRoutesDeps } from './http/audit.routes.js';
import { registerCerbosApi, type CerbosApiDeps } from './http/cerbos-api.routes.js';
import { registerDelegationRoutes, type DelegationRoutesDeps } from './http/delegations.routes.js';
import { registerExtAuthz, type ExtAuthzDeps } from './http/ext-authz.routes.js';
import { registerHealth, type HealthRoutesDeps } from './http/health.routes.js';
import { registerUsage, type UsageRoutesDeps } from './http/usage.routes.js';
import { registerV1Check, type V1CheckDeps } from './http/v1-check.routes.js';
import { registerV1Plan, type V1PlanDeps } from './http/v1-plan.routes.js';
import { registerMcpProxy, type McpProxyDeps } from './mcp/mcp-proxy.routes.js';
import { registerMetrics, type MetricsRoutesDeps } from './metrics/metrics.routes.js';

/** DI token of the route dependencies. */
export const BROKER_ROUTES = Symbol('BROKER_ROUTES');

@Injectable()
class RouteRegistrar implements OnModuleInit {
  constructor(
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    @Inject(BROKER_ROUTES) private readonly deps: BrokerModuleOptions,
  ) {}

  async onModuleInit(): Promise<void> {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    // First: its request-duration hook must be on the root before the route plugins inherit hooks.
    registerMetrics(fastify, this.deps.metrics);
    registerHealth(fastify, this.deps.health);
    await registerCerbosApi(fastify, this.deps.cerbosApi);
    await registerV1Check(fastify, this.deps.v1Check);
    await registerExtAuthz(fastify, this.deps.extAuthz);
    await registerUsage(fastify, this.deps.usage);
    await registerV1Plan(fastify, this.deps.v1Plan);
    if (this.deps.mcp !== undefined) await registerMcpProxy(fastify, this.deps.mcp);
    await registerAdminResolvers(fastify, this.deps.admin);
    await registerAdminPolicies(fastify, this.deps.adminPolicies);
    await registerDelegationRoutes(fastify, this.deps.delegations);
    await registerAuditRoutes(fastify, this.deps.audit);
    fastify.addHook('onClose', this.deps.onClose);
  }
}

/** Options of {@link BrokerModule.register}. */
export interface BrokerModuleOptions {
  /** `/metrics` and the request-duration hook. */
  metrics: MetricsRoutesDeps;
  /** `/healthz` and `/readyz`. */
  health: HealthRoutesDeps;
  cerbosApi: CerbosApiDeps;
  v1Check: V1CheckDeps;
  /** `/v1/ext-authz` and Envoy's ext_authz: `/v1/check`'s dependencies and the identity header names. */
  extAuthz: ExtAuthzDeps;
  v1Plan: V1PlanDeps;
  usage: UsageRoutesDeps;
  /** The MCP proxy, when `mcp` is configured. */
  mcp?: McpProxyDeps;
  admin: AdminResolversDeps;
  /** `/v1/admin/policies`: the policy set in force and its reloads. */
  adminPolicies: AdminPoliciesDeps;
  delegations: DelegationRoutesDeps;
  /** `GET /v1/audit`. */
  audit: AuditRoutesDeps;
  /** Releases connections when the app closes. */
  onClose: () => Promise<void>;
}

@Module({})
export class BrokerModule {
  static register(options: BrokerModuleOptions): DynamicModule {
    return {
      module: BrokerModule,
      // The gRPC service answers only once the app's microservices are started (`listenGrpc`).
      controllers: [CerbosGrpcController, EnvoyExtAuthzController, ExtMcpGrpcController],
      providers: [
        { provide: BROKER_ROUTES, useValue: options },
        { provide: CERBOS_GRPC_DEPS, useValue: options.cerbosApi },
        { provide: ENVOY_EXT_AUTHZ_DEPS, useValue: options.extAuthz },
        // agentgateway's extMcp decides as `/v1/check` and lists as `/v1/plan` (tool discovery) do.
        { provide: EXT_MCP_GRPC_DEPS, useValue: { check: options.v1Check, discovery: options.v1Plan.discovery } },
        RouteRegistrar,
      ],
    };
  }
}
