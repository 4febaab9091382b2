/**
 * Delegation tokens: JWTs signed by Warden that carry a whole {@link DelegationChain}.
 *
 * Claims: `iss` (Warden), `sub` (the chain's subject), `sid` (the subject's session, when known),
 * `jti` (the last delegation's id), `iat`/`exp` (the last hop's; never past any hop), `act` (the
 * actors nested as RFC 8693 section 4.1 describes: the current actor outermost, each prior actor
 * in the `act` of the one after it), and `wdn`: the delegation's `id`, its `ancestors`' ids (root
 * first) and the `hops`, root first, each with its grants, flags, depth limit, lifetime and task. Header `typ` is
 * `wdn-delegation+jwt`, so no other JWT is ever taken for a delegation.
 *
 * A verifier checks the signature against Warden's keys (the algorithm from an allowlist), then
 * {@link checkChain} and the consistency of `sub`, `jti` and `act` with the hops. The signature of
 * one exact token string is verified once and remembered until the token expires (bounded); the
 * chain itself is checked again on every call.
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWTPayload, type KeyObject } from 'jose';
import { LRUCache } from 'lru-cache';
import { checkChain, lastHop, type DelegationChain, type Hop } from './delegation-chain.js';
import { DelegationError } from './delegation-error.js';
import { parseScope } from './grants.js';

/** The JOSE `typ` of delegation tokens. */
export const DELEGATION_TOKEN_TYPE = 'wdn-delegation+jwt';

/** Algorithms delegation tokens may be signed with. */
export type DelegationAlg = 'ES256' | 'EdDSA';

/** Signs delegation tokens. */
export interface DelegationSigner {
  readonly issuer: string;
  readonly alg: DelegationAlg;
  readonly kid: string;
  readonly key: CryptoKey | KeyObject;
}

/** An RFC 8693 actor claim. */
export interface ActClaim {
  readonly sub: string;
  readonly act?: ActClaim;
}

/** The `act` claim of `chain`: its current actor outermost. */
export function actClaim(chain: DelegationChain): ActClaim {
  let act: ActClaim | undefined;
  for (const hop of chain.hops) act = act === undefined ? { sub: hop.to } : { sub: hop.to, act };
  return act as ActClaim;
}

/**
 * Signs `chain` into a delegation token.
 * @example const token = await signDelegation(chain, signer);
 */
export async function signDelegation(chain: DelegationChain, signer: DelegationSigner): Promise<string> {
  const last = lastHop(chain);
  const exp = Math.min(...chain.hops.map((h) => h.exp));
  const ancestors = chain.hops.slice(0, -1).map((h) => h.id);
  return new SignJWT({ act: actClaim(chain), wdn: { v: 1, id: last.id, ancestors, hops: chain.hops }, ...(chain.session !== undefined ? { sid: chain.session } : {}) } as unknown as JWTPayload)
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: DELEGATION_TOKEN_TYPE })
    .setIssuer(signer.issuer)
    .setSubject(chain.subject)
    .setJti(last.id)
    .setIssuedAt(last.iat)
    .setExpirationTime(exp)
    .sign(signer.key);
}

function invalid(message: string, cause?: unknown): DelegationError {
  return new DelegationError('ERR_DELEGATION_INVALID', 'delegation_invalid', message, cause === undefined ? undefined : { cause });
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 256) throw invalid(`the delegation token's ${what} is malformed`);
  return v;
}

function seconds(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid(`the delegation token's ${what} is malformed`);
  return v;
}

function hopOf(raw: unknown, i: number): Hop {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`hop ${i} of the delegation token is malformed`);
  const o = raw as Record<string, unknown>;
  let grants;
  try {
    grants = parseScope(o['grants'], `hops[${i}].grants`);
  } catch (err) {
    throw invalid(`hop ${i} of the delegation token has malformed grants`, err);
  }
  if (typeof o['canSubDelegate'] !== 'boolean') throw invalid(`hop ${i} of the delegation token is malformed`);
  const maxDepth = seconds(o['maxDepth'], `hop ${i} depth`);
  const hop: Hop = {
    id: text(o['id'], `hop ${i} id`),
    from: text(o['from'], `hop ${i} delegator`),
    to: text(o['to'], `hop ${i} agent`),
    grants,
    canSubDelegate: o['canSubDelegate'],
    maxDepth,
    iat: seconds(o['iat'], `hop ${i} issue time`),
    exp: seconds(o['exp'], `hop ${i} expiry`),
    ...(o['task'] !== undefined ? { task: text(o['task'], `hop ${i} task`) } : {}),
  };
  return hop;
}

function sameAct(a: unknown, b: ActClaim | undefined): boolean {
  if (b === undefined) return a === undefined;
  if (typeof a !== 'object' || a === null) return false;
  const o = a as Record<string, unknown>;
  return o['sub'] === b.sub && sameAct(o['act'], b.act);
}

/** The chain a verified payload carries, checked for consistency with its standard claims. */
function chainOf(payload: JWTPayload): DelegationChain {
  const wdn = (payload as { wdn?: unknown }).wdn;
  if (typeof wdn !== 'object' || wdn === null || (wdn as { v?: unknown }).v !== 1) throw invalid('the delegation token has no Warden chain');
  const rawHops = (wdn as { hops?: unknown }).hops;
  if (!Array.isArray(rawHops) || rawHops.length === 0 || rawHops.length > 32) throw invalid('the delegation token has a malformed chain');
  const hops = rawHops.map(hopOf);
  const sid = (payload as { sid?: unknown }).sid;
  const chain: DelegationChain = { subject: text(payload.sub, 'subject'), ...(sid !== undefined ? { session: text(sid, 'session') } : {}), hops };
  const last = lastHop(chain);
  const w = wdn as { id?: unknown; ancestors?: unknown };
  const ancestors = hops.slice(0, -1).map((h) => h.id);
  const ancestorsOk = Array.isArray(w.ancestors) && w.ancestors.length === ancestors.length && w.ancestors.every((a, i) => a === ancestors[i]);
  if (payload.jti !== last.id || w.id !== last.id || !ancestorsOk || !sameAct((payload as { act?: unknown }).act, actClaim(chain))) {
    throw new DelegationError('ERR_DELEGATION_INVALID', 'delegation_chain_broken', 'the delegation token\'s claims do not match its chain');
  }
  return chain;
}

/** Options of {@link createDelegationVerifier}. */
export interface DelegationVerifierOptions {
  readonly issuer: string;
  /** Warden's public keys (current and recently rotated). */
  readonly jwks: JSONWebKeySet;
  readonly algorithms?: readonly DelegationAlg[];
  /** Verified tokens remembered (default 10 000). */
  readonly maxEntries?: number;
}

/** Verifies delegation tokens. */
export interface DelegationVerifier {
  /**
   * The chain of `token` at `nowMs`, checked. Answers at once for a token whose signature was
   * verified before; rejects (or throws) `ERR_DELEGATION_INVALID` with the reason otherwise.
   */
  verify(token: string, nowMs: number): DelegationChain | Promise<DelegationChain>;
}

/**
 * A verifier for tokens signed with `jwks`.
 * @example const chain = await createDelegationVerifier({ issuer, jwks }).verify(token, Date.now());
 */
export function createDelegationVerifier(options: DelegationVerifierOptions): DelegationVerifier {
  const keys = createLocalJWKSet(options.jwks);
  const algorithms = [...(options.algorithms ?? ['ES256', 'EdDSA'])];
  // Token string -> its chain. SECURITY: only a byte-identical token hits; expiry is checked again
  // by checkChain on every call, and entries leave the cache when their token expires.
  const verified = new LRUCache<string, DelegationChain>({ max: options.maxEntries ?? 10_000 });
  return {
    verify(token, nowMs) {
      const known = verified.get(token);
      if (known !== undefined) {
        checkChain(known, nowMs);
        return known;
      }
      return jwtVerify(token, keys, { issuer: options.issuer, algorithms, typ: DELEGATION_TOKEN_TYPE, currentDate: new Date(nowMs) }).then(
        ({ payload }) => {
          const chain = chainOf(payload);
          checkChain(chain, nowMs);
          const ttl = Math.min(...chain.hops.map((h) => h.exp)) * 1000 - nowMs;
          if (ttl > 0) verified.set(token, chain, { ttl });
          return chain;
        },
        (err: unknown) => {
          if (err instanceof joseErrors.JWTExpired) throw new DelegationError('ERR_DELEGATION_INVALID', 'delegation_expired', 'the delegation token has expired', { cause: err });
          // SECURITY: jose's message may name claims, never keys or the token; still, a fixed text.
          throw invalid('the delegation token does not verify (signature, issuer, type or format)', err);
        },
      );
    },
  };
}
