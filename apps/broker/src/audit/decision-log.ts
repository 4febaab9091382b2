/**
 * The broker's decision log: the configured sink behind a writer, the masked paths, the mode and
 * the retention timer. Routes call `record` after they have answered (best-effort), or await
 * `recordDurable` before answering (strict). The writer (queue, sink, spill file) runs in a worker
 * thread of its own (audit-worker.ts) unless `audit.thread: main`; entries are built and
 * serialised in this thread either way.
 */
import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createAuditWriter, createInputMask, createThreadedAuditWriter, MAX_POSTED, type AuditRecord, type AuditWriter, type InputMask } from '@warden/audit';
import { ensureAuditPartitions, pruneAuditLog, type SqlDb } from '@warden/persistence';
import type { AuditConfig } from '../config/broker-config.js';
import type { AuditLogStats } from '../metrics/broker-metrics.js';
import { openAuditSink } from './audit-sinks.js';
import { checkDecoder } from './v1-check-entry.js';
import type { AuditWorkerData } from './audit-worker.js';
import { failSpan, type DecisionTrace } from '../tracing/decision-trace.js';

/** What routes use. */
export interface DecisionLog {
  readonly strict: boolean;
  readonly mask: InputMask;
  readonly writer: AuditWriter;
}

/** The writer's counters with the spill file's size (for `/metrics`). */
export function decisionLogStats(writer: AuditWriter, spillPath: string): AuditLogStats {
  const s = writer.stats();
  let spillBytes = 0;
  try {
    spillBytes = statSync(spillPath).size;
  } catch {
    // no spill file: nothing waits
  }
  return { written: s.written, spilled: s.spilled, replayed: s.replayed, dropped: s.dropped, queued: s.queued, spillBytes, yields: s.yields, writerYields: s.writerYields };
}

/** Options of {@link openDecisionLog}. */
export interface OpenDecisionLogOptions {
  config: AuditConfig;
  /** Warden's database (the `postgres` sink writes there). */
  db: SqlDb;
  /** Its URL (unset: the embedded PGlite), for the writer's thread's own pool. SECURITY: may hold a password. */
  databaseUrl: string | undefined;
  onError: (message: string) => void;
}

const DAY_MS = 86_400_000;

/**
 * Where the writer runs. The built broker runs it in a worker thread unless `audit.thread: main`,
 * or the sink needs this thread: the embedded PGlite database lives in it, and stdout (`path: -`)
 * is its log stream. From TypeScript sources (the test runner) there is no compiled worker file:
 * the writer runs here.
 */
function writerThread(config: AuditConfig, db: SqlDb): 'worker' | 'main' {
  if (config.thread === 'main' || import.meta.url.endsWith('.ts')) return 'main';
  if (config.sink === 'postgres' && db.kind !== 'pg') return 'main';
  if (config.sink === 'ndjson' && config.path === '-') return 'main';
  return 'worker';
}

/** Opens the decision log, or returns undefined when `audit.enabled` is false. */
export async function openDecisionLog(options: OpenDecisionLogOptions): Promise<{ log: DecisionLog; close: () => Promise<void> } | undefined> {
  const { config, db, onError } = options;
  if (!config.enabled) return undefined;
  let prune: (() => Promise<void>) | undefined;
  if (config.sink === 'postgres') {
    // Hourly: the day partitions ahead exist before their day starts, and old days go.
    prune = async () => {
      await ensureAuditPartitions(db, { now: Date.now() }).catch((err: unknown) => onError(`audit: creating day partitions failed: ${(err as Error).message}`));
      await pruneAuditLog(db, config.retentionDays).catch((err: unknown) => onError(`audit: retention failed: ${(err as Error).message}`));
    };
  }
  // One spill file per worker slot (workers of one broker share the data directory).
  let writer: AuditWriter;
  if (writerThread(config, db) === 'worker') {
    const workerData: AuditWorkerData = { config, databaseUrl: options.databaseUrl };
    // `/v1/check`'s entries are captured into the ring and composed by the writer's thread (with the same mask, see audit-worker.ts).
    writer = createThreadedAuditWriter({
      start: () => new Worker(new URL('./audit-worker.js', import.meta.url), { workerData, name: 'warden-audit' }),
      onError,
      decodeCaptured: checkDecoder(config.maskPaths),
      // What waits posted to the thread is bounded too (a thread stuck in a write takes none). Not
      // below the default: the thread's count of what it took reaches this thread only every
      // STATS_INTERVAL_MS, so a small configured queue must not turn a fast stream into drops.
      maxPosted: Math.max(config.maxQueue * 4, MAX_POSTED),
    });
  } else {
    writer = createAuditWriter({ sink: openAuditSink(config, () => ({ db })), spillPath: config.spillPath, maxQueue: config.maxQueue, onError });
  }
  let timer: NodeJS.Timeout | undefined;
  if (prune !== undefined) {
    await prune();
    timer = setInterval(() => void prune?.(), DAY_MS / 24);
    timer.unref();
  }
  return {
    log: { strict: config.mode === 'strict', mask: createInputMask(config.maskPaths), writer },
    close: async () => {
      if (timer !== undefined) clearInterval(timer);
      await writer.close();
    },
  };
}

/**
 * Hands an entry to the log, under a `warden.audit` span when the request is traced: best-effort
 * returns at once (the span covers the hand-over); strict resolves once the entry is durable and
 * rejects (`ERR_AUDIT_UNAVAILABLE`) when it cannot be (the span is marked failed).
 */
export function recordDecision(log: DecisionLog, entry: AuditRecord, trace?: DecisionTrace): Promise<void> | undefined {
  const span = trace?.audit(log.strict ? 'strict' : 'best-effort');
  if (!log.strict) {
    log.writer.record(entry);
    span?.end();
    return undefined;
  }
  const durable = log.writer.recordDurable(entry);
  if (span === undefined) return durable;
  return durable.then(
    () => span.end(),
    (err: unknown) => {
      failSpan(span, err);
      span.end();
      throw err;
    },
  );
}
