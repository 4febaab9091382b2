/** The `jwt` resolver kind: bearer JWTs verified against the issuer's discovery document and JWKS. */
export { createJwtResolverFactory, createJwtResolver, parseJwtResolverConfig, ASYMMETRIC_JWS_ALGORITHMS } from './jwt.resolver.js';
export type { JwtResolverConfig, JwtResolverDeps } from './jwt.resolver.js';
export { verifyJwt, jwtFailure } from './jwt-verify.js';
