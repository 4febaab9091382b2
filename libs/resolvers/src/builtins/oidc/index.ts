/** What the OIDC resolver kinds (`jwt`, `oidc-userinfo`, `oidc-introspection`) share: the `oidc` datasource and the issuer client. */
export { parseOidcDatasource, parseAudience } from './oidc-datasource.js';
export type { OidcDatasource, OidcEnv, OidcClientAuth } from './oidc-datasource.js';
export { createOidcIssuerClient, untilAborted } from './oidc-issuer-client.js';
export type { OidcIssuerClient, OidcIssuerClientOptions, OidcServerMetadata } from './oidc-issuer-client.js';
export { createOidcFetch, findResolverError } from './oidc-fetch.js';
export type { FetchLike, OidcFetchInit, OidcFetchOptions } from './oidc-fetch.js';
export { tokenInvalid, upstreamFailure, upstreamError, statusOf } from './oidc-errors.js';
export { tokenOf, expiresAtFromExp, resolveTokens, MAX_TOKEN_CHARS } from './oidc-tokens.js';
export type { OidcResolverFactoryOptions } from './oidc-tokens.js';
