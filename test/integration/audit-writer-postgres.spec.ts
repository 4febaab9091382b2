/**
 * The decision-log writer over the real Postgres sink: the database disappears (dropped, its
 * connections terminated) while decisions keep being recorded, then comes back; every entry ends
 * up in `warden_audit_log` exactly once and in order of recording.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditWriter, type AuditEntry } from '@warden/audit';
import { createPgDb, createPostgresAuditSink, migrate } from '@warden/persistence';
import { TEST_DATABASE_URL, createTestDatabase, type TestDatabase } from '../support/services.js';

const MIGRATIONS = join(import.meta.dirname, '../../migrations');

async function admin(sql: string, params: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql, params);
  } finally {
    await c.end();
  }
}

const entry = (n: number): AuditEntry => ({
  decisionId: `d-${String(n).padStart(3, '0')}`,
  time: new Date(Date.UTC(2026, 10, 28, 9, 0, 0, n)).toISOString(),
  kind: 'check',
  policyVersion: 'pv',
  source: '/v1/check',
  decision: 'ALLOW',
  identities: { subject: 'alice' },
  input: { actions: ['read'] },
  results: [{ resource: { kind: 'doc', id: String(n) }, decision: 'ALLOW', actions: { read: { effect: 'ALLOW' } } }],
  reasons: [],
});

describe('audit writer over a Postgres sink that goes away and comes back', () => {
  let t: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDatabase('warden_audit');
    dir = mkdtempSync(join(tmpdir(), 'warden-audit-pg-'));
  });
  afterAll(async () => {
    await t.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no entry recorded while the database was gone, and writes none twice', async () => {
    const db = createPgDb({ url: t.url, max: 2, onError: () => undefined });
    await migrate(db, MIGRATIONS);
    const errors: string[] = [];
    const writer = createAuditWriter({ sink: createPostgresAuditSink({ db }), spillPath: join(dir, 'audit.spill.ndjson'), batchSize: 7, onError: (m) => errors.push(m) });
    for (let n = 0; n < 10; n++) writer.record(entry(n));
    await writer.flush();

    // The database goes away under the pool.
    await t.drop();
    for (let n = 10; n < 40; n++) writer.record(entry(n));
    await writer.flush();
    expect(writer.stats()).toMatchObject({ spillPending: true, spilled: 30, failed: 0 });
    expect(errors.length).toBeGreaterThan(0);

    // It comes back (empty, migrated again); the spill file is replayed before newer entries.
    await admin(`create database ${t.name}`);
    await migrate(db, MIGRATIONS);
    for (let n = 40; n < 45; n++) writer.record(entry(n));
    await writer.flush();
    await writer.close();
    expect(writer.stats()).toMatchObject({ spillPending: false, queued: 0 });

    const check = createPgDb({ url: t.url, max: 1 });
    const { rows } = await check.query<{ decision_id: string }>('select decision_id from warden_audit_log order by time');
    await check.close();
    await db.close();
    // The first ten went with the dropped database; everything recorded afterwards is there once.
    expect(rows.map((r) => r.decision_id)).toEqual(Array.from({ length: 35 }, (_, i) => entry(i + 10).decisionId));
  });
});
