/**
 * A `redis` datasource as operators define it in `warden.yaml`:
 *
 * ```yaml
 * datasources:
 *   sessions:
 *     kind: redis
 *     url: "redis://:${REDIS_PASSWORD}@redis.internal:6379/0"   # optional; the app owns the connection
 * ```
 * The app opens (and shares) the connection per datasource name; this only checks the shape.
 * SECURITY: the URL may hold a password, so no message ever quotes it.
 */
import { configError, type DatasourceConfig } from '../../resolver.types.js';

/** A checked `redis` datasource. */
export interface RedisDatasource extends DatasourceConfig {
  readonly kind: 'redis';
  /** `redis://` or `rediss://` URL. SECURITY: may hold a password; never log or return it. */
  readonly url?: string;
}

const FIELDS = new Set(['kind', 'url']);

/**
 * Checks the `redis` datasource of resolver `resolver`. Throws `ERR_RESOLVER_CONFIG_INVALID`
 * naming the resolver and the field, never the URL.
 * @example parseRedisDatasource('sessions', { kind: 'redis', url: 'redis://127.0.0.1:6379' })
 */
export function parseRedisDatasource(resolver: string, raw: DatasourceConfig | undefined): RedisDatasource {
  if (raw === undefined) throw configError(resolver, 'datasource', 'a `redis` resolver needs a `redis` datasource');
  if (raw.kind !== 'redis') throw configError(resolver, 'datasource', `expected a datasource of kind \`redis\`, got \`${String(raw.kind)}\``);
  for (const k of Object.keys(raw)) if (!FIELDS.has(k)) throw configError(resolver, `datasource.${k}`, 'unknown field');
  const url = raw['url'];
  if (url === undefined) return { kind: 'redis' };
  let parsed: URL | undefined;
  try {
    parsed = typeof url === 'string' ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  // SECURITY: the reason names the expected shape only; the URL (and any password in it) is never quoted.
  if (parsed === undefined || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
    throw configError(resolver, 'datasource.url', 'expected a `redis://` or `rediss://` URL with a host');
  }
  return { kind: 'redis', url: url as string };
}
