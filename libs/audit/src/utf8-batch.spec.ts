import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fieldsLine, packEntry, readPackedUtf8, serializeEntry, type SerializedEntry } from './audit-entry.js';
import { jsonUtf8, Utf8Batch, Utf8Batches } from './utf8-batch.js';

const made = (id: string, note: string): SerializedEntry =>
  serializeEntry({ decisionId: id, time: '2026-11-30T08:00:00.000Z', kind: 'check', policyVersion: 'v', source: '/v1/check', decision: 'DENY', identities: { subject: note }, input: { note }, results: [], reasons: [] });
/** The entry as the writer's thread reads it from the ring. */
const fromRing = (e: SerializedEntry): SerializedEntry => readPackedUtf8(Buffer.from(packEntry(e), 'utf8'));

describe('Utf8Batch', () => {
  it('writes the same bytes for an entry read from the ring and for one made here: its JSON, its fields line, text between them', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 40 }), fc.boolean()), { maxLength: 12 }), (items) => {
        const b = new Utf8Batch();
        let expected = '';
        items.forEach(([note, ring], i) => {
          const e = made(`d-${i}`, note);
          const x = ring ? fromRing(e) : e;
          b.byte(0x5b).fields(x).text(' ').json(x).byte(0x0a);
          expected += `[${fieldsLine(e)} ${e.json}\n`;
          expect(Buffer.from(jsonUtf8(x)).toString('utf8')).toBe(e.json);
        });
        expect(b.bytes().toString('utf8')).toBe(expected);
        expect(b.length).toBe(Buffer.byteLength(expected));
      }),
      { numRuns: 300 },
    );
  });

  it('grows past its first buffer keeping what it holds, and a reset after a very large batch gives back a small buffer', () => {
    const b = new Utf8Batch();
    const big = made('big', 'ü'.repeat(3_000_000));
    b.text('[').json(fromRing(big)).text(',').json(big).text(']');
    expect(b.bytes().toString('utf8')).toBe(`[${big.json},${big.json}]`);
    expect(b.bytes(1, 1 + Buffer.byteLength(big.json)).toString('utf8')).toBe(big.json);
    b.reset();
    expect(b.length).toBe(0);
    b.text('x');
    // The 12 MB buffer was dropped: a view now sees a small one.
    expect(b.bytes().buffer.byteLength).toBeLessThan(1 << 20);
  });
});

describe('Utf8Batches', () => {
  it('hands out the kept batch again once it is given back, and a new one while it is out (a write given up on may still read it)', () => {
    const batches = new Utf8Batches();
    const first = batches.take();
    first.text('held by a write in flight');
    const second = batches.take();
    expect(second).not.toBe(first);
    second.text('next');
    expect(first.bytes().toString()).toBe('held by a write in flight');
    batches.give(second);
    const third = batches.take();
    expect(third).toBe(second);
    expect(third.length).toBe(0);
  });
});
