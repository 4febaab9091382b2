/**
 * The `http` kind: a REST API behind an operator-defined `http` datasource.
 *
 * ```yaml
 * - name: crm-user
 *   kind: http
 *   datasource: crm                 # an `http` datasource from warden.yaml (required)
 *   key: principal.id
 *   method: GET                     # GET (default) | POST
 *   path: /users/{key}              # appended to the datasource URL; `{key}` is URL-encoded
 *   resultPath: data                # optional: where the result sits in the answer
 *   provides: { principal.attr.tier: result.tier }
 * - name: crm-users
 *   kind: http
 *   datasource: crm
 *   key: principal.id
 *   batch:                          # every key of a batch in one POST
 *     path: /users/lookup
 *     bodyTemplate: { ids: "{keys}" }   # "{keys}" becomes the JSON list of keys (default: the list itself)
 *     resultPath: users             # an array of objects (matched on `keyField`, default `key`) or a map key -> result
 *     keyField: id
 *   provides: { principal.attr.tier: result.tier }
 * ```
 * One key: 404 or a JSON `null` result is not-found; another non-2xx is `ERR_RESOLVER_FAILED`; a
 * body that is not JSON, too large (`maxResponseBytes`, default 1 MiB) or without `resultPath` is
 * `ERR_RESOLVER_RESULT_INVALID`. A batch answer lacking a key is not-found for that key; a batch
 * endpoint's 404 is a failure (a missing endpoint must not read as "nobody has attributes").
 *
 * SECURITY (no SSRF): the URL comes from the operator's datasource; a resolver only adds a path
 * (or an absolute URL whose origin the datasource allows). Keys are URL-encoded, `.`, `..` and empty
 * keys are refused, and the final URL's origin is checked against the datasource's allowed origins
 * before every request. Redirects are not followed.
 */
import type { JsonValue } from '@warden/core';
import { ResolverError } from '../../resolver-error.js';
import {
  configError,
  positiveIntField,
  parseResolverConfig,
  type ContextResolver,
  type ResolveContext,
  type ResolverConfig,
  type ResolverDeps,
  type ResolverFactory,
} from '../../resolver.types.js';
import { parseHttpDatasource, parseHttpUrl, type HttpDatasource, type HttpEnv } from './http-datasource.js';
import { requestJson, type HttpRequest } from './http-request.js';
import { isRecord, mapLimited, pickPath } from '../json-answer.js';

/** The batch mode of an `http` resolver. */
export interface HttpBatchConfig {
  readonly path: string;
  /** JSON body; the string `"{keys}"` anywhere in it becomes the list of keys. */
  readonly bodyTemplate: JsonValue;
  readonly resultPath: readonly string[];
  /** Field matching an array entry to its key. */
  readonly keyField: string;
  /** Keys per request; more are split over several requests. */
  readonly maxKeys: number;
}

/** Config of an `http` resolver. */
export interface HttpResolverConfig extends ResolverConfig {
  readonly kind: 'http';
  readonly datasource: string;
  readonly method: 'GET' | 'POST';
  /** Single-key mode: path template with `{key}`. */
  readonly path?: string;
  /** Single-key POST body; the string `"{key}"` anywhere in it becomes the key. */
  readonly bodyTemplate?: JsonValue;
  readonly resultPath: readonly string[];
  readonly batch?: HttpBatchConfig;
  readonly maxResponseBytes: number;
  /** Single-key mode: requests in flight at once per call. */
  readonly concurrency: number;
}

/** Options of {@link createHttpResolverFactory}. */
export interface HttpResolverFactoryOptions {
  /** Fills `${NAME}` placeholders in datasource headers (the app passes its environment in; libs never read the process environment). */
  readonly env?: HttpEnv;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_KEY_CHARS = 1024;
const FIELDS = new Set(['method', 'path', 'bodyTemplate', 'resultPath', 'batch', 'maxResponseBytes', 'concurrency']);
const BATCH_FIELDS = new Set(['path', 'bodyTemplate', 'resultPath', 'keyField', 'maxKeys']);
const SEGMENT = /^[A-Za-z0-9_$-]+$/;


function containsString(v: unknown, s: string): boolean {
  if (v === s) return true;
  if (Array.isArray(v)) return v.some((x) => containsString(x, s));
  if (isRecord(v)) return Object.values(v).some((x) => containsString(x, s));
  return false;
}

function fillTemplate(v: JsonValue, placeholder: string, value: JsonValue): JsonValue {
  if (v === placeholder) return value;
  if (Array.isArray(v)) return v.map((x) => fillTemplate(x, placeholder, value));
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillTemplate(x as JsonValue, placeholder, value)]));
  return v;
}

function parseResultPath(name: string, field: string, raw: unknown): string[] {
  if (raw === undefined) return [];
  if (typeof raw !== 'string' || raw === '') throw configError(name, field, 'expected a dotted path such as `data.users`');
  const segments = raw.split('.');
  if (!segments.every((s) => SEGMENT.test(s))) throw configError(name, field, 'expected a dotted path such as `data.users`');
  return segments;
}

/** Checks a path template: a path starting with `/` or an absolute http(s) URL, with only `placeholders`. */
function parsePathTemplate(name: string, field: string, raw: unknown, placeholders: readonly string[]): string {
  if (typeof raw !== 'string' || raw === '') throw configError(name, field, 'expected a path such as `/users/{key}`');
  let rest = raw;
  for (const p of placeholders) rest = rest.replaceAll(p, '');
  if (rest.includes('{') || rest.includes('}')) throw configError(name, field, `only ${placeholders.length ? placeholders.map((p) => `\`${p}\``).join(', ') : 'no'} placeholders are allowed`);
  if (raw.startsWith('/')) {
    if (raw.startsWith('//')) throw configError(name, field, 'a path must not start with `//`');
    return raw;
  }
  const probe = parseHttpUrl(raw.replaceAll('{key}', 'k'));
  if (probe === undefined) throw configError(name, field, 'expected a path starting with `/` or an absolute http(s) URL');
  // SECURITY: a placeholder may never reach the scheme, credentials, host or port.
  const authorityEnd = raw.indexOf('/', raw.indexOf('://') + 3);
  const authority = authorityEnd === -1 ? raw : raw.slice(0, authorityEnd);
  if (authority.includes('{') || authority.includes('@')) throw configError(name, field, 'placeholders and credentials are not allowed before the path');
  return raw;
}

/**
 * Parses and checks an `http` resolver config (the datasource is checked when the resolver is created).
 * @example parseHttpResolverConfig({ name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', path: '/users/{key}', provides: { 'principal.attr.tier': 'result.tier' } })
 */
export function parseHttpResolverConfig(raw: unknown): HttpResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'http') throw configError(name, 'kind', `expected \`http\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'an `http` resolver must name an `http` datasource');
  for (const field of Object.keys(options)) if (!FIELDS.has(field)) throw configError(name, field, 'unknown field');
  const maxResponseBytes = positiveIntField(name, 'maxResponseBytes', options['maxResponseBytes'], DEFAULT_MAX_RESPONSE_BYTES, 64 * 1024 * 1024);
  const concurrency = positiveIntField(name, 'concurrency', options['concurrency'], 8, 64);
  const rawBatch = options['batch'];
  if (rawBatch !== undefined) {
    if (!isRecord(rawBatch)) throw configError(name, 'batch', 'expected a map with `path`');
    for (const field of Object.keys(rawBatch)) if (!BATCH_FIELDS.has(field)) throw configError(name, `batch.${field}`, 'unknown field');
    for (const field of ['path', 'bodyTemplate', 'resultPath']) {
      if (options[field] !== undefined) throw configError(name, field, 'not allowed with `batch` (use `batch.' + field + '`)');
    }
    if (options['method'] !== undefined && options['method'] !== 'POST') throw configError(name, 'method', '`batch` always uses POST');
    const bodyTemplate = (rawBatch['bodyTemplate'] ?? '{keys}') as JsonValue;
    if (!containsString(bodyTemplate, '{keys}')) throw configError(name, 'batch.bodyTemplate', 'expected the string `"{keys}"` somewhere in the body');
    const keyField = rawBatch['keyField'] ?? 'key';
    if (typeof keyField !== 'string' || !SEGMENT.test(keyField)) throw configError(name, 'batch.keyField', 'expected a field name');
    const batch: HttpBatchConfig = {
      path: parsePathTemplate(name, 'batch.path', rawBatch['path'], []),
      bodyTemplate,
      resultPath: parseResultPath(name, 'batch.resultPath', rawBatch['resultPath']),
      keyField,
      maxKeys: positiveIntField(name, 'batch.maxKeys', rawBatch['maxKeys'], 100, 10_000),
    };
    return { ...base, kind: 'http', datasource: base.datasource, method: 'POST', resultPath: [], batch, maxResponseBytes, concurrency };
  }
  const method = options['method'] ?? 'GET';
  if (method !== 'GET' && method !== 'POST') throw configError(name, 'method', 'expected `GET` or `POST`');
  const path = parsePathTemplate(name, 'path', options['path'], ['{key}']);
  const rawBody = options['bodyTemplate'];
  if (rawBody !== undefined && method !== 'POST') throw configError(name, 'bodyTemplate', 'only with `method: POST`');
  const bodyTemplate = method === 'POST' ? ((rawBody ?? { key: '{key}' }) as JsonValue) : undefined;
  return {
    ...base,
    kind: 'http',
    datasource: base.datasource,
    method,
    path,
    ...(bodyTemplate !== undefined ? { bodyTemplate } : {}),
    resultPath: parseResultPath(name, 'resultPath', options['resultPath']),
    maxResponseBytes,
    concurrency,
  };
}

function keyString(key: JsonValue): string | undefined {
  if (typeof key === 'string') return key;
  if ((typeof key === 'number' && Number.isFinite(key)) || typeof key === 'boolean') return String(key);
  return undefined;
}



/**
 * The resolver of an `http` config over its checked datasource.
 * @example createHttpResolver(config, parseHttpDatasource(config.name, datasource, env))
 */
export function createHttpResolver(config: HttpResolverConfig, datasource: HttpDatasource): ContextResolver {
  const name = config.name;
  const template = config.batch?.path ?? config.path ?? '';
  const label = `${config.method} ${template}`;
  const fail = (code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID', why: string): ResolverError =>
    new ResolverError(name, code, `resolver \`${name}\`: ${label}: ${why}`);

  const resolveUrl = (filled: string): URL | undefined => {
    const url = parseHttpUrl(filled.startsWith('/') ? datasource.baseUrl + filled : filled);
    // SECURITY: checked on the final URL, after encoding, before every request.
    return url !== undefined && url.username === '' && url.password === '' && datasource.allowedOrigins.has(url.origin) ? url : undefined;
  };
  if (resolveUrl(template.replaceAll('{key}', 'k')) === undefined) {
    throw configError(name, config.batch !== undefined ? 'batch.path' : 'path', 'the URL is not on the datasource or its `allowHosts`');
  }
  const headers: Record<string, string> = { accept: 'application/json', ...(config.method === 'POST' ? { 'content-type': 'application/json' } : {}), ...datasource.headers };
  const request = (url: URL, body: string | undefined, signal: AbortSignal): HttpRequest => ({
    resolver: name,
    method: config.method,
    url,
    label,
    headers,
    ...(body !== undefined ? { body } : {}),
    maxResponseBytes: config.maxResponseBytes,
    signal,
  });

  async function one(key: JsonValue, ctx: ResolveContext): Promise<unknown> {
    const s = keyString(key);
    // SECURITY: `.` and `..` survive encodeURIComponent and would move up the path; refuse them.
    if (s === undefined || s === '' || s === '.' || s === '..' || s.length > MAX_KEY_CHARS) return fail('ERR_RESOLVER_FAILED', 'the key is not usable in a URL');
    const url = resolveUrl((config.path ?? '').replaceAll('{key}', encodeURIComponent(s)));
    if (url === undefined) return fail('ERR_RESOLVER_FAILED', 'the URL left the allowed hosts');
    const body = config.bodyTemplate === undefined ? undefined : JSON.stringify(fillTemplate(config.bodyTemplate, '{key}', key));
    try {
      const answer = await requestJson(request(url, body, ctx.signal));
      if (answer.status === 'not-found') return undefined;
      const picked = pickPath(answer.body, config.resultPath);
      if (!picked.found) return fail('ERR_RESOLVER_RESULT_INVALID', `the answer has no \`${config.resultPath.join('.')}\``);
      return picked.value === null ? undefined : picked.value;
    } catch (err) {
      return err instanceof ResolverError ? err : fail('ERR_RESOLVER_FAILED', 'request failed');
    }
  }

  async function batchOf(batch: HttpBatchConfig, keys: readonly JsonValue[], ctx: ResolveContext): Promise<Map<string, unknown> | ResolverError> {
    const url = resolveUrl(batch.path);
    if (url === undefined) return fail('ERR_RESOLVER_FAILED', 'the URL left the allowed hosts');
    try {
      const answer = await requestJson(request(url, JSON.stringify(fillTemplate(batch.bodyTemplate, '{keys}', [...keys])), ctx.signal));
      if (answer.status === 'not-found') return fail('ERR_RESOLVER_FAILED', 'answered HTTP 404');
      const picked = pickPath(answer.body, batch.resultPath);
      const results = new Map<string, unknown>();
      if (picked.found && Array.isArray(picked.value)) {
        for (const entry of picked.value) {
          const k = isRecord(entry) ? keyString(entry[batch.keyField] as JsonValue) : undefined;
          if (k === undefined) return fail('ERR_RESOLVER_RESULT_INVALID', `an entry of the answer has no \`${batch.keyField}\``);
          results.set(k, entry);
        }
      } else if (picked.found && isRecord(picked.value)) {
        for (const [k, v] of Object.entries(picked.value)) results.set(k, v);
      } else {
        return fail('ERR_RESOLVER_RESULT_INVALID', `expected a list or a map${batch.resultPath.length ? ` at \`${batch.resultPath.join('.')}\`` : ''}`);
      }
      return results;
    } catch (err) {
      return err instanceof ResolverError ? err : fail('ERR_RESOLVER_FAILED', 'request failed');
    }
  }

  async function many(batch: HttpBatchConfig, keys: readonly JsonValue[], ctx: ResolveContext): Promise<Array<unknown>> {
    const unique = new Map<string, JsonValue>();
    for (const k of keys) {
      const s = keyString(k);
      if (s !== undefined && !unique.has(s)) unique.set(s, k);
    }
    const values = [...unique.values()];
    const chunks: JsonValue[][] = [];
    for (let i = 0; i < values.length; i += batch.maxKeys) chunks.push(values.slice(i, i + batch.maxKeys));
    const answers = await mapLimited(chunks, config.concurrency, (chunk) => batchOf(batch, chunk, ctx));
    const byKey = new Map<string, unknown>();
    chunks.forEach((chunk, i) => {
      const a = answers[i];
      for (const k of chunk) {
        const s = keyString(k) as string;
        byKey.set(s, a instanceof ResolverError ? a : a?.get(s) ?? undefined);
      }
    });
    return keys.map((k) => {
      const s = keyString(k);
      if (s === undefined) return fail('ERR_RESOLVER_FAILED', 'the key is not a string, number or boolean');
      const v = byKey.get(s);
      return v === null ? undefined : v;
    });
  }

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      const out = config.batch !== undefined ? await many(config.batch, keys, ctx) : await mapLimited(keys, config.concurrency, (k) => one(k, ctx));
      return out as ReadonlyArray<unknown>;
    },
  };
}

/**
 * The factory of the `http` kind; `env` fills the datasource's `${NAME}` header placeholders.
 * @example createResolverRegistry({ configs, datasources, factories: { http: createHttpResolverFactory({ env: config.env }) } })
 */
export function createHttpResolverFactory(options: HttpResolverFactoryOptions = {}): ResolverFactory<HttpResolverConfig> {
  const env = options.env ?? {};
  return {
    kind: 'http',
    parseConfig: parseHttpResolverConfig,
    create: (config: HttpResolverConfig, deps: ResolverDeps) => createHttpResolver(config, parseHttpDatasource(config.name, deps.datasource, env)),
  };
}
