import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/services.js';
import { createPgDb } from './pg-db.js';
import { migrate } from './migrate.js';
import { createPostgresAuditSink, ensureAuditPartitions, pruneAuditLog, queryAuditLog } from './postgres-audit.sink.js';
import type { SqlDb } from './sql-db.js';

const MIGRATIONS = join(import.meta.dirname, '../../../migrations');

const entry = (id: string, time = new Date().toISOString()) => ({
  decisionId: id,
  time,
  kind: 'check' as const,
  policyVersion: 'pv-1',
  source: '/v1/check',
  decision: 'DENY' as const,
  identities: { subject: 'alice', agent: 'bot' },
  input: { actions: ['invoke'], subject: { token: '[masked]' } },
  results: [
    { resource: { kind: 'tool', id: 'search' }, decision: 'ALLOW' as const, actions: { invoke: { effect: 'ALLOW' as const, policy: 'resource.tool.vdefault' } } },
    { resource: { kind: 'tool', id: 'shell' }, decision: 'DENY' as const, actions: { invoke: { effect: 'DENY' as const } } },
  ],
  reasons: [{ code: 'policy_denied', message: 'denied' }],
});

/** The sink's input: entries serialised as the audit writer hands them over (this lib's specs do not import @warden/audit). */
type Serialized = Parameters<ReturnType<typeof createPostgresAuditSink>['write']>[0][number];
const ser = (es: readonly (Omit<ReturnType<typeof entry>, 'decision'> & { decision: 'ALLOW' | 'DENY' })[]): Serialized[] =>
  es.map((e) => ({ decisionId: e.decisionId, time: e.time, kind: e.kind, policyVersion: e.policyVersion, source: e.source, decision: e.decision, subject: e.identities.subject, agent: e.identities.agent, resources: e.results.map((r) => `${r.resource.kind}/${r.resource.id}`), json: JSON.stringify(e) }));

/** The packed record's UTF-8 an entry read from the writer's ring carries (its fields line, a newline, its JSON). */
const utf8Of = (e: Serialized): { utf8: Buffer; utf8Nl: number } => {
  const fields = JSON.stringify([e.decisionId, e.time, e.kind, e.policyVersion, e.source, e.decision, e.subject ?? null, e.agent ?? null, e.resources]);
  return { utf8: Buffer.from(`${fields}\n${e.json}`, 'utf8'), utf8Nl: Buffer.byteLength(fields) };
};

describe('createPostgresAuditSink', () => {
  let t: TestDatabase;
  let db: SqlDb;
  beforeAll(async () => {
    t = await createTestDatabase();
    db = createPgDb({ url: t.url, max: 2 });
    await migrate(db, MIGRATIONS);
  });
  afterAll(async () => {
    await db.close();
    await t.drop();
  });

  it('inserts a batch with its filter columns and the whole entry, once per decision id even when replayed', async () => {
    const sut = createPostgresAuditSink({ db });
    const [a, b, c] = [entry('a'), entry('b'), entry('c')];
    await sut.write(ser([a, b]));
    // A replay (the same entry, time included) and a duplicate inside one batch insert nothing twice.
    await sut.write(ser([{ ...b }, c, { ...c }]));
    const { rows } = await db.query<{ decision_id: string; subject: string; agent: string; decision: string; resources: string[]; entry: { input: unknown } }>(
      'select decision_id, subject, agent, decision, resources, entry from warden_audit_log order by decision_id',
    );
    expect(rows.map((r) => r.decision_id)).toEqual(['a', 'b', 'c']);
    expect(rows[0]).toMatchObject({ subject: 'alice', agent: 'bot', decision: 'DENY', resources: ['tool/search', 'tool/shell'] });
    expect(rows[0]?.entry.input).toEqual(entry('a').input);
  });

  it('writes the filter columns exactly, from an entry\'s own fields line (read from the ring) or from its fields, and a batch whose fields need unescaping through the driver\'s arrays', async () => {
    const sut = createPostgresAuditSink({ db });
    type Row = { decision_id: string; time: Date; kind: string; policy_version: string; source: string; decision: string; subject: string | null; agent: string | null; resources: string[] };
    const rows = async (like: string): Promise<Row[]> =>
      (await db.query<Row>('select decision_id, time, kind, policy_version, source, decision, subject, agent, resources from warden_audit_log where decision_id like $1 order by decision_id', [like])).rows;
    const odd = (id: string, subject: string | undefined, ids: string[]): Serialized => {
      const e = entry(id);
      return { ...(ser([e])[0] as Serialized), subject, agent: undefined, resources: ids.map((x) => `tool/${x}`) };
    };
    const ids = ['a,b', '{x}', 'ünï 😀', 'back\\slash', 'say "hi"', 'NULL'];
    const plain = odd('q-1', 'o\'brien "q"', ids);
    // As the writer's thread hands it over: the fields line it was packed with, as it is.
    const packed = odd('q-2', 'o\'brien "q"', ids);
    const fieldsJson = JSON.stringify([packed.decisionId, packed.time, packed.kind, packed.policyVersion, packed.source, packed.decision, packed.subject ?? null, packed.agent ?? null, packed.resources]);
    // As read from the ring's bytes: the packed record's UTF-8, copied into the batch as it is.
    const fromRing = odd('q-3', 'o\'brien "q"', ids);
    await sut.write([plain, { ...packed, fieldsJson }, { ...fromRing, ...utf8Of(fromRing) }]);
    const [q1, q2, q3] = await rows('q-%');
    expect(q1).toMatchObject({ decision_id: 'q-1', kind: 'check', policy_version: 'pv-1', source: '/v1/check', decision: 'DENY', subject: 'o\'brien "q"', agent: null, resources: ids.map((x) => `tool/${x}`) });
    expect(q1?.time.toISOString()).toBe(plain.time);
    expect({ ...q2, decision_id: 'q-1', time: undefined }).toEqual({ ...q1, time: undefined });
    expect({ ...q3, decision_id: 'q-1', time: undefined }).toEqual({ ...q1, time: undefined });
    // A lone surrogate and a control character (JSON writes both as \u escapes, which Postgres
    // will not unescape into text for the first): the batch goes as arrays, and is written.
    const surrogate = odd('r-1', '\ud800x', ['c\u0001d']);
    const beside = odd('r-2', 'bob', ['e']);
    await sut.write([beside, { ...surrogate, fieldsJson: JSON.stringify([surrogate.decisionId, surrogate.time, surrogate.kind, surrogate.policyVersion, surrogate.source, surrogate.decision, surrogate.subject, null, surrogate.resources]) }]);
    const [r1, r2] = await rows('r-%');
    expect(r1).toMatchObject({ decision_id: 'r-1', subject: '\ufffdx', agent: null, resources: ['tool/c\u0001d'] });
    expect(r2).toMatchObject({ decision_id: 'r-2', subject: 'bob', resources: ['tool/e'] });
    // The same from the ring's bytes: the escape is found in them, and the batch goes as arrays.
    const control = odd('s-1', '\udc00y', ['c\u0001d']);
    await sut.write([odd('s-2', 'eve', ['f']), { ...control, ...utf8Of(control) }]);
    const [s1, s2] = await rows('s-%');
    expect(s1).toMatchObject({ decision_id: 's-1', subject: '\ufffdy', agent: null, resources: ['tool/c\u0001d'] });
    expect(s2).toMatchObject({ decision_id: 's-2', subject: 'eve', resources: ['tool/f'] });
  });

  it('writes a plain batch with one COPY, each value and the entry\'s text exact, and a batch with rows already written with the insert, once each', async () => {
    // Which statement wrote the rows: a statement trigger records the top-level query (its first word is compared).
    await db.query('create table audit_statements (q text not null)');
    await db.query(`create function audit_statement() returns trigger language plpgsql as $$ begin insert into audit_statements values (current_query()); return null; end $$`);
    await db.query('create trigger audit_statement after insert on warden_audit_log for each statement execute function audit_statement()');
    try {
      const sut = createPostgresAuditSink({ db });
      const statements = async (): Promise<string[]> => (await db.query<{ q: string }>('select q from audit_statements')).rows.map((r) => r.q.trim().split(/\s/)[0]?.toLowerCase() ?? '');
      // Values with the bytes COPY and array literals treat specially, none of which JSON escapes.
      const base = ser([entry('c-1')])[0] as Serialized;
      const plain: Serialized = { ...base, subject: 'a,b {x} ünï 😀', agent: undefined, resources: ['tool/NULL', 'tool/a b', "tool/o'k", 'tool/{y}', 'tool/'] };
      // An entry whose JSON holds escapes (backslashes, a quote, a tab, a newline, U+0000) and a lone surrogate.
      const escapes = { ...entry('c-2'), reasons: [{ code: 'x', message: 'back\\slash "q"\t\n\u0000 \ud800 \\N' }] };
      const withEscapes: Serialized = { ...(ser([escapes])[0] as Serialized), resources: [] };
      await sut.write([plain, { ...withEscapes, ...utf8Of(withEscapes) }]);
      expect(await statements()).toEqual(['copy']);
      type Row = { subject: string | null; agent: string | null; resources: string[]; entry: string };
      const { rows } = await db.query<Row>(`select subject, agent, resources, entry::text as entry from warden_audit_log where decision_id like 'c-%' order by decision_id`);
      expect(rows).toEqual([
        { subject: plain.subject, agent: null, resources: plain.resources, entry: plain.json },
        { subject: 'alice', agent: 'bot', resources: [], entry: withEscapes.json },
      ]);
      // A batch with a row written before: COPY refuses it whole, the insert writes the new row alone.
      await sut.write([ser([entry('c-3')])[0] as Serialized, { ...plain }]);
      expect(await statements()).toEqual(['copy', 'insert']);
      const ids = (await db.query<{ decision_id: string }>(`select decision_id from warden_audit_log where decision_id like 'c-%' order by decision_id`)).rows;
      expect(ids.map((r) => r.decision_id)).toEqual(['c-1', 'c-2', 'c-3']);
    } finally {
      await db.query('drop trigger audit_statement on warden_audit_log');
      await db.query('drop function audit_statement()');
      await db.query('drop table audit_statements');
    }
  });

  it('rejects when the database is gone (so the writer spills), and its pool closing is the owner\'s call', async () => {
    const own = createPgDb({ url: t.url.replace(/\/[^/]+$/, '/warden_no_such_db'), max: 1 });
    const sut = createPostgresAuditSink({ db: own, ownsDb: true });
    await expect(sut.write(ser([entry('x')]))).rejects.toThrow();
    await sut.close();
  });

  it('prunes rows older than the retention and keeps the rest', async () => {
    const sut = createPostgresAuditSink({ db });
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
    await sut.write(ser([entry('old-1', old), entry('old-2', old), entry('new-1')]));
    expect(await pruneAuditLog(db, 30)).toEqual({ droppedPartitions: [], deletedRows: 2 });
    const { rows } = await db.query<{ decision_id: string }>("select decision_id from warden_audit_log where decision_id like 'old-%' or decision_id = 'new-1'");
    expect(rows.map((r) => r.decision_id)).toEqual(['new-1']);
  });

  it('keeps each day in its own partition: created ahead, rows of the default partition moved in, whole old days dropped', async () => {
    await db.query('delete from warden_audit_log');
    const DAY = 86_400_000;
    const now = Date.UTC(2031, 0, 10, 12);
    const at = (days: number, hour = 1): string => new Date(Date.UTC(2031, 0, 10 + days, hour)).toISOString();
    const sut = createPostgresAuditSink({ db });
    // Written before any partition of those days exists: they land in the default partition.
    await sut.write(ser([entry('p-early', at(-1)), entry('p-today', at(0)), entry('p-later', at(2))]));
    const where = async (): Promise<Record<string, string>> => {
      const { rows } = await db.query<{ decision_id: string; part: string }>("select decision_id, tableoid::regclass::text as part from warden_audit_log where decision_id like 'p-%' order by decision_id");
      return Object.fromEntries(rows.map((r) => [r.decision_id, r.part]));
    };
    expect(Object.values(await where())).toEqual(['warden_audit_log_default', 'warden_audit_log_default', 'warden_audit_log_default']);
    const created = await ensureAuditPartitions(db, { now, daysAhead: 2 });
    expect(created).toEqual(['warden_audit_log_p20310109', 'warden_audit_log_p20310110', 'warden_audit_log_p20310111', 'warden_audit_log_p20310112']);
    expect(await where()).toEqual({ 'p-early': 'warden_audit_log_p20310109', 'p-later': 'warden_audit_log_p20310112', 'p-today': 'warden_audit_log_p20310110' });
    // Idempotent, also from two replicas at once.
    expect(await Promise.all([ensureAuditPartitions(db, { now, daysAhead: 2 }), ensureAuditPartitions(db, { now, daysAhead: 2 })])).toEqual([[], []]);
    // New rows go straight to their day; the key still refuses a replay.
    await sut.write(ser([entry('p-new', at(1, 13)), entry('p-today', at(0))]));
    expect((await where())['p-new']).toBe('warden_audit_log_p20310111');
    expect(Object.keys(await where())).toHaveLength(4);
    // Ten days later with a retention of 9 days (cutoff: the 11th, noon): the 9th and 10th drop whole; the 11th is kept, its rows before noon deleted (none here).
    const pruned = await pruneAuditLog(db, 9, now + 10 * DAY);
    expect(pruned).toEqual({ droppedPartitions: ['warden_audit_log_p20310109', 'warden_audit_log_p20310110'], deletedRows: 0 });
    expect(Object.keys(await where()).sort()).toEqual(['p-later', 'p-new']);
    const { rows } = await db.query<{ n: number }>("select count(*)::int as n from pg_class where relname in ('warden_audit_log_p20310109', 'warden_audit_log_p20310110')");
    expect(rows[0]?.n).toBe(0);
    expect((await queryAuditLog(db, { limit: 10, from: at(1, 0) })).entries.map((e) => e.decisionId)).toEqual(['p-later', 'p-new']);
  });

  it('queries with filters, newest first, page by page with a cursor that survives new rows', async () => {
    await db.query('delete from warden_audit_log');
    const sut = createPostgresAuditSink({ db });
    const at = (n: number) => new Date(Date.UTC(2026, 10, 28, 9, 0, n)).toISOString();
    const rows = Array.from({ length: 12 }, (_, n) => ({ ...entry(`q-${String(n).padStart(2, '0')}`, at(n)), decision: n % 3 === 0 ? ('ALLOW' as const) : ('DENY' as const), identities: { subject: n % 2 === 0 ? 'alice' : 'bob', agent: 'bot' } }));
    // Two rows share a time: the decision id breaks the tie.
    rows.push({ ...entry('q-11b', at(11)), identities: { subject: 'alice', agent: 'bot' } });
    await sut.write(ser(rows));
    const seen: string[] = [];
    let cursor: { time: string; decisionId: string } | undefined;
    let pages = 0;
    do {
      const page = await queryAuditLog(db, { limit: 5, ...(cursor !== undefined ? { cursor } : {}) });
      seen.push(...page.entries.map((e) => e.decisionId));
      cursor = page.next;
      pages++;
      if (pages === 1) await sut.write(ser([entry('q-new', at(30))]));
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(['q-11b', 'q-11', 'q-10', 'q-09', 'q-08', 'q-07', 'q-06', 'q-05', 'q-04', 'q-03', 'q-02', 'q-01', 'q-00']);
    const ids = async (q: Parameters<typeof queryAuditLog>[1]) => (await queryAuditLog(db, q)).entries.map((e) => e.decisionId);
    expect(await ids({ limit: 100, subject: 'bob', decision: 'ALLOW' })).toEqual(['q-09', 'q-03']);
    expect(await ids({ limit: 100, from: at(2), to: at(4) })).toEqual(['q-03', 'q-02']);
    expect(await ids({ limit: 100, resourceKind: 'tool', resourceId: 'shell', agent: 'bot', to: at(2) })).toEqual(['q-01', 'q-00']);
    expect(await ids({ limit: 100, resourceKind: 'too' })).toEqual([]);
    expect((await ids({ limit: 100, resourceKind: 'tool' })).length).toBe(14);
    expect(await ids({ limit: 100, agent: 'nobody' })).toEqual([]);
  });
});
