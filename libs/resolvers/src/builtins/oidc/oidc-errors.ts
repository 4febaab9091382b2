/**
 * Failures of the OIDC kinds, in two families that must never be confused:
 *
 * - `ERR_TOKEN_INVALID`: the presented token is not acceptable (expired, wrong audience, bad
 *   signature, inactive...). The message is a fixed reason such as `token expired`, safe to show to
 *   the caller. SECURITY: it never holds the token or any part of it.
 * - `ERR_RESOLVER_FAILED` / `ERR_RESOLVER_RESULT_INVALID`: the issuer could not be asked or
 *   answered nonsense (down, HTTP 500, malformed JSON). The message names the resolver and the
 *   step, never upstream text.
 */
import { ClientError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';
import { ResolverError } from '../../resolver-error.js';
import { abortedError } from '../../with-timeout.js';
import { findResolverError } from './oidc-fetch.js';

/**
 * The failure of one token, with a reason safe to show to a caller.
 * @example tokenInvalid('bearer', 'token expired')
 */
export function tokenInvalid(resolver: string, reason: string): ResolverError {
  return new ResolverError(resolver, 'ERR_TOKEN_INVALID', reason);
}

/**
 * A `resolver \`name\`: step: why` failure of the issuer (not of the token).
 * @example upstreamFailure('bearer', 'discovery', 'the document has no `jwks_uri`', 'ERR_RESOLVER_RESULT_INVALID')
 */
export function upstreamFailure(
  resolver: string,
  step: string,
  why: string,
  code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID' = 'ERR_RESOLVER_FAILED',
  cause?: unknown,
): ResolverError {
  return new ResolverError(resolver, code, `resolver \`${resolver}\`: ${step}: ${why}`, cause === undefined ? undefined : { cause });
}

const OAUTH_ERROR = /^[a-z_]{1,40}$/;
/** openid-client (oauth4webapi) codes meaning the answer arrived but is not what the protocol requires. */
const MALFORMED = new Set([
  'OAUTH_RESPONSE_IS_NOT_JSON',
  'OAUTH_PARSE_ERROR',
  'OAUTH_INVALID_RESPONSE',
  'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED',
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_JWT_USERINFO_EXPECTED',
  'OAUTH_KEY_SELECTION_FAILED',
  'OAUTH_INVALID_SERVER_METADATA',
  'OAUTH_MISSING_SERVER_METADATA',
]);

/**
 * HTTP status of an openid-client error, when it carries one.
 * @example if (statusOf(err) === 401) return tokenInvalid(name, 'token not accepted by the issuer');
 */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ResponseBodyError || err instanceof WWWAuthenticateChallengeError) return err.status;
  if (err instanceof ClientError && err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && err.cause instanceof Response) return err.cause.status;
  return undefined;
}

/**
 * Maps whatever openid-client (or the fetch under it) threw during `step` to a coded failure of
 * the issuer. Callers decide first whether a status means "token refused" (userinfo's 401).
 * @example catch (err) { return upstreamError('introspect', 'introspection', err, ctx.signal); }
 */
export function upstreamError(resolver: string, step: string, err: unknown, signal?: AbortSignal): ResolverError {
  if (signal?.aborted) return abortedError(resolver, signal);
  const own = findResolverError(err);
  if (own !== undefined) return own;
  if (err instanceof ResponseBodyError || err instanceof WWWAuthenticateChallengeError) {
    // The OAuth error code is upstream text: only a plain `snake_case` word is quoted.
    const oauthError = err instanceof ResponseBodyError ? err.error : err.cause[0]?.parameters.error;
    const code = oauthError !== undefined && OAUTH_ERROR.test(oauthError) ? ` (${oauthError})` : '';
    return upstreamFailure(resolver, step, `answered HTTP ${err.status}${code}`, 'ERR_RESOLVER_FAILED', err);
  }
  const status = statusOf(err);
  if (status !== undefined) return upstreamFailure(resolver, step, `answered HTTP ${status}`, 'ERR_RESOLVER_FAILED', err);
  if (err instanceof ClientError && err.code !== undefined && /^[A-Z0-9_]{1,60}$/.test(err.code)) {
    if (step === 'discovery' && err.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
      // SECURITY: the document names another issuer (a mix-up or a misconfiguration); nothing from it is used.
      return upstreamFailure(resolver, step, 'the document names another issuer', 'ERR_RESOLVER_RESULT_INVALID', err);
    }
    if (MALFORMED.has(err.code)) return upstreamFailure(resolver, step, `answered malformed data (${err.code})`, 'ERR_RESOLVER_RESULT_INVALID', err);
    if (err.code === 'OAUTH_HTTP_REQUEST_FORBIDDEN') return upstreamFailure(resolver, step, 'refused a plain http endpoint (set `allowInsecureHttp` only for tests)', 'ERR_RESOLVER_FAILED', err);
    return upstreamFailure(resolver, step, `failed (${err.code})`, 'ERR_RESOLVER_FAILED', err);
  }
  return upstreamFailure(resolver, step, 'request failed', 'ERR_RESOLVER_FAILED', err);
}
