/**
 * The decision-log writer in a thread of its own. The decision path's thread only builds and
 * serialises each entry (in the check phase after the answers, as the in-thread writer does) and
 * posts the batch; the queue, the sink's client and its I/O, the spill file and the replays live
 * in the writer's thread, with their memory in that thread's heap. So the entries waiting for a
 * batch no longer survive (and slow) the decision thread's young-generation collections, and the
 * sink's protocol work (Postgres, NATS, file writes) no longer takes turns with the answers.
 *
 * The protocol, in posting order on one port (so entries reach the writer in the order recorded):
 * `ring` (first, to each thread: the {@link EntryRingWriter} ring the entries are written into as
 * they are built), `rec` (entries, no answer: how far to read the ring, then any entries that did
 * not fit in it, in the message), `dur` (one entry; answered `ack` once durable or not), `flush` and
 * `close` (answered `done` with the writer's counters). The writer's thread also sends its
 * counters every {@link STATS_INTERVAL_MS} (`stats`) and its error messages (`err`).
 *
 * Memory: the writer's queue is bounded as in its own thread (`maxQueue`, then the spill file);
 * what was built and the thread has not taken yet waits in the ring (`ringBytes`) and, when the
 * ring is full, in the port, unbounded; both are counted in `stats().queued`.
 *
 * INVARIANT: entries are posted to one thread at a time, in order. When that thread stops
 * unexpectedly (a crash inside a sink, say), it first spills the entries its writer holds and
 * those of the posts it had not read yet ({@link ServedAuditWriter.failed}, where the thread's
 * uncaught exceptions reach it); when it is killed outright, they are lost as they would be in a
 * process crash. Callers waiting for durability are refused, and a new thread is started,
 * which replays the spill file first.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { WardenError } from '@warden/core';
import { buildRecord, CAPTURED, isComposed, packEntry, readPackedUtf8, unpackEntry, type AuditRecord, type CaptureDecoder, type SerializedEntry } from './audit-entry.js';
import type { AuditWriter, AuditWriterStats } from './audit-writer.js';
import { createEntryRing, EntryRingReader, EntryRingWriter } from './entry-ring.js';
import { RecordedEntries } from './recorded-entries.js';

/** How often the writer's thread reports its counters, ms. */
export const STATS_INTERVAL_MS = 100;

/** The writer's counters as its thread reports them, with the entries it took from the port. */
interface ThreadStats {
  stats: AuditWriterStats;
  received: number;
}

/** Messages to the writer's thread. */
type ToWriter =
  | { t: 'ring'; sab: SharedArrayBuffer }
  /** The ring's records up to `upTo` (`n` entries), then `entries`; `at`: when posted (epoch ms). */
  | { t: 'rec'; at: number; upTo?: number; n?: number; entries?: SerializedEntry[] }
  | { t: 'dur'; id: number; entry: SerializedEntry }
  | { t: 'flush'; id: number }
  | { t: 'close'; id: number };

/** Messages from the writer's thread. */
type FromWriter =
  | ({ t: 'stats' } & ThreadStats)
  | ({ t: 'done'; id: number } & ThreadStats)
  | { t: 'ack'; id: number; error?: string }
  | { t: 'err'; message: string };

/** A caller of `recordDurable` waiting for the thread's answer on entry `id`. */
interface Durable {
  id: number;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Refuses the caller when the thread has not answered in time ({@link ThreadedAuditWriterOptions.durableTimeoutMs}). */
  timer: NodeJS.Timeout;
}

/** What the writer's thread is to its parent: a `Worker` of `node:worker_threads` has all of it. */
export interface AuditThread {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

/** The parent's end as the writer's thread sees it (`parentPort` of `node:worker_threads`). */
export interface AuditThreadPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  close(): void;
}

/** Options of {@link createThreadedAuditWriter}. */
export interface ThreadedAuditWriterOptions {
  /** Starts the writer's thread (again after it stopped unexpectedly). */
  start: () => AuditThread;
  /** Receives the writer thread's error messages and this side's own; never throws into the caller. */
  onError?: (message: string) => void;
  /** How long `close` waits for the thread to flush and stop before it is terminated, ms (default 30 000). */
  closeTimeoutMs?: number;
  /** How long after an unexpected stop the thread is started again, ms (default 1000). */
  restartDelayMs?: number;
  /**
   * How long built entries wait to be posted together, ms (default 10): a message costs the
   * posting thread far more than the strings it carries (a lock shared with the writer's thread
   * and its wake-up), so entries go in one message per interval, or per {@link POST_BATCH}.
   */
  postIntervalMs?: number;
  /**
   * Bytes of the ring the entries are written into for the writer's thread (default 4 MiB, about
   * 4,000 entries of /v1/check; a full ring sends them in the post instead; 0: always in the post).
   */
  ringBytes?: number;
  /**
   * The share of its recent time the event loop must have spent on its core before it gives a
   * starved writer's thread the core (default {@link BUSY_SHARE}; 0: whenever the thread asks).
   */
  busyShare?: number;
  /**
   * Composes the entry of a captured record ({@link ComposedEntry.capture}); with it, entries
   * that can be captured go into the ring that way, and the writer's thread (served with the same
   * decoder, see {@link serveAuditWriter}) composes them. This thread decodes only the records a
   * stopped thread left in the ring.
   */
  decodeCaptured?: CaptureDecoder;
  /**
   * How long a durable record (`recordDurable`, `audit.mode: strict`) waits for the thread's
   * answer before it is refused with `ERR_AUDIT_UNAVAILABLE`, ms (default
   * {@link DURABLE_TIMEOUT_MS}). The writer answers within its write timeout plus a spill when the
   * sink hangs; this bounds the wait where nothing answers at all (a thread stuck in a write to a
   * disk that hangs): the decision is then denied, not left waiting.
   */
  durableTimeoutMs?: number;
  /**
   * How many entries may wait posted to the thread and not yet taken by it (default
   * {@link MAX_POSTED}): beyond it, entries are dropped (counted in `dropped`, reported once per
   * episode) instead of held in this thread's memory without bound, as a thread that stopped
   * taking them (stuck in a write to a disk that hangs) would have them held.
   */
  maxPosted?: number;
}

/** Default of {@link ThreadedAuditWriterOptions.durableTimeoutMs}: twice the writer's default write timeout. */
export const DURABLE_TIMEOUT_MS = 10_000;
/**
 * Default of {@link ThreadedAuditWriterOptions.maxPosted}: four times the writer's default queue
 * (about 100 MB of /v1/check entries). A thread that runs takes what was posted within
 * milliseconds; in the keep-up phase of the run of 2026-12-01 06:29 on a slow host, a starved one
 * had at most 33,958 entries queued in all, its own queue (at most 20,000) and what was posted to
 * it together (bench/README.md, keeping up).
 */
export const MAX_POSTED = 80_000;

/** Default of {@link ThreadedAuditWriterOptions.ringBytes}. */
export const RING_BYTES = 4 << 20;

/** How many entries `m` hands the writer's thread (in the ring and in the message). */
const entriesIn = (m: ToWriter): number => (m.t === 'rec' ? (m.n ?? 0) + (m.entries?.length ?? 0) : m.t === 'dur' ? 1 : 0);

/** Entries that are posted at once, without waiting for the interval. */
export const POST_BATCH = 256;

/**
 * The writer's thread runs below the event loop's priority (nice 19 in the broker): beside a busy
 * event loop on one core it gets almost none of it. It reports itself starved when a post reaches
 * it this many ms late (CPU, not a slow sink: a thread waiting on its sink handles posts at once)
 * and, where the kernel tells ({@link ThreadSchedStat}), it spent at least half of that waiting for
 * a core: late because of its own work (its collections, a long batch) or because the process was
 * stopped, it is not starved, and the event loop yielding would not feed it...
 */
export const STARVED_AFTER_MS = 20;
/** ... and withdraws the report once posts reach it within this many ms ... */
export const FED_WITHIN_MS = 5;
/** ... and its queue holds at most this many entries. */
export const STARVED_UNTIL_QUEUED = 1000;
/**
 * While it is starved, the event loop gives it the core whatever the ring holds once its own queue
 * holds this many entries (about what `YIELD_BACKLOG` of the default ring holds): taken from the
 * ring, they wait there for sink writes the thread has no CPU to make. At the peak on a host
 * twice as fast as the one `YIELD_BACKLOG` was tuned on, the event loop yielded only for what
 * waited in the ring, and the Postgres writer's queue went to the spill file (90,000 entries in
 * a 15 s window; the runs since: bench/README.md).
 */
export const YIELD_QUEUED = 500;
/**
 * The event loop captures an entry for the writer's thread to compose (`decodeCaptured`) only while
 * that thread keeps up: not starved of CPU, less than `YIELD_BACKLOG` of the ring waiting for it,
 * and fewer than this many entries in its queue (as it last reported). Composing a captured entry
 * costs that thread about twice what composing costs the event loop (`bench:audit-compose`): below
 * the peak it has the time, and the event loop saves its part; at the peak, captured entries made
 * the Postgres writer fall behind (54,042 queued and 40,000 spilled in the 15 s window of
 * 2026-11-30 22:36, against none before), so there the event loop composes, as it did before.
 */
export const CAPTURE_QUEUED = 1000;
/** While the writer's thread reports itself starved with a backlog (`YIELD_BACKLOG` of the ring, entry-ring.ts, or `YIELD_QUEUED`), the event loop gives it the core this long (ms) in each check phase that built entries ... */
export const YIELD_MS = 2;
/**
 * ... and only while it spent at least this share of its recent time on a core (see {@link LoopBusy}).
 * At 30% of the peak the event loop is on its core a third to two thirds of the time (this host's
 * speed varies by half within seconds); beside a loop that idles, the writer's thread has the core
 * whenever it needs it, unless something else has it.
 */
export const BUSY_SHARE = 0.8;
/** The span {@link LoopBusy} judges the event loop's share over, at least (ms). */
const BUSY_WINDOW_MS = 100;
/** ... and the writer's thread looks this often (ms) whether it is fed (posts stop while the event loop yields). */
const FEED_CHECK_MS = 5;
/** How long a span a starved writer's thread judges its waiting for a core over (ms; its long queue counts while it waited half of it). */
const WAIT_SHARE_WINDOW_MS = 20;

/** When the writer's end of {@link serveAuditWriter} counts itself starved, and fed again (defaults above; tests on a busy machine widen them). */
export interface StarvationLimits {
  starvedAfterMs: number;
  fedWithinMs: number;
  /** The thread's time waiting for a core so far, ms, or undefined where unknown (default a {@link ThreadSchedStat} of the writer's thread; tests set their own). */
  waitedMs?: () => number | undefined;
  /**
   * Whether the writer's thread may run on a CPU the event loop's thread may run on (default
   * {@link sharesCpuWithMain}, read again at most every {@link SHARES_CHECK_MS}). One that may not
   * never asks: a pause of the event loop cannot give it a core. (The decision-log bench's `apart`
   * placement pins them apart; there the writer, starved by the load generator on its own core,
   * made the busy event loop pause 15-162 times per sink in the rounds at 60% for nothing: bench/README.md.)
   */
  sharesCore?: () => boolean;
  /**
   * Whether the event loop's thread is runnable right now (running elsewhere, or waiting for a
   * core), undefined where unknown (default an {@link EventLoopState} of the process's main thread;
   * tests set their own). See {@link GIVE_WAY_AFTER_MS}.
   */
  eventLoopRunnable?: () => boolean | undefined;
}

/**
 * While it takes entries from the ring, after this much of its own work (ms) the writer's thread
 * looks whether the event loop's thread is runnable on a core it may share ({@link StarvationLimits}):
 * beside it that means waiting for the core the writer has, and the writer sleeps
 * {@link GIVE_WAY_MS} so that it gets it. At nice 19 the writer would be preempted by a waking
 * event loop at once under the old scheduler; Linux 6.6+'s EEVDF lets the task on a core run to
 * the end of its slice (about 1.4 ms on the bench's host) first. On the fast host of 2026-12-01,
 * 30% of the peak, every thread of the broker on one core, the NDJSON sink's p99 went from 1.33x
 * to 1.03x of audit off's, Postgres's from 1.83x to 1.51x, NATS's from 1.55x to 1.20x (two runs
 * of bench:audit; the next run read NDJSON at 1.24x: that host's spread from run to run), and a
 * probe pairing the code with and without it read it lower in 12 of 16 rounds (bench/README.md).
 * Where the two may share a core but the event loop runs on another one (no pinning, several
 * cores), the writer sleeps for nothing while the loop is busy, at up to half its speed then
 * (not measured).
 */
export const GIVE_WAY_AFTER_MS = 0.1;
/** How long the writer's thread sleeps to give the event loop its core (ms; the kernel's timer slack, 50 µs, comes on top). */
export const GIVE_WAY_MS = 0.05;

/** How long {@link StarvationLimits.sharesCore}'s answer is kept (ms): affinities change rarely, the writer looks every few ms while starved. */
const SHARES_CHECK_MS = 100;

/** The `Cpus_allowed` mask of a /proc status file, as its comma-separated 32-bit hex groups (most significant first); undefined where unreadable. */
function cpusAllowed(path: string): number[] | undefined {
  try {
    const m = /^Cpus_allowed:\s*([0-9a-f,]+)$/m.exec(readFileSync(path, 'latin1'));
    return m?.[1] === undefined ? undefined : m[1].split(',').map((g) => Number.parseInt(g, 16));
  } catch {
    return undefined;
  }
}

/**
 * Whether two `Cpus_allowed` masks (32-bit groups, most significant first) have a CPU in common.
 * @example cpuMasksIntersect([0x1], [0x2]) === false
 */
export function cpuMasksIntersect(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 1; i <= Math.min(a.length, b.length); i++) if (((a[a.length - i] as number) & (b[b.length - i] as number)) !== 0) return true;
  return false;
}

/**
 * Whether the calling thread and the process's main thread (the event loop's: its thread id is
 * the process id) may run on a common CPU, from Linux's `/proc/thread-self/status` and
 * `/proc/self/task/<pid>/status` (the paths are parameters for tests); true where either is unknown.
 */
export function sharesCpuWithMain(ownStatus = '/proc/thread-self/status', mainStatus = `/proc/self/task/${process.pid}/status`): boolean {
  const own = cpusAllowed(ownStatus);
  const main = cpusAllowed(mainStatus);
  return own === undefined || main === undefined || cpuMasksIntersect(own, main);
}

/**
 * Whether the event loop's thread kept its core busy lately: its time on a core over the last span
 * of at least {@link BUSY_WINDOW_MS} ({@link ThreadSchedStat}), as a share of that span, at least
 * `threshold`. Only a busy event loop keeps the writer's thread (nice 19, on the same core) from
 * the core: beside one mostly idle, a writer's thread that reports itself starved was starved by
 * something else (another process, the host's own stalls), and a pause of the event loop would not
 * feed it, only delay the answers of the next turn (at 30% of the peak the Postgres and NATS
 * brokers paused 237 and 188 times in the rounds of one run, and a Postgres round's p99 was 71.6 ms:
 * bench/README.md). Not `performance.eventLoopUtilization`: that is wall time outside the poll,
 * and at 2,700 checks/s the loop's was 0.6-0.95 in 100 ms spans while its thread was on a core a
 * third of the time (time in callbacks while the core was someone else's counts). The time the
 * loop gave away waiting counts as idle. Counted as busy, it kept the pauses going once they had
 * started: in a slow stretch of this host at 30% of the peak (the event loop on its core 68-79% of
 * the time) the NATS and Postgres brokers paused 620 and 331 times, and their rounds' p99 went to
 * 0.3-0.6 s (bench/README.md). Counted as idle, at the peak the pauses lower the share below the
 * threshold, and the next span goes without them: the writer's thread gets the core in every other
 * span or so, and the queue in memory (`maxQueue`) holds what it could not take meanwhile. Read
 * only when the writer's thread asks for the core; where the kernel does not tell, the loop counts
 * as busy (it gives whenever asked).
 */
class LoopBusy {
  private readonly stat: ThreadSchedStat | undefined;
  private markAt = performance.now();
  private markCpu: number | undefined;
  private share = 0;

  constructor(private readonly threshold: number) {
    this.stat = threshold > 0 ? new ThreadSchedStat() : undefined;
    this.markCpu = this.stat?.cpuMs();
  }

  /** Whether the event loop is busy enough to give its core away now. */
  readonly busy = (): boolean => {
    if (this.stat === undefined || this.markCpu === undefined) return true;
    const now = performance.now();
    const span = now - this.markAt;
    if (span >= BUSY_WINDOW_MS) {
      const cpu = this.stat.cpuMs();
      if (cpu === undefined) return true;
      this.share = (cpu - this.markCpu) / span;
      this.markAt = now;
      this.markCpu = cpu;
    }
    return this.share >= this.threshold;
  };

  close(): void {
    this.stat?.close();
  }
}

/**
 * A file of Linux's /proc opened once and read again from its start at each call (1-3 µs, against
 * 10 µs for opening, reading and closing it each time).
 */
class ProcFile {
  private fd: number | undefined;

  constructor(
    path: string,
    size: number,
    readonly buf = Buffer.alloc(size),
  ) {
    try {
      this.fd = openSync(path, 'r');
    } catch {
      this.fd = undefined;
    }
  }

  /** How many bytes were read into {@link buf}; undefined where the file is not there (or closed). */
  read(): number | undefined {
    if (this.fd === undefined) return undefined;
    try {
      return readSync(this.fd, this.buf, 0, this.buf.length, 0);
    } catch {
      return undefined;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // Closed already or gone with the thread: nothing to release.
    }
    this.fd = undefined;
  }
}

/**
 * Whether the process's main thread (the event loop's: its thread id is the process id) is
 * runnable, from the state in Linux's `/proc/self/task/<pid>/stat` (`R`: running or waiting for a
 * core). The file is opened once and read again from its start at each call (3 µs here). Undefined
 * where there is no such file.
 */
export class EventLoopState {
  private readonly file: ProcFile;

  constructor(path = `/proc/self/task/${process.pid}/stat`) {
    this.file = new ProcFile(path, 256);
  }

  runnable(): boolean | undefined {
    const n = this.file.read();
    if (n === undefined) return undefined;
    const buf = this.file.buf;
    // "<tid> (<name>) <state> ...": the name may hold spaces and parentheses, the state follows the last ')'.
    const close = buf.lastIndexOf(0x29, n - 1);
    return close < 0 || close + 2 >= n ? undefined : buf[close + 2] === 0x52;
  }

  close(): void {
    this.file.close();
  }
}

/**
 * The scheduler's counters of the thread that made it, ms since it started: its time on a core
 * ({@link cpuMs}) and its time runnable but waiting for one ({@link waitMs}), the first two fields
 * of Linux's `/proc/<pid>/task/<tid>/schedstat` (ns). The file is opened once and read again from
 * its start at each call (1 µs here, against 10 µs for opening, reading and closing it each time;
 * the writer's thread looks at every post and timer, some hundreds a second). Undefined where
 * there is no such file (another OS, a kernel without scheduler statistics).
 * INVARIANT: read only by the thread that made it (`thread-self` resolves at open).
 */
export class ThreadSchedStat {
  private readonly file = new ProcFile('/proc/thread-self/schedstat', 128);

  /** Time on a core. */
  cpuMs(): number | undefined {
    return this.field(0);
  }

  /** Time runnable but waiting for a core. */
  waitMs(): number | undefined {
    return this.field(1);
  }

  private field(index: number): number | undefined {
    const n = this.file.read();
    if (n === undefined) return undefined;
    // "<ns on a core> <ns waiting for one> <time slices>\n"
    const buf = this.file.buf;
    let i = 0;
    for (let k = 0; k < index; k++) {
      i = buf.indexOf(0x20, i);
      if (i < 0 || i >= n) return undefined;
      i += 1;
    }
    let ns = 0;
    const from = i;
    for (; i < n; i++) {
      const c = buf[i] as number;
      if (c < 0x30 || c > 0x39) break;
      ns = ns * 10 + (c - 0x30);
    }
    return i > from ? ns / 1e6 : undefined;
  }

  close(): void {
    this.file.close();
  }
}

/**
 * Whether a thread whose wait for a core went from `from` to `to` (ms) waited at least half of
 * `spanMs`; true where the kernel does not tell (undefined).
 */
const waitedHalf = (from: number | undefined, to: number | undefined, spanMs: number): boolean => from === undefined || to === undefined || to - from >= spanMs / 2;

/** A clock for a timer of `intervalMs`: each call says how many ms later than due it fired. */
function lateness(intervalMs: number): () => number {
  let at = Date.now();
  return () => {
    const now = Date.now();
    const late = now - at - intervalMs;
    at = now;
    return late;
  };
}

const EMPTY_STATS: AuditWriterStats = { written: 0, spilled: 0, replayed: 0, failed: 0, dropped: 0, queued: 0, spillPending: false, yields: 0, writerYields: 0 };

const unavailable = (message: string, cause?: unknown): WardenError => new WardenError('ERR_AUDIT_UNAVAILABLE', message, cause === undefined ? undefined : { cause });

/**
 * An {@link AuditWriter} whose writer runs in the thread `start` returns (which calls
 * {@link serveAuditWriter}); `record`'s builders still run in the caller's thread.
 * @example
 * const writer = createThreadedAuditWriter({ start: () => new Worker(new URL('./audit-worker.js', import.meta.url), { workerData }) });
 */
export function createThreadedAuditWriter(options: ThreadedAuditWriterOptions): AuditWriter {
  const onError = options.onError ?? (() => undefined);
  const closeTimeoutMs = options.closeTimeoutMs ?? 30_000;
  const restartDelayMs = options.restartDelayMs ?? 1000;
  const durableTimeoutMs = options.durableTimeoutMs ?? DURABLE_TIMEOUT_MS;
  const maxPosted = options.maxPosted ?? MAX_POSTED;
  /** Entries dropped here: built while {@link maxPosted} were posted and not taken. */
  let dropped = 0;
  /** Whether entries are being dropped (reported once, until the thread takes the posted ones again). */
  let overflowing = false;
  let thread: AuditThread | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  /** Whether the current thread has sent anything; threads that stopped in a row before they did. */
  let reported = false;
  let failedStarts = 0;
  /** Entries posted while no thread ran (between a crash and the restart); posted first when one does. */
  let held: ToWriter[] = [];
  let last: ThreadStats = { stats: EMPTY_STATS, received: 0 };
  /** Entries posted to the current thread (compared with what it reports received). */
  let posted = 0;
  let nextId = 1;
  /**
   * Callers waiting for durability, in the order they asked (the thread answers in that order, so
   * the answer is found at the front). An array, not a `Map` by id: a `Map` that takes a key per
   * entry and drops it at the answer rehashes every few entries, and once its table is in the old
   * generation each dead table keeps the callers it held (their requests and all) alive through
   * the young-generation collections, which promote them (see the NATS sink's header).
   */
  const durables: Durable[] = [];
  const waiting = new Map<number, () => void>();
  const ringBytes = options.ringBytes ?? RING_BYTES;
  /** The current thread's ring (none while no thread runs, or with `ringBytes` 0). */
  let ring: EntryRingWriter | undefined;
  /** The ring's position at the last post, and the entries written there since. */
  let ringPosted = 0;
  let ringEntries = 0;
  /**
   * Entries built that did not go into the ring (full, or no thread), in the next post after the
   * ring's. While it holds any, later entries join it: they stay in order.
   */
  let outbox: SerializedEntry[] = [];
  let postTimer: NodeJS.Timeout | undefined;
  const postIntervalMs = options.postIntervalMs ?? 10;
  let closing = false;
  let closed = false;
  /** Times this thread gave the writer's thread its core ({@link EntryRingWriter.yieldIfStarved}). */
  let yields = 0;
  const loop = new LoopBusy(options.busyShare ?? BUSY_SHARE);

  const send = (m: ToWriter): void => {
    posted += entriesIn(m);
    if (thread === undefined) held.push(m);
    else thread.postMessage(m);
  };

  /** Posts the entries built so far, in one message. */
  const postOutbox = (): void => {
    if (postTimer !== undefined) {
      clearTimeout(postTimer);
      postTimer = undefined;
    }
    if (ringEntries === 0 && outbox.length === 0) return;
    const m: ToWriter = { t: 'rec', at: Date.now() };
    if (ringEntries > 0 && ring !== undefined) {
      m.upTo = ringPosted = ring.head;
      m.n = ringEntries;
      ringEntries = 0;
    }
    if (outbox.length > 0) {
      m.entries = outbox;
      outbox = [];
    }
    send(m);
  };

  /**
   * Writes an entry that composes itself straight into the ring (no string made on this thread);
   * false when it must be built as text: the ring is full or absent, entries wait in the outbox
   * (they stay in order), or its data only text can write (`NotPlainJson`; a bug in it is
   * reported when the text is built).
   */
  const composeInRing = (r: AuditRecord): boolean => {
    if (outbox.length > 0 || ring === undefined || !isComposed(r)) return false;
    let done = false;
    try {
      done = ring.compose(r, !ring.readerStarved() && !ring.backlogged() && last.stats.queued < CAPTURE_QUEUED);
    } catch {
      // Built as text below, where an error is reported.
    }
    if (done) ringEntries += 1;
    return done;
  };

  /** What `record` took since the last check phase, built for the next post. */
  const recorded = new RecordedEntries(
    onError,
    (entry) => {
      if (outbox.length === 0 && ring?.push(packEntry(entry)) === true) ringEntries += 1;
      else if (posted - last.received + outbox.length < maxPosted) outbox.push(entry);
      else {
        dropped += 1;
        if (!overflowing) {
          overflowing = true;
          onError(`audit: the writer's thread has not taken the ${posted - last.received} entries posted to it; entries are dropped until it does (a sink or disk that hangs a write, or a thread that no longer runs)`);
        }
      }
    },
    () => {
      const waiting = ringEntries + outbox.length;
      if (waiting >= POST_BATCH || ring?.halfFull() === true) postOutbox();
      else if (postTimer === undefined && waiting > 0) {
        postTimer = setTimeout(postOutbox, postIntervalMs);
        postTimer.unref();
      }
      // The answers of this turn are out: a writer's thread starved of CPU by this busy thread gets the core a moment.
      if (ring?.yieldIfStarved(YIELD_MS, loop.busy) === true) yields += 1;
    },
    composeInRing,
  );

  /** Everything recorded, built and posted now (before a message that must come after it). */
  const postRecorded = (): void => {
    recorded.drain();
    postOutbox();
  };

  const onMessage = (raw: unknown): void => {
    const m = raw as FromWriter;
    reported = true;
    switch (m.t) {
      case 'stats':
        last = { stats: m.stats, received: m.received };
        if (overflowing && posted - last.received < maxPosted / 2) {
          overflowing = false;
          onError(`audit: the writer's thread takes entries again; ${dropped} were dropped in all`);
        }
        return;
      case 'done':
        last = { stats: m.stats, received: m.received };
        waiting.get(m.id)?.();
        waiting.delete(m.id);
        return;
      case 'ack': {
        let i = 0;
        while (i < durables.length && (durables[i] as Durable).id !== m.id) i++;
        const d = durables[i];
        if (d !== undefined) {
          durables.splice(i, 1);
          clearTimeout(d.timer);
        }
        if (m.error === undefined) d?.resolve();
        else d?.reject(unavailable(m.error));
        return;
      }
      case 'err':
        onError(m.message);
        return;
    }
  };

  /** The thread stopped without being asked to: nobody waits on it any longer, and a new one starts. */
  const stopped = (why: string): void => {
    thread = undefined;
    // The ring's entries not yet posted go to the next thread; posted ones were the stopped one's.
    if (ring !== undefined && ringEntries > 0) {
      const back: SerializedEntry[] = [];
      ring.peek(
        ringPosted,
        ring.head,
        (text) => back.push(unpackEntry(text)),
        (err) => onError(`audit: BUG: a captured entry in the ring could not be composed (${err.message}); skipped`),
      );
      outbox = back.concat(outbox);
    }
    ring = undefined;
    ringEntries = 0;
    for (const d of durables.splice(0)) {
      clearTimeout(d.timer);
      d.reject(unavailable(`the audit writer's thread stopped (${why})`));
    }
    for (const w of waiting.values()) w();
    waiting.clear();
    last = { stats: { ...last.stats, queued: 0 }, received: 0 };
    posted = 0;
    if (closing) return;
    // A thread that stops before it ever reported (it cannot open its sink, say) is restarted
    // less and less often, up to a minute apart.
    const delay = Math.min(60_000, restartDelayMs * 2 ** failedStarts);
    failedStarts = reported ? 0 : failedStarts + 1;
    onError(`audit: the writer's thread stopped (${why}); entries it held in memory and did not spill are lost, spilled ones are replayed by the next; restarting in ${delay} ms`);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      launch();
    }, delay);
    restartTimer.unref();
  };

  const launch = (): void => {
    const t = options.start();
    thread = t;
    reported = false;
    let gone = false;
    const gone1 = (why: string): void => {
      if (gone || thread !== t) return;
      gone = true;
      stopped(why);
    };
    t.on('message', onMessage);
    t.on('error', (err) => gone1(err.message));
    t.on('exit', (code) => gone1(`exit code ${code}`));
    if (ringBytes > 0) {
      const sab = createEntryRing(ringBytes);
      ring = new EntryRingWriter(sab, options.decodeCaptured);
      ringPosted = 0;
      t.postMessage({ t: 'ring', sab } satisfies ToWriter);
    }
    const before = held;
    held = [];
    for (const m of before) t.postMessage(m);
  };

  /** Refuses a durable record the thread did not answer within `durableTimeoutMs` (a later answer finds nobody). */
  const refuseLate = (d: Durable): void => {
    const i = durables.indexOf(d);
    if (i < 0) return;
    durables.splice(i, 1);
    d.reject(unavailable(`the audit writer's thread did not make the entry durable within ${durableTimeoutMs} ms`));
  };

  /** Posts `m` and resolves when the thread answers it (or stops). */
  const ask = (m: { t: 'flush' | 'close'; id: number }): Promise<void> =>
    new Promise<void>((resolve) => {
      waiting.set(m.id, resolve);
      send(m);
    });

  launch();

  return {
    record(entry) {
      if (closed || closing) {
        onError('audit: an entry was recorded after close');
        return;
      }
      recorded.add(entry, false);
    },
    recordDurable(entry) {
      if (closed || closing) return Promise.reject(unavailable('the audit writer is closed'));
      // Entries recorded before this one are posted before it.
      postRecorded();
      const built = buildRecord(entry, onError);
      if (built instanceof Error) return Promise.reject(unavailable('the audit entry could not be built', built));
      const id = nextId++;
      return new Promise<void>((resolve, reject) => {
        const d: Durable = { id, resolve, reject, timer: setTimeout(() => refuseLate(d), durableTimeoutMs) };
        d.timer.unref();
        durables.push(d);
        send({ t: 'dur', id, entry: built });
      });
    },
    flush() {
      postRecorded();
      return ask({ t: 'flush', id: nextId++ });
    },
    stats() {
      const inFlight = thread === undefined ? held.reduce((n, m) => n + entriesIn(m), 0) : Math.max(0, posted - last.received);
      return { ...last.stats, dropped: last.stats.dropped + dropped, queued: last.stats.queued + inFlight + recorded.length + ringEntries + outbox.length, yields };
    },
    async close() {
      if (closed || closing) return;
      postRecorded();
      closing = true;
      if (restartTimer !== undefined) {
        // Stopped and not yet restarted: one more thread takes what was held, to the sink or the spill file.
        clearTimeout(restartTimer);
        restartTimer = undefined;
        launch();
      }
      const t = thread;
      if (t !== undefined) {
        const exited = new Promise<void>((resolve) => t.on('exit', () => resolve()));
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), closeTimeoutMs)));
        const late = await Promise.race([ask({ t: 'close', id: nextId++ }).then(() => exited).then(() => false), timedOut]);
        clearTimeout(timer);
        if (late) {
          onError(`audit: the writer's thread did not stop within ${closeTimeoutMs} ms; terminated (what it had not written or spilled is lost)`);
          await t.terminate();
        }
      }
      thread = undefined;
      closed = true;
      loop.close();
    },
  };
}

/** What {@link serveAuditWriter} leaves its thread. */
export interface ServedAuditWriter {
  /**
   * The thread is about to die of `err` (its uncaught exception): the entries the writer holds in
   * memory, and those of the posts `unread` still hands over (`receiveMessageOnPort` of the port
   * served), go to the spill file (`AuditWriter.spillHeld`), for the next thread to replay, and the
   * parent is told. Never throws. The thread exits after it.
   */
  failed(err: unknown, unread?: () => { message: unknown } | undefined): void;
}

/**
 * Serves the writer `open` returns to its parent over `port` (in the writer's thread): takes the
 * entries posted, answers durability, flush and close, and reports counters and errors.
 * `decodeCaptured`: the decoder the parent's writer was given ({@link ThreadedAuditWriterOptions.decodeCaptured}).
 * `open` is given `giveWay`, for the writer's `beforeWrite`: the event loop gets its core back
 * there too, as between the ring's entries ({@link GIVE_WAY_AFTER_MS}).
 * @example
 * const served = serveAuditWriter(parentPort, (onError, giveWay) => createAuditWriter({ sink, spillPath, onError, beforeWrite: giveWay }));
 * process.on('uncaughtException', (err) => { served.failed(err, () => receiveMessageOnPort(parentPort)); process.exit(1); });
 */
export function serveAuditWriter(
  port: AuditThreadPort,
  open: (onError: (message: string) => void, giveWay: () => void) => AuditWriter,
  limits: StarvationLimits = { starvedAfterMs: STARVED_AFTER_MS, fedWithinMs: FED_WITHIN_MS },
  decodeCaptured?: CaptureDecoder,
): ServedAuditWriter {
  const report = (message: string): void => port.postMessage({ t: 'err', message } satisfies FromWriter);
  let ring: EntryRingReader | undefined;
  let received = 0;
  let starving = false;
  const clock = limits.waitedMs === undefined ? new ThreadSchedStat() : undefined;
  const waitedMs = limits.waitedMs ?? (() => clock?.waitMs());
  const loopState = limits.eventLoopRunnable === undefined ? new EventLoopState() : undefined;
  const eventLoopRunnable = limits.eventLoopRunnable ?? (() => loopState?.runnable());
  const sharesCore = limits.sharesCore ?? (() => sharesCpuWithMain());
  let sharesAt = Number.NEGATIVE_INFINITY;
  let shares = true;
  /** {@link StarvationLimits.sharesCore}, kept {@link SHARES_CHECK_MS}. */
  const mayBeFed = (now: number): boolean => {
    if (now - sharesAt >= SHARES_CHECK_MS) {
      shares = sharesCore();
      sharesAt = now;
    }
    return shares;
  };
  /** When this thread last started taking entries, or last looked whether to give way (performance.now()). */
  let workingSince = 0;
  /** Times it gave the event loop its core ({@link GIVE_WAY_AFTER_MS}). */
  let gaveWay = 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  /** Sleeps {@link GIVE_WAY_MS} if the event loop's thread is runnable on a core this one may share. */
  const giveWay = (now = performance.now()): void => {
    workingSince = now;
    if (!mayBeFed(now) || eventLoopRunnable() !== true) return;
    gaveWay += 1;
    Atomics.wait(nap, 0, 0, GIVE_WAY_MS);
    workingSince = performance.now();
  };
  const writer = open(report, () => giveWay());
  /** The thread's wait for a core when last read (at each post or timer), and when that was (performance.now()). */
  let waitedBefore = waitedMs();
  let lookedAt = performance.now();
  /**
   * While starving: two marks of (time, wait for a core) at least WAIT_SHARE_WINDOW_MS apart;
   * the share of the time it waited is read from the older one. Not from the last look: the
   * looks come while the thread runs (a post, a timer), several in a row, and the last before it
   * waits again would always say it had the core.
   */
  let markOld = { at: lookedAt, waited: waitedBefore };
  let markNew = markOld;
  /** While starving: looks again every FEED_CHECK_MS (no posts come while the event loop yields). */
  let feedTimer: NodeJS.Timeout | undefined;
  const stopFeeding = (): void => {
    starving = false;
    clearInterval(feedTimer);
    feedTimer = undefined;
  };
  /**
   * Whether this thread is starved of CPU, from how late a post or a timer reached it (`lateMs`)
   * and how long it waited for a core meanwhile: it asks the posting thread to yield
   * ({@link EntryRingReader.starved}) until it is on time again with a short queue. While it is,
   * its own long queue counts as a backlog only while it still spends at least half its time
   * waiting for a core: entries waiting for a slow sink (a write in flight) are not fed by a pause
   * of the event loop (at 30% of the peak, counting them anyway made the event loop pause 728
   * times in the Postgres broker's rounds against 83 before, bench/README.md).
   */
  const fed = (lateMs: number): void => {
    if (ring === undefined) return;
    const waited = waitedMs();
    const now = performance.now();
    const lastAt = lookedAt;
    const lastWaited = waitedBefore;
    waitedBefore = waited;
    lookedAt = now;
    if (starving) {
      if (!mayBeFed(now)) {
        stopFeeding();
        ring.starved(false);
        return;
      }
      const queued = writer.stats().queued;
      if (lateMs <= limits.fedWithinMs && queued <= STARVED_UNTIL_QUEUED) {
        stopFeeding();
        ring.starved(false);
        return;
      }
      if (now - markNew.at >= WAIT_SHARE_WINDOW_MS) {
        markOld = markNew;
        markNew = { at: now, waited };
      }
      ring.starved(true, queued >= YIELD_QUEUED && waitedHalf(markOld.waited, waited, now - markOld.at));
      return;
    }
    if (lateMs < limits.starvedAfterMs) return;
    // Late, but it had the core most of that time (its own work) or was not runnable (stopped).
    if (!waitedHalf(lastWaited, waited, lateMs)) return;
    // Starved, but not on a core the event loop could give it.
    if (!mayBeFed(now)) return;
    starving = true;
    // The share is judged from the last look on (it waited for a core half of how late it was).
    markOld = { at: lastAt, waited: lastWaited };
    markNew = { at: now, waited };
    ring.starved(true, writer.stats().queued >= YIELD_QUEUED);
    const late = lateness(FEED_CHECK_MS);
    feedTimer = setInterval(() => fed(late()), FEED_CHECK_MS);
    feedTimer.unref();
  };
  const fromRing = (record: Buffer): void => {
    let e: SerializedEntry | undefined;
    try {
      e = readPackedUtf8(record[0] === CAPTURED && decodeCaptured !== undefined ? decodeCaptured(record) : record);
    } catch (err) {
      report(`audit: BUG: an entry in the ring could not be read (${(err as Error).message}); skipped`);
    }
    if (e !== undefined) writer.record(e);
    const now = performance.now();
    if (now - workingSince >= GIVE_WAY_AFTER_MS) giveWay(now);
  };
  /** Takes the ring's records up to `upTo`, to the writer. */
  const takeRing = (r: EntryRingReader, upTo: number): void => {
    workingSince = performance.now();
    r.take(upTo, fromRing);
  };
  const counters = (): ThreadStats => ({ stats: { ...writer.stats(), writerYields: gaveWay }, received });
  const statsLate = lateness(STATS_INTERVAL_MS);
  const timer = setInterval(() => {
    fed(statsLate());
    port.postMessage({ t: 'stats', ...counters() } satisfies FromWriter);
  }, STATS_INTERVAL_MS);
  // The timer alone never keeps the thread alive: the port does until `close`.
  timer.unref();
  /** The entries a `rec` post hands over (in the ring up to its mark, then in the message), to the writer. */
  const takeRecorded = (m: Extract<ToWriter, { t: 'rec' }>): void => {
    if (m.upTo !== undefined) {
      received += m.n ?? 0;
      if (ring === undefined) report(`audit: BUG: ${m.n ?? 0} entries posted in a ring this thread was not given; lost`);
      else takeRing(ring, m.upTo);
    }
    if (m.entries !== undefined) {
      received += m.entries.length;
      for (const e of m.entries) writer.record(e);
    }
  };
  port.on('message', (raw) => {
    const m = raw as ToWriter;
    switch (m.t) {
      case 'ring':
        ring = new EntryRingReader(m.sab);
        stopFeeding();
        return;
      case 'rec':
        fed(Date.now() - m.at);
        takeRecorded(m);
        return;
      case 'dur':
        received += 1;
        writer.recordDurable(m.entry).then(
          () => port.postMessage({ t: 'ack', id: m.id } satisfies FromWriter),
          (err: unknown) => port.postMessage({ t: 'ack', id: m.id, error: (err as Error).message } satisfies FromWriter),
        );
        return;
      case 'flush':
        void writer.flush().then(() => port.postMessage({ t: 'done', id: m.id, ...counters() } satisfies FromWriter));
        return;
      case 'close':
        clearInterval(timer);
        stopFeeding();
        clock?.close();
        loopState?.close();
        void writer.close().then(() => {
          port.postMessage({ t: 'done', id: m.id, ...counters() } satisfies FromWriter);
          port.close();
        });
        return;
    }
  });
  return {
    failed(err, unread) {
      const why = err instanceof Error ? err.message : String(err);
      let held: string;
      // Posts that came and were not read yet: their entries are held too (one that cannot be taken is skipped).
      let skipped = 0;
      for (let next = unread?.(); next !== undefined; next = unread?.()) {
        const m = next.message as ToWriter;
        try {
          if (m.t === 'ring') ring = new EntryRingReader(m.sab);
          else if (m.t === 'rec') takeRecorded(m);
          else if (m.t === 'dur') writer.record(m.entry);
        } catch {
          skipped += 1;
        }
      }
      try {
        held = `${writer.spillHeld?.() ?? 0} entries it held spilled, for the next thread to replay${skipped > 0 ? ` (${skipped} unread posts could not be taken)` : ''}`;
      } catch (e) {
        held = `the entries it held could not be spilled (${(e as Error).message}) and are lost`;
      }
      try {
        report(`audit: the writer's thread failed (${why}); ${held}`);
      } catch {
        // The parent is gone too: nobody to tell.
      }
    },
  };
}
