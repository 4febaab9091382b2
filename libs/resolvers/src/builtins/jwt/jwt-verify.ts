/**
 * JWT verification with jose and what its failures mean. jose checks, in order: the algorithm
 * against the allowlist (before any key is looked up, so `none` and HS* never reach a key), the
 * key (by `kid` in the JWKS), the signature, then `typ`, required claims, `iss`, `aud`, `nbf` and
 * `exp`. Each failure becomes a fixed, caller-safe reason; failures of the JWKS itself are the
 * issuer's, not the token's.
 */
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { ResolverError } from '../../resolver-error.js';
import { tokenInvalid, upstreamFailure } from '../oidc/oidc-errors.js';
import { findResolverError } from '../oidc/oidc-fetch.js';

/**
 * Verifies `token` against `keys`. When several JWKS keys match a token without `kid` (during a
 * rotation), each is tried, as jose's documentation recommends.
 * @example const claims = await verifyJwt(token, createRemoteJWKSet(jwksUrl), { issuer, audience, algorithms: ['RS256'] });
 */
export async function verifyJwt(token: string, keys: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    for await (const key of err) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

function claimFailure(resolver: string, claim: string, reason: string): ResolverError {
  if (claim === 'nbf' && reason === 'check_failed') return tokenInvalid(resolver, 'token not yet valid');
  if (claim === 'iss' && reason === 'check_failed') return tokenInvalid(resolver, 'token issuer not accepted');
  if (claim === 'aud' && reason === 'check_failed') return tokenInvalid(resolver, 'token audience not accepted');
  if (claim === 'typ') return tokenInvalid(resolver, 'token type not accepted');
  // `claim` is a registered claim name or one of the configured `requiredClaims`, never token text.
  if (reason === 'missing') return tokenInvalid(resolver, `token has no \`${claim}\` claim`);
  return tokenInvalid(resolver, `token claim \`${claim}\` invalid`);
}

/**
 * The failure `err` (thrown by {@link verifyJwt}) stands for.
 * @example catch (err) { return jwtFailure('bearer', err); } // e.g. ERR_TOKEN_INVALID `token expired`
 */
export function jwtFailure(resolver: string, err: unknown): ResolverError {
  const own = findResolverError(err);
  if (own !== undefined) return own;
  if (err instanceof errors.JWTExpired) return tokenInvalid(resolver, 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) return claimFailure(resolver, err.claim, err.reason);
  if (err instanceof errors.JOSEAlgNotAllowed) return tokenInvalid(resolver, 'token algorithm not allowed');
  if (err instanceof errors.JWSSignatureVerificationFailed) return tokenInvalid(resolver, 'token signature invalid');
  if (err instanceof errors.JWKSNoMatchingKey) return tokenInvalid(resolver, 'token signing key not found');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JOSENotSupported) {
    return tokenInvalid(resolver, 'token malformed');
  }
  if (err instanceof errors.JWKSTimeout) return upstreamFailure(resolver, 'JWKS', 'request timed out', 'ERR_RESOLVER_FAILED', err);
  if (err instanceof errors.JWKSInvalid || err instanceof errors.JWKInvalid) {
    return upstreamFailure(resolver, 'JWKS', 'answered an invalid key set', 'ERR_RESOLVER_RESULT_INVALID', err);
  }
  // jose throws TypeError for a key it cannot use (e.g. an RSA key under 2048 bits): the issuer's problem.
  if (err instanceof TypeError) return upstreamFailure(resolver, 'JWKS', 'the signing key is unusable', 'ERR_RESOLVER_RESULT_INVALID', err);
  return upstreamFailure(resolver, 'JWKS', 'request failed', 'ERR_RESOLVER_FAILED', err);
}
