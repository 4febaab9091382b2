/**
 * The {@link DelegationStore} on Postgres or PGlite (`warden_delegations`, `warden_revocations`),
 * and the shared delegation signing keys (`warden_delegation_keys`). A revocation commits, then
 * the caller fans it out; every instance reads entries by `seq`, so one that missed a message
 * catches up from the table.
 */
import type { DelegationPrivateJwk, DelegationRecord, DelegationStore, Revocation, RevocationRequest, RevocationTarget } from '@warden/delegation';
import type { SqlDb } from './sql-db.js';

// Serialises key creation across instances starting together.
const KEY_LOCK_ID = 0x57617266;

interface RevocationRow {
  [k: string]: unknown;
  seq: string | number;
  target: RevocationTarget;
  id: string;
  revoked_by: string;
  reason: string | null;
  revoked_at: Date | string;
}

interface DelegationRow {
  [k: string]: unknown;
  id: string;
  subject: string;
  session: string | null;
  from_id: string;
  to_agent: string;
  parent_id: string | null;
  ancestors: string[];
  grants: unknown;
  task: string | null;
  issued_at: Date | string;
  expires_at: Date | string;
}

const iso = (v: Date | string): string => (v instanceof Date ? v.toISOString() : new Date(v).toISOString());

function toRevocation(r: RevocationRow): Revocation {
  return { seq: Number(r.seq), target: r.target, id: r.id, at: iso(r.revoked_at), by: r.revoked_by, ...(r.reason !== null ? { reason: r.reason } : {}) };
}

function toRecord(r: DelegationRow): DelegationRecord {
  return {
    id: r.id,
    subject: r.subject,
    ...(r.session !== null ? { session: r.session } : {}),
    from: r.from_id,
    to: r.to_agent,
    ...(r.parent_id !== null ? { parentId: r.parent_id } : {}),
    ancestors: r.ancestors,
    grants: r.grants,
    ...(r.task !== null ? { task: r.task } : {}),
    issuedAt: iso(r.issued_at),
    expiresAt: iso(r.expires_at),
  };
}

/**
 * A delegation store over `db` (migrations must have run).
 * @example const store = createSqlDelegationStore(db); await store.revoke({ target: 'delegation', id, by: 'alice' });
 */
export function createSqlDelegationStore(db: SqlDb): DelegationStore {
  return {
    async record(d) {
      await db.query(
        `insert into warden_delegations (id, subject, session, from_id, to_agent, parent_id, ancestors, grants, task, issued_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [d.id, d.subject, d.session ?? null, d.from, d.to, d.parentId ?? null, d.ancestors, JSON.stringify(d.grants), d.task ?? null, d.issuedAt, d.expiresAt],
      );
    },
    async get(id) {
      const { rows } = await db.query<DelegationRow>('select * from warden_delegations where id = $1', [id]);
      return rows[0] === undefined ? undefined : toRecord(rows[0]);
    },
    async revoke(r: RevocationRequest) {
      // Idempotent: the first entry for (target, id) stands.
      const { rows } = await db.query<RevocationRow>(
        `with ins as (
           insert into warden_revocations (target, id, revoked_by, reason) values ($1, $2, $3, $4)
           on conflict (target, id) do nothing returning *)
         select * from ins union all select * from warden_revocations where target = $1 and id = $2 limit 1`,
        [r.target, r.id, r.by, r.reason ?? null],
      );
      return toRevocation(rows[0] as RevocationRow);
    },
    async revocationsAfter(after, limit = 10_000) {
      const { rows } = await db.query<RevocationRow>('select * from warden_revocations where seq > $1 order by seq limit $2', [after, limit]);
      return rows.map(toRevocation);
    },
  };
}

/**
 * The shared signing keys, oldest first; when there is none, `create` makes one and it is stored
 * (one instance creates it, the others read it).
 * @example const keys = await ensureDelegationKeys(db, () => generateDelegationKey('ES256'));
 */
export async function ensureDelegationKeys(db: SqlDb, create: () => Promise<DelegationPrivateJwk>): Promise<DelegationPrivateJwk[]> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [KEY_LOCK_ID]);
    const { rows } = await tx.query<{ jwk: DelegationPrivateJwk }>('select jwk from warden_delegation_keys order by created_at, kid');
    if (rows.length > 0) return rows.map((r) => r.jwk);
    const jwk = await create();
    await tx.query('insert into warden_delegation_keys (kid, alg, jwk) values ($1, $2, $3)', [jwk.kid, jwk.alg, JSON.stringify(jwk)]);
    return [jwk];
  });
}
