import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serializeEntry, type AuditEntry, type SerializedEntry } from '../../audit-entry.js';
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
});
