/**
 * The decision log in Warden's Postgres (`warden_audit_log`, migration 0003): each batch is one
 * insert, idempotent on the decision id (`on conflict do nothing`), so a replay after a partial
 * failure writes nothing twice. Also the retention delete.
 */
import type { AuditEntry, AuditSink } from '@warden/audit';
import type { SqlDb } from './sql-db.js';

const INSERT = `
insert into warden_audit_log (decision_id, time, kind, policy_version, source, decision, subject, agent, resources, entry)
select e->>'decisionId', (e->>'time')::timestamptz, e->>'kind', e->>'policyVersion', e->>'source', e->>'decision',
       e->'identities'->>'subject', e->'identities'->>'agent',
       array(select (r->'resource'->>'kind') || '/' || (r->'resource'->>'id') from jsonb_array_elements(e->'results') r),
       e
  from jsonb_array_elements($1::jsonb) e
on conflict (decision_id) do nothing`;

/** Options of {@link createPostgresAuditSink}. */
export interface PostgresAuditSinkOptions {
  db: SqlDb;
  /** Closes `db` with the sink (when the sink owns its pool). */
  ownsDb?: boolean;
}

/**
 * A sink writing to `warden_audit_log`.
 * @example const sink = createPostgresAuditSink({ db: createPgDb({ url }), ownsDb: true });
 */
export function createPostgresAuditSink(options: PostgresAuditSinkOptions): AuditSink {
  const { db } = options;
  return {
    name: 'postgres',
    async write(batch: readonly AuditEntry[]) {
      if (batch.length === 0) return;
      await db.query(INSERT, [JSON.stringify(batch)]);
    },
    async close() {
      if (options.ownsDb === true) await db.close();
    },
  };
}

/**
 * Deletes decision-log rows older than `days` days; returns how many went.
 * @example await pruneAuditLog(db, 90);
 */
export async function pruneAuditLog(db: SqlDb, days: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`with gone as (delete from warden_audit_log where time < now() - make_interval(days => $1::int) returning 1) select count(*)::text as n from gone`, [days]);
  return Number(rows[0]?.n ?? 0);
}

/** Filters of {@link queryAuditLog}; all optional, combined with `and`. */
export interface AuditLogQuery {
  subject?: string;
  agent?: string;
  resourceKind?: string;
  /** With `resourceKind`: one resource. */
  resourceId?: string;
  decision?: 'ALLOW' | 'DENY';
  /** Inclusive lower bound (ISO 8601). */
  from?: string;
  /** Exclusive upper bound (ISO 8601). */
  to?: string;
  /** The `nextCursor` of the previous page. */
  cursor?: { time: string; decisionId: string };
  /** Page size (the caller bounds it). */
  limit: number;
}

/**
 * One page of decision-log entries, newest first, and the cursor of the next page (undefined on
 * the last one). Keyset pagination on (time, decision id): stable while rows are being added.
 * @example const { entries, next } = await queryAuditLog(db, { subject: 'alice', limit: 100 });
 */
export async function queryAuditLog(db: SqlDb, q: AuditLogQuery): Promise<{ entries: AuditEntry[]; next: { time: string; decisionId: string } | undefined }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.subject !== undefined) where.push(`subject = ${p(q.subject)}`);
  if (q.agent !== undefined) where.push(`agent = ${p(q.agent)}`);
  if (q.decision !== undefined) where.push(`decision = ${p(q.decision)}`);
  if (q.resourceKind !== undefined && q.resourceId !== undefined) where.push(`resources @> array[${p(`${q.resourceKind}/${q.resourceId}`)}]::text[]`);
  else if (q.resourceKind !== undefined) where.push(`exists (select 1 from unnest(resources) r where left(r, length(${p(q.resourceKind)}) + 1) = $${params.length} || '/')`);
  if (q.from !== undefined) where.push(`time >= ${p(q.from)}::timestamptz`);
  if (q.to !== undefined) where.push(`time < ${p(q.to)}::timestamptz`);
  if (q.cursor !== undefined) where.push(`(time, decision_id) < (${p(q.cursor.time)}::timestamptz, ${p(q.cursor.decisionId)})`);
  const sql = `select entry from warden_audit_log ${where.length > 0 ? `where ${where.join(' and ')}` : ''} order by time desc, decision_id desc limit ${p(q.limit + 1)}`;
  const { rows } = await db.query<{ entry: AuditEntry }>(sql, params);
  const entries = rows.slice(0, q.limit).map((r) => r.entry);
  const last = entries[entries.length - 1];
  return { entries, next: rows.length > q.limit && last !== undefined ? { time: last.time, decisionId: last.decisionId } : undefined };
}
