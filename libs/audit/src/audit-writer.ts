/**
 * The decision-log writer: a side branch of the decision path that never slows it and never
 * loses a record. `record` keeps the entry (or its builder) until the event loop's check phase
 * (`setImmediate`), then builds and serialises every entry recorded meanwhile and queues the flat
 * results: a burst of checks arriving together is answered first and logged after, instead of
 * each answer waiting for the entries of the checks before it. What waits for the batch is one
 * string per entry, not the caller's objects (kept alive for a batch interval, those survived
 * young-generation collections and cost the broker more in GC than building the entries).
 * Batches go to the sink; when the sink fails they are
 * appended to a local spill file (NDJSON, fsynced per batch) and replayed, in order, before
 * anything newer once the sink answers again. A new writer finds a spill file left by a previous
 * process and replays it first. `close` flushes everything (to the sink or the spill file).
 *
 * INVARIANT: while the spill file holds entries, new batches are appended to it rather than sent
 * to the sink, so the sink sees entries in the order they were recorded. (One exception: when the
 * in-memory queue overflows, it is spilled at once, possibly ahead of a batch still in flight.)
 *
 * While the sink is failing, it is tried again only by the retry timer (exponential backoff up to
 * `maxRetryMs`); new entries go to the spill file meanwhile. A sink write that does not settle
 * within `writeTimeoutMs` counts as failed (its batch is spilled): a hung sink can neither stall
 * the log nor keep `close` from finishing. A batch the sink took late is sent again by the replay,
 * which the sinks' idempotency on the decision id makes harmless.
 *
 * INVARIANT: an overflow appends to the spill file synchronously, at any time, even during a
 * replay; every other append also writes its bytes synchronously (only its fsync is awaited), so
 * no append lands inside another's lines. A replay therefore only ever removes the bytes it read and sent: the file is truncated
 * from the front (the rest copied aside and renamed over it) in a step that does not yield to the
 * event loop between its last size check and the rename, so nothing appended is lost.
 */
import { closeSync, existsSync, fsync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname } from 'node:path';
import { WardenError } from '@warden/core';
import { buildRecord, entryFromLine, type AuditRecord, type SerializedEntry } from './audit-entry.js';
import { pastPoll, type AuditSink } from './audit-sink.js';
import { RecordedEntries } from './recorded-entries.js';

/** `best-effort`: a record is queued and the caller moves on; `strict`: the caller may wait until it is durable. */
export type AuditMode = 'best-effort' | 'strict';

/**
 * Entries the writer holds in memory before it spills them all to the spill file (the broker's
 * `audit.maxQueue` default): at the peak measured here (5,000-8,000 checks/s a process) 10,000 was
 * 1.5-2 s of checks, and a Postgres sink that fell behind for that long (a checkpoint, its server
 * or the writer's thread short of CPU) spilled 10,000 entries and replayed them in a run that kept
 * up otherwise (bench/README.md); 20,000 /v1/check entries (1.2 KB each with the fields line, as
 * the writer holds them) take about 27 MB.
 */
export const MAX_QUEUE = 20_000;

/** Entries per sink write when neither the writer's options nor the sink say. */
const BATCH_SIZE = 200;

/** Options of {@link createAuditWriter}. */
export interface AuditWriterOptions {
  sink: AuditSink;
  /** The spill file (created with its directory when first needed). */
  spillPath: string;
  /** Entries per sink write (default the sink's own `batchSize`, else 200). */
  batchSize?: number;
  /**
   * Entries per sink write while at least that many wait (default 5 x the `batchSize` option, or 5 x 200): one write at a time
   * keeps the sink's order, so a sink whose round trip grows under load (its server on busy
   * cores) catches up by taking more per write rather than falling behind a batch per trip.
   */
  maxBatchSize?: number;
  /** Entries held in memory before the queue is spilled to disk at once (default {@link MAX_QUEUE}). */
  maxQueue?: number;
  /** How long a partial batch waits before it is written, ms (default 200). */
  flushIntervalMs?: number;
  /** Longest wait between replay attempts while the sink is failing, ms (default 5000). */
  maxRetryMs?: number;
  /** How long a sink write (and the sink's `close`) may take before it counts as failed, ms (default 5000). */
  writeTimeoutMs?: number;
  /** Called when the sink or the spill file fails (logs, metrics); never throws into the caller. */
  onError?: (message: string) => void;
  /**
   * Called just before each sink write (in the writer's thread: `serveAuditWriter`'s `giveWay`,
   * which sleeps a moment while the event loop's thread waits for a core it may share). A write
   * is the longest stretch of the writer's work that does not pass the ring's give-way point: the
   * batch encoded and, for Postgres and NATS, handed to the socket in one piece.
   */
  beforeWrite?: () => void;
}

/** Counters of a writer. */
export interface AuditWriterStats {
  /** Entries the sink accepted (replays included). */
  written: number;
  /** Entries appended to the spill file. */
  spilled: number;
  /** Entries read back from the spill file and accepted by the sink. */
  replayed: number;
  /** Entries neither the sink nor the spill file took (still held in memory, retried). */
  failed: number;
  /**
   * Entries dropped because the sink and the spill file both failed while the queue was full
   * (the oldest go first). The only way an entry is lost; reported through `onError`.
   */
  dropped: number;
  /** Entries waiting in memory. */
  queued: number;
  /** True while the spill file holds entries not yet replayed. */
  spillPending: boolean;
  /**
   * Times the event loop gave its core to the writer's thread because that thread was starved of
   * CPU with a backlog (up to `YIELD_MS` each; `createThreadedAuditWriter` only, 0 otherwise).
   */
  yields: number;
  /**
   * Times the writer's thread slept a moment to give the event loop's thread, runnable beside it,
   * its core (`GIVE_WAY_AFTER_MS`; `createThreadedAuditWriter` only, 0 otherwise).
   */
  writerYields: number;
}

/** The decision-log writer. */
export interface AuditWriter {
  /** Takes an entry, built and queued in the event loop's next check phase (`setImmediate`); returns at once, never throws. */
  record(entry: AuditRecord): void;
  /**
   * Queues an entry and resolves once it is durable (in the sink or fsynced in the spill file);
   * rejects with `ERR_AUDIT_UNAVAILABLE` when it could be made neither (`mode: strict` callers
   * then deny).
   */
  recordDurable(entry: AuditRecord): Promise<void>;
  /** Writes everything queued now (and replays the spill file first when it holds entries). */
  flush(): Promise<void>;
  stats(): AuditWriterStats;
  /** Flushes, stops the timers and closes the sink. */
  close(): Promise<void>;
  /**
   * The last resort of a writer whose thread is about to die (an uncaught exception): appends
   * every entry it holds in memory (recorded, queued, and the batch at the sink, which may have
   * been written too: a replay may send it twice) to the spill file now, synchronously and
   * fsynced; the next writer replays them. Returns how many; throws where the disk fails. The
   * writer in its own thread has it (`createAuditWriter`); the threaded one's caller end does not.
   */
  spillHeld?(): number;
}

interface Pending {
  entry: SerializedEntry;
  done?: { resolve: () => void; reject: (err: Error) => void };
}

/** Thrown inside a replay to stop it when the writer closes. */
const STOP_REPLAY = new Error('audit: replay stopped by close');

const fsyncAsync = promisify(fsync);

/**
 * Writes all of `text` at the end of `fd` (opened for appending) in this turn of the event loop:
 * `writeSync` may write less than asked, and nothing else may be appended between its calls.
 */
function appendAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** Bytes of the spill file read at a time by a replay. */
const REPLAY_CHUNK = 1 << 20;

/** Copies bytes [from, to) of `src` into a new `dest` (truncated first). */
async function copyRange(src: string, dest: string, from: number, to: number): Promise<void> {
  const input = await open(src, 'r');
  try {
    const output = await open(dest, 'w');
    try {
      const buf = Buffer.alloc(Math.min(REPLAY_CHUNK, to - from));
      for (let pos = from; pos < to; ) {
        const { bytesRead } = await input.read(buf, 0, Math.min(buf.length, to - pos), pos);
        if (bytesRead === 0) break;
        await output.write(buf, 0, bytesRead);
        pos += bytesRead;
      }
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/**
 * Creates a writer over `sink`.
 * @example
 * const writer = createAuditWriter({ sink: createNdjsonSink({ path: 'audit.ndjson' }), spillPath: 'data/audit.spill.ndjson' });
 * writer.record(() => buildEntry(decided));
 */
export function createAuditWriter(options: AuditWriterOptions): AuditWriter {
  const { sink, spillPath } = options;
  const ownBatchSize = options.batchSize ?? BATCH_SIZE;
  const batchSize = options.batchSize ?? sink.batchSize ?? BATCH_SIZE;
  // A sink's smaller writes are for a writer that keeps up; a backlog goes in writes as large as ever.
  const maxBatchSize = Math.max(batchSize, options.maxBatchSize ?? 5 * ownBatchSize);
  const maxQueue = options.maxQueue ?? MAX_QUEUE;
  const flushIntervalMs = options.flushIntervalMs ?? 200;
  const maxRetryMs = options.maxRetryMs ?? 5000;
  const writeTimeoutMs = options.writeTimeoutMs ?? 5000;
  const onError = options.onError ?? (() => undefined);
  const stats = { written: 0, spilled: 0, replayed: 0, failed: 0, dropped: 0 };
  // Set when spilling a full queue failed: until a drain succeeds, a full queue drops its oldest
  // entry instead of retrying the disk on every record (which would put I/O on the hot path).
  let diskFailing = false;
  let tailChecked = false;
  let queue: Pending[] = [];
  // A previous process may have left entries behind: they go first.
  let spillPending = existsSync(spillPath);
  let running: Promise<void> | undefined;
  /** The next write of the queue (a partial batch waiting `flushIntervalMs`, or a full one). */
  let timer: NodeJS.Timeout | undefined;
  /** The next attempt at the sink while it is failing. */
  let retryTimer: NodeJS.Timeout | undefined;
  /** Failed attempts in a row; above 0, the sink is failing and only `retryTimer` tries it. */
  let retries = 0;
  /** Failed attempts since the writer started (`close` tells a failure during the stop from one before it). */
  let failures = 0;
  /** Set by `close`: a replay running stops after its current batch (the rest stays on disk for the next start). */
  let closing = false;
  let closed = false;
  /** Entries `record` took since the last check phase, built and queued there (or at once). */
  const recorded = new RecordedEntries(onError, (entry) => push({ entry }));
  /** The batch taken from the queue whose sink write has not answered yet (see `spillHeld`). */
  let atSink: Pending[] | undefined;

  const schedule = (ms: number): void => {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void writeQueue();
    }, ms);
    // Never keeps the process alive; `close` flushes what is left.
    timer.unref();
  };

  /** The sink failed: the next attempt waits 100 ms, 200 ms, 400 ms ... up to `maxRetryMs`. */
  const scheduleRetry = (): void => {
    if (retryTimer !== undefined || closed) return;
    const ms = Math.min(maxRetryMs, 100 * 2 ** retries);
    retries += 1;
    failures += 1;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      // A stop makes its own attempt.
      if (!closing) void flush();
    }, ms);
    retryTimer.unref();
  };

  /**
   * Writes the queue: to the sink normally; to the spill file while the sink is failing (the sink
   * is not hammered at every batch; the retry timer replays the file). When the disk failed too
   * (nothing pending on it), the entries stay in memory for the retry.
   */
  function writeQueue(): Promise<void> {
    // Decided when the step runs, not when it is queued: a replay ahead of it may have succeeded.
    return chain(async () => {
      if (retries === 0) await drain();
      else if (spillPending) await spillQueue();
    });
  }

  /** `sink.write`, failed after `writeTimeoutMs` (a late answer is ignored; a replay sends the batch again). */
  async function sinkWrite(entries: readonly SerializedEntry[]): Promise<void> {
    options.beforeWrite?.();
    await within(sink.write(entries), `sink \`${sink.name}\` did not answer within ${writeTimeoutMs} ms`);
  }

  async function within(work: Promise<void>, message: string): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    // A rejection after the timeout must not become an unhandled one.
    work.catch(() => undefined);
    try {
      await Promise.race([work, new Promise<never>((_, reject) => (t = setTimeout(() => pastPoll(() => reject(new Error(message))), writeTimeoutMs)))]);
    } finally {
      clearTimeout(t);
    }
  }

  /** NDJSON of `items`' entries (serialised when they were recorded), for the spill file. */
  function linesOf(items: readonly Pending[]): string {
    let lines = '';
    for (const p of items) lines += `${p.entry.json}\n`;
    return lines;
  }

  function settle(items: readonly Pending[], err?: Error): void {
    for (const p of items) {
      if (p.done === undefined) continue;
      if (err === undefined) p.done.resolve();
      else p.done.reject(err);
    }
  }

  /**
   * Appends `lines` and waits for them to be on disk. The bytes go in synchronously: an overflow
   * (also synchronous, at any time) must not land between two chunks of an asynchronous write,
   * which tore lines in the middle (an unreadable line each side, two entries lost). Only the
   * fsync is waited for off the thread.
   */
  async function appendSpill(lines: string): Promise<void> {
    const fd = openAndAppend(lines);
    try {
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Appends `lines` and fsyncs them before it returns (the thread waits for the disk). */
  function appendSpillNow(lines: string): void {
    const fd = openAndAppend(lines);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Opens the spill file (making its directory) and appends `lines` in this turn of the event loop,
   * on a new line after a torn tail; returns the descriptor for the caller to fsync and close.
   */
  function openAndAppend(lines: string): number {
    mkdirSync(dirname(spillPath), { recursive: true });
    const fd = openSync(spillPath, 'a');
    try {
      appendAll(fd, !tailChecked && tornTail() ? `\n${lines}` : lines);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    tailChecked = true;
    return fd;
  }

  /**
   * True when the spill file ends in a torn line (a previous process died mid-append): the next
   * append must start on a new line, or its first entry would merge with the fragment and be
   * unreadable. Checked once per process (this process always ends its appends with a newline).
   */
  function tornTail(): boolean {
    try {
      const size = statSync(spillPath).size;
      if (size === 0) return false;
      const fd = openSync(spillPath, 'r');
      try {
        const b = Buffer.alloc(1);
        readSync(fd, b, 0, 1, size - 1);
        return b[0] !== 0x0a;
      } finally {
        closeSync(fd);
      }
    } catch {
      return false;
    }
  }

  /**
   * Sends the spill file's entries to the sink in order, batch by batch, reading the file in
   * chunks (memory stays bounded however long the outage was); false when the sink failed again.
   * What the sink took is then cut from the front of the file; what an overflow appended while
   * the replay ran is read in a next round.
   */
  async function replay(): Promise<boolean> {
    for (;;) {
      let fh: FileHandle;
      try {
        fh = await open(spillPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          spillPending = false;
          return true;
        }
        throw err;
      }
      // Bytes [0, end) are this round's; [0, sent) went to the sink (whole lines).
      let end = 0;
      let sent = 0;
      let sinkError: Error | undefined;
      try {
        end = (await fh.stat()).size;
        let batch: SerializedEntry[] = [];
        let batchEnd = 0;
        const send = async (): Promise<void> => {
          if (batch.length > 0) {
            try {
              await sinkWrite(batch);
            } catch (err) {
              sinkError = err as Error;
              throw err;
            }
            stats.replayed += batch.length;
            stats.written += batch.length;
            batch = [];
          }
          sent = batchEnd;
        };
        const take = (line: string, endsAt: number): void => {
          batchEnd = endsAt;
          if (line === '') return;
          try {
            batch.push(entryFromLine(line));
          } catch {
            // A torn line (a process died mid-write, before fsync): nothing durable was promised for it.
            onError('audit: skipped an unreadable line of the spill file');
          }
        };
        const chunk = Buffer.alloc(REPLAY_CHUNK);
        let carry = Buffer.alloc(0);
        let pos = 0;
        while (pos < end) {
          const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, end - pos), pos);
          if (bytesRead === 0) break;
          const data = carry.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
          const base = pos - carry.length;
          pos += bytesRead;
          let from = 0;
          for (let nl = data.indexOf(0x0a, from); nl !== -1; nl = data.indexOf(0x0a, from)) {
            take(data.toString('utf8', from, nl), base + nl + 1);
            from = nl + 1;
            if (batch.length >= batchSize) {
              await send();
              if (closing) throw STOP_REPLAY;
            }
          }
          carry = Buffer.from(data.subarray(from));
        }
        // A last line with no newline: torn, unless it parses.
        if (carry.length > 0) take(carry.toString('utf8'), end);
        await send();
      } catch (err) {
        await fh.close().catch(() => undefined);
        await dropFront(sent);
        if (err === STOP_REPLAY) return false;
        if (sinkError === undefined) throw err;
        onError(`audit: sink \`${sink.name}\` still failing during replay: ${sinkError.message}`);
        return false;
      }
      await fh.close();
      if (await dropFront(end)) {
        spillPending = false;
        return true;
      }
      // An overflow appended entries while this round ran: they are replayed next, still before the queue.
    }
  }

  /**
   * Removes the first `upTo` bytes of the spill file (sent to the sink); true when nothing is left
   * (the file is removed). The rest is copied aside and renamed over the file, never half a file.
   */
  async function dropFront(upTo: number): Promise<boolean> {
    if (upTo === 0) return false;
    const tmp = `${spillPath}.tmp`;
    let copied = upTo;
    const before = statSync(spillPath).size;
    if (before > upTo) {
      // The bulk of the rest is copied without blocking the event loop ...
      await copyRange(spillPath, tmp, upTo, before);
      copied = before;
    }
    // ... and from this size check to the rename nothing yields: an overflow cannot append in between.
    const size = statSync(spillPath).size;
    if (size <= upTo) {
      rmSync(spillPath, { force: true });
      rmSync(tmp, { force: true });
      return true;
    }
    const out = openSync(tmp, copied === upTo ? 'w' : 'a');
    try {
      if (size > copied) {
        const rest = Buffer.alloc(size - copied);
        const fd = openSync(spillPath, 'r');
        try {
          let got = 0;
          while (got < rest.length) {
            const n = readSync(fd, rest, got, rest.length - got, copied + got);
            if (n === 0) break;
            got += n;
          }
        } finally {
          closeSync(fd);
        }
        writeSync(out, rest);
      }
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(tmp, spillPath);
    return false;
  }

  async function drain(): Promise<void> {
    if (spillPending) {
      let ok = false;
      try {
        ok = await replay();
      } catch (err) {
        onError(`audit: spill file unreadable: ${(err as Error).message}`);
      }
      if (!ok) {
        // Newer entries wait behind the spilled ones: appended, not sent.
        await spillQueue();
        scheduleRetry();
        return;
      }
      retries = 0;
    }
    while (queue.length > 0) {
      // A backlog of `maxBatchSize` or more goes in writes of that size; otherwise `batchSize`.
      const batch = queue.splice(0, queue.length >= maxBatchSize ? maxBatchSize : batchSize);
      atSink = batch;
      try {
        try {
          await sinkWrite(batch.map((p) => p.entry));
        } finally {
          atSink = undefined;
        }
        stats.written += batch.length;
        diskFailing = false;
        retries = 0;
        settle(batch);
      } catch (err) {
        onError(`audit: sink \`${sink.name}\` failed, spilling ${batch.length} entries: ${(err as Error).message}`);
        const spilled = await spillLines(linesOf(batch), batch, batch.length);
        if (spilled) await spillQueue();
        scheduleRetry();
        return;
      }
    }
  }

  /** Appends `lines` to the spill file; on failure the items go back to the queue's head. */
  async function spillLines(lines: string, items: readonly Pending[], count: number): Promise<boolean> {
    try {
      await appendSpill(lines);
      diskFailing = false;
      stats.spilled += count;
      spillPending = true;
      settle(items);
      return true;
    } catch (err) {
      diskFailing = true;
      onError(`audit: spill file failed: ${(err as Error).message}`);
      stats.failed += count;
      // Still held in memory and retried; a strict caller learns it is not durable.
      settle(items, new WardenError('ERR_AUDIT_UNAVAILABLE', 'the audit entry could not be made durable', { cause: err }));
      queue = items.map((p): Pending => ({ entry: p.entry })).concat(queue);
      return false;
    }
  }

  async function spillQueue(): Promise<void> {
    if (queue.length === 0) return;
    const items = queue;
    queue = [];
    await spillLines(linesOf(items), items, items.length);
  }

  function flush(): Promise<void> {
    recorded.drain();
    return chain(drain);
  }

  function chain(step: () => Promise<void>): Promise<void> {
    // One step at a time: batches reach the sink (or the spill file) in order.
    const next = (running ?? Promise.resolve()).then(step).catch((err: unknown) => onError(`audit: ${(err as Error).message}`));
    running = next;
    void next.then(() => {
      if (running === next) running = undefined;
    });
    return next;
  }

  /** The queue is full: it goes to disk now (synchronously, so memory stays bounded). */
  function overflow(): void {
    const items = queue;
    queue = [];
    try {
      appendSpillNow(linesOf(items));
      stats.spilled += items.length;
      spillPending = true;
      diskFailing = false;
      settle(items);
    } catch (err) {
      diskFailing = true;
      onError(`audit: queue full and spill file failed: ${(err as Error).message}`);
      stats.failed += items.length;
      settle(items, new WardenError('ERR_AUDIT_UNAVAILABLE', 'the audit entry could not be made durable', { cause: err }));
      // Kept in memory and retried (the callers waiting on them already know).
      queue = items;
    }
    schedule(0);
  }

  function push(p: Pending): void {
    queue.push(p);
    if (queue.length > maxQueue && diskFailing) {
      const lost = queue.shift() as Pending;
      stats.dropped += 1;
      settle([lost], new WardenError('ERR_AUDIT_UNAVAILABLE', 'the audit entry could not be made durable'));
      if (stats.dropped === 1 || stats.dropped % 1000 === 0) onError(`audit: sink and spill file failing with a full queue: ${stats.dropped} entries dropped so far`);
      soon();
    } else if (queue.length >= maxQueue) overflow();
    else if (queue.length >= batchSize || p.done !== undefined) soon();
    else schedule(flushIntervalMs);
  }

  /**
   * A full batch, or a caller waiting for durability: write now rather than at the next tick of
   * the timer. While the sink is failing (a retry is scheduled), the queue goes straight to the
   * spill file instead: the sink is not hammered, and strict callers do not wait for the retry.
   */
  function soon(): void {
    if (retries > 0) {
      void writeQueue();
      return;
    }
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    schedule(0);
  }

  // Entries a previous process left are replayed without waiting for new traffic.
  if (spillPending) schedule(0);

  return {
    record(entry) {
      if (closed) {
        onError('audit: an entry was recorded after close');
        return;
      }
      // Memory stays bounded by `maxQueue`: entries that would fill the queue are built (and an
      // overflow spilled) at once.
      recorded.add(entry, queue.length + recorded.length + 1 >= maxQueue);
    },
    recordDurable(entry) {
      if (closed) return Promise.reject(new WardenError('ERR_AUDIT_UNAVAILABLE', 'the audit writer is closed'));
      // Entries recorded before this one are queued before it.
      recorded.drain();
      const built = buildRecord(entry, onError);
      if (built instanceof Error) return Promise.reject(new WardenError('ERR_AUDIT_UNAVAILABLE', 'the audit entry could not be built', { cause: built }));
      return new Promise<void>((resolve, reject) => push({ entry: built, done: { resolve, reject } }));
    },
    flush,
    stats: () => ({ ...stats, queued: queue.length + recorded.length, spillPending, yields: 0, writerYields: 0 }),
    spillHeld() {
      recorded.drain();
      const items = atSink === undefined ? queue : atSink.concat(queue);
      if (items.length === 0) return 0;
      appendSpillNow(linesOf(items));
      atSink = undefined;
      queue = [];
      stats.spilled += items.length;
      spillPending = true;
      return items.length;
    },
    async close() {
      if (closed) return;
      recorded.drain();
      // A stop tries the sink once more, even while it is failing: a replica that is stopped for
      // good (scaled in) never replays its spill file, so a failure that was transient (one slow
      // acknowledgement, a reconnect) would otherwise leave the entries queued since on its disk.
      // The attempt is bounded (`writeTimeoutMs` per write; a replay stops after its current batch,
      // the rest staying on disk, in order, for the next start); a write that fails during the stop
      // itself (one in flight, say: known when the step runs) is not tried again, and the queue goes
      // to the spill file.
      closing = true;
      const failedBefore = failures;
      await chain(async () => {
        if (failures === failedBefore) await drain();
        else await spillQueue();
      });
      closed = true;
      for (const t of [timer, retryTimer]) if (t !== undefined) clearTimeout(t);
      timer = undefined;
      retryTimer = undefined;
      // Whatever the sink did not take is on disk (the next start replays it).
      await chain(spillQueue);
      await within(sink.close(), `closing sink \`${sink.name}\` took longer than ${writeTimeoutMs} ms`).catch((err: unknown) =>
        onError(`audit: closing sink \`${sink.name}\`: ${(err as Error).message}`),
      );
    },
  };
}
