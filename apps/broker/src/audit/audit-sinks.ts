/**
 * The decision log's sink as configured (`audit.sink`), shared by the writer in the broker's own
 * thread and the writer in its audit thread (apps/broker/src/audit/audit-worker.ts).
 */
import { createNatsAuditSink, createNdjsonSink, type AuditSink } from '@warden/audit';
import { WardenError } from '@warden/core';
import { createPostgresAuditSink, type PostgresAuditSinkOptions } from '@warden/persistence';
import type { AuditConfig } from '../config/broker-config.js';

/**
 * The configured sink; `database` is asked for the `postgres` sink's database only. `ownThread`:
 * the sink runs in the writer's thread, which it may block (the NDJSON sink's file writes).
 */
export function openAuditSink(config: AuditConfig, database: () => PostgresAuditSinkOptions, ownThread = false): AuditSink {
  switch (config.sink) {
    case 'postgres':
      return createPostgresAuditSink(database());
    case 'ndjson':
      return createNdjsonSink({ path: config.path, blocking: ownThread });
    case 'nats': {
      const nats = config.nats;
      if (nats === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: `audit.sink: nats` without `audit.nats`');
      return createNatsAuditSink(nats);
    }
  }
}
