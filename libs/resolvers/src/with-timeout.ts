/**
 * The per-resolver timeout as a wrapper. The inner call gets a signal that aborts at the timeout
 * (or when the caller's signal aborts) and the wrapper answers at that moment even if the inner
 * resolver ignores its signal: every key then becomes `ERR_RESOLVER_TIMEOUT` (or
 * `ERR_RESOLVER_ABORTED`). The registry places it under the cache so `onError: stale` covers
 * timeouts too.
 */
import type { JsonValue } from '@warden/core';
import { ResolverError, toResolverError } from './resolver-error.js';
import type { ContextResolver, ResolveContext } from './resolver.types.js';

/** Failure for every key when `signal` aborted: a timeout unless the caller abandoned the request. */
export function abortedError(resolver: string, signal: AbortSignal, timeoutMs?: number): ResolverError {
  const reason: unknown = signal.reason;
  if (reason instanceof ResolverError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new ResolverError(resolver, 'ERR_RESOLVER_TIMEOUT', `resolver \`${resolver}\` timed out${timeoutMs === undefined ? '' : ` after ${timeoutMs}ms`}`);
  }
  return new ResolverError(resolver, 'ERR_RESOLVER_ABORTED', `resolver \`${resolver}\` was aborted`);
}

/**
 * Wraps `resolver` so that one call never takes longer than `timeoutMs`.
 * @example const bounded = withTimeout(resolver, 200);
 */
export function withTimeout<K = JsonValue, V = unknown>(resolver: ContextResolver<K, V>, timeoutMs: number): ContextResolver<K, V> {
  const name = resolver.name;
  return {
    name,
    ...(resolver.expiresAt !== undefined ? { expiresAt: resolver.expiresAt.bind(resolver) } : {}),
    async resolveMany(keys, ctx) {
      if (ctx.signal.aborted) return keys.map(() => abortedError(name, ctx.signal, timeoutMs));
      const controller = new AbortController();
      const timer = setTimeout(() => {
        controller.abort(new ResolverError(name, 'ERR_RESOLVER_TIMEOUT', `resolver \`${name}\` timed out after ${timeoutMs}ms`));
      }, timeoutMs);
      const onCallerAbort = (): void => controller.abort(abortedError(name, ctx.signal, timeoutMs));
      ctx.signal.addEventListener('abort', onCallerAbort, { once: true });
      const inner: ResolveContext = { ...ctx, signal: controller.signal };
      try {
        const aborted = new Promise<ResolverError>((resolve) => {
          controller.signal.addEventListener('abort', () => resolve(abortedError(name, controller.signal, timeoutMs)), { once: true });
        });
        const call = resolver.resolveMany(keys, inner).then(
          (values) => {
            if (values.length !== keys.length) {
              const err = new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\` answered ${values.length} values for ${keys.length} keys`);
              return keys.map(() => err);
            }
            return values;
          },
          (err: unknown) => keys.map(() => toResolverError(name, err)),
        );
        const first = await Promise.race([call, aborted]);
        return first instanceof ResolverError ? keys.map(() => first) : first;
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onCallerAbort);
      }
    },
  };
}
