/**
 * Loads and validates the broker configuration once at boot: an optional YAML file
 * (`WARDEN_CONFIG`, default `./warden.yaml` when present) with Cerbos-named keys, overridden by
 * `WARDEN_*` environment variables. Every problem names the offending key; unknown keys are
 * rejected so a typo never silently falls back to a default.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { MAX_QUEUE } from '@warden/audit';
import { WardenError, type JsonValue } from '@warden/core';
import type { EngineConfig, SchemaEnforcement } from '@warden/decision';
import { parseDurationMs, type DatasourceConfig } from '@warden/resolvers';
import type {
  AdminConfig,
  AuditConfig,
  AuxDataConfig,
  BrokerConfig,
  DatabaseConfig,
  DelegationConfig,
  ExternalIssuerConfig,
  GatewayConfig,
  JwtKeySetConfig,
  McpConfig,
  RequestLimitsConfig,
  ForwardAuthConfig,
  PolicyStorageConfig,
} from './broker-config.js';
import { readBudgets } from './read-budgets.js';
import { readTracing } from './read-tracing.js';
import { DEFAULT_V8_INTERRUPT_BUDGET } from '../v8-tiering.js';

/** Inputs of {@link loadBrokerConfig}; defaults are the process's own. */
export interface LoadBrokerConfigOptions {
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
}

const DEFAULT_HTTP_ADDR = '127.0.0.1:3594';
const DEFAULT_GRPC_ADDR = '127.0.0.1:3595';
const DEFAULT_POLICY_DIR = './policies';
const DEFAULT_CONFIG_FILE = 'warden.yaml';
const SCHEMA_ENFORCEMENTS: readonly SchemaEnforcement[] = ['none', 'warn', 'reject'];

type Obj = Record<string, unknown>;

function invalid(key: string, message: string): WardenError {
  return new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`${key}\`: ${message}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An optional mapping at `key`; rejects keys outside `allowed`. */
function section(parent: Obj, name: string, prefix: string, allowed: readonly string[]): Obj {
  const key = prefix === '' ? name : `${prefix}.${name}`;
  const v = parent[name];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw invalid(key, 'must be a mapping');
  rejectUnknown(v, key, allowed);
  return v;
}

function rejectUnknown(obj: Obj, prefix: string, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw invalid(prefix === '' ? k : `${prefix}.${k}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
}

function optString(obj: Obj, name: string, key: string): string | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(key, 'must be a string');
  return v;
}

function optBool(obj: Obj, name: string, key: string): boolean | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(key, 'must be true or false');
  return v;
}

function positiveInt(raw: unknown, key: string): number {
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw invalid(key, `must be a positive integer, got \`${String(raw)}\``);
  }
  return n;
}

/** `WARDEN_V8_INTERRUPT_BUDGET`: 0 (V8's own) or 1,000 to 10,000,000 bytes of bytecode. */
function v8Budget(raw: string): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (n === 0 || (Number.isSafeInteger(n) && n >= 1_000 && n <= 10_000_000)) return n;
  throw invalid('WARDEN_V8_INTERRUPT_BUDGET', `must be 0 (V8's own) or an integer from 1000 to 10000000, got \`${raw}\``);
}

/** Parses `host:port` (IPv6 as `[::1]:port`). Port 0 asks the OS for a free port. */
export function parseListenAddr(raw: string, key: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw invalid(key, `must be host:port, got \`${raw}\``);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

/** Cerbos durations as used by `acceptableTimeSkew` (`10s`, `1m`, `500ms`, `1h`). */
function parseDurationSeconds(raw: string, key: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw.trim());
  if (!m) throw invalid(key, `must be a duration such as \`10s\`, got \`${raw}\``);
  const n = Number(m[1]);
  const unit = m[2];
  return unit === 'ms' ? n / 1000 : unit === 's' ? n : unit === 'm' ? n * 60 : n * 3600;
}

function toJson(v: unknown, key: string): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw invalid(key, 'numbers must be finite');
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toJson(x, `${key}[${i}]`));
  if (isObj(v)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJson(x, `${key}.${k}`);
    return out;
  }
  throw invalid(key, 'must be plain YAML data (no dates or binary values)');
}

function readEngine(root: Obj): EngineConfig {
  const e = section(root, 'engine', '', [
    'globals',
    'defaultPolicyVersion',
    'defaultScope',
    'lenientScopeSearch',
    'strictEvaluation',
  ]);
  const s = section(root, 'schema', '', ['enforcement']);
  const globalsRaw = e['globals'];
  let globals: Record<string, JsonValue> = {};
  if (globalsRaw !== undefined && globalsRaw !== null) {
    if (!isObj(globalsRaw)) throw invalid('engine.globals', 'must be a mapping');
    globals = toJson(globalsRaw, 'engine.globals') as Record<string, JsonValue>;
  }
  const defaultPolicyVersion = optString(e, 'defaultPolicyVersion', 'engine.defaultPolicyVersion') ?? 'default';
  if (!/^\w+$/.test(defaultPolicyVersion)) {
    throw invalid('engine.defaultPolicyVersion', `must match ^\\w+$, got \`${defaultPolicyVersion}\``);
  }
  const defaultScope = optString(e, 'defaultScope', 'engine.defaultScope') ?? '';
  if (defaultScope !== '' && !/^[0-9a-zA-Z][\w-]*(\.\w[\w-]*)*$/.test(defaultScope)) {
    throw invalid('engine.defaultScope', `is not a valid scope: \`${defaultScope}\``);
  }
  const enforcement = optString(s, 'enforcement', 'schema.enforcement') ?? 'none';
  if (!(SCHEMA_ENFORCEMENTS as readonly string[]).includes(enforcement)) {
    throw invalid('schema.enforcement', `must be one of none, warn, reject; got \`${enforcement}\``);
  }
  return {
    globals,
    defaultPolicyVersion,
    defaultScope,
    lenientScopeSearch: optBool(e, 'lenientScopeSearch', 'engine.lenientScopeSearch') ?? false,
    strictEvaluation: optBool(e, 'strictEvaluation', 'engine.strictEvaluation') ?? false,
    schemaEnforcement: enforcement as SchemaEnforcement,
  };
}

function readAuxData(root: Obj, cwd: string): AuxDataConfig {
  const aux = section(root, 'auxData', '', ['jwt']);
  const jwt = section(aux, 'jwt', 'auxData', ['keySets', 'disableVerification', 'acceptableTimeSkew', 'cacheSize']);
  const skewRaw = optString(jwt, 'acceptableTimeSkew', 'auxData.jwt.acceptableTimeSkew');
  if (jwt['cacheSize'] !== undefined && jwt['cacheSize'] !== null) positiveInt(jwt['cacheSize'], 'auxData.jwt.cacheSize');
  const keySetsRaw = jwt['keySets'];
  const keySets: JwtKeySetConfig[] = [];
  if (keySetsRaw !== undefined && keySetsRaw !== null) {
    if (!Array.isArray(keySetsRaw)) throw invalid('auxData.jwt.keySets', 'must be a list');
    const seen = new Set<string>();
    keySetsRaw.forEach((raw: unknown, i) => {
      const key = `auxData.jwt.keySets[${i}]`;
      if (!isObj(raw)) throw invalid(key, 'must be a mapping');
      rejectUnknown(raw, key, ['id', 'local', 'remote']);
      const id = optString(raw, 'id', `${key}.id`);
      if (id === undefined || id === '') throw invalid(`${key}.id`, 'is required');
      if (seen.has(id)) throw invalid(`${key}.id`, `duplicate key set id \`${id}\``);
      seen.add(id);
      if (raw['remote'] !== undefined) throw invalid(`${key}.remote`, 'remote key sets are not supported; use `local`');
      const local = section(raw, 'local', key, ['file', 'data', 'pem']);
      const file = optString(local, 'file', `${key}.local.file`);
      const data = optString(local, 'data', `${key}.local.data`);
      if ((file === undefined) === (data === undefined)) {
        throw invalid(`${key}.local`, 'exactly one of `file` or `data` is required');
      }
      const pem = optBool(local, 'pem', `${key}.local.pem`) ?? false;
      if (file !== undefined && !existsSync(resolve(cwd, file))) {
        throw invalid(`${key}.local.file`, `file not found: \`${file}\``);
      }
      keySets.push({ id, local: { ...(file !== undefined ? { file: resolve(cwd, file) } : { data }), pem } });
    });
  }
  return {
    keySets,
    disableVerification: optBool(jwt, 'disableVerification', 'auxData.jwt.disableVerification') ?? false,
    acceptableTimeSkewSeconds: skewRaw === undefined ? 0 : parseDurationSeconds(skewRaw, 'auxData.jwt.acceptableTimeSkew'),
  };
}

function readLimits(server: Obj): RequestLimitsConfig {
  const limits = section(server, 'requestLimits', 'server', ['maxResourcesPerRequest', 'maxActionsPerResource']);
  const get = (name: string): number => {
    const v = limits[name];
    return v === undefined || v === null ? 50 : positiveInt(v, `server.requestLimits.${name}`);
  };
  return { maxResourcesPerRequest: get('maxResourcesPerRequest'), maxActionsPerResource: get('maxActionsPerResource') };
}

type Env = Readonly<Record<string, string | undefined>>;
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Fills `${NAME}` placeholders from `env`; a missing variable is named (its value never is). */
function fillPlaceholders(v: unknown, key: string, env: Env): unknown {
  if (typeof v === 'string') {
    return v.replace(PLACEHOLDER, (_m, name: string) => {
      const value = env[name];
      if (value === undefined) throw invalid(key, `environment variable \`${name}\` is not set`);
      return value;
    });
  }
  if (Array.isArray(v)) return v.map((x, i) => fillPlaceholders(x, `${key}[${i}]`, env));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillPlaceholders(x, `${key}.${k}`, env)]));
  return v;
}

const NAME = /^[a-z0-9][a-z0-9_.:-]{0,62}$/i;

function readDatasources(root: Obj, env: Env): Record<string, DatasourceConfig> {
  const raw = root['datasources'];
  if (raw === undefined || raw === null) return {};
  if (!isObj(raw)) throw invalid('datasources', 'must be a mapping of name to datasource');
  const out: Record<string, DatasourceConfig> = {};
  for (const [name, ds] of Object.entries(raw)) {
    const key = `datasources.${name}`;
    if (!NAME.test(name)) throw invalid(key, 'a datasource name is 1-63 letters, digits or `_.:-`');
    if (!isObj(ds) || typeof ds['kind'] !== 'string') throw invalid(key, 'must be a mapping with a `kind`');
    out[name] = fillPlaceholders(ds, key, env) as DatasourceConfig;
  }
  return out;
}

function readResolvers(root: Obj): { resolvers: unknown[]; catalogs: unknown[] } {
  const raw = root['resolvers'];
  if (raw === undefined || raw === null) return { resolvers: [], catalogs: [] };
  if (!Array.isArray(raw)) throw invalid('resolvers', 'must be a list of resolvers');
  const all = raw.map((r, i) => toJson(r, `resolvers[${i}]`));
  // Catalogs list candidates for tool discovery; they take no part in the enrichment DAG.
  const isCatalog = (r: unknown): boolean => isObj(r) && r['kind'] === 'catalog';
  return { resolvers: all.filter((r) => !isCatalog(r)), catalogs: all.filter(isCatalog) };
}

function readMcp(root: Obj, env: Env): McpConfig | undefined {
  if (root['mcp'] === undefined || root['mcp'] === null) return undefined;
  const m = section(root, 'mcp', '', ['resource', 'authorizationServers', 'requiredScopes', 'token', 'upstreams']);
  const url = (v: string, key: string): string => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw invalid(key, `must be an http(s) URL, got \`${v}\``);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(key, `must be an http(s) URL, got \`${v}\``);
    if (u.username !== '' || u.password !== '') throw invalid(key, 'must not carry credentials (use `headers`)');
    // As written: issuer and resource identifiers are compared as strings (no trailing `/` added).
    return v;
  };
  const resourceRaw = optString(m, 'resource', 'mcp.resource');
  const resource = resourceRaw === undefined ? undefined : url(resourceRaw, 'mcp.resource');
  const authorizationServers = nameList(m, 'authorizationServers', 'mcp.authorizationServers').map((a, i) => url(a, `mcp.authorizationServers[${i}]`));
  const requiredScopes = nameList(m, 'requiredScopes', 'mcp.requiredScopes');
  const tokenRaw = m['token'];
  let token: Record<string, unknown> | undefined;
  if (tokenRaw !== undefined && tokenRaw !== null) {
    if (!isObj(tokenRaw)) throw invalid('mcp.token', 'must be a mapping (the fields of a `jwt` resolver)');
    for (const k of ['name', 'kind', 'key', 'provides', 'audience']) if (k in tokenRaw) throw invalid(`mcp.token.${k}`, k === 'audience' ? 'is `mcp.resource`: tokens must be issued for this resource' : 'is set by Warden');
    token = tokenRaw;
  }
  if (requiredScopes.length > 0 && token === undefined) throw invalid('mcp.requiredScopes', 'needs `mcp.token` (scopes are read from verified token claims)');
  if (token !== undefined && resource === undefined) throw invalid('mcp.resource', 'is required with `mcp.token` (the audience tokens must be issued for)');
  const upRaw = m['upstreams'];
  const upstreams: McpConfig['upstreams'] = [];
  if (upRaw !== undefined && upRaw !== null) {
    if (!isObj(upRaw)) throw invalid('mcp.upstreams', 'must be a mapping of name to `{ url, headers }`');
    for (const [name, u] of Object.entries(upRaw)) {
      const key = `mcp.upstreams.${name}`;
      // Tools are exposed as `<upstream>.<tool>`: no dot (nor slash) in an upstream name.
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(name)) throw invalid(key, 'an upstream name is 1-63 letters, digits, `_` or `-`');
      if (!isObj(u)) throw invalid(key, 'must be a mapping with `url`');
      rejectUnknown(u, key, ['url', 'headers']);
      const raw = optString(u, 'url', `${key}.url`);
      if (raw === undefined) throw invalid(`${key}.url`, 'is required');
      const headers: Record<string, string> = {};
      const h = u['headers'];
      if (h !== undefined && h !== null) {
        if (!isObj(h)) throw invalid(`${key}.headers`, 'must be a mapping of header name to value');
        for (const [hn, hv] of Object.entries(h)) {
          if (typeof hv !== 'string') throw invalid(`${key}.headers.${hn}`, 'must be a string');
          const filled = fillPlaceholders(hv, `${key}.headers.${hn}`, env) as string;
          if (/[\r\n\0]/.test(filled)) throw invalid(`${key}.headers.${hn}`, 'contains a line break');
          headers[hn] = filled;
        }
      }
      upstreams.push({ name, url: url(fillPlaceholders(raw, `${key}.url`, env) as string, `${key}.url`), headers });
    }
  }
  return { resource, authorizationServers, requiredScopes, token, upstreams };
}

function readGateways(root: Obj, env: Env): GatewayConfig[] {
  const raw = root['gateways'];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('gateways', 'must be a list');
  const names = new Set<string>();
  return raw.map((g: unknown, i) => {
    const key = `gateways[${i}]`;
    if (!isObj(g)) throw invalid(key, 'must be a mapping with `name` and `apiKey`');
    rejectUnknown(g, key, ['name', 'apiKey']);
    const name = optString(g, 'name', `${key}.name`);
    if (name === undefined || !NAME.test(name)) throw invalid(`${key}.name`, 'is required (1-63 letters, digits or `_.:-`)');
    if (names.has(name)) throw invalid(`${key}.name`, `duplicate gateway \`${name}\``);
    names.add(name);
    const apiKey = fillPlaceholders(optString(g, 'apiKey', `${key}.apiKey`), `${key}.apiKey`, env);
    if (typeof apiKey !== 'string' || apiKey.length < 16) throw invalid(`${key}.apiKey`, 'is required and must be at least 16 characters');
    return { name, apiKey };
  });
}

function readAdmin(root: Obj, env: Env): AdminConfig {
  const admin = section(root, 'admin', '', ['bootstrapToken', 'jwt']);
  const envToken = env['WARDEN_ADMIN_TOKEN'];
  const fromEnv = envToken !== undefined && envToken !== '';
  const token = fromEnv ? envToken : fillPlaceholders(optString(admin, 'bootstrapToken', 'admin.bootstrapToken'), 'admin.bootstrapToken', env);
  if (token !== undefined && (typeof token !== 'string' || token.length < 16)) {
    throw invalid(fromEnv ? 'WARDEN_ADMIN_TOKEN' : 'admin.bootstrapToken', 'must be at least 16 characters');
  }
  const jwtRaw = admin['jwt'];
  let jwt: AdminConfig['jwt'];
  if (jwtRaw !== undefined && jwtRaw !== null) {
    if (!isObj(jwtRaw)) throw invalid('admin.jwt', 'must be a mapping (the fields of a `jwt` resolver)');
    const { rolesClaim, ...resolver } = jwtRaw;
    if (rolesClaim !== undefined && typeof rolesClaim !== 'string') throw invalid('admin.jwt.rolesClaim', 'must be a string');
    jwt = { resolver, rolesClaim: rolesClaim ?? 'roles' };
  }
  return { bootstrapToken: token as string | undefined, jwt };
}

function duration(obj: Obj, name: string, key: string, fallbackMs: number): number {
  const raw = optString(obj, name, key);
  if (raw === undefined) return fallbackMs;
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0) throw invalid(key, `must be a positive duration such as \`500ms\`, \`5s\` or \`1h\`, got \`${raw}\``);
  return ms;
}

function nameList(obj: Obj, name: string, key: string): string[] {
  const v = obj[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) throw invalid(key, 'must be a list of names');
  return v as string[];
}

/** `iss` of delegation tokens when `delegation.issuer` is not set. */
export const DEFAULT_DELEGATION_ISSUER = 'urn:warden:delegation';

function readDelegation(root: Obj, env: Env, cwd: string): DelegationConfig {
  const d = section(root, 'delegation', '', ['issuer', 'keys', 'keysFile', 'activeKid', 'algorithm', 'maxDepth', 'maxDepthByAction', 'maxTtl', 'highCapabilityActions', 'revocationPoll', 'revocationMaxStaleness', 'externalIssuers']);
  // Not derived from the listen address: every replica must mint and accept the same issuer.
  const issuer = optString(d, 'issuer', 'delegation.issuer') ?? DEFAULT_DELEGATION_ISSUER;
  let keys: DelegationConfig['keys'];
  const keysFile = optString(d, 'keysFile', 'delegation.keysFile');
  const rawKeys = keysFile !== undefined ? readJson(resolve(cwd, keysFile), 'delegation.keysFile') : typeof d['keys'] === 'string' ? parseJson(fillPlaceholders(d['keys'], 'delegation.keys', env) as string, 'delegation.keys') : d['keys'];
  if (rawKeys !== undefined && rawKeys !== null) {
    const list = isObj(rawKeys) && Array.isArray(rawKeys['keys']) ? rawKeys['keys'] : rawKeys;
    if (!Array.isArray(list) || list.length === 0 || !list.every(isObj)) throw invalid(keysFile !== undefined ? 'delegation.keysFile' : 'delegation.keys', 'must be a non-empty list (or JWK set) of private JWKs');
    keys = list as Array<Record<string, unknown>>;
  }
  const algorithm = optString(d, 'algorithm', 'delegation.algorithm') ?? 'ES256';
  if (algorithm !== 'ES256' && algorithm !== 'EdDSA') throw invalid('delegation.algorithm', 'must be ES256 or EdDSA');
  const byAction = d['maxDepthByAction'];
  const maxDepthByAction: Record<string, number> = {};
  if (byAction !== undefined && byAction !== null) {
    if (!isObj(byAction)) throw invalid('delegation.maxDepthByAction', 'must be a mapping of action to depth');
    for (const [a, n] of Object.entries(byAction)) maxDepthByAction[a] = positiveInt(n, `delegation.maxDepthByAction.${a}`);
  }
  return {
    issuer,
    keys,
    activeKid: optString(d, 'activeKid', 'delegation.activeKid'),
    algorithm,
    maxDepth: d['maxDepth'] === undefined || d['maxDepth'] === null ? 5 : positiveInt(d['maxDepth'], 'delegation.maxDepth'),
    maxDepthByAction,
    maxTtlSeconds: Math.max(1, Math.floor(duration(d, 'maxTtl', 'delegation.maxTtl', 3_600_000) / 1000)),
    highCapabilityActions: nameList(d, 'highCapabilityActions', 'delegation.highCapabilityActions'),
    revocationPollMs: duration(d, 'revocationPoll', 'delegation.revocationPoll', 1000),
    revocationMaxStalenessMs: duration(d, 'revocationMaxStaleness', 'delegation.revocationMaxStaleness', 5000),
    externalIssuers: readExternalIssuers(d['externalIssuers']),
  };
}

const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

function readExternalIssuers(raw: unknown): ExternalIssuerConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('delegation.externalIssuers', 'must be a list of `{ issuer, jwksUri }`');
  return raw.map((e, i) => {
    const key = `delegation.externalIssuers[${i}]`;
    if (!isObj(e)) throw invalid(key, 'must be a mapping with `issuer` and `jwksUri`');
    rejectUnknown(e, key, ['issuer', 'jwksUri', 'audience', 'algorithms']);
    const issuer = optString(e, 'issuer', `${key}.issuer`);
    if (issuer === undefined || issuer === '') throw invalid(`${key}.issuer`, 'is required');
    const jwksUri = optString(e, 'jwksUri', `${key}.jwksUri`);
    if (jwksUri === undefined || !/^https?:\/\/[^\s]+$/.test(jwksUri)) throw invalid(`${key}.jwksUri`, 'must be an http(s) URL');
    const algorithms = e['algorithms'] === undefined ? ['RS256', 'ES256'] : nameList(e, 'algorithms', `${key}.algorithms`);
    for (const a of algorithms) if (!ASYMMETRIC_ALGS.includes(a)) throw invalid(`${key}.algorithms`, `\`${a}\` is not an asymmetric JWS algorithm`);
    return { issuer, jwksUri, audience: optString(e, 'audience', `${key}.audience`), algorithms };
  });
}

function parseJson(text: string, key: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid(key, 'is not valid JSON');
  }
}

function readJson(path: string, key: string): unknown {
  if (!existsSync(path)) throw invalid(key, `file not found: \`${path}\``);
  return parseJson(readFileSync(path, 'utf8'), key);
}

function readDatabase(root: Obj, env: Env, cwd: string): DatabaseConfig {
  const db = section(root, 'database', '', ['url', 'dataDir', 'seedFiles']);
  const envUrl = env['DATABASE_URL'];
  const fileUrl = fillPlaceholders(optString(db, 'url', 'database.url'), 'database.url', env) as string | undefined;
  const url = envUrl !== undefined && envUrl !== '' ? envUrl : fileUrl === '' ? undefined : fileUrl;
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) throw invalid(envUrl ? 'DATABASE_URL' : 'database.url', 'must be a postgres:// URL');
  const envDataDir = env['WARDEN_DATA_DIR'];
  const dataDir = envDataDir !== undefined && envDataDir !== '' ? envDataDir : optString(db, 'dataDir', 'database.dataDir');
  const seedRaw = db['seedFiles'];
  const seedFiles: string[] = [];
  if (seedRaw !== undefined && seedRaw !== null) {
    if (!Array.isArray(seedRaw) || !seedRaw.every((f) => typeof f === 'string')) throw invalid('database.seedFiles', 'must be a list of paths');
    for (const [i, f] of (seedRaw as string[]).entries()) {
      const path = resolve(cwd, f);
      if (!existsSync(path)) throw invalid(`database.seedFiles[${i}]`, `file not found: \`${f}\``);
      seedFiles.push(path);
    }
  }
  return { url, dataDir: dataDir === undefined ? undefined : resolve(cwd, dataDir), seedFiles };
}

const STORAGE_DRIVERS = ['disk', 'git'] as const;
const GIT_PROTOCOLS = ['https', 'ssh', 'file'] as const;
/** `storage.disk.watchDebounce` default: a burst of editor or `git checkout` events becomes one reload. */
const DEFAULT_WATCH_DEBOUNCE_MS = 200;
/** `storage.disk.pollInterval` default: the fallback for changes `fs.watch` does not report. */
const DEFAULT_DISK_POLL_MS = 1000;
/** `storage.git.updatePollInterval` default (Cerbos: 0, no polling; Warden follows the branch). */
const DEFAULT_GIT_POLL_MS = 10_000;
/** Shortest poll interval accepted: anything faster only burns CPU (and a git server's patience). */
const MIN_POLL_MS = 100;

/** A duration that may be `0` (off); otherwise at least {@link MIN_POLL_MS}. */
function pollInterval(obj: Obj, name: string, key: string, fallbackMs: number): number {
  const raw = obj[name];
  if (raw === undefined || raw === null) return fallbackMs;
  const ms = typeof raw === 'string' ? parseDurationMs(raw) : raw === 0 ? 0 : undefined;
  if (ms === undefined) throw invalid(key, `must be a duration such as \`1s\` (\`0s\`: off), got \`${String(raw)}\``);
  if (ms !== 0 && ms < MIN_POLL_MS) throw invalid(key, `must be \`0s\` (off) or at least ${MIN_POLL_MS}ms, got \`${String(raw)}\``);
  return ms;
}

/** How git reads `url`: a URL with a scheme, scp-like `[user@]host:path` (ssh), or a local path. */
function gitUrlKind(url: string): 'scheme' | 'scp' | 'path' {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return 'scheme';
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  return colon > 0 && (slash === -1 || colon < slash) ? 'scp' : 'path';
}

/**
 * `storage.*` with Cerbos's names: `driver: disk` (default) with `disk.directory` (or
 * `WARDEN_POLICY_DIR`) and `disk.watchForChanges` (default true, as in Cerbos's default
 * configuration), or `driver: git` with `git.url`, `branch`, `subDir`, `checkoutDir`,
 * `updatePollInterval` and `operationTimeout`. Warden's additions: `disk.watchDebounce` and
 * `disk.pollInterval`. Git credentials are git's own (credential helper, SSH agent), never config.
 */
function readStorage(root: Obj, env: Env, cwd: string): PolicyStorageConfig {
  const storage = section(root, 'storage', '', ['driver', 'disk', 'git']);
  const driver = optString(storage, 'driver', 'storage.driver') ?? 'disk';
  if (!(STORAGE_DRIVERS as readonly string[]).includes(driver)) throw invalid('storage.driver', `must be one of ${STORAGE_DRIVERS.join(', ')}, got \`${driver}\``);
  const envDir = env['WARDEN_POLICY_DIR'] === '' ? undefined : env['WARDEN_POLICY_DIR'];
  if (driver === 'disk') {
    if (storage['git'] !== undefined && storage['git'] !== null) throw invalid('storage.git', 'only applies with `storage.driver: git`');
    const disk = section(storage, 'disk', 'storage', ['directory', 'watchForChanges', 'watchDebounce', 'pollInterval']);
    const directory = resolve(cwd, envDir ?? (optString(disk, 'directory', 'storage.disk.directory') ?? DEFAULT_POLICY_DIR));
    return {
      driver: 'disk',
      directory,
      watchForChanges: optBool(disk, 'watchForChanges', 'storage.disk.watchForChanges') ?? true,
      watchDebounceMs: duration(disk, 'watchDebounce', 'storage.disk.watchDebounce', DEFAULT_WATCH_DEBOUNCE_MS),
      pollIntervalMs: pollInterval(disk, 'pollInterval', 'storage.disk.pollInterval', DEFAULT_DISK_POLL_MS),
    };
  }
  if (envDir !== undefined) throw invalid('WARDEN_POLICY_DIR', 'applies to `storage.driver: disk`; with `git` the policies come from `storage.git`');
  if (storage['disk'] !== undefined && storage['disk'] !== null) throw invalid('storage.disk', 'only applies with `storage.driver: disk`');
  const git = section(storage, 'git', 'storage', ['protocol', 'url', 'branch', 'subDir', 'checkoutDir', 'updatePollInterval', 'operationTimeout', 'https', 'ssh']);
  for (const k of ['https', 'ssh']) {
    if (git[k] !== undefined) throw invalid(`storage.git.${k}`, 'credentials are not read from the configuration: configure them for the `git` command (a credential helper for https, an SSH agent or `GIT_SSH_COMMAND` for ssh)');
  }
  const rawUrl = optString(git, 'url', 'storage.git.url');
  if (rawUrl === undefined || rawUrl.trim() === '') throw invalid('storage.git.url', 'is required with `storage.driver: git`');
  // SECURITY: never an option to git (the URL is also passed after `--`), never several lines.
  if (rawUrl.startsWith('-') || /\s/.test(rawUrl)) throw invalid('storage.git.url', 'must be a repository URL or path without spaces, not starting with `-`');
  const kind = gitUrlKind(rawUrl);
  const url = kind === 'path' ? resolve(cwd, rawUrl) : rawUrl;
  const protocol = optString(git, 'protocol', 'storage.git.protocol');
  if (protocol !== undefined) {
    if (!(GIT_PROTOCOLS as readonly string[]).includes(protocol)) throw invalid('storage.git.protocol', `must be one of ${GIT_PROTOCOLS.join(', ')}, got \`${protocol}\``);
    const fits = protocol === 'https' ? /^https?:\/\//i.test(url) : protocol === 'ssh' ? kind === 'scp' || /^ssh:\/\//i.test(url) : kind === 'path' || /^file:\/\//i.test(url);
    if (!fits) throw invalid('storage.git.protocol', `\`${protocol}\` does not match the URL in \`storage.git.url\``);
  }
  const branch = optString(git, 'branch', 'storage.git.branch');
  if (branch !== undefined && (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(branch) || branch.includes('..') || branch.endsWith('.lock') || branch.endsWith('/'))) {
    throw invalid('storage.git.branch', `is not a branch name: \`${branch}\``);
  }
  const subDir = optString(git, 'subDir', 'storage.git.subDir') ?? '';
  const parts = subDir.split('/').filter((p) => p !== '' && p !== '.');
  if (subDir.startsWith('/') || parts.includes('..')) throw invalid('storage.git.subDir', `must be a path inside the repository, got \`${subDir}\``);
  const checkoutDir = optString(git, 'checkoutDir', 'storage.git.checkoutDir');
  return {
    driver: 'git',
    url,
    branch,
    subDir: parts.join('/'),
    checkoutDir: checkoutDir === undefined ? undefined : resolve(cwd, checkoutDir),
    updatePollIntervalMs: pollInterval(git, 'updatePollInterval', 'storage.git.updatePollInterval', DEFAULT_GIT_POLL_MS),
    operationTimeoutMs: duration(git, 'operationTimeout', 'storage.git.operationTimeout', 60_000),
  };
}

function readFileConfig(path: string): Obj {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: cannot read \`${path}\``, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`${path}\` is not valid YAML: ${msg}`, {
      cause: err,
    });
  }
  if (doc === null || doc === undefined) return {};
  if (!isObj(doc)) throw new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`${path}\` must be a mapping`);
  return doc;
}

/**
 * Reads and validates the configuration. Throws `ERR_CONFIG_INVALID` naming the bad key.
 *
 * @example
 * const config = loadBrokerConfig({ env: { WARDEN_HTTP_ADDR: '127.0.0.1:0' } });
 */
export function loadBrokerConfig(options: LoadBrokerConfigOptions = {}): BrokerConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicitFile = env['WARDEN_CONFIG'];
  let configFile: string | undefined;
  if (explicitFile !== undefined && explicitFile !== '') {
    configFile = resolve(cwd, explicitFile);
    if (!existsSync(configFile)) throw invalid('WARDEN_CONFIG', `file not found: \`${explicitFile}\``);
  } else if (existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))) {
    configFile = resolve(cwd, DEFAULT_CONFIG_FILE);
  }
  const root = configFile === undefined ? {} : readFileConfig(configFile);
  rejectUnknown(root, '', ['server', 'storage', 'engine', 'schema', 'auxData', 'database', 'datasources', 'resolvers', 'gateways', 'admin', 'delegation', 'mcp', 'budgets', 'forwardAuth', 'audit', 'tracing']);

  const server = section(root, 'server', '', ['httpListenAddr', 'grpcListenAddr', 'requestLimits']);

  const envAddr = env['WARDEN_HTTP_ADDR'];
  const http =
    envAddr !== undefined && envAddr !== ''
      ? parseListenAddr(envAddr, 'WARDEN_HTTP_ADDR')
      : parseListenAddr(optString(server, 'httpListenAddr', 'server.httpListenAddr') ?? DEFAULT_HTTP_ADDR, 'server.httpListenAddr');

  const envGrpcAddr = env['WARDEN_GRPC_ADDR'];
  const grpcFromEnv = envGrpcAddr !== undefined && envGrpcAddr !== '';
  const grpcKey = grpcFromEnv ? 'WARDEN_GRPC_ADDR' : 'server.grpcListenAddr';
  const grpc = parseListenAddr(grpcFromEnv ? envGrpcAddr : (optString(server, 'grpcListenAddr', grpcKey) ?? DEFAULT_GRPC_ADDR), grpcKey);
  if (grpc.port !== 0 && grpc.port === http.port && grpc.host === http.host) {
    throw invalid(grpcKey, `must differ from the HTTP listener (both are \`${grpc.host}:${grpc.port}\`)`);
  }

  const storage = readStorage(root, env, cwd);

  const database = readDatabase(root, env, cwd);
  const envWorkers = env['WARDEN_WORKERS'];
  // The embedded PGlite lives in one process: without DATABASE_URL the broker serves from one.
  const workers =
    envWorkers !== undefined && envWorkers !== ''
      ? positiveInt(envWorkers, 'WARDEN_WORKERS')
      : database.url === undefined
        ? 1
        : availableParallelism();
  if (workers > 1 && database.url === undefined) {
    throw invalid('WARDEN_WORKERS', 'more than one worker needs `DATABASE_URL` (the embedded database lives in one process)');
  }
  const envBudget = env['WARDEN_V8_INTERRUPT_BUDGET'];
  const v8InterruptBudget = envBudget === undefined || envBudget === '' ? DEFAULT_V8_INTERRUPT_BUDGET : v8Budget(envBudget);
  const redisUrl = env['REDIS_URL'] === '' ? undefined : env['REDIS_URL'];
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) throw invalid('REDIS_URL', 'must be a redis:// URL');

  const budgets = readBudgets(root);
  // In-process budgets live in one process: several workers would each spend the whole budget.
  if (budgets.length > 0 && workers > 1 && redisUrl === undefined) throw invalid('budgets', 'more than one worker (`WARDEN_WORKERS`) needs `REDIS_URL` to share budgets');

  const { resolvers, catalogs } = readResolvers(root);
  return {
    configFile,
    http,
    grpc,
    storage,
    workers,
    v8InterruptBudget,
    engine: readEngine(root),
    auxData: readAuxData(root, cwd),
    requestLimits: readLimits(server),
    database,
    redisUrl,
    datasources: readDatasources(root, env),
    resolvers,
    catalogs,
    mcp: readMcp(root, env),
    gateways: readGateways(root, env),
    admin: readAdmin(root, env),
    delegation: readDelegation(root, env, cwd),
    budgets,
    forwardAuth: readForwardAuth(root),
    audit: readAudit(root, cwd, database, env),
    tracing: readTracing(root, env),
    env,
  };
}

const AUDIT_SINKS = ['postgres', 'ndjson', 'nats'] as const;
const AUDIT_MODES = ['best-effort', 'strict'] as const;
const AUDIT_THREADS = ['worker', 'main'] as const;
/** JetStream's own default `duplicate_window` (2 min), for a stream Warden creates. */
const NATS_DUPLICATE_WINDOW_MS = 120_000;
/** A masked path: dotted segments of names, indexes or `*`. */
const MASK_PATH = /^[A-Za-z0-9_$*-]+(\.[A-Za-z0-9_$*-]+)*$/;

function readAudit(root: Obj, cwd: string, database: DatabaseConfig, env: Env): AuditConfig {
  const s = section(root, 'audit', '', ['enabled', 'sink', 'path', 'spillDir', 'mode', 'maskPaths', 'retentionDays', 'nats', 'thread', 'maxQueue']);
  const dataDir = database.dataDir ?? resolve(cwd, 'data');
  // Containers configure by environment: WARDEN_AUDIT_SINK turns the decision log on with that sink.
  const envSink = env['WARDEN_AUDIT_SINK'] === '' ? undefined : env['WARDEN_AUDIT_SINK'];
  const sinkKey = envSink !== undefined ? 'WARDEN_AUDIT_SINK' : 'audit.sink';
  const sink = envSink ?? optString(s, 'sink', 'audit.sink') ?? 'postgres';
  if (!(AUDIT_SINKS as readonly string[]).includes(sink)) throw invalid(sinkKey, `must be one of ${AUDIT_SINKS.join(', ')}, got \`${sink}\``);
  const mode = optString(s, 'mode', 'audit.mode') ?? 'best-effort';
  if (!(AUDIT_MODES as readonly string[]).includes(mode)) throw invalid('audit.mode', `must be one of ${AUDIT_MODES.join(', ')}, got \`${mode}\``);
  const thread = optString(s, 'thread', 'audit.thread') ?? 'worker';
  if (!(AUDIT_THREADS as readonly string[]).includes(thread)) throw invalid('audit.thread', `must be one of ${AUDIT_THREADS.join(', ')}, got \`${thread}\``);
  const maskPaths = nameList(s, 'maskPaths', 'audit.maskPaths');
  for (const [i, p] of maskPaths.entries()) if (!MASK_PATH.test(p)) throw invalid(`audit.maskPaths[${i}]`, `must be a dotted path such as \`context.prompt\` or \`resources.*.attr.ssn\`, got \`${p}\``);
  const path = optString(s, 'path', 'audit.path');
  const spillDir = optString(s, 'spillDir', 'audit.spillDir');
  let nats: AuditConfig['nats'];
  if (sink === 'nats') {
    const n = section(s, 'nats', 'audit', ['url', 'subject', 'stream', 'duplicateWindow']);
    const envUrl = env['WARDEN_AUDIT_NATS_URL'] === '' ? undefined : env['WARDEN_AUDIT_NATS_URL'];
    const url = envUrl ?? optString(n, 'url', 'audit.nats.url');
    if (url === undefined || !/^(nats|tls):\/\//.test(url)) throw invalid(envUrl !== undefined ? 'WARDEN_AUDIT_NATS_URL' : 'audit.nats.url', 'must be a nats:// URL (required with `sink: nats`)');
    nats = {
      url,
      subject: optString(n, 'subject', 'audit.nats.subject') ?? 'warden.audit',
      stream: optString(n, 'stream', 'audit.nats.stream') ?? 'WARDEN_AUDIT',
      duplicateWindowMs: duration(n, 'duplicateWindow', 'audit.nats.duplicateWindow', NATS_DUPLICATE_WINDOW_MS),
    };
  } else if (s['nats'] !== undefined) {
    throw invalid('audit.nats', 'only applies with `sink: nats`');
  }
  const slot = env['WARDEN_WORKER_SLOT'];
  if (slot !== undefined && slot !== '' && !/^\d{1,4}$/.test(slot)) throw invalid('WARDEN_WORKER_SLOT', 'must be a worker number');
  const spillRoot = spillDir === undefined ? dataDir : resolve(cwd, spillDir);
  return {
    enabled: envSink !== undefined || (optBool(s, 'enabled', 'audit.enabled') ?? false),
    sink: sink as AuditConfig['sink'],
    path: path === undefined ? resolve(dataDir, 'audit.ndjson') : path === '-' ? '-' : resolve(cwd, path),
    spillDir: spillRoot,
    spillPath: resolve(spillRoot, slot === undefined || slot === '' ? 'audit.spill.ndjson' : `audit.spill.w${slot}.ndjson`),
    mode: mode as AuditConfig['mode'],
    maskPaths,
    retentionDays: s['retentionDays'] === undefined || s['retentionDays'] === null ? 90 : positiveInt(s['retentionDays'], 'audit.retentionDays'),
    nats,
    thread: thread as AuditConfig['thread'],
    maxQueue: s['maxQueue'] === undefined || s['maxQueue'] === null ? MAX_QUEUE : positiveInt(s['maxQueue'], 'audit.maxQueue'),
  };
}

/** An HTTP header name (RFC 9110 token), compared lower-cased. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
/** Headers that already mean something else to the adapters or to HTTP. */
const TAKEN_HEADERS = new Set(['authorization', 'content-type', 'content-length', 'host', 'cookie', 'x-warden-api-key', 'x-original-method', 'x-original-uri', 'x-forwarded-method', 'x-forwarded-uri', 'x-forwarded-host']);

function readForwardAuth(root: Obj): ForwardAuthConfig {
  const s = section(root, 'forwardAuth', '', ['agentHeader', 'delegationHeader']);
  const header = (name: 'agentHeader' | 'delegationHeader', fallback: string): string => {
    const v = optString(s, name, `forwardAuth.${name}`);
    if (v === undefined) return fallback;
    const lower = v.toLowerCase();
    if (!HEADER_NAME.test(lower)) throw invalid(`forwardAuth.${name}`, 'must be an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-, at most 64)');
    if (TAKEN_HEADERS.has(lower)) throw invalid(`forwardAuth.${name}`, `\`${lower}\` already has another meaning to the forward-auth adapters`);
    return lower;
  };
  const agentHeader = header('agentHeader', 'x-warden-agent');
  const delegationHeader = header('delegationHeader', 'x-warden-delegation');
  if (agentHeader === delegationHeader) throw invalid('forwardAuth.delegationHeader', 'must differ from `forwardAuth.agentHeader`');
  return { agentHeader, delegationHeader };
}
