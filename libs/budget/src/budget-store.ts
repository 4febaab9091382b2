/**
 * The storage contract of token budgets. A slot is one budget of one identity in one window; a
 * reservation holds tokens in one or more slots at once (all or none), until a usage report
 * settles it or its time-to-live passes. Implementations: in-process (`createMemoryBudgetStore`,
 * one broker process) and Redis (`createRedisBudgetStore`, shared by every instance).
 *
 * INVARIANT (the reason this contract exists): a reservation is admitted only when, in one atomic
 * step, `used + reserved + amount <= limit` holds for every slot it touches; concurrent
 * reservations can therefore never spend a slot beyond its limit. (Usage reports may: the real
 * count is recorded even when it exceeds what was reserved.)
 */

/** One budget of one identity in one window. */
export interface BudgetSlot {
  /** Unique per budget, identity and window; safe as part of a storage key. */
  readonly key: string;
  /** The budget's name (reported back by settlements). */
  readonly name: string;
  readonly limit: number;
  /** Epoch ms after which the slot's state may be dropped (the window's end plus some slack). */
  readonly expiresAt: number;
}

/** A slot's state. */
export interface SlotUsage {
  /** Settled tokens. */
  readonly used: number;
  /** Tokens held by unexpired, unsettled reservations. */
  readonly reserved: number;
}

/** A reservation to make. */
export interface ReservationRequest {
  /** Unique (and unguessable: it is the capability a usage report presents). */
  readonly id: string;
  readonly slots: ReadonlyArray<{ readonly slot: BudgetSlot; readonly amount: number }>;
  /** How long the tokens are held unless settled. */
  readonly ttlMs: number;
}

/** The result of a reservation: admitted, or refused by the first slot it would overspend. */
export type ReserveResult =
  | { readonly ok: true; readonly usages: readonly SlotUsage[] }
  | { readonly ok: false; readonly exhausted: number; readonly usages: readonly SlotUsage[] };

/** A usage report to settle. */
export interface UsageSettlement {
  readonly reservationId: string;
  readonly tokens: number;
  /** The caller's idempotency key, already scoped to the caller (e.g. prefixed by the gateway). */
  readonly idempotencyKey: string;
}

/** A slot after a settlement. */
export interface SettledSlot extends SlotUsage {
  readonly name: string;
  readonly limit: number;
}

/**
 * What a settlement did: `settled` (counted now), `duplicate` (this idempotency key was counted
 * before, with the same reservation and tokens), `conflict` (the key was used for another report),
 * `unknown` (no such reservation, or it is older than what the store remembers).
 */
export type SettleResult =
  | { readonly status: 'settled'; readonly slots: readonly SettledSlot[] }
  | { readonly status: 'duplicate' | 'conflict' | 'unknown' };

/** Storage of budget slots and reservations. Every method rejects when the store is unreachable. */
export interface BudgetStore {
  /** The state of `slots` at `now` (expired reservations no longer count). */
  read(slots: readonly BudgetSlot[], now: number): Promise<SlotUsage[]>;
  /** Reserves atomically in every slot, or in none. */
  reserve(request: ReservationRequest, now: number): Promise<ReserveResult>;
  /**
   * Settles a reservation once per idempotency key: releases what it still holds and adds
   * `tokens` to each of its slots' usage (also after the hold expired, while the store remembers
   * the reservation).
   */
  settle(report: UsageSettlement, now: number): Promise<SettleResult>;
  close(): Promise<void>;
}

/** How long a store remembers a reservation after its hold ends, for late usage reports (24 h). */
export const LATE_REPORT_MS = 24 * 3_600_000;
/** How long a store remembers an idempotency key (48 h). */
export const IDEMPOTENCY_MS = 48 * 3_600_000;
