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
   * Makes `batch` durable, in order. Rejects when it could not (the writer then spills the batch
   * to disk and replays it later). Idempotent on `decisionId` where the sink allows it, since a
   * replay may send entries already written.
   */
  write(batch: readonly SerializedEntry[]): Promise<void>;
  /** Releases connections and files. */
  close(): Promise<void>;
}
