import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolverError } from '../../resolver-error.js';
import { createPgliteReadClient } from './pglite-read-client.js';
import { createPostgresResolverFactory } from './postgres.resolver.js';
import type { SqlReadClient } from './sql-read-client.js';

let db: PGlite;

beforeAll(async () => {
  db = await PGlite.create();
  await db.exec(`
    create table approvers (user_id text primary key, approval_limit int not null);
    create table projects (id int primary key, owner text not null, big int8 not null);
    insert into approvers select 'u' || i, i * 100 from generate_series(0, 39) i;
    insert into projects values (1, 'team-1', 9007199254740993), (2, 'team-2', 2);
  `);
}, 60_000);

afterAll(async () => {
  await db.close();
});

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });

function resolverFor(query: string, client: SqlReadClient) {
  const factory = createPostgresResolverFactory({ connect: () => client });
  const config = factory.parseConfig({ name: 'embedded', kind: 'postgres', datasource: 'demo', key: 'principal.id', query, provides: { 'principal.attr.x': 'result' } });
  return factory.create(config, { now: Date.now, datasource: { kind: 'postgres', embedded: true } });
}

describe(createPgliteReadClient.name, () => {
  it('answers a batch with one query inside a READ ONLY transaction', async () => {
    const queries: string[] = [];
    const sut = createPgliteReadClient({
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            query: (text, params) => {
              queries.push(text);
              return tx.query(text, params);
            },
          }),
        ),
    });
    const keys = Array.from({ length: 50 }, (_, i) => `u${i}`);
    const out = await resolverFor('select user_id as key, approval_limit, current_setting($$transaction_read_only$$) as ro from approvers where user_id = any($1)', sut).resolveMany(keys, ctx());
    expect(out).toEqual(keys.map((k, i) => (i < 40 ? { key: k, approval_limit: i * 100, ro: 'on' } : undefined)));
    expect(queries.filter((q) => q.includes('any($1)'))).toHaveLength(1);
  });

  it('matches number and string keys and makes int8 JSON', async () => {
    const out = await resolverFor('select id as key, owner, big from projects where id = any($1)', createPgliteReadClient(db)).resolveMany([1, '2', 3], ctx());
    expect(out).toEqual([{ key: 1, owner: 'team-1', big: '9007199254740993' }, { key: 2, owner: 'team-2', big: 2 }, undefined]);
  });

  it('refuses a write and deletes nothing', async () => {
    const out = (await resolverFor('delete from approvers where user_id = any($1) returning user_id as key', createPgliteReadClient(db)).resolveMany(['u1', 'u2'], ctx())) as ResolverError[];
    expect(out.map((e) => [e.code, e.message])).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `embedded`: query failed (SQLSTATE 25006 read_only_sql_transaction)']));
    expect((await db.query<{ n: number }>('select count(*)::int as n from approvers')).rows[0]?.n).toBe(40);
  });

  it('serialises concurrent calls on its one session, and a failed one leaves no transaction open', async () => {
    const client = createPgliteReadClient(db);
    const bad = resolverFor('select user_id as key, nope from approvers where user_id = any($1)', client);
    const good = resolverFor('select user_id as key, approval_limit from approvers where user_id = any($1)', client);
    const [a, b, c] = await Promise.all([good.resolveMany(['u1'], ctx()), bad.resolveMany(['u2'], ctx()), good.resolveMany(['u3'], ctx())]);
    expect(a).toEqual([{ key: 'u1', approval_limit: 100 }]);
    expect((b?.[0] as ResolverError).message).toBe('resolver `embedded`: query failed (SQLSTATE 42703 undefined_column)');
    expect(c).toEqual([{ key: 'u3', approval_limit: 300 }]);
    // Outside any transaction again: a plain write through the app's own handle works.
    await db.query(`insert into approvers values ('new', 1)`);
    expect((await db.query<{ n: number }>('select count(*)::int as n from approvers')).rows[0]?.n).toBe(41);
  });
});
