/**
 * The `postgres` kind: one SQL query per batch against an operator-defined `postgres` datasource.
 *
 * ```yaml
 * - name: approvers
 *   kind: postgres
 *   datasource: hr                  # a `postgres` datasource from warden.yaml (required)
 *   key: principal.id
 *   query: "select user_id as key, approval_limit from approvers where user_id = any($1)"
 *   keyColumn: key                  # the column rows are matched to keys by (default `key`)
 *   many: false                     # true: each key gets the list of its rows
 *   timeout: 200ms                  # also the statement_timeout of the query
 *   provides: { principal.attr.approvalLimit: result.approval_limit }
 * ```
 * Every key of a batch goes in one query as `$1`, a text array (Postgres casts its elements to the
 * compared column's type; one key that does not cast, such as `abc` against an `int` column, fails
 * the batch: write `user_id::text = any($1)` to compare as text). The result of a key is its row
 * as a JSON object; a key without a row is not-found. Two rows for one key are
 * `ERR_RESOLVER_RESULT_INVALID` for that key unless `many: true`, where every key gets the list
 * of its rows and a key without rows gets `[]` (a list is never not-found).
 *
 * Failures go to every key of the batch: a statement timeout (`57014`) is `ERR_RESOLVER_TIMEOUT`;
 * a connection failure or SQL error (a write refused by the READ ONLY transaction included) is
 * `ERR_RESOLVER_FAILED`; rows that cannot be matched (no key column) are
 * `ERR_RESOLVER_RESULT_INVALID`. SECURITY: messages name the resolver, the datasource and the
 * SQLSTATE or errno only, never the driver's text (it can quote a key value or the URL).
 */
import type { JsonValue } from '@warden/core';
import { ResolverError, type ResolverFailureCode } from '../../resolver-error.js';
import {
  configError,
  parseResolverConfig,
  type ContextResolver,
  type ResolveContext,
  type ResolverConfig,
  type ResolverDeps,
  type ResolverFactory,
  type DatasourceConfig,
} from '../../resolver.types.js';
import { abortedError } from '../../with-timeout.js';
import { checkKeysQuery } from './postgres-query.js';
import { groupRows, keyString, RowShapeError } from './postgres-rows.js';
import { classifySqlFailure, SQLSTATE_NAMES, type SqlReadClient } from './sql-read-client.js';

/** Config of a `postgres` resolver. */
export interface PostgresResolverConfig extends ResolverConfig {
  readonly kind: 'postgres';
  readonly datasource: string;
  /** One statement using `$1` (the keys, as a text array) and no other parameter. */
  readonly query: string;
  /** Column matching a row to its key. */
  readonly keyColumn: string;
  /** True: a key's result is the list of its rows. */
  readonly many: boolean;
}

/** Options of {@link createPostgresResolverFactory}. */
export interface PostgresResolverFactoryOptions {
  /**
   * The client of a datasource. The app owns the pools: return the same client for the same
   * datasource name every time (it is called once per resolver, and again when the registry is
   * rebuilt).
   */
  readonly connect: (datasourceName: string, datasource: DatasourceConfig) => SqlReadClient;
}

const FIELDS = new Set(['query', 'keyColumn', 'many']);
const COLUMN = /^[^\s\u0000-\u001f]{1,63}$/;

/**
 * Parses and checks a `postgres` resolver config (the datasource is checked when it is created).
 * @example parsePostgresResolverConfig({ name: 'approvers', kind: 'postgres', datasource: 'hr', key: 'principal.id', query: 'select user_id as key, approval_limit from approvers where user_id = any($1)', provides: { 'principal.attr.limit': 'result.approval_limit' } })
 */
export function parsePostgresResolverConfig(raw: unknown): PostgresResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'postgres') throw configError(name, 'kind', `expected \`postgres\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'a `postgres` resolver must name a `postgres` datasource');
  for (const field of Object.keys(options)) if (!FIELDS.has(field)) throw configError(name, field, 'unknown field');
  const query = options['query'];
  if (typeof query !== 'string') throw configError(name, 'query', 'expected a SQL query using `$1` (the list of keys)');
  const why = checkKeysQuery(query);
  if (why !== undefined) throw configError(name, 'query', why);
  const keyColumn = options['keyColumn'] ?? 'key';
  if (typeof keyColumn !== 'string' || !COLUMN.test(keyColumn)) throw configError(name, 'keyColumn', 'expected a column name');
  const many = options['many'] ?? false;
  if (typeof many !== 'boolean') throw configError(name, 'many', 'expected `true` or `false`');
  return { ...base, kind: 'postgres', datasource: base.datasource, query, keyColumn, many };
}

/**
 * The resolver of a `postgres` config over the client of its datasource.
 * @example createPostgresResolver(config, createPgReadClient(pool))
 */
export function createPostgresResolver(config: PostgresResolverConfig, client: SqlReadClient): ContextResolver {
  const { name, datasource, timeoutMs } = config;
  const fail = (code: ResolverFailureCode, why: string): ResolverError => new ResolverError(name, code, `resolver \`${name}\`: ${why}`);

  function failureOf(err: unknown, ctx: ResolveContext): ResolverError {
    if (ctx.signal.aborted) return abortedError(name, ctx.signal, timeoutMs);
    const f = classifySqlFailure(err);
    switch (f.kind) {
      case 'timeout':
        return new ResolverError(name, 'ERR_RESOLVER_TIMEOUT', `resolver \`${name}\` timed out after ${timeoutMs}ms (statement timeout)`);
      case 'connection':
        return fail('ERR_RESOLVER_FAILED', `datasource \`${datasource}\`: connection failed${f.code !== undefined ? ` (${f.code})` : ''}`);
      case 'sql': {
        const condition = SQLSTATE_NAMES[f.sqlState];
        return fail('ERR_RESOLVER_FAILED', `query failed (SQLSTATE ${f.sqlState}${condition !== undefined ? ` ${condition}` : ''})`);
      }
      case 'unknown':
        return fail('ERR_RESOLVER_FAILED', `datasource \`${datasource}\`: query failed`);
    }
  }

  return {
    name,
    async resolveMany(keys: readonly JsonValue[], ctx: ResolveContext) {
      if (keys.length === 0) return [];
      const strings = keys.map(keyString);
      const wanted = new Set(strings.filter((s): s is string => s !== undefined));
      const badKey = fail('ERR_RESOLVER_FAILED', 'the key is not a string, number or boolean');
      if (wanted.size === 0) return keys.map(() => badKey);
      let rows: ReadonlyArray<unknown>;
      try {
        // INVARIANT: `$1` is the only parameter (checked at parse), bound as a list of strings.
        rows = await client.readOnlyQuery(config.query, [[...wanted]], { timeoutMs, signal: ctx.signal });
      } catch (err) {
        const error = failureOf(err, ctx);
        return keys.map(() => error);
      }
      let byKey: ReturnType<typeof groupRows>;
      try {
        byKey = groupRows(rows, config.keyColumn, wanted);
      } catch (err) {
        if (!(err instanceof RowShapeError)) throw err;
        const error = fail('ERR_RESOLVER_RESULT_INVALID', err.message);
        return keys.map(() => error);
      }
      return strings.map((s) => {
        if (s === undefined) return badKey;
        const found = byKey.get(s);
        if (found === undefined) return config.many ? [] : undefined;
        if ('invalid' in found) return fail('ERR_RESOLVER_RESULT_INVALID', found.invalid);
        if (config.many) return found.rows;
        if (found.rows.length > 1) return fail('ERR_RESOLVER_RESULT_INVALID', 'the query answered several rows for one key (set `many: true` for a list)');
        return found.rows[0];
      });
    },
  };
}

/**
 * The factory of the `postgres` kind; `connect` gives the app-owned client of a datasource.
 * @example createResolverRegistry({ configs, datasources, factories: { postgres: createPostgresResolverFactory({ connect: (name) => clients.get(name) }) } })
 */
export function createPostgresResolverFactory(options: PostgresResolverFactoryOptions): ResolverFactory<PostgresResolverConfig> {
  return {
    kind: 'postgres',
    parseConfig: parsePostgresResolverConfig,
    create(config: PostgresResolverConfig, deps: ResolverDeps): ContextResolver {
      const ds = deps.datasource;
      if (ds === undefined) throw configError(config.name, 'datasource', 'a `postgres` resolver needs a `postgres` datasource');
      if (ds.kind !== 'postgres') throw configError(config.name, 'datasource', `expected a datasource of kind \`postgres\`, got \`${String(ds.kind)}\``);
      return createPostgresResolver(config, options.connect(config.datasource, ds));
    },
  };
}
