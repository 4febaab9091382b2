/**
 * The broker's validated configuration, split into the typed slices each module receives.
 * Built once at boot by `loadBrokerConfig`; nothing else reads `process.env` or the YAML file.
 */
import type { BudgetDefinition } from '@warden/budget';
import type { EngineConfig } from '@warden/decision';
import type { DatasourceConfig } from '@warden/resolvers';

/** One `auxData.jwt.keySets[]` entry (Cerbos layout; only `local` key sets are supported). */
export interface JwtKeySetConfig {
  id: string;
  local: {
    /** Path of a JWKS (or PEM with `pem: true`) file, resolved against the working directory. */
    file?: string;
    /** Base64-encoded JWKS (or PEM with `pem: true`). */
    data?: string;
    /** The key material is PEM instead of a JWKS. */
    pem: boolean;
  };
}

/** `auxData.jwt.*`. */
export interface AuxDataConfig {
  keySets: JwtKeySetConfig[];
  disableVerification: boolean;
  /** `acceptableTimeSkew` in seconds (Cerbos default 0). */
  acceptableTimeSkewSeconds: number;
}

/** `server.requestLimits.*`. */
export interface RequestLimitsConfig {
  maxResourcesPerRequest: number;
  maxActionsPerResource: number;
}

/** Where the HTTP listener binds. */
export interface HttpListenConfig {
  host: string;
  port: number;
}

/** Where the gRPC listener binds (`WARDEN_GRPC_ADDR`, `server.grpcListenAddr`). */
export interface GrpcListenConfig {
  host: string;
  port: number;
}

/** Everything the broker needs, validated. */
export interface BrokerConfig {
  /** The YAML file that was read, if any. */
  configFile: string | undefined;
  http: HttpListenConfig;
  /** The gRPC listener (the Cerbos gRPC API). */
  grpc: GrpcListenConfig;
  /** `storage.*`: where the policies come from (a directory or a git branch) and how changes are picked up. */
  storage: PolicyStorageConfig;
  /** Number of HTTP worker processes (`WARDEN_WORKERS`, default: number of CPUs). */
  workers: number;
  /**
   * `WARDEN_V8_INTERRUPT_BUDGET`: the V8 interrupt budget the serving processes run with (default
   * 8,000); 0 keeps V8's own (67,584 in Node 20). See `v8-tiering.ts`.
   */
  v8InterruptBudget: number;
  engine: EngineConfig;
  auxData: AuxDataConfig;
  requestLimits: RequestLimitsConfig;
  database: DatabaseConfig;
  /** `REDIS_URL`: shared resolver caches; unset: in-process. SECURITY: may hold a password. */
  redisUrl: string | undefined;
  /** `datasources:` with `${NAME}` placeholders filled. SECURITY: may hold secrets. */
  datasources: Record<string, DatasourceConfig>;
  /** `resolvers:` as written (checked when the registry is built), without the catalogs. */
  resolvers: unknown[];
  /** The `kind: catalog` entries of `resolvers:` (candidate listings for tool discovery), as written. */
  catalogs: unknown[];
  /** `mcp.*`: the MCP proxy at `/mcp`; undefined when the section is absent. */
  mcp: McpConfig | undefined;
  gateways: GatewayConfig[];
  admin: AdminConfig;
  delegation: DelegationConfig;
  /** `budgets:` token budgets (empty: none; `/v1/check` then does no budget work at all). */
  budgets: BudgetDefinition[];
  /** `forwardAuth.*`: where the forward-auth adapters (`/v1/ext-authz`, Envoy ext_authz) read identity. */
  forwardAuth: ForwardAuthConfig;
  /** `audit.*`: the decision log. */
  audit: AuditConfig;
  /** `tracing.*`: OpenTelemetry tracing of the decision path (off by default). */
  tracing: TracingConfig;
  /** The environment, for kinds that fill `${NAME}` placeholders themselves. */
  env: Readonly<Record<string, string | undefined>>;
}

/** `storage.*`: the policy source. */
export type PolicyStorageConfig = DiskPolicyStorageConfig | GitPolicyStorageConfig;

/** `storage.driver: disk` (the default): a directory, watched for changes. */
export interface DiskPolicyStorageConfig {
  driver: 'disk';
  /** Absolute path of the policy directory (`WARDEN_POLICY_DIR`, `storage.disk.directory`, default `./policies`). */
  directory: string;
  /** Reload on changes (`storage.disk.watchForChanges`, default true); false: only `POST /v1/admin/policies/reload`. */
  watchForChanges: boolean;
  /** Quiet time after the last file event before a reload (`storage.disk.watchDebounce`, default 200ms). */
  watchDebounceMs: number;
  /** How often the directory's file list, sizes and times are compared, for changes no event reported (`storage.disk.pollInterval`, default 1s; 0: never). */
  pollIntervalMs: number;
}

/** `storage.driver: git`: a branch of a git repository, read with the `git` command. */
export interface GitPolicyStorageConfig {
  driver: 'git';
  /** Repository URL, or an absolute local path (`storage.git.url`). SECURITY: may hold `user:password@`; shown redacted. */
  url: string;
  /** `storage.git.branch`; undefined: the repository's default branch. */
  branch: string | undefined;
  /** Where the policies are inside the repository (`storage.git.subDir`, default its root). */
  subDir: string;
  /** Parent of the per-process clone (`storage.git.checkoutDir`; default the OS temporary directory). */
  checkoutDir: string | undefined;
  /** How often the branch is fetched (`storage.git.updatePollInterval`, default 10s; 0: never). */
  updatePollIntervalMs: number;
  /** Longest one git command may take (`storage.git.operationTimeout`, default 60s). */
  operationTimeoutMs: number;
}

/**
 * `audit.*`: the decision log (off unless `audit.enabled: true`, like the Cerbos PDP's audit log).
 */
export interface AuditConfig {
  enabled: boolean;
  /** `postgres` (Warden's own database, the default), `ndjson` (a file, or `-` for stdout) or `nats` (JetStream). */
  sink: 'postgres' | 'ndjson' | 'nats';
  /** The NDJSON file (`audit.path`, default `<dataDir>/audit.ndjson`), or `-` for stdout. */
  path: string;
  /** Where refused batches are spilled for replay (`audit.spillDir`, default the data directory). */
  spillDir: string;
  /**
   * The spill file: `<spillDir>/audit.spill.ndjson`, or `audit.spill.w<slot>.ndjson` in a worker
   * of several (`WARDEN_WORKER_SLOT`, set by the primary; a restarted worker takes its slot over).
   */
  spillPath: string;
  /** `best-effort` (default): never waits; `strict`: a check is answered only once its entry is durable, else 503. */
  mode: 'best-effort' | 'strict';
  /** Extra input paths whose values are masked (credentials always are). */
  maskPaths: string[];
  /** Postgres sink: rows older than this many days are deleted (default 90). */
  retentionDays: number;
  /** `audit.nats.*`, for `sink: nats`. */
  nats: { url: string; subject: string; stream: string; duplicateWindowMs: number } | undefined;
  /**
   * `audit.thread`: `worker` (default) runs the writer (its queue, the sink and the spill file) in a
   * worker thread of each serving process; `main` runs it in the thread that answers. The embedded
   * PGlite database and stdout (`path: -`) always take `main`.
   */
  thread: 'worker' | 'main';
  /**
   * `audit.maxQueue`: entries a serving process's writer holds in memory for the sink before it
   * spills them all to the spill file (default 20,000; the queue is bounded, the spill file too
   * by the disk). When the spill file fails as well, the oldest beyond it are dropped.
   */
  maxQueue: number;
}

/**
 * `tracing.*`: OpenTelemetry spans for each decision (adapter, enrichment and each resolver,
 * evaluation, audit), exported over OTLP/HTTP. Off unless `tracing.enabled: true`.
 */
export interface TracingConfig {
  enabled: boolean;
  /** `otlp-http` (default): OTLP/HTTP JSON to `endpoint`; `console`: spans on stdout; `none`: spans made (ids in logs) but not exported. */
  exporter: 'otlp-http' | 'console' | 'none';
  /** The OTLP/HTTP traces URL (default `http://127.0.0.1:4318/v1/traces`; `OTEL_EXPORTER_OTLP_*ENDPOINT` override it). */
  endpoint: string;
  /** `service.name` of the spans (default `warden`; `OTEL_SERVICE_NAME` overrides it). */
  serviceName: string;
  /** Share of traces started here (no sampled caller) that are recorded, 0..1 (default 1). */
  sampleRatio: number;
  /** Sent with every export. SECURITY: may hold secrets (a vendor's API key); never logged. */
  headers: Record<string, string>;
}

/** `forwardAuth.*`: the headers naming the acting agent and carrying a delegation token (lower case). */
export interface ForwardAuthConfig {
  /** Default `x-warden-agent`. */
  agentHeader: string;
  /** Default `x-warden-delegation`. */
  delegationHeader: string;
}

/** Warden's own database: `DATABASE_URL`, or the embedded PGlite when unset. */
export interface DatabaseConfig {
  /** SECURITY: may hold a password; never logged. */
  url: string | undefined;
  /** Where the embedded PGlite keeps its files (`database.dataDir`); unset: in memory. */
  dataDir: string | undefined;
  /** SQL files run at every start (`database.seedFiles`), for demo data; must be idempotent. */
  seedFiles: string[];
}

/** A trusted gateway (`gateways[]`): may state the subject and agent directly. */
export interface GatewayConfig {
  name: string;
  /** SECURITY: a secret; compared in constant time, never logged. */
  apiKey: string;
}

/** `admin.*`: who may call `/v1/admin`. */
export interface AdminConfig {
  /** A static admin credential (`admin.bootstrapToken`). SECURITY: a secret. */
  bootstrapToken: string | undefined;
  /** Admin tokens from an IdP: a `jwt` resolver config (without name, key or provides). */
  jwt: AdminJwtConfig | undefined;
}

/** `admin.jwt`: verifies IdP tokens for the admin API. */
export interface AdminJwtConfig {
  /** Fields of a `jwt` resolver (datasource, audience, algorithms, ...). */
  resolver: Record<string, unknown>;
  /** Claim holding the caller's roles (default `roles`). */
  rolesClaim: string;
}

/** `delegation.*`: minting and verifying delegation tokens, and revocation freshness. */
export interface DelegationConfig {
  /** `iss` of Warden's delegation tokens (default `urn:warden:delegation`; the same on every replica). */
  issuer: string;
  /** Private signing keys (`delegation.keys` or `delegation.keysFile`, a JWK set); unset: shared keys in the database. SECURITY: secrets. */
  keys: Array<Record<string, unknown>> | undefined;
  /** The key that signs (default: the last one). */
  activeKid: string | undefined;
  /** Algorithm of a key created when none is configured. */
  algorithm: 'ES256' | 'EdDSA';
  /** The deepest chain allowed for any action (`delegation.maxDepth`, default 5). */
  maxDepth: number;
  /** Lower limits for some actions (`delegation.maxDepthByAction`). */
  maxDepthByAction: Record<string, number>;
  /** Longest lifetime of a minted delegation (`delegation.maxTtl`, default 1h). */
  maxTtlSeconds: number;
  /** Actions denied while the revocation state cannot be confirmed fresh. */
  highCapabilityActions: string[];
  /** How often every instance reads new revocations from the database (default 1s). */
  revocationPollMs: number;
  /** How old the last confirmed revocation state may be before high-capability actions are denied (default 5s). */
  revocationMaxStalenessMs: number;
  /** Issuers whose RFC 8693 tokens are accepted as evidence of who acts (`delegation.externalIssuers`). */
  externalIssuers: ExternalIssuerConfig[];
}

/** One trusted issuer of RFC 8693 actor tokens. */
export interface ExternalIssuerConfig {
  issuer: string;
  /** Where its signing keys are published (http or https). */
  jwksUri: string;
  audience: string | undefined;
  algorithms: string[];
}

/** `mcp.*`: the MCP proxy (`/mcp`) and its OAuth protected-resource rules. */
export interface McpConfig {
  /** This resource server's URL (`mcp.resource`): the audience tokens must be issued for; default `http://<listen address>/mcp`. */
  resource: string | undefined;
  /** Authorization servers named in the protected-resource metadata. */
  authorizationServers: string[];
  /** Scopes a token must carry (`403 insufficient_scope` otherwise); needs `mcp.token`. */
  requiredScopes: string[];
  /** Bearer tokens verified as JWTs: the fields of a `jwt` resolver (its audience is `resource`). */
  token: Record<string, unknown> | undefined;
  /** The upstream MCP servers, by name. */
  upstreams: McpUpstreamConfig[];
}

/** One upstream MCP server (Streamable HTTP). */
export interface McpUpstreamConfig {
  name: string;
  url: string;
  /** Sent to the upstream with every request. SECURITY: may hold secrets. */
  headers: Record<string, string>;
}
