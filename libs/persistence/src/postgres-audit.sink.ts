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
