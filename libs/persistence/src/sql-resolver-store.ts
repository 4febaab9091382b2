/**
 * The {@link ResolverStore} on Postgres or PGlite (`warden_resolver_revisions`, an append-only
 * history). Every change runs in one transaction under an advisory lock, so changes from any
 * number of instances are applied one at a time against the set they validated; the commit
 * sends `NOTIFY warden_resolvers`, which every instance's `subscribe` receives.
 */
import { WardenError } from '@warden/core';
import type {
  RawResolverConfig,
  ResolverChange,
  ResolverChangeAction,
  ResolverRevision,
  ResolverStore,
  StoredResolver,
} from '@warden/resolvers';
import type { SqlDb, SqlQueryable } from './sql-db.js';

const CHANNEL = 'warden_resolvers';
const LOCK_ID = 0x57617265;

interface RevisionRow {
  [k: string]: unknown;
  name: string;
  version: number;
  action: ResolverChangeAction;
  config: RawResolverConfig | null;
  actor: string;
  created_at: Date | string;
}

const iso = (v: Date | string): string => (v instanceof Date ? v.toISOString() : new Date(v).toISOString());

function toStored(r: RevisionRow): StoredResolver {
  return { name: r.name, version: r.version, config: r.config as RawResolverConfig, updatedAt: iso(r.created_at), updatedBy: r.actor };
}

const CURRENT = `
  select distinct on (name) name, version, action, config, actor, created_at
  from warden_resolver_revisions order by name, version desc`;

async function current(q: SqlQueryable): Promise<StoredResolver[]> {
  const { rows } = await q.query<RevisionRow>(`select * from (${CURRENT}) c where config is not null order by name`);
  return rows.map(toStored);
}

/**
 * A resolver store over `db` (migrations must have run).
 * @example const store = createSqlResolverStore(db); await store.apply({ action: 'create', name: 'a', config }, 'admin', validate);
 */
export function createSqlResolverStore(db: SqlDb): ResolverStore {
  return {
    list: () => current(db),
    async history(name) {
      const { rows } = await db.query<RevisionRow>(
        'select name, version, action, config, actor, created_at from warden_resolver_revisions where name = $1 order by version',
        [name],
      );
      return rows.map((r): ResolverRevision => ({ name: r.name, version: r.version, action: r.action, config: r.config, at: iso(r.created_at), actor: r.actor }));
    },
    async apply(change: ResolverChange, actor: string, validate: (next: readonly StoredResolver[]) => void) {
      return db.transaction(async (tx) => {
        await tx.query('select pg_advisory_xact_lock($1)', [LOCK_ID]);
        const set = await current(tx);
        const { rows: latestRows } = await tx.query<RevisionRow>(
          'select name, version, action, config, actor, created_at from warden_resolver_revisions where name = $1 order by version desc limit 1',
          [change.name],
        );
        const latest = latestRows[0];
        const live = latest !== undefined && latest.config !== null ? latest : undefined;
        let config: RawResolverConfig | null;
        switch (change.action) {
          case 'create':
            if (live !== undefined) throw new WardenError('ERR_CONFLICT', `resolver \`${change.name}\` already exists (version ${live.version})`);
            config = change.config;
            break;
          case 'replace':
          case 'delete':
            if (live === undefined) throw new WardenError('ERR_NOT_FOUND', `resolver \`${change.name}\` does not exist`);
            if (change.expectedVersion !== undefined && change.expectedVersion !== live.version) {
              throw new WardenError('ERR_CONFLICT', `resolver \`${change.name}\` is at version ${live.version}, not ${change.expectedVersion}`);
            }
            config = change.action === 'replace' ? change.config : null;
            break;
          case 'rollback': {
            const { rows } = await tx.query<RevisionRow>('select config from warden_resolver_revisions where name = $1 and version = $2', [change.name, change.toVersion]);
            const target = rows[0];
            if (target === undefined) throw new WardenError('ERR_NOT_FOUND', `resolver \`${change.name}\` has no version ${change.toVersion}`);
            config = target.config;
            break;
          }
        }
        const next = set.filter((r) => r.name !== change.name);
        const version = (latest?.version ?? 0) + 1;
        const now = new Date().toISOString();
        if (config !== null) next.push({ name: change.name, version, config, updatedAt: now, updatedBy: actor });
        validate(next);
        const { rows } = await tx.query<RevisionRow>(
          `insert into warden_resolver_revisions (name, version, action, config, actor) values ($1, $2, $3, $4::jsonb, $5)
           returning name, version, action, config, actor, created_at`,
          [change.name, version, change.action, config === null ? null : JSON.stringify(config), actor],
        );
        await tx.query('select pg_notify($1, $2)', [CHANNEL, `${change.name}:${version}`]);
        const row = rows[0] as RevisionRow;
        return row.config === null ? undefined : toStored(row);
      });
    },
    subscribe: (onChange) => db.listen(CHANNEL, () => onChange()),
  };
}
