/**
 * An `http` datasource as operators define it in `warden.yaml`, checked and made ready to use:
 *
 * ```yaml
 * datasources:
 *   crm:
 *     kind: http
 *     url: "http://127.0.0.1:4000/api"
 *     allowHosts: ["crm-eu.internal:8443"]          # optional further hosts (host or host:port, or an origin)
 *     headers: { Authorization: "Bearer ${CRM_TOKEN}" }
 * ```
 * `${NAME}` placeholders in header values are filled from an injected environment map (libs never
 * read the process environment). The filled values are secrets: they are sent to the allowed origins only and
 * never appear in an error message (a missing variable is named, its value never is).
 */
import { configError } from '../../resolver.types.js';
import type { DatasourceConfig } from '../../resolver.types.js';

/** The environment placeholders are filled from (the app passes its validated env slice). */
export type HttpEnv = Readonly<Record<string, string | undefined>>;

/** A checked `http` datasource. */
export interface HttpDatasource {
  /** The datasource URL without a trailing slash; relative resolver paths are appended to it. */
  readonly baseUrl: string;
  /** Origins (`scheme://host[:port]`) requests may go to: the datasource's own and its `allowHosts`. */
  readonly allowedOrigins: ReadonlySet<string>;
  /** Headers with placeholders filled. SECURITY: may hold secrets; never log or return them. */
  readonly headers: Readonly<Record<string, string>>;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const HOST = /^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$/i;
const FIELDS = new Set(['kind', 'url', 'allowHosts', 'headers']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses `text` as an absolute http(s) URL, or returns undefined. */
export function parseHttpUrl(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
}

function allowedOrigin(resolver: string, entry: unknown, scheme: string): string {
  if (typeof entry !== 'string' || entry === '') throw configError(resolver, 'datasource.allowHosts', 'expected a list of hosts');
  if (entry.includes('://')) {
    const url = parseHttpUrl(entry);
    if (url === undefined || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '' || url.password !== '') {
      throw configError(resolver, 'datasource.allowHosts', `\`${entry}\` is not an http(s) origin`);
    }
    return url.origin;
  }
  if (!HOST.test(entry)) throw configError(resolver, 'datasource.allowHosts', `\`${entry}\` is not a host or host:port`);
  // A bare host takes the datasource's scheme (and that scheme's default port unless one is given).
  const url = parseHttpUrl(`${scheme}//${entry}`);
  if (url === undefined) throw configError(resolver, 'datasource.allowHosts', `\`${entry}\` is not a host or host:port`);
  return url.origin;
}

/**
 * Checks the datasource of resolver `resolver` and fills its header placeholders from `env`.
 * Throws `ERR_RESOLVER_CONFIG_INVALID` naming the resolver and the field (never a secret value).
 * @example parseHttpDatasource('crm', { kind: 'http', url: 'http://127.0.0.1:4000' }, {})
 */
export function parseHttpDatasource(resolver: string, raw: DatasourceConfig | undefined, env: HttpEnv): HttpDatasource {
  if (raw === undefined) throw configError(resolver, 'datasource', 'an `http` resolver needs an `http` datasource');
  if (raw.kind !== 'http') throw configError(resolver, 'datasource', `expected a datasource of kind \`http\`, got \`${String(raw.kind)}\``);
  for (const k of Object.keys(raw)) if (!FIELDS.has(k)) throw configError(resolver, `datasource.${k}`, 'unknown field');
  const rawUrl = raw['url'];
  const url = typeof rawUrl === 'string' ? parseHttpUrl(rawUrl) : undefined;
  if (url === undefined) throw configError(resolver, 'datasource.url', 'expected an absolute http or https URL');
  if (url.username !== '' || url.password !== '') throw configError(resolver, 'datasource.url', 'credentials in the URL are not allowed: use `headers`');
  if (url.search !== '' || url.hash !== '') throw configError(resolver, 'datasource.url', 'expected no query or fragment');
  const allowedOrigins = new Set([url.origin]);
  const allowHosts = raw['allowHosts'];
  if (allowHosts !== undefined) {
    if (!Array.isArray(allowHosts)) throw configError(resolver, 'datasource.allowHosts', 'expected a list of hosts');
    for (const entry of allowHosts) allowedOrigins.add(allowedOrigin(resolver, entry, url.protocol));
  }
  const headers: Record<string, string> = {};
  const rawHeaders = raw['headers'];
  if (rawHeaders !== undefined) {
    if (!isRecord(rawHeaders)) throw configError(resolver, 'datasource.headers', 'expected a map of header name to value');
    for (const [name, value] of Object.entries(rawHeaders)) {
      if (!HEADER_NAME.test(name)) throw configError(resolver, 'datasource.headers', `\`${name}\` is not a header name`);
      if (typeof value !== 'string') throw configError(resolver, `datasource.headers.${name}`, 'expected a string');
      const filled = value.replace(PLACEHOLDER, (_m, variable: string) => {
        const v = env[variable];
        if (v === undefined) throw configError(resolver, `datasource.headers.${name}`, `environment variable \`${variable}\` is not set`);
        return v;
      });
      // SECURITY: no CR/LF (header injection); the message names the header, not the value.
      if (/[\r\n\0]/.test(filled)) throw configError(resolver, `datasource.headers.${name}`, 'the value contains a line break');
      headers[name.toLowerCase()] = filled;
    }
  }
  return { baseUrl: url.href.replace(/\/+$/, ''), allowedOrigins, headers };
}
