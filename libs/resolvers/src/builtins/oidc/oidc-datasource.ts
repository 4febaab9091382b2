/**
 * An `oidc` datasource as operators define it in `warden.yaml`, checked and made ready to use by
 * the `jwt`, `oidc-userinfo` and `oidc-introspection` kinds:
 *
 * ```yaml
 * datasources:
 *   idp:
 *     kind: oidc
 *     issuer: "https://idp.example.com"    # the issuer identifier; metadata is discovered from it
 *     discovery: oidc                      # oidc (default: /.well-known/openid-configuration) | oauth2 (RFC 8414)
 *     audience: ["urn:warden"]             # default accepted audience(s) of its resolvers (string or list)
 *     clientId: warden                     # introspection client (required by `oidc-introspection`)
 *     clientSecret: "${IDP_SECRET}"        # filled from the injected environment map
 *     clientAuth: client_secret_basic      # | client_secret_post
 *     allowInsecureHttp: false             # true permits an http:// issuer (tests, local development)
 * ```
 * `${NAME}` placeholders in `clientId` and `clientSecret` are filled from an injected environment
 * map (libs never read the process environment). A missing variable is named, its value never is.
 */
import { configError, type DatasourceConfig } from '../../resolver.types.js';

/** The environment placeholders are filled from (the app passes its validated env slice). */
export type OidcEnv = Readonly<Record<string, string | undefined>>;

/** How the introspection client authenticates. */
export type OidcClientAuth = 'client_secret_basic' | 'client_secret_post';

/** A checked `oidc` datasource. */
export interface OidcDatasource {
  /** The issuer identifier as written (no credentials, query or fragment). */
  readonly issuer: string;
  /** Where the metadata lives: OpenID Connect Discovery or RFC 8414. */
  readonly discovery: 'oidc' | 'oauth2';
  /** Default accepted audiences of resolvers on this datasource (non-empty when present). */
  readonly audience?: readonly string[];
  readonly clientId?: string;
  /** SECURITY: a secret; sent to the issuer's endpoints only, never logged or put in a message. */
  readonly clientSecret?: string;
  readonly clientAuth: OidcClientAuth;
  /** True when plain-http endpoints are allowed (tests and local development only). */
  readonly allowInsecureHttp: boolean;
}

const FIELDS = new Set(['kind', 'issuer', 'discovery', 'audience', 'clientId', 'clientSecret', 'clientAuth', 'allowInsecureHttp']);
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Parses an audience field: one non-empty string or a non-empty list of them.
 * @example parseAudience('bearer', 'audience', ['urn:a', 'urn:b']) // ['urn:a', 'urn:b']
 */
export function parseAudience(resolver: string, field: string, raw: unknown): readonly string[] {
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0 || !list.every((a): a is string => typeof a === 'string' && a !== '')) {
    throw configError(resolver, field, 'expected an audience or a non-empty list of audiences');
  }
  return [...new Set(list)];
}

function filled(resolver: string, field: string, raw: unknown, env: OidcEnv): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw === '') throw configError(resolver, field, 'expected a non-empty string');
  const value = raw.replace(PLACEHOLDER, (_m, variable: string) => {
    const v = env[variable];
    if (v === undefined) throw configError(resolver, field, `environment variable \`${variable}\` is not set`);
    return v;
  });
  // SECURITY: the message names the field, never the (possibly secret) value.
  if (value === '' || /[\r\n\0]/.test(value)) throw configError(resolver, field, 'the value is empty or contains a control character');
  return value;
}

function parseIssuer(resolver: string, raw: unknown, allowInsecureHttp: boolean): string {
  let url: URL | undefined;
  try {
    url = typeof raw === 'string' ? new URL(raw) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw configError(resolver, 'datasource.issuer', 'expected an absolute https URL');
  }
  // SECURITY: tokens and client secrets travel to the issuer's endpoints; plain http is opt-in.
  if (url.protocol === 'http:' && !allowInsecureHttp) {
    throw configError(resolver, 'datasource.issuer', 'an http issuer needs `allowInsecureHttp: true` (tests and local development only)');
  }
  if (url.username !== '' || url.password !== '') throw configError(resolver, 'datasource.issuer', 'credentials in the URL are not allowed');
  if (url.search !== '' || url.hash !== '') throw configError(resolver, 'datasource.issuer', 'expected no query or fragment');
  return raw as string;
}

/**
 * Checks the `oidc` datasource of resolver `resolver` and fills its placeholders from `env`.
 * Throws `ERR_RESOLVER_CONFIG_INVALID` naming the resolver and the field (never a secret value).
 * @example parseOidcDatasource('bearer', { kind: 'oidc', issuer: 'https://idp.example.com', audience: 'urn:warden' }, {})
 */
export function parseOidcDatasource(resolver: string, raw: DatasourceConfig | undefined, env: OidcEnv): OidcDatasource {
  if (raw === undefined) throw configError(resolver, 'datasource', 'this kind needs an `oidc` datasource');
  if (raw.kind !== 'oidc') throw configError(resolver, 'datasource', `expected a datasource of kind \`oidc\`, got \`${String(raw.kind)}\``);
  for (const k of Object.keys(raw)) if (!FIELDS.has(k)) throw configError(resolver, `datasource.${k}`, 'unknown field');
  const insecure = raw['allowInsecureHttp'] ?? false;
  if (typeof insecure !== 'boolean') throw configError(resolver, 'datasource.allowInsecureHttp', 'expected true or false');
  const issuer = parseIssuer(resolver, raw['issuer'], insecure);
  const discovery = raw['discovery'] ?? 'oidc';
  if (discovery !== 'oidc' && discovery !== 'oauth2') throw configError(resolver, 'datasource.discovery', 'expected `oidc` or `oauth2`');
  const clientAuth = raw['clientAuth'] ?? 'client_secret_basic';
  if (clientAuth !== 'client_secret_basic' && clientAuth !== 'client_secret_post') {
    throw configError(resolver, 'datasource.clientAuth', 'expected `client_secret_basic` or `client_secret_post`');
  }
  const clientId = filled(resolver, 'datasource.clientId', raw['clientId'], env);
  const clientSecret = filled(resolver, 'datasource.clientSecret', raw['clientSecret'], env);
  if (clientSecret !== undefined && clientId === undefined) throw configError(resolver, 'datasource.clientId', 'a `clientSecret` needs a `clientId`');
  const audience = raw['audience'] === undefined ? undefined : parseAudience(resolver, 'datasource.audience', raw['audience']);
  return {
    issuer,
    discovery,
    ...(audience !== undefined ? { audience } : {}),
    ...(clientId !== undefined ? { clientId } : {}),
    ...(clientSecret !== undefined ? { clientSecret } : {}),
    clientAuth,
    allowInsecureHttp: insecure,
  };
}
