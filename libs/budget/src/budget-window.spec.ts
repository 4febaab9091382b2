import { describe, expect, it } from 'vitest';
import { windowAt } from './budget-window.js';

describe(windowAt.name, () => {
  it('puts an hour window on the UTC hour, ending at the next one', () => {
    const w = windowAt({ kind: 'hour' }, Date.UTC(2026, 10, 28, 7, 59, 59, 999));
    expect(w).toEqual({ id: '2026-11-28T07', start: Date.UTC(2026, 10, 28, 7), end: Date.UTC(2026, 10, 28, 8) });
    expect(windowAt({ kind: 'hour' }, Date.UTC(2026, 10, 28, 8)).id).toBe('2026-11-28T08');
  });

  it('puts a day window on the UTC day', () => {
    expect(windowAt({ kind: 'day' }, Date.UTC(2026, 11, 31, 23, 59))).toEqual({ id: '2026-12-31', start: Date.UTC(2026, 11, 31), end: Date.UTC(2027, 0, 1) });
  });

  it('puts a month window on the UTC calendar month, of 28 to 31 days', () => {
    expect(windowAt({ kind: 'month' }, Date.UTC(2028, 1, 29, 12))).toEqual({ id: '2028-02', start: Date.UTC(2028, 1, 1), end: Date.UTC(2028, 2, 1) });
    expect(windowAt({ kind: 'month' }, Date.UTC(2026, 11, 15))).toEqual({ id: '2026-12', start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) });
  });

  it('aligns a fixed period on the epoch, so every instance agrees, and rolls over at its end', () => {
    const period = { kind: 'period', ms: 30 * 60_000 } as const;
    const a = windowAt(period, Date.UTC(2026, 10, 28, 7, 29, 59, 999));
    const b = windowAt(period, Date.UTC(2026, 10, 28, 7, 30));
    expect(a.start).toBe(Date.UTC(2026, 10, 28, 7));
    expect(a.end).toBe(b.start);
    expect(a.id).not.toBe(b.id);
    expect(b.end - b.start).toBe(30 * 60_000);
  });
});
