/**
 * A `graphql` datasource as operators define it in `warden.yaml`:
 *
 * ```yaml
 * datasources:
 *   projects-api:
 *     kind: graphql
 *     url: "https://projects.internal/graphql"      # the endpoint itself; resolvers cannot change it
 *     allowHosts: ["projects-eu.internal:8443"]     # optional, as for `http`
 *     headers: { Authorization: "Bearer ${PROJECTS_TOKEN}" }
 * ```
 * The fields mean exactly what they mean for an `http` datasource, so this wraps
 * {@link parseHttpDatasource} instead of copying it: the origin allowlist, `${NAME}` header
 * placeholders filled from an injected environment map, and secrets never echoed.
 */
import type { DatasourceConfig } from '../../resolver.types.js';
import { configError } from '../../resolver.types.js';
import { parseHttpDatasource, parseHttpUrl, type HttpDatasource, type HttpEnv } from '../http/http-datasource.js';

/** A checked `graphql` datasource. */
export interface GraphQLDatasource extends HttpDatasource {
  /** The GraphQL endpoint exactly as configured (checked: http(s), no credentials, no query). */
  readonly endpoint: string;
}

/**
 * Checks the `graphql` datasource of resolver `resolver` and fills its header placeholders from `env`.
 * Throws `ERR_RESOLVER_CONFIG_INVALID` naming the resolver and the field (never a secret value).
 * @example parseGraphQLDatasource('projects', { kind: 'graphql', url: 'http://127.0.0.1:4000/graphql' }, {})
 */
export function parseGraphQLDatasource(resolver: string, raw: DatasourceConfig | undefined, env: HttpEnv): GraphQLDatasource {
  if (raw === undefined) throw configError(resolver, 'datasource', 'a `graphql` resolver needs a `graphql` datasource');
  if (raw.kind !== 'graphql') throw configError(resolver, 'datasource', `expected a datasource of kind \`graphql\`, got \`${String(raw.kind)}\``);
  // parseHttpDatasource insists on kind `http`; every other field has the same meaning here.
  const checked = parseHttpDatasource(resolver, { ...raw, kind: 'http' }, env);
  // INVARIANT: parseHttpDatasource accepted `url`, so it is a string that parses as an http(s) URL.
  const endpoint = parseHttpUrl(raw['url'] as string)?.href ?? checked.baseUrl;
  return { ...checked, endpoint };
}
