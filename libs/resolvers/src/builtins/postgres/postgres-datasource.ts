/**
 * A `postgres` datasource as operators define it in `warden.yaml`, checked for the app, which
 * opens one pool per datasource name and hands it to {@link createPostgresResolverFactory}:
 *
 * ```yaml
 * datasources:
 *   hr:
 *     kind: postgres
 *     url: "postgres://warden_ro:${HR_DB_PASSWORD}@hr-db.internal:5432/hr"   # a server, or
 *     maxConnections: 10              # pool size (default 10)
 *   demo:
 *     kind: postgres
 *     embedded: true                  # an in-process PGlite database (dev and tests only)
 * ```
 * Exactly one of `url` and `embedded: true`. `${NAME}` placeholders in the URL are filled from
 * an injected environment map (libs never read the process environment).
 *
 * SECURITY: the URL may hold a password. No error message quotes it (nor the filled value of a
 * placeholder); a missing variable is named, its value never is. Use a role that can only SELECT:
 * the READ ONLY transaction is a second line, not the first.
 */
import { WardenError } from '@warden/core';
import type { DatasourceConfig } from '../../resolver.types.js';

/** The environment `${NAME}` placeholders are filled from. */
export type PostgresEnv = Readonly<Record<string, string | undefined>>;

/** A checked `postgres` datasource. */
export type PostgresDatasource =
  | {
      readonly mode: 'server';
      /** SECURITY: may hold a password; pass it to the driver only, never log or return it. */
      readonly url: string;
      readonly maxConnections: number;
    }
  | { readonly mode: 'embedded'; readonly maxConnections: number };

const FIELDS = new Set(['kind', 'url', 'embedded', 'maxConnections']);
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const DEFAULT_MAX_CONNECTIONS = 10;

function fieldError(name: string, field: string, why: string): WardenError {
  return new WardenError('ERR_CONFIG_INVALID', `datasource \`${name}\`: field \`${field}\`: ${why}`);
}

/**
 * Checks the datasource `name` and fills its URL placeholders from `env`. Throws
 * `ERR_CONFIG_INVALID` naming the datasource and the field, never the URL.
 * @example parsePostgresDatasource('hr', { kind: 'postgres', url: 'postgres://warden@127.0.0.1:5432/hr' })
 */
export function parsePostgresDatasource(name: string, raw: DatasourceConfig, env: PostgresEnv = {}): PostgresDatasource {
  if (raw.kind !== 'postgres') throw fieldError(name, 'kind', `expected \`postgres\`, got \`${String(raw.kind)}\``);
  for (const k of Object.keys(raw)) if (!FIELDS.has(k)) throw fieldError(name, k, 'unknown field');
  const rawMax = raw['maxConnections'];
  if (rawMax !== undefined && (typeof rawMax !== 'number' || !Number.isInteger(rawMax) || rawMax < 1 || rawMax > 1000)) {
    throw fieldError(name, 'maxConnections', 'expected an integer from 1 to 1000');
  }
  const maxConnections = rawMax ?? DEFAULT_MAX_CONNECTIONS;
  const embedded = raw['embedded'];
  if (embedded !== undefined && typeof embedded !== 'boolean') throw fieldError(name, 'embedded', 'expected `true` or `false`');
  const rawUrl = raw['url'];
  if (embedded === true) {
    if (rawUrl !== undefined) throw fieldError(name, 'url', 'not allowed with `embedded: true`');
    return { mode: 'embedded', maxConnections };
  }
  if (rawUrl === undefined) throw fieldError(name, 'url', 'expected a `postgres://` URL (or `embedded: true`)');
  // SECURITY: from here on no message may quote `rawUrl` or the filled URL.
  if (typeof rawUrl !== 'string' || rawUrl === '') throw fieldError(name, 'url', 'expected a `postgres://` or `postgresql://` URL');
  const filled = rawUrl.replace(PLACEHOLDER, (_m, variable: string) => {
    const v = env[variable];
    if (v === undefined) throw fieldError(name, 'url', `environment variable \`${variable}\` is not set`);
    return v;
  });
  let url: URL;
  try {
    url = new URL(filled);
  } catch {
    throw fieldError(name, 'url', 'expected a `postgres://` or `postgresql://` URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw fieldError(name, 'url', 'expected a `postgres://` or `postgresql://` URL');
  if (url.hostname === '' && !url.searchParams.has('host')) throw fieldError(name, 'url', 'expected a host');
  return { mode: 'server', url: filled, maxConnections };
}
