/**
 * The failure value of one key. `resolveMany` returns it in the key's slot instead of rejecting
 * (as DataLoader's `loadMany` does), so one bad key never fails its batch neighbours.
 */
import { WardenError, type WardenErrorCode } from '@warden/core';

/** Codes a resolver failure carries at run time. */
export type ResolverFailureCode = Extract<
  WardenErrorCode,
  'ERR_RESOLVER_TIMEOUT' | 'ERR_RESOLVER_ABORTED' | 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID' | 'ERR_TOKEN_INVALID'
>;

/** One key's failure, naming the resolver that failed. */
export class ResolverError extends WardenError {
  readonly resolver: string;

  constructor(resolver: string, code: ResolverFailureCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.resolver = resolver;
  }
}

/** True when `value` is a {@link ResolverError} (the failure slot of `resolveMany`). */
export function isResolverError(value: unknown): value is ResolverError {
  return value instanceof ResolverError;
}

/** Wraps anything thrown by a resolver as a {@link ResolverError} (`ERR_RESOLVER_FAILED` unless already coded). */
export function toResolverError(resolver: string, err: unknown): ResolverError {
  if (err instanceof ResolverError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ResolverError(resolver, 'ERR_RESOLVER_FAILED', `resolver \`${resolver}\` failed: ${message}`, { cause: err });
}

/** A configuration error: coded `ERR_RESOLVER_*`, naming the resolver it is about. */
export class ResolverConfigError extends WardenError {
  readonly resolver: string;

  constructor(resolver: string, code: WardenErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.resolver = resolver;
  }
}
