/**
 * Test doubles of the decision log shared by the writer's specs: a sink that keeps what it is
 * given or rejects while `down`, and numbered entries.
 */
import type { AuditEntry, AuditSink, SerializedEntry } from '@warden/audit';

/** A test double of the sink contract: keeps what it is given, or rejects while `down`. */
export class SwitchableSink implements AuditSink {
  readonly name = 'switchable';
  down = false;
  readonly received: SerializedEntry[] = [];
  readonly batches: number[] = [];
  async write(batch: readonly SerializedEntry[]): Promise<void> {
    if (this.down) throw new Error('sink down');
    this.received.push(...batch);
    this.batches.push(batch.length);
  }
  async close(): Promise<void> {}
}

/** Entry number `n`: decision id `d-000n`, its time `n` ms after 09:00 on 2026-11-28, ALLOW when `n` is even. */
export function auditEntry(n: number): AuditEntry {
  return {
    decisionId: `d-${String(n).padStart(4, '0')}`,
    time: new Date(Date.UTC(2026, 10, 28, 9, 0, 0, n)).toISOString(),
    kind: 'check',
    policyVersion: 'v1',
    source: '/v1/check',
    decision: n % 2 === 0 ? 'ALLOW' : 'DENY',
    identities: { subject: 'alice' },
    input: { actions: ['invoke'] },
    results: [],
    reasons: [],
  };
}

/** The decision ids of `es`, in order. */
export const ids = (es: readonly { decisionId: string }[]): string[] => es.map((e) => e.decisionId);
/** The integers a, a+1, ..., b-1. */
export const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
