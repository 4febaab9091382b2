import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { createTestDatabase, type TestDatabase } from '../../../test/support/services.js';
import { createPgDb } from './pg-db.js';
import { createPgliteDb } from './pglite-db.js';
import { migrate } from './migrate.js';
import type { SqlDb } from './sql-db.js';
import { createSqlResolverStore } from './sql-resolver-store.js';

const MIGRATIONS = join(import.meta.dirname, '../../../migrations');
/** Every migration file, in the order they apply. */
const FILES = readdirSync(MIGRATIONS).filter((f) => /^\d{4}_.*\.sql$/.test(f)).sort();
const cfg = (v: number) => ({ kind: 'static', key: 'principal.id', data: { alice: { v } }, provides: { 'principal.attr.v': 'result.v' } });
const accept = (): void => undefined;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    return (err as WardenError).code;
  }
  throw new Error('expected a rejection');
}

function suite(label: string, open: () => Promise<{ db: SqlDb; other?: SqlDb; done(): Promise<void> }>) {
  describe(`resolver store on ${label}`, () => {
    let db: SqlDb;
    let other: SqlDb | undefined;
    let done: () => Promise<void>;
    beforeAll(async () => {
      ({ db, other, done } = await open());
      await migrate(db, MIGRATIONS);
    });
    afterAll(async () => done());

    it('applies migrations once', async () => {
      expect(await migrate(db, MIGRATIONS)).toEqual([]);
      const { rows } = await db.query<{ name: string }>('select name from warden_migrations order by name');
      expect(rows.map((r) => r.name)).toEqual(FILES);
    });

    it('keeps a versioned history: create, replace, delete, rollback', async () => {
      const store = createSqlResolverStore(db);
      expect((await store.apply({ action: 'create', name: 'dept', config: cfg(1) }, 'ann', accept))?.version).toBe(1);
      expect((await store.apply({ action: 'replace', name: 'dept', config: cfg(2), expectedVersion: 1 }, 'bob', accept))?.version).toBe(2);
      expect((await store.list()).map((r) => [r.name, r.version, r.updatedBy, r.config])).toEqual([['dept', 2, 'bob', cfg(2)]]);
      expect(await store.apply({ action: 'delete', name: 'dept' }, 'ann', accept)).toBeUndefined();
      expect(await store.list()).toEqual([]);
      const back = await store.apply({ action: 'rollback', name: 'dept', toVersion: 1 }, 'ann', accept);
      expect([back?.version, back?.config]).toEqual([4, cfg(1)]);
      expect((await store.history('dept')).map((h) => [h.version, h.action, h.actor])).toEqual([
        [1, 'create', 'ann'],
        [2, 'replace', 'bob'],
        [3, 'delete', 'ann'],
        [4, 'rollback', 'ann'],
      ]);
    });

    it('refuses conflicts and unknown names with coded errors', async () => {
      const store = createSqlResolverStore(db);
      await store.apply({ action: 'create', name: 'c1', config: cfg(1) }, 'ann', accept);
      expect(await codeOf(store.apply({ action: 'create', name: 'c1', config: cfg(1) }, 'ann', accept))).toBe('ERR_CONFLICT');
      expect(await codeOf(store.apply({ action: 'replace', name: 'c1', config: cfg(2), expectedVersion: 7 }, 'ann', accept))).toBe('ERR_CONFLICT');
      expect(await codeOf(store.apply({ action: 'delete', name: 'nope' }, 'ann', accept))).toBe('ERR_NOT_FOUND');
      expect(await codeOf(store.apply({ action: 'rollback', name: 'c1', toVersion: 9 }, 'ann', accept))).toBe('ERR_NOT_FOUND');
    });

    it('commits nothing when validation refuses the next set, and validates the whole next set', async () => {
      const store = createSqlResolverStore(db);
      let seen: string[] = [];
      const refuse = (next: readonly { name: string }[]): void => {
        seen = next.map((n) => n.name).sort();
        throw new WardenError('ERR_RESOLVER_PROVIDES_CONFLICT', 'no');
      };
      expect(await codeOf(store.apply({ action: 'create', name: 'v1', config: cfg(1) }, 'ann', refuse))).toBe('ERR_RESOLVER_PROVIDES_CONFLICT');
      expect(seen).toContain('v1');
      expect(seen).toContain('c1');
      expect(await store.history('v1')).toEqual([]);
    });

    it('notifies subscribers of every committed change', async () => {
      const store = createSqlResolverStore(db);
      const listener = createSqlResolverStore(other ?? db);
      let count = 0;
      const arrived = new Promise<void>((resolve) => {
        void listener.subscribe(() => {
          count += 1;
          resolve();
        }).then((stop) => (unsubscribe = stop));
      });
      let unsubscribe: (() => Promise<void>) | undefined;
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await store.apply({ action: 'create', name: 'n1', config: cfg(1) }, 'ann', accept);
      await arrived;
      expect(count).toBeGreaterThanOrEqual(1);
      expect(Date.now() - t0).toBeLessThan(1000);
      await unsubscribe?.();
    });
  });
}

let pgDatabase: TestDatabase;
suite('PostgreSQL (two pools, LISTEN/NOTIFY across connections)', async () => {
  pgDatabase = await createTestDatabase();
  const db = createPgDb({ url: pgDatabase.url });
  const other = createPgDb({ url: pgDatabase.url });
  return {
    db,
    other,
    done: async () => {
      await other.close();
      await db.close();
      await pgDatabase.drop();
    },
  };
});

suite('embedded PGlite', async () => {
  const db = await createPgliteDb();
  return { db, done: () => db.close() };
});

describe('migrate on PostgreSQL', () => {
  it('applies each file once when two instances start together', async () => {
    const database = await createTestDatabase();
    const a = createPgDb({ url: database.url });
    const b = createPgDb({ url: database.url });
    try {
      const [ra, rb] = await Promise.all([migrate(a, MIGRATIONS), migrate(b, MIGRATIONS)]);
      expect([...ra, ...rb].sort()).toEqual(FILES);
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });
});
