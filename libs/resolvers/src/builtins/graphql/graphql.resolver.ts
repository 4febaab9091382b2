/**
 * The `graphql` kind: one GraphQL query per batch of keys, against an operator-defined `graphql`
 * datasource, sent with `graphql-request`.
 *
 * ```yaml
 * - name: projects
 *   kind: graphql
 *   datasource: projects-api          # a `graphql` datasource from warden.yaml (required)
 *   key: resource.attr.projectId
 *   query: "query($keys: [ID!]!) { projects(ids: $keys) { id owner team } }"
 *   keysVariable: keys                # optional (default `keys`): the list variable the keys go in
 *   resultPath: projects              # where the list (or the map key -> result) sits in `data`
 *   keyField: id                      # optional (default `id`): matches a list entry to its key
 *   variables: { includeArchived: false }   # optional static variables
 *   maxKeys: 100                      # optional (default 100): keys per request; more are split
 *   maxResponseBytes: 1048576         # optional (default 1 MiB)
 *   provides: { resource.attr.owner: result.owner }
 * ```
 * Every key of a `resolveMany` call goes, de-duplicated, in ONE list variable (split into chunks of
 * `maxKeys`, at most 4 in flight). Keys are sent as they are (a number stays a number) and matched
 * to answers by their string form. A key with no entry, or a `null` entry, is not-found.
 *
 * Failures: a non-2xx answer, a network error, or GraphQL `errors` with no `data` are
 * `ERR_RESOLVER_FAILED` for the whole chunk. With partial `data`, an error whose `path` points into
 * one entry fails that key only; any error that cannot be pinned to an entry fails the chunk
 * (SECURITY: fail closed, a field nulled by an error must not read as a real `null`). A body that is
 * not a GraphQL JSON response, too large, missing `resultPath`, of the wrong shape, or with an entry
 * lacking `keyField` is `ERR_RESOLVER_RESULT_INVALID`; two entries for one key make that key invalid.
 *
 * SECURITY (no SSRF): the endpoint is the operator's datasource URL; a resolver config has no URL
 * or path field. Requests are always POST (keys never land in a URL or an access log), redirects
 * are not followed, and the guarded fetch checks the datasource's allowed origins before every
 * request. Messages name the resolver, the operation and the kind of failure only: never a header,
 * a key value or upstream text (a `ClientError`'s message quotes the variables, so it is dropped).
 */
import { ClientError, GraphQLClient } from 'graphql-request';
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
import { abortedError } from '../../with-timeout.js';
import type { HttpEnv } from '../http/http-datasource.js';
import { parseGraphQLDatasource, type GraphQLDatasource } from './graphql-datasource.js';
import { createGuardedFetch, GraphQLFetchError } from './graphql-fetch.js';
import { checkGraphQLQuery } from './graphql-query.js';
import { isRecord, mapLimited, pickPath } from '../json-answer.js';

/** Config of a `graphql` resolver. */
export interface GraphQLResolverConfig extends ResolverConfig {
  readonly kind: 'graphql';
  readonly datasource: string;
  /** The checked query document, sent verbatim. */
  readonly query: string;
  readonly operationName?: string;
  readonly keysVariable: string;
  /** Segments of the path in `data` where the list or map of results sits. */
  readonly resultPath: readonly string[];
  readonly keyField: string;
  readonly variables: Readonly<Record<string, JsonValue>>;
  readonly maxKeys: number;
  readonly maxResponseBytes: number;
}

/** Options of {@link createGraphQLResolverFactory}. */
export interface GraphQLResolverFactoryOptions {
  /** Fills `${NAME}` placeholders in datasource headers (the app passes its environment in; libs never read the process environment). */
  readonly env?: HttpEnv;
}

type FailureCode = 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID';
type ChunkAnswer = Map<string, unknown> | ResolverError;

const FIELDS = new Set(['query', 'keysVariable', 'resultPath', 'keyField', 'variables', 'maxKeys', 'maxResponseBytes']);
const GRAPHQL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_KEY_CHARS = 1024;
const CHUNKS_IN_FLIGHT = 4;


function nameField(name: string, field: string, raw: unknown, fallback: string): string {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'string' || !GRAPHQL_NAME.test(raw)) throw configError(name, field, 'expected a GraphQL name such as `id`');
  return raw;
}

/**
 * Parses and checks a `graphql` resolver config, including its query (the datasource is checked
 * when the resolver is created).
 * @example parseGraphQLResolverConfig({ name: 'projects', kind: 'graphql', datasource: 'api', key: 'resource.attr.projectId', query: 'query($keys: [ID!]!) { projects(ids: $keys) { id owner } }', resultPath: 'projects', provides: { 'resource.attr.owner': 'result.owner' } })
 */
export function parseGraphQLResolverConfig(raw: unknown): GraphQLResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'graphql') throw configError(name, 'kind', `expected \`graphql\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'a `graphql` resolver must name a `graphql` datasource');
  for (const field of Object.keys(options)) if (!FIELDS.has(field)) throw configError(name, field, 'unknown field');
  const keysVariable = nameField(name, 'keysVariable', options['keysVariable'], 'keys');
  const keyField = nameField(name, 'keyField', options['keyField'], 'id');
  const rawVariables = options['variables'] ?? {};
  if (!isRecord(rawVariables)) throw configError(name, 'variables', 'expected a map of variable name to value');
  if (Object.hasOwn(rawVariables, keysVariable)) throw configError(name, `variables.${keysVariable}`, 'the keys variable is filled with the keys');
  const checked = checkGraphQLQuery(name, options['query'], keysVariable, rawVariables);
  const rawPath = options['resultPath'];
  const resultPath = typeof rawPath === 'string' ? rawPath.split('.') : [];
  if (resultPath.length === 0 || !resultPath.every((s) => GRAPHQL_NAME.test(s))) {
    throw configError(name, 'resultPath', 'expected a dotted path in `data` such as `projects` or `org.projects`');
  }
  const root = resultPath[0] as string;
  if (checked.rootFields !== undefined && !checked.rootFields.has(root)) {
    throw configError(name, 'resultPath', `the query selects no root field \`${root}\``);
  }
  return {
    ...base,
    kind: 'graphql',
    datasource: base.datasource,
    query: checked.document,
    ...(checked.operationName !== undefined ? { operationName: checked.operationName } : {}),
    keysVariable,
    resultPath,
    keyField,
    variables: rawVariables as Record<string, JsonValue>,
    maxKeys: positiveIntField(name, 'maxKeys', options['maxKeys'], 100, 10_000),
    maxResponseBytes: positiveIntField(name, 'maxResponseBytes', options['maxResponseBytes'], DEFAULT_MAX_RESPONSE_BYTES, 64 * 1024 * 1024),
  };
}

function keyString(key: JsonValue): string | undefined {
  if (typeof key === 'string') return key.length <= MAX_KEY_CHARS ? key : undefined;
  if ((typeof key === 'number' && Number.isFinite(key)) || typeof key === 'boolean') return String(key);
  return undefined;
}



/**
 * The resolver of a `graphql` config over its checked datasource.
 * @example createGraphQLResolver(config, parseGraphQLDatasource(config.name, datasource, env))
 */
export function createGraphQLResolver(config: GraphQLResolverConfig, datasource: GraphQLDatasource): ContextResolver {
  const name = config.name;
  const label = `graphql query${config.operationName !== undefined ? ` \`${config.operationName}\`` : ''}`;
  const where = `\`${config.resultPath.join('.')}\``;
  const fail = (code: FailureCode, why: string): ResolverError => new ResolverError(name, code, `resolver \`${name}\`: ${label}: ${why}`);
  const client = new GraphQLClient(datasource.endpoint, {
    method: 'POST',
    headers: { ...datasource.headers },
    // `all`: answers with errors come back with their data, so partial answers can be judged per key.
    errorPolicy: 'all',
    fetch: createGuardedFetch({ allowedOrigins: datasource.allowedOrigins, maxResponseBytes: config.maxResponseBytes }),
  });

  /** Maps each GraphQL error to the key of the entry it is about; undefined when one cannot be pinned. */
  function failedKeys(errors: readonly unknown[], results: unknown): Set<string> | undefined {
    const keys = new Set<string>();
    for (const e of errors) {
      const path = isRecord(e) && Array.isArray(e['path']) ? (e['path'] as unknown[]) : undefined;
      if (path === undefined || path.length <= config.resultPath.length) return undefined;
      if (!config.resultPath.every((seg, i) => path[i] === seg)) return undefined;
      const at = path[config.resultPath.length];
      let key: string | undefined;
      if (Array.isArray(results) && typeof at === 'number') {
        const entry: unknown = results[at];
        key = isRecord(entry) ? keyString(entry[config.keyField] as JsonValue) : undefined;
      } else if (isRecord(results) && typeof at === 'string') {
        key = at;
      }
      if (key === undefined) return undefined;
      keys.add(key);
    }
    return keys;
  }

  function readAnswer(data: unknown, errors: readonly unknown[]): ChunkAnswer {
    if (!isRecord(data)) {
      return errors.length > 0 ? fail('ERR_RESOLVER_FAILED', `answered ${errors.length} GraphQL error(s) and no data`) : fail('ERR_RESOLVER_RESULT_INVALID', 'answered no data');
    }
    const picked = pickPath(data, config.resultPath);
    if (errors.length > 0 && (!picked.found || picked.value === null)) return fail('ERR_RESOLVER_FAILED', `answered ${errors.length} GraphQL error(s) and no ${where}`);
    if (!picked.found) return fail('ERR_RESOLVER_RESULT_INVALID', `the answer has no ${where}`);
    const results = new Map<string, unknown>();
    if (Array.isArray(picked.value)) {
      const duplicate = fail('ERR_RESOLVER_RESULT_INVALID', `the answer has two entries for one key at ${where}`);
      for (const entry of picked.value) {
        if (entry === null) continue;
        const k = isRecord(entry) ? keyString(entry[config.keyField] as JsonValue) : undefined;
        if (k === undefined) return fail('ERR_RESOLVER_RESULT_INVALID', `an entry at ${where} has no \`${config.keyField}\``);
        results.set(k, results.has(k) ? duplicate : entry);
      }
    } else if (isRecord(picked.value)) {
      for (const [k, v] of Object.entries(picked.value)) results.set(k, v);
    } else {
      return fail('ERR_RESOLVER_RESULT_INVALID', `expected a list or a map at ${where}`);
    }
    if (errors.length > 0) {
      const keys = failedKeys(errors, picked.value);
      if (keys === undefined) return fail('ERR_RESOLVER_FAILED', `answered ${errors.length} GraphQL error(s)`);
      const partial = fail('ERR_RESOLVER_FAILED', 'answered a GraphQL error for this key');
      for (const k of keys) results.set(k, partial);
    }
    return results;
  }

  async function chunkOf(keys: readonly JsonValue[], ctx: ResolveContext): Promise<ChunkAnswer> {
    try {
      const answer = await client.rawRequest<unknown, Record<string, unknown>>({
        query: config.query,
        variables: { ...config.variables, [config.keysVariable]: [...keys] },
        signal: ctx.signal,
      });
      const errors = Array.isArray(answer.errors) ? (answer.errors as unknown[]) : isRecord(answer.errors) ? [answer.errors] : [];
      return readAnswer(answer.data, errors);
    } catch (err) {
      if (ctx.signal.aborted) return abortedError(name, ctx.signal);
      if (err instanceof GraphQLFetchError) {
        if (err.reason === 'too-large') return fail('ERR_RESOLVER_RESULT_INVALID', `answered more than ${config.maxResponseBytes} bytes`);
        if (err.reason === 'origin') return fail('ERR_RESOLVER_FAILED', 'the endpoint is not on the datasource or its `allowHosts`');
        return fail('ERR_RESOLVER_FAILED', `request failed${err.code !== undefined ? ` (${err.code})` : ''}`);
      }
      // SECURITY: a ClientError's message quotes the request variables (the keys) and the body; only its status is used.
      if (err instanceof ClientError) {
        const status = err.response.status;
        if (status < 200 || status > 299) return fail('ERR_RESOLVER_FAILED', `answered HTTP ${status}`);
        return fail('ERR_RESOLVER_FAILED', 'answered GraphQL errors');
      }
      // graphql-request throws plain errors for bodies that are not JSON or not a GraphQL response.
      return fail('ERR_RESOLVER_RESULT_INVALID', 'answered a body that is not a GraphQL JSON response');
    }
  }

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      if (ctx.signal.aborted) return keys.map(() => abortedError(name, ctx.signal));
      const unique = new Map<string, JsonValue>();
      for (const k of keys) {
        const s = keyString(k);
        if (s !== undefined && !unique.has(s)) unique.set(s, k);
      }
      const values = [...unique.values()];
      const chunks: JsonValue[][] = [];
      for (let i = 0; i < values.length; i += config.maxKeys) chunks.push(values.slice(i, i + config.maxKeys));
      const answers = await mapLimited(chunks, CHUNKS_IN_FLIGHT, (chunk) => chunkOf(chunk, ctx));
      const byKey = new Map<string, unknown>();
      chunks.forEach((chunk, i) => {
        const a = answers[i];
        for (const k of chunk) {
          const s = keyString(k) as string;
          byKey.set(s, a instanceof ResolverError ? a : a?.get(s));
        }
      });
      const badKey = fail('ERR_RESOLVER_FAILED', `the key is not a string (up to ${MAX_KEY_CHARS} characters), number or boolean`);
      return keys.map((k) => {
        const s = keyString(k);
        if (s === undefined) return badKey;
        const v = byKey.get(s);
        return v === null ? undefined : v;
      });
    },
  };
}

/**
 * The factory of the `graphql` kind; `env` fills the datasource's `${NAME}` header placeholders.
 * @example createResolverRegistry({ configs, datasources, factories: { graphql: createGraphQLResolverFactory({ env: config.env }) } })
 */
export function createGraphQLResolverFactory(options: GraphQLResolverFactoryOptions = {}): ResolverFactory<GraphQLResolverConfig> {
  const env = options.env ?? {};
  return {
    kind: 'graphql',
    parseConfig: parseGraphQLResolverConfig,
    create: (config: GraphQLResolverConfig, deps: ResolverDeps) => createGraphQLResolver(config, parseGraphQLDatasource(config.name, deps.datasource, env)),
  };
}
