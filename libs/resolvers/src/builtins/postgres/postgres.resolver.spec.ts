import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from '../../resolver-registry.js';
import type { DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import { createPgReadClient } from './pg-read-client.js';
import { createPostgresResolverFactory, parsePostgresResolverConfig } from './postgres.resolver.js';
import type { SqlReadClient } from './sql-read-client.js';
import { TEST_DATABASE_URL } from '../../../../../test/support/services.js';

const DATABASE_URL = TEST_DATABASE_URL;
const schema = `warden_pg_${randomBytes(6).toString('hex')}`;
const pools: pg.Pool[] = [];
let pool: pg.Pool;

function newPool(connectionString: string, max = 4): pg.Pool {
  const p = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 2_000 });
  p.on('error', () => undefined); // destroyed clients report here
  pools.push(p);
  return p;
}

beforeAll(async () => {
  pool = newPool(DATABASE_URL);
  await pool.query(`create schema ${schema}`);
  await pool.query(`
    create table ${schema}.approvers (user_id text primary key, approval_limit int not null);
    create table ${schema}.projects (id int primary key, owner text not null);
    create table ${schema}.roles (user_id text not null, role text not null);
    create table ${schema}.t (id int primary key);
    create table ${schema}.typed (id int primary key, big int8, at timestamptz, amount numeric, doc jsonb, blob bytea);
    insert into ${schema}.approvers select 'u' || i, i * 100 from generate_series(0, 39) i;
    insert into ${schema}.approvers values ('7', 700);
    insert into ${schema}.projects select i, 'team-' || i from generate_series(1, 60) i;
    insert into ${schema}.roles values ('alice', 'admin'), ('alice', 'dev'), ('bob', 'dev');
    insert into ${schema}.t select generate_series(1, 5);
    insert into ${schema}.typed values (1, 9007199254740993, '2024-05-01T12:00:00Z', 12.50, '{"tags":["a"]}', null),
                                       (2, 42, null, null, null, '\\x00ff');
  `);
});

afterAll(async () => {
  await pool.query(`drop schema ${schema} cascade`);
  await Promise.all(pools.map((p) => p.end()));
});

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });

/** Counts the queries that reach the database. */
function counting(client: SqlReadClient) {
  const calls: unknown[][] = [];
  const wrapped: SqlReadClient = {
    readOnlyQuery(text, params, options) {
      calls.push([...params]);
      return client.readOnlyQuery(text, params, options);
    },
  };
  return { client: wrapped, calls };
}

function resolverFor(options: Record<string, unknown>, client: SqlReadClient = createPgReadClient(pool)) {
  const connected: string[] = [];
  const factory = createPostgresResolverFactory({
    connect: (name) => {
      connected.push(name);
      return client;
    },
  });
  const config = factory.parseConfig({ name: 'approvers', kind: 'postgres', datasource: 'hr', key: 'principal.id', provides: { 'principal.attr.limit': 'result.approval_limit' }, ...options });
  return { sut: factory.create(config, { now: Date.now, datasource: { kind: 'postgres', url: 'postgres://ignored' } }), connected };
}

const approversQuery = `select user_id as key, approval_limit from ${schema}.approvers where user_id = any($1)`;

describe(createPostgresResolverFactory.name, () => {
  it('answers 50 keys with one query, in key order, with keys without a row as not-found', async () => {
    const { client, calls } = counting(createPgReadClient(pool));
    const { sut, connected } = resolverFor({ query: approversQuery }, client);
    const keys = Array.from({ length: 50 }, (_, i) => `u${(i * 7) % 50}`);
    const out = await sut.resolveMany(keys, ctx());
    expect(out).toEqual(keys.map((k) => (Number(k.slice(1)) < 40 ? { key: k, approval_limit: Number(k.slice(1)) * 100 } : undefined)));
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toHaveLength(50);
    expect(connected).toEqual(['hr']);
  });

  it('matches number keys to int and text columns and string keys to int columns', async () => {
    const projects = resolverFor({ query: `select id as key, owner from ${schema}.projects where id = any($1)` }).sut;
    expect(await projects.resolveMany([1, '2', 3, 999], ctx())).toEqual([{ key: 1, owner: 'team-1' }, { key: 2, owner: 'team-2' }, { key: 3, owner: 'team-3' }, undefined]);
    const approvers = resolverFor({ query: approversQuery }).sut;
    expect(await approvers.resolveMany([7, '7'], ctx())).toEqual([{ key: '7', approval_limit: 700 }, { key: '7', approval_limit: 700 }]);
  });

  it('reads rows by keyColumn and answers empty batches without a query', async () => {
    const { client, calls } = counting(createPgReadClient(pool));
    const { sut } = resolverFor({ query: `select user_id, approval_limit from ${schema}.approvers where user_id = any($1)`, keyColumn: 'user_id' }, client);
    expect(await sut.resolveMany([], ctx())).toEqual([]);
    expect(await sut.resolveMany(['u1'], ctx())).toEqual([{ user_id: 'u1', approval_limit: 100 }]);
    expect(calls).toHaveLength(1);
  });

  it('gives each key the list of its rows with many: true, and refuses several rows per key without it', async () => {
    const query = `select user_id as key, role from ${schema}.roles where user_id = any($1) order by role`;
    const many = resolverFor({ query, many: true }).sut;
    expect(await many.resolveMany(['alice', 'bob', 'carol'], ctx())).toEqual([
      [
        { key: 'alice', role: 'admin' },
        { key: 'alice', role: 'dev' },
      ],
      [{ key: 'bob', role: 'dev' }],
      [],
    ]);
    const one = await resolverFor({ query }).sut.resolveMany(['alice', 'bob'], ctx());
    expect((one[0] as ResolverError).code).toBe('ERR_RESOLVER_RESULT_INVALID');
    expect((one[0] as ResolverError).message).toBe('resolver `approvers`: the query answered several rows for one key (set `many: true` for a list)');
    expect(one[1]).toEqual({ key: 'bob', role: 'dev' });
  });

  it('turns column values into JSON and refuses a type JSON cannot hold for that key only', async () => {
    const { sut } = resolverFor({ query: `select id as key, big, at, amount, doc, blob from ${schema}.typed where id = any($1)` });
    const [first, second] = await sut.resolveMany([1, 2], ctx());
    expect(first).toEqual({ key: 1, big: '9007199254740993', at: '2024-05-01T12:00:00.000Z', amount: '12.50', doc: { tags: ['a'] }, blob: null });
    expect(isResolverError(second)).toBe(true);
    expect((second as ResolverError).code).toBe('ERR_RESOLVER_RESULT_INVALID');
    expect((second as ResolverError).message).toContain('column `blob` has a type JSON cannot hold');
    const small = await resolverFor({ query: `select id as key, big from ${schema}.typed where id = any($1)` }).sut.resolveMany([2], ctx());
    expect(small).toEqual([{ key: 2, big: '42' }]); // pg answers int8 as a string; it stays exact
  });

  it('fails every key with ERR_RESOLVER_RESULT_INVALID when rows cannot be matched to keys', async () => {
    const missing = await resolverFor({ query: `select user_id, approval_limit from ${schema}.approvers where user_id = any($1)` }).sut.resolveMany(['u1', 'u2'], ctx());
    expect((missing as ResolverError[]).map((e) => [e.code, e.message])).toEqual(Array(2).fill(['ERR_RESOLVER_RESULT_INVALID', 'resolver `approvers`: a row has no column `key`']));
    const nullKey = await resolverFor({ query: `select null::text as key from unnest($1::text[]) k` }).sut.resolveMany(['u1'], ctx());
    expect((nullKey[0] as ResolverError).message).toContain('is null or not a string or number');
  });

  it('fails keys that are not scalars in their slot and answers the others', async () => {
    const out = await resolverFor({ query: approversQuery }).sut.resolveMany([{ id: 'u1' }, 'u2', null] as JsonValue[], ctx());
    expect((out[0] as ResolverError).code).toBe('ERR_RESOLVER_FAILED');
    expect(out[1]).toEqual({ key: 'u2', approval_limit: 200 });
    expect((out[2] as ResolverError).message).toBe('resolver `approvers`: the key is not a string, number or boolean');
  });

  it('runs in a read-only transaction: a delete fails and deletes nothing', async () => {
    const out = await resolverFor({ query: `delete from ${schema}.t where id = any($1) returning id as key` }).sut.resolveMany([1, 2], ctx());
    expect((out as ResolverError[]).map((e) => [e.code, e.message])).toEqual(
      Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `approvers`: query failed (SQLSTATE 25006 read_only_sql_transaction)']),
    );
    expect((await pool.query(`select count(*)::int as n from ${schema}.t`)).rows[0]).toEqual({ n: 5 });
  });

  it('fails SQL errors with the SQLSTATE only, never the server text (it can quote a key)', async () => {
    const badColumn = await resolverFor({ query: `select user_id as key, nope from ${schema}.approvers where user_id = any($1)` }).sut.resolveMany(['u1'], ctx());
    expect((badColumn[0] as ResolverError).message).toBe('resolver `approvers`: query failed (SQLSTATE 42703 undefined_column)');
    const badCast = await resolverFor({ query: `select id as key from ${schema}.projects where id = any($1)` }).sut.resolveMany([1, 'secret-key-value'], ctx());
    expect((badCast as ResolverError[]).map((e) => e.message)).toEqual(Array(2).fill('resolver `approvers`: query failed (SQLSTATE 22P02 invalid_text_representation)'));
  });

  it('fails a statement over the timeout with ERR_RESOLVER_TIMEOUT, and the pool stays usable', async () => {
    const small = newPool(DATABASE_URL, 1);
    const { sut } = resolverFor({ query: `select k as key from unnest($1::text[]) k, pg_sleep(2)`, timeout: '200ms' }, createPgReadClient(small));
    const t0 = performance.now();
    const out = (await sut.resolveMany(['u1', 'u2'], ctx())) as ResolverError[];
    expect(performance.now() - t0).toBeLessThan(1_500);
    expect(out.map((e) => [e.code, e.message])).toEqual(Array(2).fill(['ERR_RESOLVER_TIMEOUT', 'resolver `approvers` timed out after 200ms (statement timeout)']));
    const after = resolverFor({ query: approversQuery }, createPgReadClient(small)).sut;
    expect(await after.resolveMany(['u3'], ctx())).toEqual([{ key: 'u3', approval_limit: 300 }]);
  });

  it('times out under withTimeout too (the abort path) and still answers afterwards', async () => {
    const small = newPool(DATABASE_URL, 1);
    const slow = withTimeout(resolverFor({ query: `select k as key from unnest($1::text[]) k, pg_sleep(2)`, timeout: '300ms' }, createPgReadClient(small)).sut, 100);
    const [err] = (await slow.resolveMany(['u1'], ctx())) as ResolverError[];
    expect(err?.code).toBe('ERR_RESOLVER_TIMEOUT');
    const after = resolverFor({ query: approversQuery }, createPgReadClient(small)).sut;
    expect(await after.resolveMany(['u4'], ctx())).toEqual([{ key: 'u4', approval_limit: 400 }]);
  });

  it('answers ERR_RESOLVER_ABORTED when the request was already abandoned', async () => {
    const controller = new AbortController();
    controller.abort();
    const out = await resolverFor({ query: approversQuery }).sut.resolveMany(['u1'], { requestId: 'r', signal: controller.signal });
    expect((out[0] as ResolverError).code).toBe('ERR_RESOLVER_ABORTED');
  });

  it('fails every key when Postgres is down, never quoting the URL or its password', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const url = `postgres://warden:sup3r-s3cret@127.0.0.1:${port}/hr`;
    const out = (await resolverFor({ query: approversQuery }, createPgReadClient(newPool(url))).sut.resolveMany(['u1', 'u2'], ctx())) as ResolverError[];
    expect(out.map((e) => [e.code, e.message])).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `approvers`: datasource `hr`: connection failed (ECONNREFUSED)']));
    const text = JSON.stringify(out.map((e) => ({ message: e.message, cause: String(e.cause) })));
    expect(text).not.toContain('sup3r-s3cret');
    expect(text).not.toContain(String(port));
  });

  it('refuses bad configs before anything is built, naming the resolver and field', () => {
    const base = { name: 'approvers', kind: 'postgres', datasource: 'hr', key: 'principal.id', provides: { 'principal.attr.limit': 'result.approval_limit' } };
    const bad = (extra: Record<string, unknown>) => () => parsePostgresResolverConfig({ ...base, ...extra });
    expect(bad({})).toThrow('resolver `approvers`: field `query`: expected a SQL query using `$1`');
    expect(bad({ query: '  ' })).toThrow('field `query`: expected a non-empty SQL query');
    expect(bad({ query: 'select 1 as key' })).toThrow('field `query`: expected `$1` (the list of keys)');
    expect(bad({ query: 'select id as key from t where id = any($1) and tenant = $2' })).toThrow('field `query`: only `$1` (the list of keys) is available, found `$2`');
    expect(bad({ query: 'select id as key from t where id = any($1); delete from t' })).toThrow('field `query`: expected one statement');
    expect(bad({ query: 'select id as key from t where id = any($1)', sql: 'x' })).toThrow('field `sql`: unknown field');
    expect(bad({ query: 'select id as key from t where id = any($1)', keyColumn: '' })).toThrow('field `keyColumn`: expected a column name');
    expect(bad({ query: 'select id as key from t where id = any($1)', many: 'yes' })).toThrow('field `many`: expected `true` or `false`');
    expect(bad({ query: 'select id as key from t where id = any($1)', kind: 'http' })).toThrow('field `kind`: expected `postgres`');
    expect(() => parsePostgresResolverConfig({ ...base, datasource: undefined, query: 'select $1' })).toThrow('field `datasource`: a `postgres` resolver must name');
    const factory = createPostgresResolverFactory({ connect: () => createPgReadClient(pool) });
    const wrongKind = buildResolverRegistry({ configs: [{ ...base, query: approversQuery }], factories: { postgres: factory }, datasources: { hr: { kind: 'http', url: 'http://127.0.0.1' } } });
    expect(wrongKind.errors.map((e) => e.message)).toEqual(['resolver `approvers`: cannot create: resolver `approvers`: field `datasource`: expected a datasource of kind `postgres`, got `http`']);
    const unknown = buildResolverRegistry({ configs: [{ ...base, query: approversQuery }], factories: { postgres: factory }, datasources: {} });
    expect(unknown.errors.map((e) => e.code)).toEqual(['ERR_RESOLVER_DATASOURCE_UNKNOWN']);
  });
});

describe('postgres resolvers in enrich', () => {
  it('resolves a per-resource key over 50 resources with one query', async () => {
    const { client, calls } = counting(createPgReadClient(pool));
    const seen: Array<[string, DatasourceConfig]> = [];
    const registry = createResolverRegistry({
      configs: [
        {
          name: 'projects',
          kind: 'postgres',
          datasource: 'main',
          key: 'resource.attr.projectId',
          query: `select id as key, owner from ${schema}.projects where id = any($1)`,
          provides: { 'resource.attr.owner': 'result.owner' },
        },
      ],
      factories: {
        postgres: createPostgresResolverFactory({
          connect: (name, ds) => {
            seen.push([name, ds]);
            return client;
          },
        }),
      },
      datasources: { main: { kind: 'postgres', url: DATABASE_URL } },
    });
    const resources = Array.from({ length: 50 }, (_, i) => ({ kind: 'doc', id: `d${i}`, attr: { projectId: (i % 25) + 1 + (i === 49 ? 100 : 0) } }));
    const out = await enrich(registry, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(out.items.map((item) => item.input.resource?.['attr'])).toEqual(
      resources.map((r) => (r.attr.projectId > 60 ? r.attr : { ...r.attr, owner: `team-${r.attr.projectId}` })),
    );
    expect(out.items.every((item) => item.denials.length === 0)).toBe(true);
    expect(calls).toHaveLength(1);
    expect(out.runs).toEqual([expect.objectContaining({ resolver: 'projects', calls: 1, keys: 26 })]);
    expect(seen).toEqual([['main', { kind: 'postgres', url: DATABASE_URL }]]);
  });
});
