import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryFromRecord, packEntry, serializeEntry, type AuditEntry, type SerializedEntry } from '../../audit-entry.js';
import { createNdjsonSink } from './ndjson.sink.js';

describe('createNdjsonSink', () => {
  it('appends one JSON entry per line, across batches and reopenings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-ndjson-'));
    try {
      const path = join(dir, 'logs', 'audit.ndjson');
      const e = (id: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'v', source: '/v1/check', decision: 'DENY', identities: {}, input: {}, results: [], reasons: [] });
      const sut = createNdjsonSink({ path });
      await sut.write([e('a'), e('b')]);
      await sut.write([e('c')]);
      await sut.close();
      const again = createNdjsonSink({ path });
      await again.write([e('d')]);
      await again.close();
      const lines = readFileSync(path, 'utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines.map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['a', 'b', 'c', 'd']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes entries read as bytes from the ring and entries as text alike, multi-byte text included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-ndjson-'));
    try {
      const path = join(dir, 'audit.ndjson');
      const text = (id: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'v', source: 'é€😀\u2028', decision: 'DENY', identities: {}, input: { prompt: 'ü'.repeat(3000) }, results: [], reasons: [] });
      const fromRing = (id: string): SerializedEntry => {
        const record = Buffer.from(packEntry(text(id)));
        return entryFromRecord(record, 0, record.length);
      };
      const batch = [text('a'), fromRing('b'), fromRing('c'), text('d')];
      expect(batch.map((e) => e.bytes !== undefined)).toEqual([false, true, true, false]);
      const sut = createNdjsonSink({ path });
      await sut.write(batch);
      await sut.close();
      expect(readFileSync(path, 'utf8')).toBe(['a', 'b', 'c', 'd'].map((id) => `${text(id).json}\n`).join(''));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
