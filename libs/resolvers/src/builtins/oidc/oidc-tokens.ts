/**
 * What the three token kinds share: checking a key as a bearer token, running one check per
 * distinct token with bounded concurrency (one answer per key, in order, never a rejection), the
 * cache bound taken from `exp`, and the option parsers their configs have in common.
 */
import type { JsonValue } from '@warden/core';
import { parseDurationMs } from '../../duration.js';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { configError, type ResolveContext } from '../../resolver.types.js';
import { abortedError } from '../../with-timeout.js';
import type { OidcEnv } from './oidc-datasource.js';
import { tokenInvalid, upstreamFailure } from './oidc-errors.js';
import type { FetchLike } from './oidc-fetch.js';
import { untilAborted } from './oidc-issuer-client.js';

/** Options of the OIDC kinds' factories (`createJwtResolverFactory` and the others). */
export interface OidcResolverFactoryOptions {
  /** Fills `${NAME}` placeholders of the datasource (the app passes its environment in; libs never read the process environment). */
  readonly env?: OidcEnv;
  /** The fetch used for every request to the issuer (default: the global fetch). */
  readonly fetch?: FetchLike;
}

/** Longest token accepted, in characters (bounds the work and memory spent on garbage). */
export const MAX_TOKEN_CHARS = 16 * 1024;
const BEARER = /^bearer(\s+|$)/i;
const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * The token in `key`, or why it is not one. A leading `Bearer ` (as in an Authorization header)
 * is dropped.
 * @example tokenOf('bearer', 'Bearer eyJ...') // 'eyJ...'
 */
export function tokenOf(resolver: string, key: JsonValue): string | ResolverError {
  if (typeof key !== 'string') return tokenInvalid(resolver, 'token must be a string');
  const token = key.trim().replace(BEARER, '').trim();
  if (token === '') return tokenInvalid(resolver, 'token is empty');
  if (token.length > MAX_TOKEN_CHARS) return tokenInvalid(resolver, 'token too large');
  if (!PRINTABLE.test(token)) return tokenInvalid(resolver, 'token malformed');
  return token;
}

/**
 * Wall-clock ms of a claims object's `exp` (seconds), or undefined when it has none.
 * @example expiresAtFromExp({ exp: 1700000000 }) // 1700000000000
 */
export function expiresAtFromExp(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const exp = (value as { exp?: unknown }).exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/**
 * Runs `check` once per distinct token of `keys` (at most `concurrency` at a time) and answers
 * one entry per key, in order. `check` should return failures; anything it throws becomes an
 * `ERR_RESOLVER_FAILED` naming `step` (never its text). When `ctx.signal` aborts, the call answers
 * at once: unfinished tokens get the timeout or abort error (one listener per call, not per token).
 * @example return resolveTokens('introspect', 'introspection', keys, ctx, 8, (token) => introspect(token));
 */
export async function resolveTokens<V>(
  resolver: string,
  step: string,
  keys: readonly JsonValue[],
  ctx: ResolveContext,
  concurrency: number,
  check: (token: string) => Promise<V | ResolverError>,
): Promise<Array<V | ResolverError>> {
  const tokens = keys.map((k) => tokenOf(resolver, k));
  const distinct = [...new Set(tokens.filter((t): t is string => typeof t === 'string'))];
  const results = new Map<string, V | ResolverError>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < distinct.length && !ctx.signal.aborted) {
      const token = distinct[next++] as string;
      try {
        results.set(token, await check(token));
      } catch (err) {
        results.set(token, upstreamFailure(resolver, step, 'unexpected error', 'ERR_RESOLVER_FAILED', err));
      }
    }
  };
  let interrupted: ResolverError | undefined;
  try {
    await untilAborted(resolver, Promise.all(Array.from({ length: Math.min(concurrency, distinct.length) }, worker)), ctx.signal);
  } catch (err) {
    interrupted = isResolverError(err) ? err : abortedError(resolver, ctx.signal);
  }
  return tokens.map((t) => (typeof t === 'string' ? (results.get(t) ?? (interrupted as ResolverError)) : t));
}

/**
 * A duration option in ms (`30s`), `fallback` when absent; refused above `maxMs`.
 * @example durationOption('bearer', 'clockTolerance', '5s', 5000, 300000) // 5000
 */
export function durationOption(resolver: string, field: string, raw: unknown, fallback: number, maxMs: number): number {
  if (raw === undefined) return fallback;
  const ms = typeof raw === 'string' ? parseDurationMs(raw) : undefined;
  if (ms === undefined) throw configError(resolver, field, 'expected a duration such as `5s` or `1m`');
  if (ms > maxMs) throw configError(resolver, field, `must be at most ${maxMs / 1000}s`);
  return ms;
}

/**
 * An integer option from 1 to `max`, `fallback` when absent.
 * @example integerOption('introspect', 'concurrency', 4, 8, 64) // 4
 */
export function integerOption(resolver: string, field: string, raw: unknown, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > max) throw configError(resolver, field, `expected an integer from 1 to ${max}`);
  return raw;
}

/**
 * Refuses any option of `options` not in `known`, naming the field.
 * @example rejectUnknownOptions('bearer', config.options, new Set(['audience']))
 */
export function rejectUnknownOptions(resolver: string, options: Readonly<Record<string, unknown>>, known: ReadonlySet<string>): void {
  for (const field of Object.keys(options)) if (!known.has(field)) throw configError(resolver, field, 'unknown field');
}
