/**
 * The contract every decision-log sink implements (NDJSON file or stdout, Postgres, NATS
 * JetStream). The writer hands it batches of entries serialised when they were recorded.
 */
import type { SerializedEntry } from './audit-entry.js';

/** Where decision-log entries end up. */
export interface AuditSink {
  /** Short name for logs and metrics (`ndjson`, `postgres`, `nats`). */
  readonly name: string;
  /**
   * Entries per write this sink takes best while the writer keeps up (the writer's `batchSize`
   * option wins; unset, the writer's default). A backlog still goes in the writer's larger writes.
   */
  readonly batchSize?: number;
  /**
   * Makes `batch` durable, in order. Rejects when it could not (the writer then spills the batch
   * to disk and replays it later). Idempotent on `decisionId` where the sink allows it, since a
   * replay may send entries already written.
   */
  write(batch: readonly SerializedEntry[]): Promise<void>;
  /** Releases connections and files. */
  close(): Promise<void>;
}

/**
 * Runs `f` once the event loop has read the sockets that are ready (its next poll phase): for a
 * deadline's timer. A thread that ran late (its process stopped, or starved of CPU beside a busy
 * event loop at a higher priority) runs the timers that expired meanwhile before it reads the
 * answers that came meanwhile, and would fail a write whose answer is waiting: its batch spilled,
 * then replayed (bench/README.md).
 */
export function pastPoll(f: () => void): void {
  setImmediate(f);
}
