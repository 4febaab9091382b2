/** The `oidc-introspection` resolver kind: RFC 7662 introspection of opaque tokens. */
export {
  createOidcIntrospectionResolverFactory,
  createOidcIntrospectionResolver,
  parseOidcIntrospectionResolverConfig,
} from './oidc-introspection.resolver.js';
export type {
  OidcIntrospectionResolverConfig,
  OidcIntrospectionResolverDeps,
  IntrospectionResult,
} from './oidc-introspection.resolver.js';
