/**
 * An in-process {@link BudgetStore} for a broker without Redis (the embedded, single-process
 * mode). Every operation runs to completion synchronously inside one call, so on Node's single
 * thread a reservation's check-and-add is atomic with respect to every other request.
 */
import { IDEMPOTENCY_MS, LATE_REPORT_MS, type BudgetSlot, type BudgetStore, type ReservationRequest, type ReserveResult, type SettleResult, type SettledSlot, type SlotUsage, type UsageSettlement } from './budget-store.js';

interface SlotState {
  used: number;
  reserved: number;
  /** Reservation id → amount and when its hold ends. */
  holds: Map<string, { amount: number; until: number }>;
  expiresAt: number;
}

interface ReservationRecord {
  readonly slots: ReadonlyArray<{ readonly key: string; readonly name: string; readonly limit: number; readonly expiresAt: number }>;
  readonly forgetAt: number;
}

/** Options of {@link createMemoryBudgetStore}. */
export interface MemoryBudgetStoreOptions {
  /** How often forgotten state is swept (default 60 s). */
  readonly sweepEveryMs?: number;
}

/**
 * Creates an in-process budget store.
 * @example const store = createMemoryBudgetStore();
 */
export function createMemoryBudgetStore(options: MemoryBudgetStoreOptions = {}): BudgetStore {
  const slots = new Map<string, SlotState>();
  const records = new Map<string, ReservationRecord>();
  const keys = new Map<string, { fingerprint: string; forgetAt: number }>();
  const sweepEvery = options.sweepEveryMs ?? 60_000;
  let lastSweep = 0;

  const purge = (s: SlotState, now: number): void => {
    for (const [id, h] of s.holds) {
      if (h.until <= now) {
        s.reserved -= h.amount;
        s.holds.delete(id);
      }
    }
  };
  const sweep = (now: number): void => {
    if (now - lastSweep < sweepEvery) return;
    lastSweep = now;
    for (const [k, s] of slots) if (s.expiresAt <= now) slots.delete(k);
    for (const [k, r] of records) if (r.forgetAt <= now) records.delete(k);
    for (const [k, r] of keys) if (r.forgetAt <= now) keys.delete(k);
  };
  const slotOf = (slot: BudgetSlot | ReservationRecord['slots'][number], now: number): SlotState => {
    let s = slots.get(slot.key);
    if (s === undefined || s.expiresAt <= now) {
      s = { used: 0, reserved: 0, holds: new Map(), expiresAt: slot.expiresAt };
      slots.set(slot.key, s);
    }
    purge(s, now);
    return s;
  };

  return {
    read(list, now) {
      return Promise.resolve(
        list.map((slot): SlotUsage => {
          const s = slots.get(slot.key);
          if (s === undefined || s.expiresAt <= now) return { used: 0, reserved: 0 };
          purge(s, now);
          return { used: s.used, reserved: s.reserved };
        }),
      );
    },
    reserve(request: ReservationRequest, now: number): Promise<ReserveResult> {
      sweep(now);
      const states = request.slots.map((x) => slotOf(x.slot, now));
      for (let i = 0; i < states.length; i++) {
        const s = states[i] as SlotState;
        const x = request.slots[i] as ReservationRequest['slots'][number];
        if (s.used + s.reserved + x.amount > x.slot.limit) {
          return Promise.resolve({ ok: false, exhausted: i, usages: states.map((t) => ({ used: t.used, reserved: t.reserved })) });
        }
      }
      const until = now + request.ttlMs;
      for (let i = 0; i < states.length; i++) {
        const s = states[i] as SlotState;
        const amount = (request.slots[i] as ReservationRequest['slots'][number]).amount;
        s.reserved += amount;
        s.holds.set(request.id, { amount, until });
      }
      records.set(request.id, { slots: request.slots.map((x) => ({ key: x.slot.key, name: x.slot.name, limit: x.slot.limit, expiresAt: x.slot.expiresAt })), forgetAt: until + LATE_REPORT_MS });
      return Promise.resolve({ ok: true, usages: states.map((t) => ({ used: t.used, reserved: t.reserved })) });
    },
    settle(report: UsageSettlement, now: number): Promise<SettleResult> {
      sweep(now);
      const fingerprint = `${report.reservationId}:${report.tokens}`;
      const seen = keys.get(report.idempotencyKey);
      if (seen !== undefined && seen.forgetAt > now) return Promise.resolve({ status: seen.fingerprint === fingerprint ? 'duplicate' : 'conflict' });
      const record = records.get(report.reservationId);
      if (record === undefined || record.forgetAt <= now) return Promise.resolve({ status: 'unknown' });
      keys.set(report.idempotencyKey, { fingerprint, forgetAt: now + IDEMPOTENCY_MS });
      const settled = record.slots.map((slot): SettledSlot => {
        const s = slotOf(slot, now);
        const hold = s.holds.get(report.reservationId);
        if (hold !== undefined) {
          s.reserved -= hold.amount;
          s.holds.delete(report.reservationId);
        }
        s.used += report.tokens;
        return { name: slot.name, limit: slot.limit, used: s.used, reserved: s.reserved };
      });
      return Promise.resolve({ status: 'settled', slots: settled });
    },
    close() {
      slots.clear();
      records.clear();
      keys.clear();
      return Promise.resolve();
    },
  };
}
