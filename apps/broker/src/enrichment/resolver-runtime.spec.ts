import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDb, createSqlResolverStore, migrate, type SqlDb } from '@warden/persistence';
import { createLruCacheStore, staticResolverFactory, type ResolverConfigError } from '@warden/resolvers';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/services.js';
import { ResolverRuntime } from './resolver-runtime.js';

const MIGRATIONS = join(import.meta.dirname, '../../../../migrations');
const dept = { name: 'dept', kind: 'static', key: 'principal.id', data: { alice: { d: 'sales' } }, provides: { 'principal.attr.dept': 'result.d' } };
const team = (d: string) => ({ kind: 'static', key: 'principal.id', data: { alice: { t: d } }, provides: { 'principal.attr.team': 'result.t' } });

let database: TestDatabase;
let dbA: SqlDb;
let dbB: SqlDb;

beforeAll(async () => {
  database = await createTestDatabase();
  dbA = createPgDb({ url: database.url });
  dbB = createPgDb({ url: database.url });
  await migrate(dbA, MIGRATIONS);
});
afterAll(async () => {
  await dbA.close();
  await dbB.close();
  await database.drop();
});

const start = (db: SqlDb, fileConfigs: unknown[] = [dept], errors: string[] = []) =>
  ResolverRuntime.start({
    fileConfigs,
    datasources: {},
    factories: { static: staticResolverFactory },
    cacheStore: createLruCacheStore(),
    store: createSqlResolverStore(db),
    onError: (m) => errors.push(m),
  });

describe(ResolverRuntime.name, () => {
  it('refuses to start on invalid file resolvers', async () => {
    await expect(start(dbA, [{ ...dept, kind: 'nope' }])).rejects.toMatchObject({ code: 'ERR_RESOLVER_KIND_UNKNOWN' });
  });

  it('validates a change against the file resolvers and every stored one', async () => {
    const rt = await start(dbA);
    const clash = { name: 'x', version: 1, updatedAt: '', updatedBy: '', config: { ...dept, name: 'x' } };
    let err: ResolverConfigError | undefined;
    try {
      rt.validate([clash]);
    } catch (e) {
      err = e as ResolverConfigError;
    }
    expect(err?.code).toBe('ERR_RESOLVER_PROVIDES_CONFLICT');
    expect(err?.message).toContain('`x`');
    expect(rt.isFileResolver('dept')).toBe(true);
    expect(rt.isFileResolver('x')).toBe(false);
    await rt.close();
  });

  it('a change committed through one instance reaches another within a second', async () => {
    const a = await start(dbA);
    const b = await start(dbB);
    const store = createSqlResolverStore(dbA);
    const t0 = Date.now();
    await store.apply({ action: 'create', name: 'team', config: team('blue') }, 'ann', (next) => a.validate(next));
    while (b.current().registry?.get('team') === undefined && Date.now() - t0 < 1000) await new Promise((r) => setTimeout(r, 10));
    expect(b.current().registry?.get('team')).toBeDefined();
    expect(Date.now() - t0).toBeLessThan(1000);
    await store.apply({ action: 'delete', name: 'team' }, 'ann', (next) => a.validate(next));
    await a.close();
    await b.close();
  });

  it('fails closed when the stored set cannot be built, and recovers when it is fixed', async () => {
    const store = createSqlResolverStore(dbA);
    // Stored while valid, then the file gains a resolver providing the same path.
    await store.apply({ action: 'create', name: 'team2', config: team('red') }, 'ann', () => undefined);
    const errors: string[] = [];
    const rt = await start(dbA, [dept, { ...team('x'), name: 'file-team' }], errors);
    expect(rt.current().registry).toBeUndefined();
    expect(rt.current().errors?.[0]?.code).toBe('ERR_RESOLVER_PROVIDES_CONFLICT');
    expect(errors.join(' ')).toContain('deny');
    await store.apply({ action: 'delete', name: 'team2' }, 'ann', () => undefined);
    await rt.reload();
    expect(rt.current().registry?.get('file-team')).toBeDefined();
    await rt.close();
  });

  it('dry-runs a config without touching the live set', async () => {
    const rt = await start(dbA);
    const { outcome } = await rt.dryRun({ ...team('green'), name: 'probe' }, { requestId: 't', principal: { id: 'alice' }, resources: [] });
    expect(outcome.items[0]?.input.principal).toEqual({ id: 'alice', attr: { team: 'green' } });
    expect(rt.current().registry?.get('probe')).toBeUndefined();
    await rt.close();
  });
});
