/**
 * Builds the broker application from a validated config: compiles the policies and starts
 * following their source (a watched directory or a polled git branch), loads
 * the JWT key sets, opens Warden's database (or the embedded PGlite), starts the resolver
 * runtime and creates the Nest app on Fastify. Used by `main.ts` and by the end-to-end tests, so
 * both run exactly the same wiring.
 */
import 'reflect-metadata';
import cluster from 'node:cluster';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { LogLevel } from '@nestjs/common';
import type { DestinationStream } from 'pino';
import { WardenError } from '@warden/core';
import { createSqlResolverStore } from '@warden/persistence';
import { createCatalogSource, parseCatalogConfig, parseResolverConfig, type CatalogDeps, type CatalogSource, type ContextResolver, type ResolverConfigError } from '@warden/resolvers';
import { createAdminAuth } from './admin/admin-auth.js';
import { createAdminEngine } from './admin/admin-policies.js';
import { BrokerModule } from './broker.module.js';
import type { BudgetRuntime } from './budget/budget-runtime.js';
import { openBudgets } from './budget/open-budgets.js';
import { decisionLogStats, openDecisionLog, recordDecision, type DecisionLog } from './audit/decision-log.js';
import { eventAuditEntry, policyChangeEvent } from './audit/event-audit-entry.js';
import { readBuildInfo } from './build-info.js';
import type { BrokerConfig } from './config/broker-config.js';
import { DelegationRuntime, delegationConfigError } from './delegation/delegation-runtime.js';
import { openDatabase } from './enrichment/open-database.js';
import { createResolverKinds, type ResolverKinds } from './enrichment/resolver-kinds.js';
import { ResolverRuntime } from './enrichment/resolver-runtime.js';
import { connectGrpc } from './grpc/grpc-listener.js';
import { createAuxDataVerifier } from './http/aux-data.verifier.js';
import { BrokerErrorFilter } from './http/broker-error.filter.js';
import { DEFAULT_BODY_LIMIT } from './http/cerbos-api.routes.js';
import { createGatewayMatcher, type V1CheckDeps } from './http/v1-check.routes.js';
import type { McpProxyDeps } from './mcp/mcp-proxy.routes.js';
import { McpUpstreams } from './mcp/mcp-upstreams.js';
import { createWardenLogger, PinoLoggerService } from './logging/warden-logger.js';
import { BrokerMetrics } from './metrics/broker-metrics.js';
import { joinClusterMetrics } from './metrics/cluster-metrics.js';
import { PolicyReloader, type PolicyChange } from './policy-source/policy-reloader.js';
import { createBrokerTracing } from './tracing/broker-tracing.js';

/** Options of {@link createBrokerApp}. */
export interface CreateBrokerAppOptions {
  /** Nest log levels (default: errors and warnings only). */
  logLevels?: LogLevel[];
  /** Where the JSON log lines go (default: stderr). */
  logDestination?: DestinationStream;
  /** The clock of token budgets (epoch ms; tests move it to cross windows). */
  now?: () => number;
}

/** The `admin.jwt` verifier: a `jwt` resolver built from the admin section. */
function adminJwtResolver(config: BrokerConfig, kinds: ResolverKinds): ContextResolver | undefined {
  const admin = config.admin.jwt;
  if (admin === undefined) return undefined;
  const factory = kinds.factories['jwt'];
  if (factory === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: no jwt kind');
  const raw = { ...admin.resolver, name: 'warden-admin', kind: 'jwt', key: 'subject.token', provides: { 'principal.attr.admin': 'result' } };
  try {
    parseResolverConfig(raw);
    const parsed = factory.parseConfig(raw);
    const ds = parsed.datasource === undefined ? undefined : config.datasources[parsed.datasource];
    if (parsed.datasource !== undefined && ds === undefined) throw new WardenError('ERR_CONFIG_INVALID', `unknown datasource \`${parsed.datasource}\``);
    return factory.create(parsed, { now: Date.now, ...(ds !== undefined ? { datasource: ds } : {}) });
  } catch (err) {
    throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`admin.jwt\`: ${(err as Error).message}`, { cause: err });
  }
}

/** The bearer-token verifier of `/mcp` (`mcp.token`: a `jwt` resolver whose audience is `mcp.resource`). */
function mcpTokenVerifier(config: BrokerConfig, kinds: ResolverKinds): ContextResolver | undefined {
  const mcp = config.mcp;
  if (mcp?.token === undefined) return undefined;
  const factory = kinds.factories['jwt'];
  if (factory === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: no jwt kind');
  const raw = { ...mcp.token, name: 'warden-mcp', kind: 'jwt', key: 'subject.token', audience: mcp.resource, provides: { 'principal.attr.mcp': 'result' } };
  try {
    parseResolverConfig(raw);
    const parsed = factory.parseConfig(raw);
    const ds = parsed.datasource === undefined ? undefined : config.datasources[parsed.datasource];
    if (parsed.datasource !== undefined && ds === undefined) throw new WardenError('ERR_CONFIG_INVALID', `unknown datasource \`${parsed.datasource}\``);
    return factory.create(parsed, { now: Date.now, ...(ds !== undefined ? { datasource: ds } : {}) });
  } catch (err) {
    throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`mcp.token\`: ${(err as Error).message}`, { cause: err });
  }
}

/** The `kind: catalog` resolvers, built over the app's connections. */
function buildCatalogs(config: BrokerConfig, deps: Omit<CatalogDeps, 'datasources' | 'env'>): Map<string, CatalogSource> {
  const catalogs = new Map<string, CatalogSource>();
  for (const raw of config.catalogs) {
    try {
      const parsed = parseCatalogConfig(raw);
      if (catalogs.has(parsed.name)) throw new WardenError('ERR_RESOLVER_NAME_DUPLICATE', `resolver \`${parsed.name}\`: two catalogs have this name`);
      catalogs.set(parsed.name, createCatalogSource(parsed, { ...deps, datasources: config.datasources, env: config.env }));
    } catch (err) {
      throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`resolvers\`: ${(err as Error).message}`, { cause: err });
    }
  }
  return catalogs;
}

/**
 * Creates (but does not start) the broker. Throws `WardenError` on bad policies, keys or
 * resolvers. `app.listen` starts HTTP; `listenGrpc(app)` starts the gRPC listener.
 */
export async function createBrokerApp(
  config: BrokerConfig,
  options: CreateBrokerAppOptions = {},
): Promise<NestFastifyApplication> {
  const log = createWardenLogger({ levels: options.logLevels, destination: options.logDestination });
  const onError = (message: string): void => log.warn({ context: 'Broker' }, message);
  const metrics = new BrokerMetrics();
  const verifier = createAuxDataVerifier(config.auxData);
  // A bad set (or an unreachable git remote) stops the boot: there is no older set to serve.
  // Policy changes after boot are admin changes for the decision log (opened below; read when a change happens).
  let audit: DecisionLog | undefined;
  const onPolicyChange = (change: PolicyChange): void => {
    const log = audit;
    if (log !== undefined) void recordDecision(log, () => eventAuditEntry(policyChangeEvent(change), log.mask))?.catch((err: unknown) => onError(`audit: policy change not recorded: ${(err as Error).message}`));
  };
  const reloader = await PolicyReloader.start({ storage: config.storage, engine: config.engine, metrics, log, onChange: onPolicyChange });
  // Every request path reads the set in force through this holder (one snapshot per request).
  const policies = reloader.holder;
  const db = await openDatabase(config.database, onError).catch(async (err: unknown) => {
    await reloader.close();
    throw err;
  });
  const closers: Array<() => Promise<unknown>> = [() => reloader.close(), () => db.close()];
  const serverInfo = readBuildInfo();
  // Undefined unless `tracing.enabled`: then no route makes a span.
  const tracing = createBrokerTracing({ config: config.tracing, version: serverInfo.version, onError });
  // Last of all closers (the others are put in front): spans of requests finishing during shutdown are still exported.
  if (tracing !== undefined) closers.push(() => tracing.shutdown());
  let runtime: ResolverRuntime;
  let delegation: DelegationRuntime;
  let admin;
  let catalogs: Map<string, CatalogSource>;
  let mcpVerifier: ContextResolver | undefined;
  let budgets: BudgetRuntime | undefined;
  const upstreams = new McpUpstreams(config.mcp?.upstreams ?? []);
  closers.unshift(() => upstreams.close());
  try {
    const kinds = await createResolverKinds({ db, redisUrl: config.redisUrl, env: config.env, onError });
    closers.unshift(() => kinds.close());
    catalogs = buildCatalogs(config, {
      sql: kinds.sqlClient,
      mcpTools: (upstream, signal) => {
        if (!upstreams.has(upstream)) return Promise.reject(new WardenError('ERR_CONFIG_INVALID', `no upstream MCP server \`${upstream}\` in \`mcp.upstreams\``));
        return upstreams.listTools(upstream, signal);
      },
    });
    for (const c of config.catalogs) {
      const up = (c as { source?: unknown; upstream?: unknown }).upstream;
      if ((c as { source?: unknown }).source === 'mcp' && typeof up === 'string' && !upstreams.has(up)) {
        throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`resolvers\`: resolver \`${String((c as { name?: unknown }).name)}\`: field \`upstream\`: no upstream MCP server \`${up}\` in \`mcp.upstreams\``);
      }
    }
    mcpVerifier = mcpTokenVerifier(config, kinds);
    const store = createSqlResolverStore(db);
    try {
      runtime = await ResolverRuntime.start({
        fileConfigs: config.resolvers,
        datasources: config.datasources,
        factories: kinds.factories,
        cacheStore: kinds.cacheStore,
        store,
        onError,
      });
    } catch (err) {
      const e = err as ResolverConfigError;
      throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`resolvers\`: ${e.message}`, { cause: err });
    }
    closers.unshift(() => runtime.close());
    try {
      delegation = await DelegationRuntime.start({ config: config.delegation, db, redisUrl: config.redisUrl, onError });
    } catch (err) {
      throw delegationConfigError(err);
    }
    closers.unshift(() => delegation.close());
    const opened = await openBudgets({ definitions: config.budgets, redisUrl: config.redisUrl, onError, ...(options.now !== undefined ? { now: options.now } : {}) });
    if (opened !== undefined) {
      budgets = opened.runtime;
      closers.unshift(opened.close);
    }
    const decisionLog = await openDecisionLog({ config: config.audit, db, databaseUrl: config.database.url, onError });
    if (decisionLog !== undefined) {
      audit = decisionLog.log;
      const writer = decisionLog.log.writer;
      metrics.auditLog(() => decisionLogStats(writer, config.audit.spillPath));
      // Closed before the database (closers run first to last; this one is unshifted last).
      closers.unshift(decisionLog.close);
    }
    const jwt = adminJwtResolver(config, kinds);
    admin = {
      runtime,
      store,
      fileConfigs: config.resolvers,
      audit,
      policies,
      auth: createAdminAuth({
        engine: createAdminEngine(),
        bootstrapToken: config.admin.bootstrapToken,
        ...(jwt !== undefined && config.admin.jwt !== undefined ? { jwt: { resolver: jwt, rolesClaim: config.admin.jwt.rolesClaim } } : {}),
      }),
    };
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    throw err;
  }
  const onClose = async (): Promise<void> => {
    for (const close of closers.splice(0)) await close().catch((err: unknown) => onError(`shutdown: ${(err as Error).message}`));
  };
  const matchGateway = createGatewayMatcher(config.gateways);
  const discovery = { policies, runtime, delegation, catalogs };
  const mcp: McpProxyDeps | undefined =
    config.mcp === undefined
      ? undefined
      : { discovery, upstreams, onError, auth: { resource: config.mcp.resource, authorizationServers: config.mcp.authorizationServers, requiredScopes: config.mcp.requiredScopes, verifier: mcpVerifier } };
  const v1Check: V1CheckDeps = { metrics, log, policies, runtime, delegation, limits: config.requestLimits, matchGateway, bodyLimit: DEFAULT_BODY_LIMIT, budgets, audit, tracing };
  const adapter = new FastifyAdapter({ bodyLimit: DEFAULT_BODY_LIMIT, return503OnClosing: true });
  const app = await NestFactory.create<NestFastifyApplication>(
    BrokerModule.register({
      // Policies are compiled before the app exists (a bad set stops the boot); a reload only ever swaps in a compiled set.
      health: { db, redisUrl: config.redisUrl, policiesLoaded: () => policies.current !== undefined },
      metrics: { metrics, clusterMetrics: cluster.isWorker ? joinClusterMetrics(metrics.registry) : undefined },
      cerbosApi: { metrics, log, policies, limits: config.requestLimits, verifier, serverInfo, bodyLimit: DEFAULT_BODY_LIMIT, runtime, revocations: delegation.revocations, audit, tracing },
      v1Check,
      extAuthz: { ...v1Check, auditSource: 'ext-authz', agentHeader: config.forwardAuth.agentHeader, delegationHeader: config.forwardAuth.delegationHeader },
      usage: { budgets, matchGateway, bodyLimit: DEFAULT_BODY_LIMIT },
      v1Plan: { discovery, limits: config.requestLimits, matchGateway, bodyLimit: DEFAULT_BODY_LIMIT, audit, tracing },
      admin,
      adminPolicies: { auth: admin.auth, reloader },
      delegations: { policies, runtime, delegation, auth: admin.auth, matchGateway, limits: config.requestLimits, maxTtlSeconds: config.delegation.maxTtlSeconds, bodyLimit: DEFAULT_BODY_LIMIT, audit },
      ...(mcp !== undefined ? { mcp } : {}),
      audit: { auth: admin.auth, db: config.audit.enabled && config.audit.sink === 'postgres' ? db : undefined },
      onClose,
    }),
    adapter,
    // Nest's own lines and every `new Logger(context)` of Warden's become pino JSON lines.
    { logger: new PinoLoggerService(log), abortOnError: false },
  );
  app.useGlobalFilters(new BrokerErrorFilter());
  connectGrpc(app, config.grpc);
  app.enableShutdownHooks();
  return app;
}
