/** The `oidc-userinfo` resolver kind: userinfo claims of an access token. */
export {
  createOidcUserinfoResolverFactory,
  createOidcUserinfoResolver,
  parseOidcUserinfoResolverConfig,
} from './oidc-userinfo.resolver.js';
export type { OidcUserinfoResolverConfig, OidcUserinfoResolverDeps, UserinfoClaims } from './oidc-userinfo.resolver.js';
