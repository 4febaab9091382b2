import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CAPTURED, CAPTURE_NO_ROOM, CAPTURE_NONE, fieldsLine, packEntry, readPackedUtf8, unpackEntry, type ComposedEntry, type SerializedEntry } from './audit-entry.js';
import { createEntryRing, EntryRingReader, EntryRingWriter, YIELD_BACKLOG } from './entry-ring.js';
import { NotPlainJson } from './json-out.js';

/** A record that writes `text` itself (straight into the ring's bytes). */
const composing = (text: string): ComposedEntry => ({ compose: (out) => out.raw(text) });

const entry = (over: Partial<SerializedEntry> = {}): SerializedEntry => ({
  decisionId: 'd-1',
  time: '2026-11-29T06:00:00.000Z',
  kind: 'check',
  policyVersion: 'sha256:ab',
  source: '/v1/check',
  decision: 'ALLOW',
  subject: 'alice',
  agent: 'bot',
  resources: ['tool/web_search'],
  json: '{"decisionId":"d-1"}',
  ...over,
});

/** Every field of a serialised entry, read through its getters where it has them. */
const fieldsOf = (e: SerializedEntry): Omit<SerializedEntry, 'fieldsJson'> => ({ decisionId: e.decisionId, time: e.time, kind: e.kind, policyVersion: e.policyVersion, source: e.source, decision: e.decision, subject: e.subject, agent: e.agent, resources: e.resources, json: e.json });

describe('packEntry / unpackEntry / readPackedUtf8', () => {
  it('gives back every field, whatever the strings hold (quotes, backslashes, newlines, non-ASCII, lone surrogates), at once or read lazily', () => {
    const text = fc.string({ unit: 'binary' });
    fc.assert(
      fc.property(text, text, fc.option(text, { nil: undefined }), fc.option(text, { nil: undefined }), fc.array(text, { maxLength: 4 }), fc.constantFrom<'ALLOW' | 'DENY'>('ALLOW', 'DENY'), fc.boolean(), (id, source, subject, agent, resources, decision, idFirst) => {
        // The entry's JSON never holds a raw newline (JSON.stringify escapes it).
        const e = entry({ decisionId: id, source, subject, agent, resources, decision, json: JSON.stringify({ id, subject }) });
        expect(unpackEntry(packEntry(e))).toEqual(e);
        // Read from its UTF-8, as the writer's thread reads a ring record.
        const lazy = readPackedUtf8(Buffer.from(packEntry(e), 'utf8'));
        // The id alone first (the NATS sink's read, taken without parsing the rest) or after the rest.
        if (idFirst) expect(lazy.decisionId).toBe(id);
        expect(fieldsOf(lazy)).toEqual(e);
        expect(lazy.fieldsJson).toBe(fieldsLine(e));
        expect(fieldsLine(lazy)).toBe(fieldsLine(e));
        expect(packEntry(lazy)).toBe(packEntry(e));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses text without its fields line', () => {
    expect(() => unpackEntry('{"decisionId":"d-1"}')).toThrow(/fields line/);
    expect(() => unpackEntry('{"a":1}\n{"decisionId":"d-1"}')).toThrow(/fields line/);
    expect(() => readPackedUtf8(Buffer.from('{"decisionId":"d-1"}'))).toThrow(/fields line/);
    expect(() => readPackedUtf8(Buffer.from('{"a":1}\n{"decisionId":"d-1"}'))).toThrow(/fields line/);
  });
});

describe('EntryRingWriter / EntryRingReader', () => {
  it('hands the reader every record in order, across wrap-arounds, and never overwrites what it has not read', () => {
    // Pushes and reads interleaved at random on a small ring, against a FIFO of what was accepted.
    // A record is pushed as text, composed into the bytes, or composed and thrown out halfway.
    const op = fc.oneof(
      fc.record({ push: fc.string({ unit: 'grapheme', maxLength: 60 }), how: fc.constantFrom('text', 'compose', 'throw') }),
      fc.record({ read: fc.constant(true) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 64, max: 400 }), fc.array(op, { maxLength: 200 }), (bytes, ops) => {
        const sab = createEntryRing(bytes);
        const w = new EntryRingWriter(sab);
        const r = new EntryRingReader(sab);
        const model: string[] = [];
        let posted = 0;
        let pending = 0;
        const read = (): void => {
          const got: string[] = [];
          r.take(posted, (b) => got.push(b.toString()));
          expect(got).toEqual(model.splice(0, pending));
          pending = 0;
        };
        for (const o of ops) {
          if ('push' in o) {
            const before = w.head;
            if (o.how === 'throw') {
              const half = o.push.slice(0, o.push.length >> 1);
              // Thrown out halfway, or never started (no room at all): nothing written either way.
              let written: boolean | undefined;
              try {
                written = w.compose({
                  compose: (out) => {
                    out.raw(half);
                    throw new NotPlainJson('test');
                  },
                });
              } catch (err) {
                expect(err).toBeInstanceOf(NotPlainJson);
              }
              expect(written).not.toBe(true);
              expect(w.head).toBe(before);
            } else if (o.how === 'text' ? w.push(o.push) : w.compose(composing(o.push))) model.push(o.push);
            else expect(w.head).toBe(before);
            // Posted at once: what the reader may read is everything written.
            pending = model.length;
            posted = w.head;
          } else read();
        }
        read();
        expect(w.used()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a record larger than the space the reader has freed, and takes it once the reader caught up', () => {
    const sab = createEntryRing(64);
    const w = new EntryRingWriter(sab);
    const r = new EntryRingReader(sab);
    expect(w.push('x'.repeat(40))).toBe(true);
    expect(w.halfFull()).toBe(true);
    expect(w.push('y'.repeat(20))).toBe(false);
    const got: string[] = [];
    r.take(w.head, (b) => got.push(b.toString()));
    expect(got).toEqual(['x'.repeat(40)]);
    expect(w.used()).toBe(0);
    // Now at offset 44 of 64: it no longer fits before the end, so it wraps to the start.
    expect(w.push('y'.repeat(20))).toBe(true);
    r.take(w.head, (b) => got.push(b.toString()));
    expect(got).toEqual(['x'.repeat(40), 'y'.repeat(20)]);
    // A record that can never fit is refused, whatever was read.
    expect(w.push('z'.repeat(100))).toBe(false);
    expect(w.compose(composing('z'.repeat(100)))).toBe(false);
  });

  it('composes a record in the ring as the UTF-8 of its text, wrapping to the start as pushed text does', () => {
    const sab = createEntryRing(64);
    const w = new EntryRingWriter(sab);
    const r = new EntryRingReader(sab);
    // 8 units of text may take 48 bytes (6 each): room enough; they take 20 (a record of 24).
    expect(w.compose(composing('ü€'.repeat(4)))).toBe(true);
    expect(w.compose(composing('abc'))).toBe(true);
    expect(w.compose(composing('abcd'))).toBe(true);
    const got: string[] = [];
    r.take(w.head, (b) => got.push(b.toString()));
    // At offset 40 of 64: 5 units may take 30 bytes, 20 are left before the end, so at the start.
    const before = w.head;
    expect(w.compose(composing('é'.repeat(5)))).toBe(true);
    expect(w.head - before).toBe(24 + 4 + 12);
    r.take(w.head, (b) => got.push(b.toString()));
    expect(got).toEqual(['ü€'.repeat(4), 'abc', 'abcd', 'é'.repeat(5)]);
    expect(w.used()).toBe(0);
  });

  it('lets the writer read back records it wrote and did not hand over (peek), without freeing them', () => {
    const sab = createEntryRing(256);
    const w = new EntryRingWriter(sab);
    w.push('a');
    const from = w.head;
    w.push('ü€');
    w.push('c');
    const back: string[] = [];
    w.peek(from, w.head, (t) => back.push(t));
    expect(back).toEqual(['ü€', 'c']);
    expect(w.used()).toBe(w.head);
  });

  it('captures an entry where the ring decodes captured records, composes it where not, and decodes captured records it reads back', () => {
    // A captured record here: CAPTURED, then the text the decoder gives back upper-cased.
    const capturingEntry = (text: string, none = false): ComposedEntry => ({
      compose: (out) => out.raw(text),
      capture: (buf, start, end) => {
        if (none) return CAPTURE_NONE;
        if (end - start < 1 + text.length) return CAPTURE_NO_ROOM;
        buf[start] = CAPTURED;
        buf.write(text, start + 1, 'latin1');
        return start + 1 + text.length;
      },
    });
    const decode = (record: Buffer): Buffer => {
      if (record.toString('latin1', 1) === 'bad') throw new Error('no such record');
      return Buffer.from(record.toString('latin1', 1).toUpperCase());
    };
    const sab = createEntryRing(64);
    const w = new EntryRingWriter(sab, decode);
    expect(w.compose(capturingEntry('one'))).toBe(true);
    expect(w.compose(capturingEntry('two', true))).toBe(true);
    expect(w.compose(capturingEntry('bad'))).toBe(true);
    // Told not to capture: composed.
    expect(w.compose(capturingEntry('six'), false)).toBe(true);
    const back: string[] = [];
    const bad: string[] = [];
    w.peek(0, w.head, (t) => back.push(t), (err) => bad.push(err.message));
    expect(back).toEqual(['ONE', 'two', 'six']);
    expect(bad).toEqual(['no such record']);
    // The reader gets the records as written: the captured one still marked.
    const read: string[] = [];
    new EntryRingReader(sab).take(w.head, (r) => read.push(r[0] === CAPTURED ? `captured:${r.toString('latin1', 1)}` : r.toString('latin1')));
    expect(read).toEqual(['captured:one', 'two', 'captured:bad', 'six']);
    // Without room for the record (the ring holds 64 bytes): nothing written.
    const head = w.head;
    expect(w.compose(capturingEntry('x'.repeat(80)))).toBe(false);
    expect(w.head).toBe(head);
    // A ring that does not decode captured records composes every entry.
    const plain = new EntryRingWriter(createEntryRing(64));
    expect(plain.compose(capturingEntry('one'))).toBe(true);
    const text: string[] = [];
    plain.peek(0, plain.head, (t) => text.push(t));
    expect(text).toEqual(['one']);
  });

  it('makes the writer yield only while the reader says it is starved with a backlog, and lets the reader end the wait early', async () => {
    const sab = createEntryRing(1024);
    const writer = new EntryRingWriter(sab);
    const reader = new EntryRingReader(sab);
    // Starved, but with less than YIELD_BACKLOG of the ring to read: no wait.
    reader.starved(true);
    writer.push('x'.repeat(1024 * YIELD_BACKLOG - 12));
    expect(writer.used()).toBeLessThan(1024 * YIELD_BACKLOG);
    expect(writer.yieldIfStarved(1000)).toBe(false);
    writer.push('y');
    expect(writer.used()).toBeGreaterThanOrEqual(1024 * YIELD_BACKLOG);
    reader.starved(false);
    expect(writer.yieldIfStarved(1000)).toBe(false);
    reader.starved(true);
    let t0 = performance.now();
    expect(writer.yieldIfStarved(30)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    reader.starved(false);
    expect(writer.yieldIfStarved(1000)).toBe(false);
    // The reader's thread withdraws the request 50 ms into a 10 s wait: the writer wakes then.
    reader.starved(true);
    const other = new Worker(
      // What EntryRingReader.starved(false) does, from another thread (the worker cannot load TypeScript).
      `const { workerData } = require('node:worker_threads');
       setTimeout(() => { const c = new Int32Array(workerData.sab, 0, 2); Atomics.store(c, 1, 0); Atomics.notify(c, 1); }, 50);`,
      { eval: true, workerData: { sab } },
    );
    t0 = performance.now();
    expect(writer.yieldIfStarved(10_000)).toBe(true);
    const waited = performance.now() - t0;
    await other.terminate();
    expect(waited).toBeGreaterThanOrEqual(40);
    expect(waited).toBeLessThan(5000);
  });

  it('makes the writer yield whatever the ring holds while the reader is starved with a long queue of its own, until it says otherwise', () => {
    const sab = createEntryRing(1024);
    const writer = new EntryRingWriter(sab);
    const reader = new EntryRingReader(sab);
    writer.push('x');
    reader.starved(true);
    expect(writer.yieldIfStarved(1000)).toBe(false);
    reader.starved(true, true);
    const t0 = performance.now();
    expect(writer.yieldIfStarved(30)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    // Back to a short queue: the ring's backlog decides again.
    reader.starved(true, false);
    expect(writer.yieldIfStarved(1000)).toBe(false);
    reader.starved(false);
    expect(writer.yieldIfStarved(1000)).toBe(false);
  });
});
