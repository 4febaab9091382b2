/**
 * Opens the budget store the configuration asks for: none without `budgets:`, Redis with
 * `REDIS_URL` (shared by every instance), else in-process (the embedded, single-process mode).
 */
import { Redis } from 'ioredis';
import { createMemoryBudgetStore, createRedisBudgetStore, type BudgetDefinition } from '@warden/budget';
import { closeRedis, codeOf, REDIS_OPTIONS } from '../redis-connections.js';
import { BudgetRuntime } from './budget-runtime.js';

/** Options of {@link openBudgets}. */
export interface OpenBudgetsOptions {
  readonly definitions: readonly BudgetDefinition[];
  readonly redisUrl: string | undefined;
  readonly onError: (message: string) => void;
  /** The clock (tests). */
  readonly now?: () => number;
}

/** The runtime and how to release its connection; undefined when no budgets are configured. */
export async function openBudgets(options: OpenBudgetsOptions): Promise<{ runtime: BudgetRuntime; close: () => Promise<void> } | undefined> {
  if (options.definitions.length === 0) return undefined;
  const base = { definitions: options.definitions, onError: options.onError, ...(options.now !== undefined ? { now: options.now } : {}) };
  if (options.redisUrl === undefined) {
    const store = createMemoryBudgetStore();
    return { runtime: new BudgetRuntime({ ...base, store }), close: () => store.close() };
  }
  const redis = new Redis(options.redisUrl, REDIS_OPTIONS);
  redis.on('error', (err) => options.onError(`REDIS_URL: budgets: redis error (${codeOf(err)})`));
  await new Promise<void>((resolve) => {
    // Start even when Redis is down: checks a budget applies to are denied until it is back.
    const t = setTimeout(resolve, 2000);
    redis.once('ready', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return { runtime: new BudgetRuntime({ ...base, store: createRedisBudgetStore({ redis }) }), close: () => closeRedis(redis) };
}
