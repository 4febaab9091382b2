/**
 * Window arithmetic: which window of a budget an instant falls in. Calendar windows (hour, day,
 * month) are UTC; a fixed period is aligned on the Unix epoch, so every broker instance computes
 * the same window for the same instant without sharing state.
 */
import type { BudgetWindow } from './budget.types.js';

/** One window: its id (part of the storage key) and its bounds in epoch milliseconds. */
export interface WindowSpan {
  readonly id: string;
  /** First millisecond of the window. */
  readonly start: number;
  /** First millisecond after the window (when the budget resets). */
  readonly end: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * The window of `window` that contains `now` (epoch milliseconds).
 * @example windowAt({ kind: 'day' }, Date.UTC(2026, 10, 28, 7, 0)) // { id: '2026-11-28', start: …, end: … }
 */
export function windowAt(window: BudgetWindow, now: number): WindowSpan {
  switch (window.kind) {
    case 'hour': {
      const start = Math.floor(now / HOUR) * HOUR;
      const d = new Date(start);
      return { id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}`, start, end: start + HOUR };
    }
    case 'day': {
      const start = Math.floor(now / DAY) * DAY;
      const d = new Date(start);
      return { id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`, start, end: start + DAY };
    }
    case 'month': {
      const d = new Date(now);
      const y = d.getUTCFullYear();
      const m = d.getUTCMonth();
      return { id: `${y}-${pad(m + 1)}`, start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
    }
    case 'period': {
      const start = Math.floor(now / window.ms) * window.ms;
      return { id: `p${window.ms}-${start}`, start, end: start + window.ms };
    }
  }
}
