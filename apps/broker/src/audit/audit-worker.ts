/**
 * The decision log's writer thread (`audit.thread: worker`): started by {@link openDecisionLog}
 * with the audit configuration and, for the `postgres` sink, the database URL (a pool of its own,
 * two connections). Holds the writer's queue, the sink and the spill file; the broker's thread
 * posts it serialised entries (see `createThreadedAuditWriter`).
 */
import { setPriority } from 'node:os';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { createAuditWriter, serveAuditWriter } from '@warden/audit';
import { WardenError } from '@warden/core';
import { createPgDb } from '@warden/persistence';
import type { AuditConfig } from '../config/broker-config.js';
import { openAuditSink } from './audit-sinks.js';
import { checkDecoder } from './v1-check-entry.js';

/** What {@link openDecisionLog} passes the thread. */
export interface AuditWorkerData {
  config: AuditConfig;
  /** Warden's database (`postgres` sink). SECURITY: may hold a password; never logged. */
  databaseUrl: string | undefined;
}

/** The writer thread's nice value (0 is the broker's own; 19 the lowest priority). */
const AUDIT_THREAD_NICE = 19;

if (parentPort === null) throw new WardenError('ERR_INTERNAL', 'BUG: audit-worker.js runs only as a worker thread');
const port = parentPort;
const { config, databaseUrl } = workerData as AuditWorkerData;
// The thread yields to the one answering checks: at nice 19 it runs in the event loop's idle time
// and, where the two share a core, a waking event loop takes the core from it at once (at nice 5
// it held the core for 3-5 µs of every check's wait at 30% load: bench/README.md). Beside a
// saturated event loop it would starve: it then says so through the ring, and the event loop gives
// it the core for a moment in each check phase until it is fed (`createThreadedAuditWriter`).
// Only on Linux, which sets the nice value of the calling thread alone (elsewhere it would be the
// whole process's). A sandbox that forbids it (seccomp) leaves the thread at the broker's priority, reported.
let niceFailed: string | undefined;
try {
  if (process.platform === 'linux') setPriority(AUDIT_THREAD_NICE);
} catch (err) {
  niceFailed = (err as Error).message;
}
// The broker's thread captures `/v1/check`'s entries into the ring; this thread composes them, masked as the broker's log masks.
const served = serveAuditWriter(port, (onError, giveWay) => {
  if (niceFailed !== undefined) onError(`audit: the writer's thread keeps the broker's priority (lowering it failed: ${niceFailed})`);
  const sink = openAuditSink(config, () => {
    if (databaseUrl === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: the audit thread has no database URL for `audit.sink: postgres`');
    return { db: createPgDb({ url: databaseUrl, max: 2, onError: (m) => onError(`audit: database: ${m}`) }), ownsDb: true };
  }, true);
  return createAuditWriter({ sink, spillPath: config.spillPath, maxQueue: config.maxQueue, onError, beforeWrite: giveWay });
}, undefined, checkDecoder(config.maskPaths));
// A bug that escapes (a library's 'error' event with no listener, say) ends the thread; before it
// does, the entries it holds in memory and those of the posts it has not read go to the spill
// file, which the next thread replays.
process.on('uncaughtException', (err) => {
  served.failed(err, () => receiveMessageOnPort(port));
  process.exit(1);
});
