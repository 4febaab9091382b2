/**
 * A batch's bytes for a sink, built in one buffer the sink reuses: the entries' JSON and fields
 * lines copied from the UTF-8 they were read from the ring as ({@link SerializedEntry.utf8}), or
 * encoded once from their text, with what the sink's format puts between them. Before, each sink
 * decoded every record into a string, joined the batch's strings into a cons-string and had it
 * flattened and encoded back into a new buffer per batch: in the writer's thread at 2,000 checks/s
 * that was a third of its CPU (flattening, re-encoding, and the page faults of each batch's fresh
 * buffer; bench/README.md).
 */
import { fieldsLine, type SerializedEntry } from './audit-entry.js';

/** The buffer's size at first and after a batch that grew it past {@link KEEP_BYTES}. */
const INITIAL_BYTES = 64 * 1024;
/** A buffer grown beyond this (a batch of large entries) is not kept for the next batch. */
const KEEP_BYTES = 4 * 1024 * 1024;

/** One batch's bytes being built. */
export class Utf8Batch {
  private buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  private pos = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  /** Empties the batch (shrinking a buffer a large batch grew). */
  reset(): void {
    this.pos = 0;
    if (this.buf.length > KEEP_BYTES) this.buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  }

  byte(b: number): this {
    this.room(1);
    this.buf[this.pos++] = b;
    return this;
  }

  /** `s` as UTF-8. */
  text(s: string): this {
    // A UTF-16 code unit is at most 3 bytes of UTF-8 (a surrogate pair: 4 for 2 units).
    this.room(3 * s.length);
    this.pos += this.buf.write(s, this.pos, 'utf8');
    return this;
  }

  /** The entry's JSON. */
  json(e: SerializedEntry): this {
    const u = e.utf8;
    return u === undefined ? this.text(e.json) : this.append(u, (e.utf8Nl as number) + 1, u.length);
  }

  /** The entry's fields line ({@link fieldsLine}). */
  fields(e: SerializedEntry): this {
    const u = e.utf8;
    return u === undefined ? this.text(fieldsLine(e)) : this.append(u, 0, e.utf8Nl as number);
  }

  /** Bytes [from, to) as a view (valid until the batch is reset or written to again). */
  bytes(from = 0, to = this.pos): Buffer {
    return this.buf.subarray(from, to);
  }

  /** Bytes [from, to) of `src`, as they are. */
  append(src: Buffer, from: number, to: number): this {
    this.room(to - from);
    this.pos += src.copy(this.buf, this.pos, from, to);
    return this;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/**
 * A sink's {@link Utf8Batch}, reused batch after batch. A write the writer gave up on (its
 * deadline passed) may still hold the batch's bytes (a queued query, a file write in libuv's
 * pool): while it is out, {@link take} hands out a new one, so no bytes are overwritten under it.
 */
export class Utf8Batches {
  private idle: Utf8Batch | undefined = new Utf8Batch();

  /** An empty batch, the kept one unless it is out. */
  take(): Utf8Batch {
    const b = this.idle ?? new Utf8Batch();
    this.idle = undefined;
    b.reset();
    return b;
  }

  /** Returns a batch once nothing uses its bytes any more. */
  give(b: Utf8Batch): void {
    this.idle = b;
  }
}

/** The entry's fields line ({@link fieldsLine}) as UTF-8: a view of its ring bytes, or encoded from its text. */
export function fieldsUtf8(e: SerializedEntry): Buffer {
  const u = e.utf8;
  return u === undefined ? Buffer.from(fieldsLine(e), 'utf8') : u.subarray(0, e.utf8Nl as number);
}

/** The entry's JSON as UTF-8: a view of its ring bytes, or encoded from its text. */
export function jsonUtf8(e: SerializedEntry): Buffer {
  const u = e.utf8;
  return u === undefined ? Buffer.from(e.json, 'utf8') : u.subarray((e.utf8Nl as number) + 1);
}
