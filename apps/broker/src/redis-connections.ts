/**
 * Redis connections as the broker opens them (resolver caches, revocation fan-out): fail at once
 * while Redis is down instead of queueing, and close without waiting forever for a Redis that
 * stopped answering.
 */
import { Redis } from 'ioredis';

/** Options of command connections: no offline queue, no retries, a short connect timeout. */
export const REDIS_OPTIONS = { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 1000, lazyConnect: false } as const;

/** A driver error's code (never its message, which may name a host). */
export const codeOf = (err: unknown): string => (typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'error');

// QUIT is answered after every command already sent, so a Redis that stopped answering would hold
// shutdown forever: wait a moment for a clean QUIT, then drop the connection.
const QUIT_GRACE_MS = 1000;

/** Closes `client`: a clean QUIT when Redis answers within a second, else a disconnect. */
export async function closeRedis(client: Redis): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, QUIT_GRACE_MS)));
  try {
    await Promise.race([client.quit().catch(() => undefined), grace]);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
