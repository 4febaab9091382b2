/**
 * Warden's delegation signing keys: a ring of private JWKs, the newest (or a named one) signing,
 * all of them verifying, so a rotation keeps earlier tokens valid until they expire. Public halves
 * are what `/.well-known/jwks.json` publishes. Key ids are RFC 7638 thumbprints.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose';
import { WardenError } from '@warden/core';
import type { DelegationAlg, DelegationSigner } from './delegation-token.js';

/** A private signing key as stored (JWK with `alg` and `kid`). */
export type DelegationPrivateJwk = JWK & { alg: DelegationAlg; kid: string };

const PUBLIC_MEMBERS: Record<DelegationAlg, readonly string[]> = { ES256: ['kty', 'crv', 'x', 'y'], EdDSA: ['kty', 'crv', 'x'] };

/**
 * A new private key for `alg`, as a JWK carrying its thumbprint as `kid`.
 * @example const jwk = await generateDelegationKey('ES256');
 */
export async function generateDelegationKey(alg: DelegationAlg = 'ES256'): Promise<DelegationPrivateJwk> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, kid: await calculateJwkThumbprint(jwk), use: 'sig' };
}

/** The public half of `jwk`. */
export function publicJwk(jwk: DelegationPrivateJwk): JWK {
  const out: JWK = { alg: jwk.alg, kid: jwk.kid, use: 'sig' };
  for (const m of PUBLIC_MEMBERS[jwk.alg]) (out as Record<string, unknown>)[m] = (jwk as Record<string, unknown>)[m];
  return out;
}

/** Signing keys, loaded. */
export interface DelegationKeyRing {
  readonly signer: DelegationSigner;
  /** Every key's public half. */
  readonly jwks: JSONWebKeySet;
}

/**
 * Loads `keys` (at least one); `activeKid` signs, else the last key. Throws `ERR_CONFIG_INVALID`
 * for a key that is not a private ES256/EdDSA JWK.
 * @example const ring = await loadDelegationKeys([await generateDelegationKey()], 'http://127.0.0.1:3594');
 */
export async function loadDelegationKeys(keys: readonly DelegationPrivateJwk[], issuer: string, activeKid?: string): Promise<DelegationKeyRing> {
  if (keys.length === 0) throw new WardenError('ERR_CONFIG_INVALID', 'delegation signing: no keys');
  const active = activeKid === undefined ? keys[keys.length - 1] : keys.find((k) => k.kid === activeKid);
  if (active === undefined) throw new WardenError('ERR_CONFIG_INVALID', `delegation signing: no key with kid \`${activeKid ?? ''}\``);
  for (const k of keys) {
    if ((k.alg !== 'ES256' && k.alg !== 'EdDSA') || typeof k.d !== 'string' || typeof k.kid !== 'string' || k.kid === '') {
      throw new WardenError('ERR_CONFIG_INVALID', `delegation signing: key \`${String(k.kid)}\` is not a private ES256 or EdDSA JWK with a kid`);
    }
  }
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK(active, active.alg);
  } catch (err) {
    throw new WardenError('ERR_CONFIG_INVALID', `delegation signing: key \`${active.kid}\` cannot be imported`, { cause: err });
  }
  return {
    signer: { issuer, alg: active.alg, kid: active.kid, key: key as CryptoKey },
    jwks: { keys: keys.map(publicJwk) },
  };
}
