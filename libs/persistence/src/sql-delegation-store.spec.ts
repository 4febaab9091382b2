import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createTestDatabase } from '../../../test/support/services.js';
import { createPgDb } from './pg-db.js';
import { createPgliteDb } from './pglite-db.js';
import { migrate } from './migrate.js';
import type { SqlDb } from './sql-db.js';
import { createSqlDelegationStore, ensureDelegationKeys } from './sql-delegation-store.js';

const MIGRATIONS = join(import.meta.dirname, '../../../migrations');

function suite(label: string, open: () => Promise<{ db: SqlDb; other: SqlDb; done(): Promise<void> }>) {
  describe(`delegation store on ${label}`, () => {
    let db: SqlDb;
    let other: SqlDb;
    let done: () => Promise<void>;
    beforeAll(async () => {
      ({ db, other, done } = await open());
      await migrate(db, MIGRATIONS);
    });
    afterAll(async () => done());

    it('records delegations and reads them back', async () => {
      const store = createSqlDelegationStore(db);
      const d = { id: 'd2', subject: 'alice', session: 's-1', from: 'planner', to: 'executor', parentId: 'd1', ancestors: ['d1'], grants: [{ kind: 'tool', actions: ['invoke'] }], issuedAt: '2026-11-28T12:00:00.000Z', expiresAt: '2026-11-28T12:10:00.000Z' };
      await store.record(d);
      expect(await store.get('d2')).toEqual(d);
      expect(await store.get('nope')).toBeUndefined();
      await expect(store.record(d)).rejects.toThrow();
    });

    it('numbers revocations, keeps the first of a (target, id), and lists them after a seq from any connection', async () => {
      const store = createSqlDelegationStore(db);
      const a = await store.revoke({ target: 'delegation', id: 'd1', by: 'alice', reason: 'done' });
      const b = await store.revoke({ target: 'agent', id: 'rogue-bot', by: 'admin' });
      const again = await store.revoke({ target: 'delegation', id: 'd1', by: 'mallory' });
      expect(again).toEqual(a);
      expect(a).toMatchObject({ target: 'delegation', id: 'd1', by: 'alice', reason: 'done' });
      expect(b.seq).toBeGreaterThan(a.seq);
      const seen = createSqlDelegationStore(other);
      expect((await seen.revocationsAfter(0)).map((r) => [r.target, r.id])).toEqual([
        ['delegation', 'd1'],
        ['agent', 'rogue-bot'],
      ]);
      expect((await seen.revocationsAfter(a.seq)).map((r) => r.id)).toEqual(['rogue-bot']);
    });

    it('creates one signing key when none exists, and every instance reads the same', async () => {
      let created = 0;
      // The store keeps whatever key it is given (libs/delegation makes real ones).
      const make = async () => {
        created += 1;
        return { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: randomBytes(8).toString('hex'), alg: 'ES256' as const, kid: `k-${randomBytes(4).toString('hex')}` };
      };
      const [x, y] = await Promise.all([ensureDelegationKeys(db, make), ensureDelegationKeys(other, make)]);
      expect(created).toBe(1);
      expect(x).toEqual(y);
      expect(x[0]).toMatchObject({ alg: 'ES256', kid: expect.any(String), d: expect.any(String) });
    });
  });
}

suite('PostgreSQL', async () => {
  const database = await createTestDatabase();
  const db = createPgDb({ url: database.url });
  const other = createPgDb({ url: database.url });
  return {
    db,
    other,
    done: async () => {
      await other.close();
      await db.close();
      await database.drop();
    },
  };
});

suite('embedded PGlite', async () => {
  const db = await createPgliteDb();
  return { db, other: db, done: () => db.close() };
});
