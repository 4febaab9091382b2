/**
 * The factory shape the three token kinds share: parse the kind's config, and on `create` check the
 * named `oidc` datasource (filling `${NAME}` placeholders from the injected env) and hand it, the
 * clock and the optional fetch to the kind's resolver constructor.
 */
import type { ContextResolver, ResolverConfig, ResolverFactory } from '../../resolver.types.js';
import { parseOidcDatasource, type OidcDatasource } from './oidc-datasource.js';
import type { FetchLike } from './oidc-fetch.js';
import type { OidcResolverFactoryOptions } from './oidc-tokens.js';

/** What a token kind's resolver is built from. */
export interface OidcKindDeps {
  readonly datasource: OidcDatasource;
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/**
 * A {@link ResolverFactory} for a token kind.
 * @example oidcKindFactory('jwt', parseJwtResolverConfig, createJwtResolver, { env })
 */
export function oidcKindFactory<C extends ResolverConfig>(
  kind: string,
  parseConfig: (raw: unknown) => C,
  build: (config: C, deps: OidcKindDeps) => ContextResolver,
  options: OidcResolverFactoryOptions,
): ResolverFactory<C> {
  const env = options.env ?? {};
  return {
    kind,
    parseConfig,
    create: (config, deps) =>
      build(config, {
        datasource: parseOidcDatasource(config.name, deps.datasource, env),
        now: deps.now,
        ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
      }),
  };
}
