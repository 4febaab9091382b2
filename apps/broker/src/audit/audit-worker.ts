/**
 * The decision log's writer thread (`audit.thread: worker`): started by {@link openDecisionLog}
 * with the audit configuration and, for the `postgres` sink, the database URL (a pool of its own,
 * two connections). Holds the writer's queue, the sink and the spill file; the broker's thread
 * posts it serialised entries (see `createThreadedAuditWriter`).
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { createAuditWriter, serveAuditWriter } from '@warden/audit';
import { WardenError } from '@warden/core';
import { createPgDb } from '@warden/persistence';
import type { AuditConfig } from '../config/broker-config.js';
import { openAuditSink } from './audit-sinks.js';

/** What {@link openDecisionLog} passes the thread. */
export interface AuditWorkerData {
  config: AuditConfig;
  /** Warden's database (`postgres` sink). SECURITY: may hold a password; never logged. */
  databaseUrl: string | undefined;
}

/** The writer thread's nice value (0 is the broker's own; 19 the lowest priority). */
const AUDIT_THREAD_NICE = 5;

if (parentPort === null) throw new WardenError('ERR_INTERNAL', 'BUG: audit-worker.js runs only as a worker thread');
const port = parentPort;
const { config, databaseUrl } = workerData as AuditWorkerData;
// The thread yields to the one answering checks: at nice 5 it gets about a quarter of a core the
// two contend for (enough to keep up with a saturated broker). Under EEVDF (Linux 6.6 and later)
// a batch already running still finishes its time slice before an arriving check runs; SCHED_IDLE
// for this thread made the check's p99 worse in probes (bench/README.md). Only on Linux, which sets
// the nice value of the calling thread alone (elsewhere it would be the whole process's).
// A sandbox that forbids it (seccomp) leaves the thread at the broker's priority, reported.
let niceFailed: string | undefined;
try {
  if (process.platform === 'linux') setPriority(AUDIT_THREAD_NICE);
} catch (err) {
  niceFailed = (err as Error).message;
}
serveAuditWriter(port, (onError) => {
  if (niceFailed !== undefined) onError(`audit: the writer's thread keeps the broker's priority (lowering it failed: ${niceFailed})`);
  const sink = openAuditSink(config, () => {
    if (databaseUrl === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: the audit thread has no database URL for `audit.sink: postgres`');
    return { db: createPgDb({ url: databaseUrl, max: 2, onError: (m) => onError(`audit: database: ${m}`) }), ownsDb: true };
  });
  return createAuditWriter({ sink, spillPath: config.spillPath, onError });
});
