/**
 * The `jwt` kind: verifies a bearer JWT locally against its issuer's discovery document and JWKS.
 *
 * ```yaml
 * - name: bearer
 *   kind: jwt
 *   datasource: idp                 # an `oidc` datasource (required)
 *   key: subject.token              # the token (a leading `Bearer ` is dropped)
 *   audience: urn:warden            # string or list; default: the datasource's `audience` (one is required)
 *   algorithms: [RS256, ES256]      # default: every asymmetric JWS algorithm; HS* and `none` are refused
 *   typ: at+jwt                     # optional: required `typ` header (RFC 9068 access tokens)
 *   clockTolerance: 5s              # leeway for `exp` and `nbf` (default 5s, at most 5m)
 *   requiredClaims: [sub]           # claims that must be present (`exp` always is)
 *   jwksCooldown: 30s               # least time between refetches caused by an unknown `kid` (default 30s)
 *   jwksMaxAge: 10m                 # JWKS age after which it is refetched (default 10m)
 *   provides:
 *     principal.id: result.sub
 *     principal.roles: result.roles
 * ```
 * The result is the verified claims object. A refused token is `ERR_TOKEN_INVALID` with a reason
 * safe to show (`token expired`, `token audience not accepted`, `token signature invalid`, ...);
 * an unreachable or broken issuer is `ERR_RESOLVER_FAILED` / `ERR_RESOLVER_RESULT_INVALID`.
 * {@link ContextResolver.expiresAt} is `exp`, so a cache never serves a token past its life.
 *
 * SECURITY: `iss` must equal the discovered issuer, `aud` must name a configured audience, `exp`
 * must be present, and only asymmetric algorithms are accepted: HS* against a JWKS is the
 * public-key-as-HMAC-secret attack, and `none` is no signature at all. An unknown `kid` refetches
 * the JWKS at most once per `jwksCooldown` (jose), so random `kid`s cannot hammer the issuer.
 */
import { createRemoteJWKSet, customFetch, type JWTPayload, type JWTVerifyGetKey } from 'jose';
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
import { upstreamFailure } from '../oidc/oidc-errors.js';
import { createOidcFetch, type FetchLike } from '../oidc/oidc-fetch.js';
import { createOidcIssuerClient, type OidcServerMetadata } from '../oidc/oidc-issuer-client.js';
import {
  durationOption,
  expiresAtFromExp,
  rejectUnknownOptions,
  resolveTokens,
  type OidcResolverFactoryOptions,
} from '../oidc/oidc-tokens.js';
import { jwtFailure, verifyJwt } from './jwt-verify.js';
import { oidcKindFactory } from '../oidc/oidc-factory.js';

/** Config of a `jwt` resolver. */
export interface JwtResolverConfig extends ResolverConfig {
  readonly kind: 'jwt';
  readonly datasource: string;
  /** Accepted audiences; when absent, the datasource's. */
  readonly audience?: readonly string[];
  readonly algorithms: readonly string[];
  readonly typ?: string;
  readonly clockToleranceMs: number;
  /** Claims that must be present; always includes `exp`. */
  readonly requiredClaims: readonly string[];
  readonly jwksCooldownMs: number;
  readonly jwksMaxAgeMs: number;
}

/** What {@link createJwtResolver} runs against. */
export interface JwtResolverDeps {
  readonly datasource: OidcDatasource;
  /** Wall clock in ms (`exp` and `nbf` are checked against it). */
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/** The asymmetric JWS algorithms jose verifies; the default allowlist. */
export const ASYMMETRIC_JWS_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

const FIELDS = new Set(['audience', 'algorithms', 'typ', 'clockTolerance', 'requiredClaims', 'jwksCooldown', 'jwksMaxAge']);
const CLAIM = /^[A-Za-z0-9_.:-]{1,64}$/;
const JWKS_TIMEOUT_MS = 5_000;

function parseAlgorithms(name: string, raw: unknown): readonly string[] {
  if (raw === undefined) return ASYMMETRIC_JWS_ALGORITHMS;
  if (!Array.isArray(raw) || raw.length === 0) throw configError(name, 'algorithms', 'expected a non-empty list of JWS algorithms');
  for (const alg of raw) {
    // SECURITY: a JWKS holds public keys; HS* would verify with public bytes as the secret, `none` with nothing.
    if (typeof alg === 'string' && (/^HS\d+$/i.test(alg) || alg.toLowerCase() === 'none')) {
      throw configError(name, 'algorithms', `\`${alg}\` is never accepted with a JWKS (only asymmetric algorithms)`);
    }
    if (typeof alg !== 'string' || !ASYMMETRIC_JWS_ALGORITHMS.includes(alg)) {
      throw configError(name, 'algorithms', `expected some of ${ASYMMETRIC_JWS_ALGORITHMS.join(', ')}`);
    }
  }
  return [...new Set(raw as string[])];
}

function parseRequiredClaims(name: string, raw: unknown): readonly string[] {
  if (raw === undefined) return ['exp'];
  if (!Array.isArray(raw) || !raw.every((c): c is string => typeof c === 'string' && CLAIM.test(c))) {
    throw configError(name, 'requiredClaims', 'expected a list of claim names');
  }
  return [...new Set(['exp', ...raw])];
}

/**
 * Parses and checks a `jwt` resolver config (the datasource is checked when the resolver is created).
 * @example parseJwtResolverConfig({ name: 'bearer', kind: 'jwt', datasource: 'idp', key: 'subject.token', audience: 'urn:warden', provides: { 'principal.id': 'result.sub' } })
 */
export function parseJwtResolverConfig(raw: unknown): JwtResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'jwt') throw configError(name, 'kind', `expected \`jwt\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'a `jwt` resolver must name an `oidc` datasource');
  rejectUnknownOptions(name, options, FIELDS);
  const typ = options['typ'];
  if (typ !== undefined && (typeof typ !== 'string' || typ === '')) throw configError(name, 'typ', 'expected a media type such as `at+jwt`');
  const audience = options['audience'] === undefined ? undefined : parseAudience(name, 'audience', options['audience']);
  return {
    ...base,
    kind: 'jwt',
    datasource: base.datasource,
    ...(audience !== undefined ? { audience } : {}),
    algorithms: parseAlgorithms(name, options['algorithms']),
    ...(typ !== undefined ? { typ } : {}),
    clockToleranceMs: durationOption(name, 'clockTolerance', options['clockTolerance'], 5_000, 300_000),
    requiredClaims: parseRequiredClaims(name, options['requiredClaims']),
    jwksCooldownMs: durationOption(name, 'jwksCooldown', options['jwksCooldown'], 30_000, 3_600_000),
    jwksMaxAgeMs: durationOption(name, 'jwksMaxAge', options['jwksMaxAge'], 600_000, 86_400_000),
  };
}

/**
 * The resolver of a `jwt` config over its checked datasource. Nothing is fetched until the first call.
 * @example createJwtResolver(config, { datasource: parseOidcDatasource(config.name, raw, env), now: Date.now })
 */
export function createJwtResolver(config: JwtResolverConfig, deps: JwtResolverDeps): ContextResolver<JsonValue, JWTPayload> {
  const name = config.name;
  const audience = config.audience ?? deps.datasource.audience;
  // SECURITY: without an audience, a token the issuer minted for any other service would be accepted.
  if (audience === undefined) throw configError(name, 'audience', 'a `jwt` resolver needs the accepted audience (here or on the datasource)');
  const fetch = deps.fetch ?? globalThis.fetch;
  const issuer = createOidcIssuerClient({ resolver: name, datasource: deps.datasource, fetch });
  let jwks: { readonly uri: string; readonly keys: JWTVerifyGetKey } | undefined;

  const keysOf = (metadata: OidcServerMetadata): JWTVerifyGetKey => {
    const uri = metadata.jwks_uri;
    if (jwks !== undefined && jwks.uri === uri) return jwks.keys;
    let url: URL | undefined;
    try {
      url = typeof uri === 'string' ? new URL(uri) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'https:' && !(url.protocol === 'http:' && deps.datasource.allowInsecureHttp))) {
      throw upstreamFailure(name, 'discovery', 'the document has no usable https `jwks_uri`', 'ERR_RESOLVER_RESULT_INVALID');
    }
    const keys = createRemoteJWKSet(url, {
      cooldownDuration: config.jwksCooldownMs,
      cacheMaxAge: config.jwksMaxAgeMs,
      timeoutDuration: JWKS_TIMEOUT_MS,
      [customFetch]: createOidcFetch({ resolver: name, step: 'JWKS', fetch, requireJson200: true }),
    });
    jwks = { uri: uri as string, keys };
    return keys;
  };

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      // Once per call: the issuer's metadata (memoised after the first success) and its key set.
      let prepared: { readonly metadata: OidcServerMetadata; readonly keys: JWTVerifyGetKey } | ResolverError;
      try {
        const metadata = await issuer.metadata(ctx.signal);
        prepared = { metadata, keys: keysOf(metadata) };
      } catch (err) {
        prepared = err instanceof ResolverError ? err : jwtFailure(name, err);
      }
      const setup = prepared;
      // Verification is local except for a JWKS (re)fetch, which jose shares between callers:
      // resolveTokens stops waiting at the call's deadline instead of aborting it.
      return resolveTokens<JWTPayload>(name, 'JWKS', keys, ctx, keys.length, async (token) => {
        if (setup instanceof ResolverError) return setup;
        try {
          return await verifyJwt(token, setup.keys, {
            issuer: setup.metadata.issuer,
            audience: [...audience],
            algorithms: [...config.algorithms],
            ...(config.typ !== undefined ? { typ: config.typ } : {}),
            clockTolerance: config.clockToleranceMs / 1000,
            requiredClaims: [...config.requiredClaims],
            currentDate: new Date(deps.now()),
          });
        } catch (err) {
          return jwtFailure(name, err);
        }
      });
    },
    expiresAt: (value) => expiresAtFromExp(value),
  };
}

/**
 * The factory of the `jwt` kind; `env` fills the datasource's `${NAME}` placeholders.
 * @example createResolverRegistry({ configs, datasources, factories: { jwt: createJwtResolverFactory({ env: config.env }) } })
 */
export function createJwtResolverFactory(options: OidcResolverFactoryOptions = {}): ResolverFactory<JwtResolverConfig> {
  return oidcKindFactory('jwt', parseJwtResolverConfig, createJwtResolver, options);
}
