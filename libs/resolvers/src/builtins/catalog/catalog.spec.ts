import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgReadClient } from '../postgres/pg-read-client.js';
import { createCatalogSource, parseCatalogConfig, type CatalogDeps } from './catalog.js';
import { TEST_DATABASE_URL } from '../../../../../test/support/services.js';

const table = `catalog_${randomBytes(4).toString('hex')}`;
let pool: pg.Pool;
let server: Server;
let base: string;
let httpCalls = 0;
let httpBody: unknown = [];

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
  await pool.query(`create table ${table} (id text primary key, risk text, tenant text, created timestamptz)`);
  await pool.query(`insert into ${table} values ('b_tool', 'low', 'acme', '2026-01-01T00:00:00Z'), ('a_tool', 'high', null, null)`);
  server = createServer((req, res) => {
    httpCalls += 1;
    res.writeHead(req.url === '/tools' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(httpBody));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await pool?.query(`drop table if exists ${table}`);
  await pool?.end();
  await new Promise((resolve) => server?.close(resolve));
});

const deps = (extra: Partial<CatalogDeps> = {}): CatalogDeps => ({
  datasources: { main: { kind: 'postgres', url: TEST_DATABASE_URL }, api: { kind: 'http', url: base } },
  sql: () => createPgReadClient(pool),
  ...extra,
});

describe(parseCatalogConfig.name, () => {
  it('refuses configs with coded errors naming the resolver and field', () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'ftp' }, 'source'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource: 'main' }, 'query'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource: 'main', query: 'select id from t where id = any($1)' }, 'query'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'http', datasource: 'api', path: 'tools' }, 'path'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'mcp' }, 'upstream'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'mcp', upstream: 'gh', query: 'x' }, 'query'],
      [{ name: 'c', kind: 'catalog', source: 'mcp', upstream: 'gh' }, 'resourceKind'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'mcp', upstream: 'gh', key: 'resource.id' }, 'key'],
      [{ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'mcp', upstream: 'gh', cache: { ttl: 'soon' } }, 'cache.ttl'],
    ];
    for (const [raw, field] of bad) {
      expect(() => parseCatalogConfig(raw)).toThrow(expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', message: expect.stringContaining(`field \`${field}\``) }));
    }
  });
});

describe(createCatalogSource.name, () => {
  it('lists a Postgres table sorted by id, other columns as attributes (nulls left out)', async () => {
    const sut = createCatalogSource(parseCatalogConfig({ name: 'pg', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource: 'main', query: `select id, risk, tenant, created from ${table}` }), deps());
    expect(sut.resourceKind).toBe('tool');
    expect(await sut.list()).toEqual([
      { id: 'a_tool', attr: { risk: 'high' } },
      { id: 'b_tool', attr: { risk: 'low', tenant: 'acme', created: '2026-01-01T00:00:00.000Z' } },
    ]);
  });

  it('reports a failing query as a coded error without the driver text', async () => {
    const sut = createCatalogSource(parseCatalogConfig({ name: 'pg', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource: 'main', query: 'select id from no_such_table' }), deps());
    await expect(sut.list()).rejects.toMatchObject({ code: 'ERR_RESOLVER_FAILED', message: 'resolver `pg`: listing the catalog failed (SQLSTATE 42P01)' });
  });

  it('lists a REST endpoint (a list or `{items}`), caches for its ttl, and refuses malformed entries', async () => {
    let now = 1000;
    const sut = createCatalogSource(parseCatalogConfig({ name: 'rest', kind: 'catalog', resourceKind: 'tool', source: 'http', datasource: 'api', path: '/tools', cache: { ttl: '30s' } }), deps({ now: () => now }));
    httpBody = { items: [{ id: 'z', attr: { risk: 'low' } }, { id: 'y', risk: 'high' }] };
    const calls = httpCalls;
    expect(await sut.list()).toEqual([{ id: 'y', attr: { risk: 'high' } }, { id: 'z', attr: { risk: 'low' } }]);
    await sut.list();
    expect(httpCalls).toBe(calls + 1);
    now += 31_000;
    httpBody = [{ id: 'x' }, { id: 'x' }];
    await expect(sut.list()).rejects.toMatchObject({ code: 'ERR_RESOLVER_RESULT_INVALID', message: expect.stringContaining('twice') });
    httpBody = [{ name: 'no id' }];
    await expect(sut.list()).rejects.toMatchObject({ code: 'ERR_RESOLVER_RESULT_INVALID' });
    expect(httpCalls).toBe(calls + 3);
  });

  it('refuses an unknown datasource or one of another kind', () => {
    const pgOn = (datasource: string) => () => createCatalogSource(parseCatalogConfig({ name: 'c', kind: 'catalog', resourceKind: 'tool', source: 'postgres', datasource, query: 'select id from t' }), deps());
    expect(pgOn('nope')).toThrow(expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', message: expect.stringContaining('unknown datasource') }));
    expect(pgOn('api')).toThrow(expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', message: expect.stringContaining('`postgres` datasource') }));
  });

  it('turns an MCP tools/list into `<upstream>/<tool>` entries, and times out a listing that hangs', async () => {
    const sut = createCatalogSource(parseCatalogConfig({ name: 'gh', kind: 'catalog', resourceKind: 'mcp_tool', source: 'mcp', upstream: 'github' }), deps({ mcpTools: async () => [{ name: 'search', annotations: { readOnlyHint: true } }, { name: 'close', description: 'closes' }] }));
    expect(await sut.list()).toEqual([
      { id: 'github/close', attr: { server: 'github', name: 'close', description: 'closes' } },
      { id: 'github/search', attr: { server: 'github', name: 'search', annotations: { readOnlyHint: true } } },
    ]);
    const hangs = createCatalogSource(parseCatalogConfig({ name: 'slow', kind: 'catalog', resourceKind: 'mcp_tool', source: 'mcp', upstream: 'github', timeout: '50ms' }), deps({ mcpTools: () => new Promise(() => undefined) }));
    await expect(hangs.list()).rejects.toMatchObject({ code: 'ERR_RESOLVER_TIMEOUT' });
  });
});
