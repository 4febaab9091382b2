/**
 * RFC 8693 tokens from other issuers (an IdP's token exchange, another gateway): accepted as
 * evidence of who acts for whom. `sub` is the subject; `act` names the current actor, and nested
 * `act` claims the prior ones, which RFC 8693 section 4.1 calls informational. Such a token grants
 * nothing: whatever scope it claims is ignored, and what the agent may do is what both identities
 * may do (and, under a Warden delegation, what it grants).
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { DelegationError } from './delegation-error.js';
import { DELEGATION_TOKEN_TYPE } from './delegation-token.js';

/** Who acts, according to an external token. */
export interface ExternalActors {
  readonly issuer: string;
  readonly subject: string;
  /** The current actor first, then the prior ones (informational). */
  readonly actors: readonly string[];
  readonly tokenId?: string;
}

/** One trusted issuer of RFC 8693 tokens. */
export interface ExternalIssuer {
  readonly issuer: string;
  /** Its signing keys (the broker gives a remote JWKS). */
  readonly keys: JWTVerifyGetKey;
  readonly audience?: string;
  readonly algorithms: readonly string[];
}

/** True when `token` is not a Warden delegation token but one of `issuers`' (by its unverified header and `iss`). */
export function isExternalToken(token: string, issuers: ReadonlyMap<string, ExternalIssuer>): boolean {
  try {
    if (decodeProtectedHeader(token).typ === DELEGATION_TOKEN_TYPE) return false;
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' && issuers.has(iss);
  } catch {
    return false;
  }
}

function invalid(message: string, cause?: unknown): DelegationError {
  return new DelegationError('ERR_DELEGATION_INVALID', 'delegation_invalid', message, cause === undefined ? undefined : { cause });
}

function actorsOf(act: unknown): string[] {
  const out: string[] = [];
  let cur = act;
  while (typeof cur === 'object' && cur !== null && out.length < 32) {
    const sub = (cur as { sub?: unknown }).sub;
    if (typeof sub !== 'string' || sub === '') throw invalid('the token\'s `act` claim names no actor');
    out.push(sub);
    cur = (cur as { act?: unknown }).act;
  }
  return out;
}

/** Verifies external RFC 8693 tokens; a token verified before answers at once (until it expires). */
export interface ExternalActorVerifier {
  verify(token: string, nowMs: number): ExternalActors | Promise<ExternalActors>;
}

/**
 * A verifier for the tokens of `issuers`.
 * @example const who = await createExternalActorVerifier([{ issuer, keys: createRemoteJWKSet(url), algorithms: ['RS256'] }]).verify(token, Date.now());
 */
export function createExternalActorVerifier(issuers: readonly ExternalIssuer[], maxEntries = 10_000): ExternalActorVerifier {
  const byIssuer = new Map(issuers.map((i) => [i.issuer, i]));
  const verified = new LRUCache<string, { who: ExternalActors; exp: number }>({ max: maxEntries });
  return {
    verify(token, nowMs) {
      const known = verified.get(token);
      if (known !== undefined) {
        if (!(known.exp * 1000 > nowMs)) throw new DelegationError('ERR_DELEGATION_INVALID', 'delegation_expired', 'the actor token has expired');
        return known.who;
      }
      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch (err) {
        throw invalid('the actor token is not a JWT', err);
      }
      const issuer = typeof iss === 'string' ? byIssuer.get(iss) : undefined;
      if (issuer === undefined) throw invalid('the actor token is not from a trusted issuer');
      return jwtVerify(token, issuer.keys, { issuer: issuer.issuer, algorithms: [...issuer.algorithms], currentDate: new Date(nowMs), ...(issuer.audience !== undefined ? { audience: issuer.audience } : {}) }).then(
        ({ payload }) => {
          if (typeof payload.sub !== 'string' || payload.sub === '') throw invalid('the actor token names no subject');
          if (typeof payload.exp !== 'number') throw invalid('the actor token has no expiry');
          const actors = actorsOf((payload as { act?: unknown }).act);
          if (actors.length === 0) throw invalid('the actor token names no actor (`act`)');
          const who: ExternalActors = { issuer: issuer.issuer, subject: payload.sub, actors, ...(typeof payload.jti === 'string' ? { tokenId: payload.jti } : {}) };
          const ttl = payload.exp * 1000 - nowMs;
          if (ttl > 0) verified.set(token, { who, exp: payload.exp }, { ttl });
          return who;
        },
        (err: unknown) => {
          if (err instanceof DelegationError) throw err;
          if (err instanceof joseErrors.JWTExpired) throw new DelegationError('ERR_DELEGATION_INVALID', 'delegation_expired', 'the actor token has expired', { cause: err });
          throw invalid('the actor token does not verify (signature, issuer, audience or format)', err);
        },
      );
    },
  };
}
