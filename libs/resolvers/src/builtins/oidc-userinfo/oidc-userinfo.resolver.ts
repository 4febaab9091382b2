/**
 * The `oidc-userinfo` kind: asks the issuer's userinfo endpoint about an access token.
 *
 * ```yaml
 * - name: userinfo
 *   kind: oidc-userinfo
 *   datasource: idp                 # an `oidc` datasource (required); the endpoint comes from discovery
 *   key: subject.token              # the access token (a leading `Bearer ` is dropped)
 *   concurrency: 8                  # requests in flight at once per call (default 8)
 *   provides:
 *     principal.attr.email: result.email
 * ```
 * The result is the userinfo claims object (it always has `sub`). A token the endpoint refuses
 * (HTTP 401 or 403) is `ERR_TOKEN_INVALID` `token not accepted by the issuer`; anything else that
 * goes wrong is the issuer's failure (`ERR_RESOLVER_FAILED` / `ERR_RESOLVER_RESULT_INVALID`).
 * Userinfo answers carry no expiry, so only the resolver's cache ttl bounds them: keep it short.
 *
 * SECURITY: the token is sent to the discovered `userinfo_endpoint` only (https unless the
 * datasource allows http), redirects are not followed, and the request is abandoned with the call.
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
import type { OidcDatasource } from '../oidc/oidc-datasource.js';
import { statusOf, tokenInvalid, upstreamError } from '../oidc/oidc-errors.js';
import type { FetchLike } from '../oidc/oidc-fetch.js';
import { createOidcIssuerClient } from '../oidc/oidc-issuer-client.js';
import { integerOption, rejectUnknownOptions, resolveTokens, type OidcResolverFactoryOptions } from '../oidc/oidc-tokens.js';
import { oidcKindFactory } from '../oidc/oidc-factory.js';

/** Config of an `oidc-userinfo` resolver. */
export interface OidcUserinfoResolverConfig extends ResolverConfig {
  readonly kind: 'oidc-userinfo';
  readonly datasource: string;
  /** Userinfo requests in flight at once per call. */
  readonly concurrency: number;
}

/** What {@link createOidcUserinfoResolver} runs against. */
export interface OidcUserinfoResolverDeps {
  readonly datasource: OidcDatasource;
  readonly fetch?: FetchLike;
}

/** Userinfo claims (`sub` and whatever the token's scopes release). */
export type UserinfoClaims = Readonly<Record<string, JsonValue>>;

const FIELDS = new Set(['concurrency']);

/**
 * Parses and checks an `oidc-userinfo` resolver config.
 * @example parseOidcUserinfoResolverConfig({ name: 'userinfo', kind: 'oidc-userinfo', datasource: 'idp', key: 'subject.token', provides: { 'principal.attr.email': 'result.email' } })
 */
export function parseOidcUserinfoResolverConfig(raw: unknown): OidcUserinfoResolverConfig {
  const base = parseResolverConfig(raw);
  const { name, options } = base;
  if (base.kind !== 'oidc-userinfo') throw configError(name, 'kind', `expected \`oidc-userinfo\`, got \`${base.kind}\``);
  if (base.datasource === undefined) throw configError(name, 'datasource', 'an `oidc-userinfo` resolver must name an `oidc` datasource');
  rejectUnknownOptions(name, options, FIELDS);
  return { ...base, kind: 'oidc-userinfo', datasource: base.datasource, concurrency: integerOption(name, 'concurrency', options['concurrency'], 8, 64) };
}

/**
 * The resolver of an `oidc-userinfo` config. Nothing is fetched until the first call.
 * @example createOidcUserinfoResolver(config, { datasource: parseOidcDatasource(config.name, raw, env) })
 */
export function createOidcUserinfoResolver(config: OidcUserinfoResolverConfig, deps: OidcUserinfoResolverDeps): ContextResolver<JsonValue, UserinfoClaims> {
  const name = config.name;
  const issuer = createOidcIssuerClient({ resolver: name, datasource: deps.datasource, ...(deps.fetch !== undefined ? { fetch: deps.fetch } : {}) });

  async function userinfo(client: oidc.Configuration, token: string, signal: AbortSignal): Promise<UserinfoClaims | ResolverError> {
    try {
      // The subject check binds userinfo to an ID token of a login; a resource server has none.
      const claims = await oidc.fetchUserInfo(client, token, oidc.skipSubjectCheck);
      return Object.fromEntries(Object.entries(claims)) as UserinfoClaims;
    } catch (err) {
      const status = signal.aborted ? undefined : statusOf(err);
      if (status === 401 || status === 403) return tokenInvalid(name, 'token not accepted by the issuer');
      return upstreamError(name, 'userinfo', err, signal);
    }
  }

  return {
    name,
    async resolveMany(keys, ctx) {
      if (keys.length === 0) return [];
      const client = await issuer.configuration('userinfo', 'userinfo_endpoint', ctx.signal);
      return resolveTokens(name, 'userinfo', keys, ctx, config.concurrency, async (token) =>
        client instanceof ResolverError ? client : userinfo(client, token, ctx.signal),
      );
    },
    // Userinfo has no `exp`: only the cache ttl bounds how long an answer is served.
    expiresAt: () => undefined,
  };
}

/**
 * The factory of the `oidc-userinfo` kind; `env` fills the datasource's `${NAME}` placeholders.
 * @example createResolverRegistry({ configs, datasources, factories: { 'oidc-userinfo': createOidcUserinfoResolverFactory({ env }) } })
 */
export function createOidcUserinfoResolverFactory(options: OidcResolverFactoryOptions = {}): ResolverFactory<OidcUserinfoResolverConfig> {
  return oidcKindFactory('oidc-userinfo', parseOidcUserinfoResolverConfig, createOidcUserinfoResolver, options);
}
