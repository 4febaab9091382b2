/**
 * A bound on how long a cache backend may make a caller wait: the caches serve decisions, and a
 * slow or unreachable Redis must cost a miss, not a stalled request.
 */

/** What {@link within} answers when the time ran out. */
export const TIMED_OUT: unique symbol = Symbol('timed-out');

/**
 * Runs `command` and answers its result, or {@link TIMED_OUT} after `ms`. A rejection passes
 * through; a late answer or rejection is dropped (never an unhandled rejection).
 * @example const answers = await within(100, () => redis.mget(keys));
 */
export async function within<T>(ms: number, command: () => Promise<T>): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  const running = command();
  running.catch(() => undefined);
  try {
    return await Promise.race([running, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
