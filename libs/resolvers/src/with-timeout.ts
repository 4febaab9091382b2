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

/** What `resolveMany` answers: one value, not-found or error per key. */
type Answers<V> = ReadonlyArray<V | undefined | ResolverError>;

/**
 * A signal that never aborts: what a call gets when nobody can abandon it (the scheduler without a
 * request deadline, a cache's shared fetch). Wrappers recognise it and register no listener on it,
 * which saves an EventTarget listener per call and keeps concurrent waiters from piling listeners
 * onto one shared signal.
 */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;

/**
 * Wraps `resolver` so that one call never takes longer than `timeoutMs`.
 * @example const bounded = withTimeout(resolver, 200);
 */
export function withTimeout<K = JsonValue, V = unknown>(resolver: ContextResolver<K, V>, timeoutMs: number): ContextResolver<K, V> {
  const name = resolver.name;
  return {
    name,
    ...(resolver.expiresAt !== undefined ? { expiresAt: resolver.expiresAt.bind(resolver) } : {}),
    resolveMany(keys, ctx) {
      if (ctx.signal.aborted) return Promise.resolve(keys.map(() => abortedError(name, ctx.signal, timeoutMs)));
      const caller = ctx.signal;
      const controller = new AbortController();
      const inner: ResolveContext = { requestId: ctx.requestId, signal: controller.signal };
      // One promise settled by whichever comes first: the inner call, the timer or the caller's
      // abort. (Every call of a fan-out pays for this wrapper before its request is sent, so it
      // creates one promise, one timer and at most one listener.)
      return new Promise<Answers<V>>((resolve) => {
        let settled = false;
        const settle = (values: Answers<V>): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (caller !== NEVER_ABORTED) caller.removeEventListener('abort', onCallerAbort);
          resolve(values);
        };
        const stop = (reason: ResolverError): void => {
          controller.abort(reason);
          settle(keys.map(() => reason));
        };
        const timer = setTimeout(() => stop(new ResolverError(name, 'ERR_RESOLVER_TIMEOUT', `resolver \`${name}\` timed out after ${timeoutMs}ms`)), timeoutMs);
        const onCallerAbort = (): void => stop(abortedError(name, caller, timeoutMs));
        if (caller !== NEVER_ABORTED) caller.addEventListener('abort', onCallerAbort, { once: true });
        let call: Promise<Answers<V>>;
        try {
          call = resolver.resolveMany(keys, inner);
        } catch (err) {
          settle(keys.map(() => toResolverError(name, err)));
          return;
        }
        call.then(
          (values) => {
            if (values.length !== keys.length) {
              const err = new ResolverError(name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${name}\` answered ${values.length} values for ${keys.length} keys`);
              settle(keys.map(() => err));
              return;
            }
            settle(values);
          },
          (err: unknown) => settle(keys.map(() => toResolverError(name, err))),
        );
      });
    },
  };
}
