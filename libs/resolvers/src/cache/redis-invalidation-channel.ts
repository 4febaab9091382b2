/**
 * {@link CacheInvalidations} over Redis pub/sub: a deleted key is PUBLISHed on one channel and
 * every instance SUBSCRIBEd to it drops its local copy.
 *
 * Pub/sub delivers at most once: a message published while an instance's subscriber is
 * reconnecting is lost for it (ioredis re-subscribes on reconnect). That is why the tiered store
 * also bounds local copies by time. Like the cache, the channel never fails a caller: a publish
 * that fails or takes longer than `timeoutMs` goes to `onError` and resolves.
 */
import type { Redis } from 'ioredis';
import type { CacheInvalidations } from './tiered-cache-store.js';
import { TIMED_OUT, within } from './within.js';

/** Options of {@link createRedisInvalidationChannel}. */
export interface RedisInvalidationChannelOptions {
  /** A connection for PUBLISH (the cache store's connection will do). */
  readonly publisher: Redis;
  /** A connection dedicated to subscribing (a subscribed connection can run no other command). */
  readonly subscriber: Redis;
  /** The channel name; every instance sharing a cache uses the same one. */
  readonly channel: string;
  /** Longest wait for a PUBLISH (default 100 ms). */
  readonly timeoutMs?: number;
  /** Told of failed publishes, subscribes and listener errors. */
  readonly onError?: (error: unknown) => void;
}

/**
 * The Redis channel of cache invalidations.
 * @example const invalidations = createRedisInvalidationChannel({ publisher: redis, subscriber: redis.duplicate(), channel: 'warden:prod:cache:invalidate' });
 */
export function createRedisInvalidationChannel(options: RedisInvalidationChannelOptions): CacheInvalidations {
  const { publisher, subscriber, channel } = options;
  const timeoutMs = options.timeoutMs ?? 100;
  const listeners = new Set<(key: string) => void>();
  const report = (err: unknown): void => {
    try {
      options.onError?.(err);
    } catch {
      // A failing hook must not break the channel.
    }
  };
  const onMessage = (from: string, key: string): void => {
    if (from !== channel) return;
    for (const listener of listeners) {
      try {
        listener(key);
      } catch (err) {
        report(err);
      }
    }
  };

  return {
    async publish(key) {
      try {
        const out = await within(timeoutMs, () => publisher.publish(channel, key));
        if (out === TIMED_OUT) report(new Error(`redis publish timed out after ${timeoutMs}ms`));
      } catch (err) {
        report(err);
      }
    },

    subscribe(onKey) {
      listeners.add(onKey);
      if (listeners.size === 1) {
        subscriber.on('message', onMessage);
        subscriber.subscribe(channel).catch(report);
      }
      let active = true;
      return () => {
        if (!active) return;
        active = false;
        listeners.delete(onKey);
        if (listeners.size === 0) {
          subscriber.off('message', onMessage);
          subscriber.unsubscribe(channel).catch(report);
        }
      };
    },
  };
}
