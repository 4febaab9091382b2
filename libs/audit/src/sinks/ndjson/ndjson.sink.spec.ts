import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packEntry, readPackedUtf8, serializeEntry, type AuditEntry, type SerializedEntry } from '../../audit-entry.js';
import { createNdjsonSink } from './ndjson.sink.js';

const entry = (id: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'v', source: '/v1/check', decision: 'DENY', identities: {}, input: {}, results: [], reasons: [] });

describe('createNdjsonSink', () => {
  it.each([false, true])('appends one JSON entry per line, across batches and reopenings (blocking: %s)', async (blocking) => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-ndjson-'));
    try {
      const path = join(dir, 'logs', 'audit.ndjson');
      const sut = createNdjsonSink({ path, blocking });
      await sut.write([entry('a'), entry('b')]);
      await sut.write([entry('c')]);
      await sut.close();
      const again = createNdjsonSink({ path, blocking });
      await again.write([entry('d')]);
      await again.close();
      const lines = readFileSync(path, 'utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines.map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes an entry read from the ring (its packed UTF-8) byte for byte as one made here, multi-byte text and a batch past the reused buffer included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-ndjson-'));
    try {
      const path = join(dir, 'audit.ndjson');
      const e = (id: string, note: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'v', source: '/v1/check', decision: 'ALLOW', identities: { subject: `ünï ${note.length}` }, input: { note }, results: [], reasons: [] });
      // 90 entries of 1-2 KB with a 300 KB one among them: more than the 64 KB the sink starts with.
      const made = Array.from({ length: 90 }, (_, i) => e(`m${i}`, `${'é😀\u2028'.repeat(i)}${'x'.repeat(1000)}`));
      made.splice(45, 0, e('big', 'ü'.repeat(150_000)));
      const mixed = made.map((x, i) => (i % 2 === 0 ? x : readPackedUtf8(Buffer.from(packEntry(x), 'utf8'))));
      const sut = createNdjsonSink({ path });
      await sut.write(mixed.slice(0, 60));
      await sut.write(mixed.slice(60));
      await sut.close();
      expect(readFileSync(path, 'utf8')).toBe(made.map((x) => `${x.json}\n`).join(''));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with `blocking`, has the batch in the file when `write` returns, before its promise settles; a file it cannot open fails the write, not the caller', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-ndjson-'));
    try {
      const path = join(dir, 'audit.ndjson');
      const sut = createNdjsonSink({ path, blocking: true });
      const written = sut.write([entry('a'), entry('b')]);
      expect(readFileSync(path, 'utf8').split('\n').slice(0, 2).map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['a', 'b']);
      await written;
      await sut.close();
      // A directory where the file should be.
      const bad = createNdjsonSink({ path: dir, blocking: true });
      await expect(bad.write([entry('c')])).rejects.toThrow(/EISDIR/);
      await bad.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
