/**
 * Verifies `auxData.jwt` tokens against the configured local key sets (Cerbos's
 * `auxData.jwt.keySets`) with jose, before evaluation. Keys are loaded once at boot; a bad key
 * file stops the broker with `ERR_CONFIG_INVALID` naming the key set.
 *
 * SECURITY: an invalid, expired or unverifiable token fails the whole request with
 * `ERR_AUX_DATA_INVALID` (Cerbos answers 400 `invalid auxData`); claims are never passed on
 * unverified unless `disableVerification` is set explicitly.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet,
  decodeJwt,
  jwtVerify,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { WardenError, type JsonValue } from '@warden/core';
import type { AuxDataConfig, JwtKeySetConfig } from '../config/broker-config.js';

/** Turns a token into verified claims. */
export interface AuxDataVerifier {
  verify(token: string, keySetId: string | undefined): Promise<Record<string, JsonValue>>;
}

function configError(ks: JwtKeySetConfig, index: number, message: string, cause?: unknown): WardenError {
  const where = ks.local.file !== undefined ? 'local.file' : 'local.data';
  return new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`auxData.jwt.keySets[${index}].${where}\`: ${message}`, {
    cause,
  });
}

function pemKeys(text: string): KeyObject[] {
  const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
  // A private key PEM is accepted as Cerbos does: its public half verifies.
  return blocks.map((b) => createPublicKey(b));
}

function loadKeySet(ks: JwtKeySetConfig, index: number): JWTVerifyGetKey {
  let raw: string;
  try {
    raw =
      ks.local.file !== undefined
        ? readFileSync(ks.local.file, 'utf8')
        : Buffer.from(ks.local.data ?? '', 'base64').toString('utf8');
  } catch (err) {
    throw configError(ks, index, 'cannot read key material', err);
  }
  if (ks.local.pem) {
    let keys: KeyObject[];
    try {
      keys = pemKeys(raw);
    } catch (err) {
      throw configError(ks, index, 'invalid PEM key', err);
    }
    if (keys.length === 0) throw configError(ks, index, 'no PEM key found');
    const first = keys[0] as KeyObject;
    if (keys.length === 1) return async () => first;
    const jwks: JSONWebKeySet = { keys: keys.map((k) => k.export({ format: 'jwk' }) as JSONWebKeySet['keys'][number]) };
    return createLocalJWKSet(jwks);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw configError(ks, index, 'not valid JSON (a JWK or JWKS)', err);
  }
  const obj = parsed as { keys?: unknown; kty?: unknown };
  const jwks: JSONWebKeySet | undefined = Array.isArray(obj.keys)
    ? (parsed as JSONWebKeySet)
    : typeof obj.kty === 'string'
      ? { keys: [parsed as JSONWebKeySet['keys'][number]] }
      : undefined;
  if (jwks === undefined || jwks.keys.length === 0) throw configError(ks, index, 'no keys found');
  try {
    return createLocalJWKSet(jwks);
  } catch (err) {
    throw configError(ks, index, 'invalid JWKS', err);
  }
}

const INVALID = (cause?: unknown): WardenError => new WardenError('ERR_AUX_DATA_INVALID', 'invalid auxData', { cause });

/** Builds the verifier from config; throws `ERR_CONFIG_INVALID` on unreadable keys. */
export function createAuxDataVerifier(config: AuxDataConfig): AuxDataVerifier {
  const sets = new Map<string, JWTVerifyGetKey>();
  config.keySets.forEach((ks, i) => sets.set(ks.id, loadKeySet(ks, i)));
  const only = sets.size === 1 ? [...sets.values()][0] : undefined;
  const clockTolerance = config.acceptableTimeSkewSeconds;
  return {
    async verify(token, keySetId) {
      if (config.disableVerification) {
        try {
          return decodeJwt(token) as Record<string, JsonValue>;
        } catch (err) {
          throw INVALID(err);
        }
      }
      const getKey = keySetId !== undefined ? sets.get(keySetId) : only;
      if (getKey === undefined) throw INVALID();
      try {
        const { payload } = await jwtVerify(token, getKey, { clockTolerance });
        return payload as Record<string, JsonValue>;
      } catch (err) {
        throw INVALID(err);
      }
    },
  };
}
