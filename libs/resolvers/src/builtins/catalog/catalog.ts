/**
 * The `catalog` kind: a resolver that lists candidates instead of enriching them. Tool discovery
 * (`POST /v1/plan`, the MCP proxy's `tools/list`) asks a catalog for every candidate of a resource
 * kind, then enriches and decides them like checks. Three sources:
 *
 * ```yaml
 * resolvers:
 *   - name: tools                    # listed from a table: one row per candidate
 *     kind: catalog
 *     resourceKind: tool
 *     source: postgres
 *     datasource: main               # a `postgres` datasource
 *     query: "select id, risk, tenant from tools"      # no parameters; `id` is required
 *     cache: { ttl: 30s }
 *   - name: partner-tools            # from a REST endpoint answering a JSON list (or `{items: [...]}`)
 *     kind: catalog
 *     resourceKind: tool
 *     source: http
 *     datasource: partner            # an `http` datasource (its allowlist applies)
 *     path: /tools
 *   - name: github-tools             # an upstream MCP server's `tools/list` (registered under `mcp.upstreams`)
 *     kind: catalog
 *     resourceKind: mcp_tool
 *     source: mcp
 *     upstream: github
 * ```
 * Every entry becomes `{ id, attr }`: a row's or object's `id` (a non-empty string) and its other
 * fields (an object's `attr` field, when it has one, instead); an MCP tool becomes
 * `<upstream>/<tool name>` with `server`, `name`, `description` and `annotations`. Entries are
 * returned sorted by id, once each. A listing that fails, times out or answers malformed data is a
 * coded {@link ResolverError}: tool discovery then fails closed (nothing is listed).
 */
import type { JsonValue } from '@warden/core';
import type { JsonObject } from '../../attribute-path.js';
import { parseDurationMs } from '../../duration.js';
import { ResolverError, toResolverError } from '../../resolver-error.js';
import { configError, type DatasourceConfig } from '../../resolver.types.js';
import { parseHttpDatasource, type HttpEnv } from '../http/http-datasource.js';
import { requestJson } from '../http/http-request.js';
import { classifySqlFailure, type SqlReadClient } from '../postgres/sql-read-client.js';

/** One candidate of a catalog. */
export interface CatalogEntry {
  readonly id: string;
  readonly attr: JsonObject;
}

/** A source of candidates of one resource kind. */
export interface CatalogSource {
  readonly name: string;
  readonly resourceKind: string;
  /** Every candidate, sorted by id, once each. Rejects with a {@link ResolverError}. */
  list(): Promise<readonly CatalogEntry[]>;
}

/** A parsed `catalog` resolver. */
export interface CatalogConfig {
  readonly name: string;
  readonly kind: 'catalog';
  readonly resourceKind: string;
  readonly source: 'postgres' | 'http' | 'mcp';
  readonly datasource?: string;
  readonly query?: string;
  readonly path?: string;
  readonly upstream?: string;
  readonly timeoutMs: number;
  /** How long a listing is reused (0: listed on every request). */
  readonly ttlMs: number;
}

/** A tool as an MCP server lists it (the fields a catalog keeps). */
export interface McpToolListing {
  readonly name: string;
  readonly description?: string;
  readonly annotations?: Readonly<Record<string, JsonValue>>;
}

/** What the sources need from the app (it owns every connection). */
export interface CatalogDeps {
  readonly datasources: Readonly<Record<string, DatasourceConfig>>;
  /** The read client of a `postgres` datasource. */
  readonly sql?: (datasource: string, raw: DatasourceConfig) => SqlReadClient;
  /** `tools/list` of a registered upstream MCP server (every page). */
  readonly mcpTools?: (upstream: string, signal: AbortSignal) => Promise<readonly McpToolListing[]>;
  readonly env?: HttpEnv;
  /** Wall clock in ms (for the listing cache). */
  readonly now?: () => number;
}

const NAME = /^[a-z0-9][a-z0-9_.:-]{0,62}$/i;
const FIELDS = new Set(['name', 'kind', 'resourceKind', 'source', 'datasource', 'query', 'path', 'upstream', 'timeout', 'cache']);
const MAX_ENTRIES = 100_000;
const MAX_BYTES = 16 << 20;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a `catalog` resolver. Throws `ERR_RESOLVER_CONFIG_INVALID` naming the resolver and field.
 * @example parseCatalogConfig({ name: 'tools', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource: 'main', query: 'select id, risk from tools' })
 */
export function parseCatalogConfig(raw: unknown): CatalogConfig {
  if (!isRecord(raw)) throw configError('?', '(root)', 'expected a map');
  const name = typeof raw['name'] === 'string' && NAME.test(raw['name']) ? raw['name'] : undefined;
  if (name === undefined) throw configError(typeof raw['name'] === 'string' ? raw['name'] : '?', 'name', 'expected 1-63 letters, digits or `_.:-`');
  if (raw['kind'] !== 'catalog') throw configError(name, 'kind', 'expected `catalog`');
  for (const k of Object.keys(raw)) if (!FIELDS.has(k)) throw configError(name, k, 'unknown field');
  const resourceKind = raw['resourceKind'];
  if (typeof resourceKind !== 'string' || !/^[^\s]{1,256}$/.test(resourceKind)) throw configError(name, 'resourceKind', 'expected the resource kind the catalog lists (e.g. `tool`)');
  const source = raw['source'];
  if (source !== 'postgres' && source !== 'http' && source !== 'mcp') throw configError(name, 'source', 'expected `postgres`, `http` or `mcp`');
  const str = (field: string): string | undefined => {
    const v = raw[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw configError(name, field, 'expected a non-empty string');
    return v;
  };
  const datasource = str('datasource');
  const query = str('query');
  const path = str('path');
  const upstream = str('upstream');
  const needs = (field: string, v: string | undefined): void => {
    if (v === undefined) throw configError(name, field, `required for \`source: ${source}\``);
  };
  const refuse = (field: string, v: string | undefined): void => {
    if (v !== undefined) throw configError(name, field, `not used by \`source: ${source}\``);
  };
  if (source === 'postgres') {
    needs('datasource', datasource);
    needs('query', query);
    refuse('path', path);
    refuse('upstream', upstream);
    // The listing takes no parameters: a `$n` would be a query meant for a keyed resolver.
    if (/\$\d/.test(query as string)) throw configError(name, 'query', 'a catalog query takes no parameters');
  } else if (source === 'http') {
    needs('datasource', datasource);
    needs('path', path);
    refuse('query', query);
    refuse('upstream', upstream);
    if (!(path as string).startsWith('/')) throw configError(name, 'path', 'expected a path starting with `/`');
  } else {
    needs('upstream', upstream);
    refuse('datasource', datasource);
    refuse('query', query);
    refuse('path', path);
  }
  const timeout = raw['timeout'];
  const timeoutMs = timeout === undefined ? 2000 : typeof timeout === 'string' ? parseDurationMs(timeout) : undefined;
  if (timeoutMs === undefined || timeoutMs <= 0) throw configError(name, 'timeout', 'expected a duration such as `2s`');
  const cache = raw['cache'];
  let ttlMs = 0;
  if (cache !== undefined) {
    if (!isRecord(cache) || Object.keys(cache).some((k) => k !== 'ttl')) throw configError(name, 'cache', 'expected `{ ttl: <duration> }`');
    const t = typeof cache['ttl'] === 'string' ? parseDurationMs(cache['ttl']) : undefined;
    if (t === undefined) throw configError(name, 'cache.ttl', 'expected a duration such as `30s`');
    ttlMs = t;
  }
  return {
    name,
    kind: 'catalog',
    resourceKind,
    source,
    ...(datasource !== undefined ? { datasource } : {}),
    ...(query !== undefined ? { query } : {}),
    ...(path !== undefined ? { path } : {}),
    ...(upstream !== undefined ? { upstream } : {}),
    timeoutMs,
    ttlMs,
  };
}

function toJsonObject(v: Record<string, unknown>): JsonObject {
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || x === undefined) continue;
    // Dates and other driver values become their JSON form; everything else is JSON already.
    out[k] = (x instanceof Date ? x.toISOString() : typeof x === 'bigint' ? Number(x) : x) as JsonValue;
  }
  return out;
}

/** Entries from rows or objects: `id` plus the rest (or the object's `attr`), sorted, once each. */
function entriesOf(name: string, items: readonly unknown[]): CatalogEntry[] {
  if (items.length > MAX_ENTRIES) throw new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\`: the catalog lists more than ${MAX_ENTRIES} entries`);
  const byId = new Map<string, CatalogEntry>();
  for (const item of items) {
    if (!isRecord(item) || typeof item['id'] !== 'string' || item['id'] === '') {
      throw new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\`: every catalog entry needs a non-empty string \`id\``);
    }
    const { id, attr, ...rest } = item as Record<string, unknown> & { id: string };
    if (attr !== undefined && !isRecord(attr)) throw new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\`: \`attr\` of \`${id}\` is not an object`);
    if (byId.has(id)) throw new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\`: the catalog lists \`${id}\` twice`);
    byId.set(id, { id, attr: toJsonObject(attr ?? rest) });
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Runs `fn` with a signal that aborts at `timeoutMs`, and answers a timeout error at that moment. */
async function bounded<T>(name: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new ResolverError(name, 'ERR_RESOLVER_TIMEOUT', `resolver \`${name}\` timed out after ${timeoutMs}ms`);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([fn(controller.signal), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The source of a parsed catalog config, wired to the app's connections; listings are reused for
 * `cache.ttl` and concurrent listings share one call.
 * @example const tools = createCatalogSource(parseCatalogConfig(raw), { datasources, sql: (name, ds) => clients.get(name) });
 */
export function createCatalogSource(config: CatalogConfig, deps: CatalogDeps): CatalogSource {
  const { name } = config;
  let fetchAll: (signal: AbortSignal) => Promise<CatalogEntry[]>;
  if (config.source === 'postgres') {
    const ds = deps.datasources[config.datasource as string];
    if (ds === undefined) throw configError(name, 'datasource', `unknown datasource \`${config.datasource as string}\``);
    if (ds.kind !== 'postgres') throw configError(name, 'datasource', `expected a \`postgres\` datasource, got \`${String(ds.kind)}\``);
    if (deps.sql === undefined) throw configError(name, 'source', 'postgres catalogs are not available here');
    const client = deps.sql(config.datasource as string, ds);
    fetchAll = async (signal) => {
      let rows: ReadonlyArray<Record<string, unknown>>;
      try {
        rows = await client.readOnlyQuery(config.query as string, [], { timeoutMs: config.timeoutMs, signal });
      } catch (err) {
        const f = classifySqlFailure(err);
        const detail = f.kind === 'sql' ? ` (SQLSTATE ${f.sqlState})` : f.kind === 'connection' && f.code !== undefined ? ` (${f.code})` : '';
        throw new ResolverError(name, f.kind === 'timeout' ? 'ERR_RESOLVER_TIMEOUT' : 'ERR_RESOLVER_FAILED', `resolver \`${name}\`: listing the catalog failed${detail}`);
      }
      return entriesOf(name, rows);
    };
  } else if (config.source === 'http') {
    const ds = parseHttpDatasource(name, deps.datasources[config.datasource as string], deps.env ?? {});
    const url = new URL(ds.baseUrl + (config.path as string));
    // SECURITY: the datasource's allowlist holds for catalogs too (no SSRF through a path).
    if (!ds.allowedOrigins.has(url.origin)) throw configError(name, 'path', 'leaves the datasource\'s allowed origins');
    fetchAll = async (signal) => {
      const answer = await requestJson({ resolver: name, method: 'GET', url, label: `GET ${config.path as string}`, headers: { accept: 'application/json', ...ds.headers }, maxResponseBytes: MAX_BYTES, signal });
      if (answer.status === 'not-found') throw new ResolverError(name, 'ERR_RESOLVER_FAILED', `resolver \`${name}\`: GET ${config.path as string}: answered HTTP 404`);
      const body = answer.body;
      const items = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body['items']) ? (body['items'] as unknown[]) : undefined;
      if (items === undefined) throw new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\`: expected a JSON list of entries (or \`{items: [...]}\`)`);
      return entriesOf(name, items);
    };
  } else {
    const upstream = config.upstream as string;
    const list = deps.mcpTools;
    if (list === undefined) throw configError(name, 'upstream', 'MCP catalogs are not available here');
    fetchAll = async (signal) => {
      const tools = await list(upstream, signal);
      return entriesOf(
        name,
        tools.map((t) => ({ id: `${upstream}/${t.name}`, attr: { server: upstream, name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), ...(t.annotations !== undefined ? { annotations: t.annotations } : {}) } })),
      );
    };
  }
  const now = deps.now ?? Date.now;
  let cached: { at: number; entries: CatalogEntry[] } | undefined;
  let pending: Promise<CatalogEntry[]> | undefined;
  return {
    name,
    resourceKind: config.resourceKind,
    async list() {
      if (cached !== undefined && now() - cached.at < config.ttlMs) return cached.entries;
      pending ??= bounded(name, config.timeoutMs, fetchAll)
        .then((entries) => {
          if (config.ttlMs > 0) cached = { at: now(), entries };
          return entries;
        })
        .catch((err: unknown) => {
          throw toResolverError(name, err);
        })
        .finally(() => {
          pending = undefined;
        });
      return pending;
    },
  };
}
