/**
 * The `oidc-introspection` kind: RFC 7662 introspection of (typically opaque) tokens.
 *
 * ```yaml
 * datasources:
 *   idp: { kind: oidc, issuer: "https://idp.example.com", clientId: warden, clientSecret: "${IDP_SECRET}" }
 * resolvers:
 *   - name: introspect
 *     kind: oidc-introspection
 *     datasource: idp               # an `oidc` datasource with `clientId` and `clientSecret` (required)
 *     key: subject.token            # the token (a leading `Bearer ` is dropped)
 *     audience: urn:warden          # optional (default: the datasource's): the answer's `aud` must name one
 *     tokenTypeHint: access_token   # optional: access_token | refresh_token
 *     clockTolerance: 5s            # leeway for `exp` and `nbf` in the answer (default 5s)
 *     concurrency: 8                # requests in flight at once per call (default 8)
 *     provides:
 *       principal.id: result.sub
 * ```
 * The result is the introspection response. `active: false` is `ERR_TOKEN_INVALID`
 * `token not active`; an answer for another issuer or audience, or past its `exp`, is refused the
 * same way. {@link ContextResolver.expiresAt} is the answer's `exp`, so a cache never serves a
 * token past its life. A refused client (wrong secret) or a broken endpoint is the issuer's failure.
 *
 * SECURITY: the client secret comes from the injected environment and is sent to the discovered
 * `introspection_endpoint` only; neither it nor the token ever appears in a message.
 */
import * as oidc from 'openid-client';
import type { JsonValue } from '@warden/core';
import { ResolverError } from '../../resolver-error.js';
import {
  configError,
  parseResolverConfig,
  type ContextResolver,
  type ResolverConfig,
  type ResolverFactory,
} from '../../resolver.types.js';
import { parseAudience, type OidcDatasource } from '../oidc/oidc-datasource.js';
import { tokenInvalid, upstreamError } from '../oidc/oidc-errors.js';
import type { FetchLike } from '../oidc/oidc-fetch.js';
import { createOidcIssuerClient } from '../oidc/oidc-issuer-client.js';
import {
  durationOption,
  expiresAtFromExp,
  integerOption,
  rejectUnknownOptions,
  resolveTokens,
  type OidcResolverFactoryOptions,
} from '../oidc/oidc-tokens.js';
import { oidcKindFactory } from '../oidc/oidc-factory.js';

/** Config of an `oidc-introspection` resolver. */
export interface OidcIntrospectionResolverConfig extends ResolverConfig {
  readonly kind: 'oidc-introspection';
  readonly datasource: string;
  /** When set (here or on the datasource), the answer's `aud` must name one of these. */
  readonly audience?: readonly string[];
  readonly tokenTypeHint?: 'access_token' | 'refresh_token';
  readonly clockToleranceMs: number;
  readonly concurrency: number;
}

/** What {@link createOidcIntrospectionResolver} runs against. */
export interface OidcIntrospectionResolverDeps {
  readonly datasource: OidcDatasource;
  /** Wall clock in ms (`exp` and `nbf` of the answer are checked against it). */
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/** An RFC 7662 introspection response of an active token. */
export type IntrospectionResult = Readonly<Record<string, JsonValue>>;

const FIELDS = new Set(['audience', 'tokenTypeHint', 'clockTolerance', 'concurrency']);

/**
 * Parses and checks an `oidc-introspection` resolver config (the datasource is checked when the resolver is created).
 * @example parseOidcIntrospectionResolverConfig({ name: 'introspect', kind: 'oidc-introspection', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub' } })
 */
export function parseOidcIntrospectionResolverConfig(raw: unknown): OidcIntrospectionResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'oidc-introspection') throw configError(name, 'kind', `expected \`oidc-introspection\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'an `oidc-introspection` resolver must name an `oidc` datasource');
  rejectUnknownOptions(name, options, FIELDS);
  const hint = options['tokenTypeHint'];
  if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') throw configError(name, 'tokenTypeHint', 'expected `access_token` or `refresh_token`');
  const audience = options['audience'] === undefined ? undefined : parseAudience(name, 'audience', options['audience']);
  return {
    ...base,
    kind: 'oidc-introspection',
    datasource: base.datasource,
    ...(audience !== undefined ? { audience } : {}),
    ...(hint !== undefined ? { tokenTypeHint: hint } : {}),
    clockToleranceMs: durationOption(name, 'clockTolerance', options['clockTolerance'], 5_000, 300_000),
    concurrency: integerOption(name, 'concurrency', options['concurrency'], 8, 64),
  };
}

function audiences(aud: unknown): readonly string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/**
 * The resolver of an `oidc-introspection` config. Nothing is fetched until the first call.
 * @example createOidcIntrospectionResolver(config, { datasource: parseOidcDatasource(config.name, raw, env), now: Date.now })
 */
export function createOidcIntrospectionResolver(
  config: OidcIntrospectionResolverConfig,
  deps: OidcIntrospectionResolverDeps,
): ContextResolver<JsonValue, IntrospectionResult> {
  const name = config.name;
  const { datasource } = deps;
  // RFC 7662 section 2.1: the introspecting party authenticates.
  if (datasource.clientId === undefined) throw configError(name, 'datasource.clientId', 'introspection needs a client: set `clientId` and `clientSecret`');
  if (datasource.clientSecret === undefined) throw configError(name, 'datasource.clientSecret', 'introspection needs a client: set `clientId` and `clientSecret`');
  const audience = config.audience ?? datasource.audience;
  const issuer = createOidcIssuerClient({ resolver: name, datasource, ...(deps.fetch !== undefined ? { fetch: deps.fetch } : {}) });
  const parameters = config.tokenTypeHint !== undefined ? { token_type_hint: config.tokenTypeHint } : undefined;

  function check(answer: IntrospectionResult, expectedIssuer: string): IntrospectionResult | ResolverError {
    // SECURITY: only `active: true` (a boolean, checked by openid-client) means valid.
    if (answer['active'] !== true) return tokenInvalid(name, 'token not active');
    if (answer['iss'] !== undefined && answer['iss'] !== expectedIssuer) return tokenInvalid(name, 'token issuer not accepted');
    if (audience !== undefined && !audiences(answer['aud']).some((a) => audience.includes(a))) return tokenInvalid(name, 'token audience not accepted');
    const now = deps.now();
    const exp = answer['exp'];
    if (typeof exp === 'number' && exp * 1000 <= now - config.clockToleranceMs) return tokenInvalid(name, 'token expired');
    const nbf = answer['nbf'];
    if (typeof nbf === 'number' && nbf * 1000 > now + config.clockToleranceMs) return tokenInvalid(name, 'token not yet valid');
    return answer;
  }

  async function introspect(client: oidc.Configuration, token: string, signal: AbortSignal): Promise<IntrospectionResult | ResolverError> {
    try {
      const answer = await oidc.tokenIntrospection(client, token, parameters);
      return check(Object.fromEntries(Object.entries(answer)) as IntrospectionResult, client.serverMetadata().issuer);
    } catch (err) {
      return upstreamError(name, 'introspection', err, signal);
    }
  }

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      const client = await issuer.configuration('introspection', 'introspection_endpoint', ctx.signal);
      return resolveTokens(name, 'introspection', keys, ctx, config.concurrency, async (token) =>
        client instanceof ResolverError ? client : introspect(client, token, ctx.signal),
      );
    },
    expiresAt: (value) => expiresAtFromExp(value),
  };
}

/**
 * The factory of the `oidc-introspection` kind; `env` fills the datasource's `${NAME}` placeholders (the client secret).
 * @example createResolverRegistry({ configs, datasources, factories: { 'oidc-introspection': createOidcIntrospectionResolverFactory({ env }) } })
 */
export function createOidcIntrospectionResolverFactory(options: OidcResolverFactoryOptions = {}): ResolverFactory<OidcIntrospectionResolverConfig> {
  return oidcKindFactory('oidc-introspection', parseOidcIntrospectionResolverConfig, createOidcIntrospectionResolver, options);
}
