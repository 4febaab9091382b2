/**
 * The ring the decision path writes serialised entries into for the writer's thread: a
 * SharedArrayBuffer, one writer (the decision path's thread) and one reader (the writer's thread).
 * An entry is UTF-8 text in it, outside either thread's heap, from the moment it is built: nothing
 * of it waits on the decision path's heap for a batch's post, so nothing of it survives (and is
 * copied, then promoted by) that heap's young-generation collections, and the post that tells the
 * reader how far to read carries a number, not the entries (a structured clone of each).
 *
 * Layout: 8 bytes of control (Int32 0: the bytes the reader has consumed, modulo 2^32; Int32 1:
 * above 0 while the reader's thread asks the writer's to give it the core, 2 when its own queue
 * is long too, see {@link EntryRingReader.starved}), then the
 * records, each a Uint32 byte length and the text, padded to 4 bytes. A record never straddles the
 * end: where the next one does not fit before it, a {@link WRAP} length sends both sides to the start.
 * Positions are byte counts since the ring was made (JS numbers, exact to 2^53); an offset in the
 * ring is the position modulo its capacity.
 *
 * INVARIANT: the writer never overwrites bytes the reader has not consumed (it compares its
 * position with the reader's published one), and the reader reads only up to a position the
 * writer handed it after writing there (in a message of the same port: the post orders the writes
 * before the read).
 */
import { CAPTURED, CAPTURE_NO_ROOM, CAPTURE_NONE, type CaptureDecoder, type ComposedEntry } from './audit-entry.js';
import { BytesJsonOut } from './json-out.js';

const CONTROL = 8;
/** The length that means "continue at the start". */
const WRAP = 0xffffffff;
const encoder = new TextEncoder();

const align4 = (n: number): number => (n + 3) & ~3;

/**
 * The share of the ring that must wait for a starved reader before the writer's thread gives it the
 * core ({@link EntryRingWriter.yieldIfStarved}). At 30% of the peak load the writer's thread, at
 * nice 19, now and then counted itself starved after one long turn of the event loop, and each
 * 2 ms wait that followed, in a thread with most of its core idle, delayed the checks behind it
 * (probes counted up to 20 such waits in a 5 s round: bench/README.md). An eighth of the default
 * ring (512 KB, about 500 entries) is a few tens of ms of checks at the peak, where the reader
 * does need the core, and far more than one turn leaves at 30%.
 */
export const YIELD_BACKLOG = 1 / 8;

/** The two views of a ring both sides use. */
interface RingViews {
  /** Capacity of the record area, a multiple of 4. */
  readonly cap: number;
  /** The records' bytes. */
  readonly buf: Buffer;
  readonly words: Uint32Array;
  readonly control: Int32Array;
}

function views(sab: SharedArrayBuffer): RingViews {
  const cap = sab.byteLength - CONTROL;
  return { cap, buf: Buffer.from(sab, CONTROL, cap), words: new Uint32Array(sab, CONTROL, cap >> 2), control: new Int32Array(sab, 0, 2) };
}

/** A ring of `bytes` (rounded up to 4) for {@link EntryRingWriter} and {@link EntryRingReader}. */
export function createEntryRing(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL + align4(Math.max(64, bytes)));
}

/** Calls `each` with the ring's bytes and the range of every record in [from, upTo); returns upTo. */
function readRecords(v: RingViews, from: number, upTo: number, each: (buf: Buffer, start: number, end: number) => void): number {
  let at = from;
  while (at < upTo) {
    const off = at % v.cap;
    const len = v.words[off >> 2] as number;
    if (len === WRAP) {
      at += v.cap - off;
      continue;
    }
    each(v.buf, off + 4, off + 4 + len);
    at += 4 + align4(len);
  }
  return at;
}

/** The decision path's end: appends records, and tells how far it wrote. */
export class EntryRingWriter {
  private readonly v: RingViews;
  /** Bytes written since the ring was made. */
  private written = 0;
  /** What composed records are written through, reused. */
  private readonly out = new BytesJsonOut();

  /**
   * `decode`: what makes a captured record its entry's text; with it, entries that can be
   * captured are ({@link ComposedEntry.capture}), and {@link peek} decodes them.
   */
  constructor(
    sab: SharedArrayBuffer,
    private readonly decode?: CaptureDecoder,
  ) {
    this.v = views(sab);
  }

  /** The position after the last record (what a post hands the reader). */
  get head(): number {
    return this.written;
  }

  /** Bytes the reader has not consumed. */
  used(): number {
    return ((this.written | 0) - Atomics.load(this.v.control, 0)) >>> 0;
  }

  /** Whether more than half the ring waits for the reader. */
  halfFull(): boolean {
    return this.used() * 2 > this.v.cap;
  }

  /** Whether at least {@link YIELD_BACKLOG} of the ring waits for the reader. */
  backlogged(): boolean {
    return this.used() >= this.v.cap * YIELD_BACKLOG;
  }

  /** Whether the reader's thread says it is starved of CPU ({@link EntryRingReader.starved}). */
  readerStarved(): boolean {
    return Atomics.load(this.v.control, 1) !== 0;
  }

  /** Appends `text`; false (nothing written) when it does not fit in what the reader has freed. */
  push(text: string): boolean {
    return this.append(text);
  }

  /**
   * Appends the record `entry` captures (when `capture` and this ring decodes captured records)
   * or composes, written straight into the ring's bytes; false (nothing written) when it does not
   * fit in what the reader has freed. Throws what `entry` throws ({@link NotPlainJson} for data
   * only text can write), with nothing written.
   */
  compose(entry: ComposedEntry, capture = true): boolean {
    return this.append(entry, capture);
  }

  private append(record: string | ComposedEntry, capture = false): boolean {
    const cap = this.v.cap;
    const free = cap - this.used();
    const off = this.written % cap;
    const toEnd = cap - off;
    if (this.put(off, Math.min(toEnd, free), record, capture)) return true;
    // The start of the ring may have room the end lacks.
    return toEnd < free && this.put(0, free - toEnd, record, capture, off);
  }

  /** Writes `record` at `off` within `room` bytes; `wrapFrom`: the offset to mark as a wrap first. */
  private put(off: number, room: number, record: string | ComposedEntry, capture: boolean, wrapFrom?: number): boolean {
    if (room < 8) return false;
    let len: number;
    if (typeof record === 'string') {
      const r = encoder.encodeInto(record, this.v.buf.subarray(off + 4, off + room));
      if (r.read !== record.length) return false;
      len = r.written;
    } else {
      const captured = capture && this.decode !== undefined && record.capture !== undefined ? record.capture(this.v.buf, off + 4, off + room) : CAPTURE_NONE;
      if (captured === CAPTURE_NO_ROOM) return false;
      if (captured >= 0) len = captured - off - 4;
      else {
        const out = this.out;
        out.reset(this.v.buf, off + 4, off + room);
        record.compose(out);
        if (out.over) return false;
        len = out.pos - off - 4;
      }
    }
    if (wrapFrom !== undefined) {
      this.v.words[wrapFrom >> 2] = WRAP;
      this.written += this.v.cap - wrapFrom;
    }
    this.v.words[off >> 2] = len;
    this.written += 4 + align4(len);
    return true;
  }

  /**
   * When the reader's thread says it is starved of CPU ({@link EntryRingReader.starved}) with a
   * backlog, at least {@link YIELD_BACKLOG} of the ring waiting for it or a long queue of its own,
   * blocks this thread for up to `ms` (less once the reader changes its request), so that a reader
   * running at a lower priority on the same core gets it; whether it waited. A starved reader with
   * less to do catches up in this thread's idle time: a wait would only delay the answers of this
   * thread's next turn. `busy`, asked last (only when all else says wait): whether this thread is
   * what keeps the reader from the core (see `LoopBusy`, audit-thread.ts); false: no wait.
   */
  yieldIfStarved(ms: number, busy?: () => boolean): boolean {
    const asked = Atomics.load(this.v.control, 1);
    if (asked === 0 || (asked === 1 && this.used() < this.v.cap * YIELD_BACKLOG)) return false;
    if (busy !== undefined && !busy()) return false;
    Atomics.wait(this.v.control, 1, asked, ms);
    return true;
  }

  /**
   * The records in [from, upTo), not consumed, as text (taken back when the reader's thread
   * stopped); a captured one decoded, or given to `bad` with the decoder's error.
   */
  peek(from: number, upTo: number, each: (text: string) => void, bad: (err: Error) => void = () => undefined): void {
    readRecords(this.v, from, upTo, (buf, start, end) => {
      if (buf[start] !== CAPTURED || this.decode === undefined) return each(buf.toString('utf8', start, end));
      let text: string;
      try {
        text = this.decode(buf.subarray(start, end)).toString('utf8');
      } catch (err) {
        return bad(err as Error);
      }
      each(text);
    });
  }
}

/** The writer's thread's end: reads up to a position it was handed, then frees what it read. */
export class EntryRingReader {
  private readonly v: RingViews;
  private consumed = 0;

  constructor(sab: SharedArrayBuffer) {
    this.v = views(sab);
  }

  /**
   * Calls `each` with a copy of every record before `upTo` not yet read (its UTF-8), then frees
   * their bytes in the ring. The records of one call are copied out together into one buffer, in
   * one or two pieces, and each is a view of it: with a buffer per record (slices of Node's pool,
   * a new pool every few records) taking the records was 18% of the writer's thread's CPU with the
   * Postgres sink at 2,000 checks/s (perf, page faults on the new memory most of it); so, 15%.
   */
  take(upTo: number, each: (record: Buffer) => void): void {
    if (upTo <= this.consumed) return;
    const { cap, buf } = this.v;
    const n = upTo - this.consumed;
    const from = this.consumed % cap;
    const copy = Buffer.allocUnsafeSlow(n);
    const first = Math.min(n, cap - from);
    buf.copy(copy, 0, from, from + first);
    if (first < n) buf.copy(copy, first, 0, n - first);
    // The ring's offset `o` is at `(o - from) mod cap` in the copy.
    this.consumed = readRecords(this.v, this.consumed, upTo, (_, start, end) => {
      const at = start >= from ? start - from : start + cap - from;
      each(copy.subarray(at, at + end - start));
    });
    Atomics.store(this.v.control, 0, this.consumed | 0);
  }

  /**
   * Asks the writer's thread to give this thread the core now and then ({@link EntryRingWriter.yieldIfStarved}):
   * while the ring holds a backlog, or whatever it holds when `backlog` (this thread's own queue
   * is long: entries taken from the ring wait there for a sink this thread has no CPU to feed);
   * or withdraws the request. A change wakes a writer waiting on the request it replaces.
   */
  starved(on: boolean, backlog = false): void {
    const asked = on ? (backlog ? 2 : 1) : 0;
    if (Atomics.exchange(this.v.control, 1, asked) !== asked) Atomics.notify(this.v.control, 1);
  }
}
