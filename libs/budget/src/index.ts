/**
 * `@warden/budget`: token budgets per subject, agent, team or gateway key. The window arithmetic
 * (pure), the storage contract whose reservations never overspend, and its two implementations:
 * in-process and Redis. Which checks a budget applies to, and what a denial says, is the broker's.
 */
export type { BudgetDefinition, BudgetPer, BudgetView, BudgetWindow } from './budget.types.js';
export { windowAt } from './budget-window.js';
export type { WindowSpan } from './budget-window.js';
export { IDEMPOTENCY_MS, LATE_REPORT_MS } from './budget-store.js';
export type { BudgetSlot, BudgetStore, ReservationRequest, ReserveResult, SettleResult, SettledSlot, SlotUsage, UsageSettlement } from './budget-store.js';
export { createMemoryBudgetStore } from './memory-budget.store.js';
export type { MemoryBudgetStoreOptions } from './memory-budget.store.js';
export { createRedisBudgetStore } from './redis-budget.store.js';
export type { RedisBudgetStoreOptions } from './redis-budget.store.js';
