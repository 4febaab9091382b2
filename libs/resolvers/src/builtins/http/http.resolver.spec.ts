import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { createLruCacheStore } from '../../cache/cache-store.js';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from '../../resolver-registry.js';
import type { DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import { createHttpResolverFactory, parseHttpResolverConfig } from './http.resolver.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface TestServer {
  readonly origin: string;
  readonly port: number;
  readonly seen: Seen[];
  /** Resolves when a request's connection closed before the answer was sent. */
  readonly aborted: Promise<void>;
}

type Handler = (req: Seen, res: ServerResponse) => void;

const servers: Array<ReturnType<typeof createServer>> = [];

async function startServer(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (onAbort = resolve));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(s);
      res.on('close', () => {
        if (!res.writableFinished) onAbort();
      });
      handler(s, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, port, seen, aborted };
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });
const SECRET = 's3cr3t-T0KEN-value';
const env = { CRM_TOKEN: SECRET };

function resolverFor(server: TestServer, options: Record<string, unknown>, datasource: Partial<DatasourceConfig> = {}) {
  const factory = createHttpResolverFactory({ env });
  const config = factory.parseConfig({ name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', provides: { 'principal.attr.tier': 'result.tier' }, ...options });
  return factory.create(config, { now: Date.now, datasource: { kind: 'http', url: server.origin, ...datasource } });
}

async function resolve(server: TestServer, options: Record<string, unknown>, keys: JsonValue[], datasource: Partial<DatasourceConfig> = {}) {
  return resolverFor(server, options, datasource).resolveMany(keys, ctx());
}

const usersApi: Handler = (req, res) => {
  const m = /^\/users\/([^/?]+)$/.exec(req.url);
  if (m?.[1] === 'alice') return json(res, 200, { tier: 'gold' });
  if (m?.[1] === 'bob') return json(res, 200, { tier: 'silver' });
  json(res, 404, { error: 'not found' });
};

describe(createHttpResolverFactory.name, () => {
  it('answers one key with a GET of the path template under the datasource URL', async () => {
    const server = await startServer(usersApi);
    const out = await resolve(server, { path: '/users/{key}' }, ['alice']);
    expect(out).toEqual([{ tier: 'gold' }]);
    expect(server.seen).toEqual([expect.objectContaining({ method: 'GET', url: '/users/alice' })]);
    expect(server.seen[0]?.headers['accept']).toBe('application/json');
  });

  it('keeps the datasource URL path prefix and reads the result at resultPath', async () => {
    const server = await startServer((req, res) => json(res, 200, { data: { tier: req.url } }));
    const out = await resolve(server, { path: '/users/{key}?full=1', resultPath: 'data' }, ['al ice/x'], { url: `${server.origin}/api/v2/` });
    expect(out).toEqual([{ tier: '/api/v2/users/al%20ice%2Fx?full=1' }]);
  });

  it('answers several keys in order, with not-found (404 or null) as undefined', async () => {
    const server = await startServer((req, res) => (req.url === '/users/nobody' ? json(res, 200, null) : usersApi(req, res)));
    const out = await resolve(server, { path: '/users/{key}' }, ['bob', 'carol', 'alice', 'nobody']);
    expect(out).toEqual([{ tier: 'silver' }, undefined, { tier: 'gold' }, undefined]);
  });

  it('sends a single-key POST with the key in the body template', async () => {
    const server = await startServer((req, res) => json(res, 200, { tier: JSON.parse(req.body) as unknown }));
    const out = await resolve(server, { method: 'POST', path: '/lookup', bodyTemplate: { user: { id: '{key}' }, kind: 'user' } }, [42]);
    expect(out).toEqual([{ tier: { user: { id: 42 }, kind: 'user' } }]);
    expect(server.seen[0]?.headers['content-type']).toBe('application/json');
  });

  it('answers a batch of keys with one POST, matching list entries on keyField', async () => {
    const server = await startServer((req, res) => {
      const { ids } = JSON.parse(req.body) as { ids: string[] };
      json(res, 200, { users: ids.filter((id) => id !== 'carol').map((id) => ({ id, tier: `t-${id}` })) });
    });
    const out = await resolve(server, { batch: { path: '/users/lookup', bodyTemplate: { ids: '{keys}' }, resultPath: 'users', keyField: 'id' } }, ['alice', 'bob', 'alice', 'carol']);
    expect(out).toEqual([{ id: 'alice', tier: 't-alice' }, { id: 'bob', tier: 't-bob' }, { id: 'alice', tier: 't-alice' }, undefined]);
    expect(server.seen).toHaveLength(1);
    expect(server.seen[0]?.method).toBe('POST');
    expect(JSON.parse(server.seen[0]?.body ?? '')).toEqual({ ids: ['alice', 'bob', 'carol'] });
  });

  it('accepts a batch answer that maps key to result, and splits batches over maxKeys', async () => {
    const server = await startServer((req, res) => {
      const keys = JSON.parse(req.body) as number[];
      json(res, 200, Object.fromEntries(keys.map((k) => [String(k), { tier: k * 10 }])));
    });
    const out = await resolve(server, { batch: { path: '/bulk', maxKeys: 2 } }, [1, 2, 3]);
    expect(out).toEqual([{ tier: 10 }, { tier: 20 }, { tier: 30 }]);
    expect(server.seen.map((s) => JSON.parse(s.body) as unknown)).toEqual([[1, 2], [3]]);
  });

  it('fails a 500 with ERR_RESOLVER_FAILED naming the resolver and status, never the body', async () => {
    const server = await startServer((_req, res) => json(res, 500, { error: 'db password is hunter2' }));
    const [err] = (await resolve(server, { path: '/users/{key}' }, ['alice'])) as [ResolverError];
    expect(isResolverError(err)).toBe(true);
    expect(err.code).toBe('ERR_RESOLVER_FAILED');
    expect(err.resolver).toBe('crm');
    expect(err.message).toBe('resolver `crm`: GET /users/{key}: answered HTTP 500');
  });

  it('does not follow redirects (they could leave the allowed hosts)', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' });
      res.end();
    });
    const [err] = (await resolve(server, { path: '/users/{key}' }, ['alice'])) as [ResolverError];
    expect(err.code).toBe('ERR_RESOLVER_FAILED');
    expect(err.message).toContain('HTTP 302');
    expect(server.seen).toHaveLength(1);
  });

  it('fails a batch endpoint 404 instead of reading it as not-found', async () => {
    const server = await startServer((_req, res) => json(res, 404, {}));
    const out = (await resolve(server, { batch: { path: '/bulk' } }, ['a', 'b'])) as ResolverError[];
    expect(out.map((e) => e.code)).toEqual(['ERR_RESOLVER_FAILED', 'ERR_RESOLVER_FAILED']);
  });

  it('fails malformed JSON and wrong shapes with ERR_RESOLVER_RESULT_INVALID', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/bad-json/a') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"tier": "gold"');
      }
      if (req.url === '/not-utf8/a') {
        res.writeHead(200);
        return res.end(Buffer.from([0x22, 0xff, 0xfe, 0x22]));
      }
      if (req.url === '/bulk-string') return json(res, 200, 'nope');
      if (req.url === '/bulk-no-key') return json(res, 200, [{ tier: 'gold' }]);
      json(res, 200, { other: 1 });
    });
    const codeOf = async (options: Record<string, unknown>) => ((await resolve(server, options, ['a'])) as ResolverError[]).map((e) => [e.code, e.message]);
    expect(await codeOf({ path: '/bad-json/{key}' })).toEqual([['ERR_RESOLVER_RESULT_INVALID', 'resolver `crm`: GET /bad-json/{key}: answered malformed JSON']]);
    expect((await codeOf({ path: '/not-utf8/{key}' }))[0]?.[0]).toBe('ERR_RESOLVER_RESULT_INVALID');
    expect(await codeOf({ path: '/shape/{key}', resultPath: 'data.user' })).toEqual([['ERR_RESOLVER_RESULT_INVALID', 'resolver `crm`: GET /shape/{key}: the answer has no `data.user`']]);
    expect((await codeOf({ batch: { path: '/bulk-string' } }))[0]?.[0]).toBe('ERR_RESOLVER_RESULT_INVALID');
    expect((await codeOf({ batch: { path: '/bulk-no-key' } }))[0]).toEqual(['ERR_RESOLVER_RESULT_INVALID', 'resolver `crm`: POST /bulk-no-key: an entry of the answer has no `key`']);
  });

  it('refuses an answer over maxResponseBytes, declared or streamed', async () => {
    const big = `"${'x'.repeat(2 * 1024 * 1024)}"`;
    const server = await startServer((req, res) => {
      if (req.url === '/declared/a') {
        res.writeHead(200, { 'content-length': String(Buffer.byteLength(big)) });
        return res.end(big);
      }
      res.writeHead(200); // chunked, no length: counted while read
      res.write(big.slice(0, 600_000));
      res.end(big.slice(600_000));
    });
    for (const path of ['/declared/{key}', '/streamed/{key}']) {
      const [err] = (await resolve(server, { path }, ['a'])) as [ResolverError];
      expect(err.code).toBe('ERR_RESOLVER_RESULT_INVALID');
      expect(err.message).toContain('answered more than 1048576 bytes');
    }
    const [small] = (await resolve(server, { path: '/streamed/{key}', maxResponseBytes: 10 }, ['a'])) as [ResolverError];
    expect(small.message).toContain('more than 10 bytes');
  });

  it('times out a slow server under withTimeout and aborts the request', async () => {
    const server = await startServer((_req, res) => {
      setTimeout(() => json(res, 200, { tier: 'late' }), 2_000).unref();
    });
    const sut = withTimeout(resolverFor(server, { path: '/users/{key}' }), 50);
    const t0 = performance.now();
    const [err] = (await sut.resolveMany(['alice'], ctx())) as [ResolverError];
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(err.code).toBe('ERR_RESOLVER_TIMEOUT');
    await server.aborted; // the upstream request was abandoned, not left running
  });

  it('fails a connection refused without quoting the error text', async () => {
    const server = await startServer(usersApi);
    servers.splice(0).forEach((s) => {
      s.closeAllConnections();
      s.close();
    });
    await new Promise((r) => setTimeout(r, 20));
    const [err] = (await resolve(server, { path: '/users/{key}' }, ['alice'])) as [ResolverError];
    expect(err.code).toBe('ERR_RESOLVER_FAILED');
    expect(err.message).toMatch(/^resolver `crm`: GET \/users\/\{key\}: request failed/);
  });

  it('injects header secrets from the env map and never puts them in errors', async () => {
    const server = await startServer((req, res) => json(res, 500, { echo: req.headers }));
    const out = (await resolve(server, { path: '/users/{key}' }, ['alice'], { headers: { Authorization: 'Bearer ${CRM_TOKEN}', 'X-Tenant': 'acme' } })) as ResolverError[];
    expect(server.seen[0]?.headers['authorization']).toBe(`Bearer ${SECRET}`);
    expect(server.seen[0]?.headers['x-tenant']).toBe('acme');
    expect(JSON.stringify(out.map((e) => ({ message: e.message, code: e.code, cause: String(e.cause) })))).not.toContain(SECRET);
    expect(out[0]?.message).not.toContain(SECRET);
  });

  it('refuses a datasource whose placeholder variable is unset, naming the variable only', () => {
    const factory = createHttpResolverFactory({ env: { OTHER: SECRET } });
    const config = factory.parseConfig({ name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', path: '/u/{key}', provides: { 'principal.attr.t': 'result' } });
    const create = () => factory.create(config, { now: Date.now, datasource: { kind: 'http', url: 'http://127.0.0.1:1', headers: { Authorization: 'Bearer ${CRM_TOKEN}' } } });
    expect(create).toThrow('resolver `crm`: field `datasource.headers.Authorization`: environment variable `CRM_TOKEN` is not set');
    const lf = () => createHttpResolverFactory({ env: { CRM_TOKEN: `${SECRET}\r\nX-Evil: 1` } }).create(config, { now: Date.now, datasource: { kind: 'http', url: 'http://127.0.0.1:1', headers: { Authorization: 'Bearer ${CRM_TOKEN}' } } });
    expect(lf).toThrow('contains a line break');
    expect(lf).not.toThrow(SECRET);
  });

  it('keeps keys inside their path segment: encoded, with `.` and `..` refused', async () => {
    const server = await startServer((req, res) => json(res, 200, { tier: req.url }));
    const keys = ['../admin', '..', '.', '', '//evil.example', '@evil.example', 'http://evil.example/', 'a?b#c', { nested: 1 }];
    const out = await resolve(server, { path: '/users/{key}' }, keys);
    expect(out.slice(0, 1)).toEqual([{ tier: '/users/..%2Fadmin' }]);
    expect((out.slice(1, 4) as ResolverError[]).map((e) => e.message)).toEqual(Array(3).fill('resolver `crm`: GET /users/{key}: the key is not usable in a URL'));
    expect(out.slice(4, 8)).toEqual([{ tier: '/users/%2F%2Fevil.example' }, { tier: '/users/%40evil.example' }, { tier: '/users/http%3A%2F%2Fevil.example%2F' }, { tier: '/users/a%3Fb%23c' }]);
    expect(isResolverError(out[8])).toBe(true);
    expect(server.seen.every((s) => s.url.startsWith('/users/') && s.headers.host === `127.0.0.1:${server.port}`)).toBe(true);
  });

  it('reaches another host only when the datasource allows it', async () => {
    const main = await startServer(usersApi);
    const other = await startServer((_req, res) => json(res, 200, { tier: 'other' }));
    const factory = createHttpResolverFactory({ env });
    const raw = { name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', path: `${other.origin}/users/{key}`, provides: { 'principal.attr.t': 'result.tier' } };
    const refused = buildResolverRegistry({ configs: [raw], factories: { http: factory }, datasources: { crm: { kind: 'http', url: main.origin } } });
    expect(refused.errors.map((e) => [e.code, e.message])).toEqual([
      ['ERR_RESOLVER_CONFIG_INVALID', 'resolver `crm`: cannot create: resolver `crm`: field `path`: the URL is not on the datasource or its `allowHosts`'],
    ]);
    const allowed = createResolverRegistry({ configs: [raw], factories: { http: factory }, datasources: { crm: { kind: 'http', url: main.origin, allowHosts: [`127.0.0.1:${other.port}`] } } });
    const out = await enrich(allowed, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [] });
    expect(out.items[0]?.input.principal?.['attr']).toEqual({ t: 'other' });
    expect(main.seen).toHaveLength(0);
  });

  it('refuses bad configs before anything is built, naming the resolver and field', () => {
    const base = { name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', provides: { 'principal.attr.t': 'result' } };
    const bad = (extra: Record<string, unknown>) => () => parseHttpResolverConfig({ ...base, ...extra });
    expect(bad({ path: '/u/{key}', verb: 'GET' })).toThrow('field `verb`: unknown field');
    expect(bad({ path: 'http://{key}.evil.example/u' })).toThrow('field `path`: placeholders and credentials are not allowed before the path');
    expect(bad({ path: 'http://user@127.0.0.1/u/{key}' })).toThrow('field `path`');
    expect(bad({ path: '//evil.example/{key}' })).toThrow('field `path`');
    expect(bad({ path: 'file:///etc/passwd' })).toThrow('field `path`');
    expect(bad({ path: '/u/{id}' })).toThrow('field `path`: only `{key}` placeholders are allowed');
    expect(bad({ path: '/u/{key}', method: 'DELETE' })).toThrow('field `method`');
    expect(bad({ path: '/u/{key}', bodyTemplate: {} })).toThrow('field `bodyTemplate`: only with `method: POST`');
    expect(bad({ batch: { path: '/b' }, path: '/u' })).toThrow('field `path`: not allowed with `batch`');
    expect(bad({ batch: { path: '/b', bodyTemplate: { ids: [] } } })).toThrow('field `batch.bodyTemplate`');
    expect(bad({ batch: { path: '/b/{key}' } })).toThrow('field `batch.path`');
    expect(bad({ path: '/u/{key}', resultPath: 'a..b' })).toThrow('field `resultPath`');
    expect(() => parseHttpResolverConfig({ ...base, datasource: undefined, path: '/u/{key}' })).toThrow('field `datasource`');
    const wrongKind = buildResolverRegistry({ configs: [{ ...base, path: '/u/{key}' }], factories: { http: createHttpResolverFactory() }, datasources: { crm: { kind: 'postgres', url: 'x' } } });
    expect(wrongKind.errors[0]?.message).toContain('expected a datasource of kind `http`, got `postgres`');
    const ftp = buildResolverRegistry({ configs: [{ ...base, path: '/u/{key}' }], factories: { http: createHttpResolverFactory() }, datasources: { crm: { kind: 'http', url: 'ftp://127.0.0.1' } } });
    expect(ftp.errors[0]?.message).toContain('field `datasource.url`');
  });
});

describe('http resolvers in enrich', () => {
  const resources = ['p1', 'p2', 'p1', 'p3', 'p2'].map((id, i) => ({ kind: 'doc', id: `d${i}`, attr: { projectId: id } }));

  it('batches every resource of a request into one de-duplicated request', async () => {
    const server = await startServer((req, res) => {
      const ids = JSON.parse(req.body) as string[];
      json(res, 200, { projects: ids.map((id) => ({ id, owner: `team-${id}` })) });
    });
    const registry = createResolverRegistry({
      configs: [{ name: 'projects', kind: 'http', datasource: 'api', key: 'resource.attr.projectId', batch: { path: '/projects/lookup', resultPath: 'projects', keyField: 'id' }, provides: { 'resource.attr.owner': 'result.owner' } }],
      factories: { http: createHttpResolverFactory() },
      datasources: { api: { kind: 'http', url: server.origin } },
    });
    const out = await enrich(registry, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(out.items.map((i) => i.input.resource?.['attr'])).toEqual(resources.map((r) => ({ ...r.attr, owner: `team-${r.attr.projectId}` })));
    expect(server.seen).toHaveLength(1);
    expect(JSON.parse(server.seen[0]?.body ?? '')).toEqual(['p1', 'p2', 'p3']);
    expect(out.runs).toEqual([expect.objectContaining({ resolver: 'projects', calls: 1, keys: 3 })]);
  });

  it('remembers a 404 with negativeTtl (not-found is negative-cacheable)', async () => {
    const server = await startServer(usersApi);
    const registry = createResolverRegistry({
      configs: [{ name: 'crm', kind: 'http', datasource: 'crm', key: 'principal.id', path: '/users/{key}', cache: { ttl: '30s', negativeTtl: '30s' }, provides: { 'principal.attr.tier': 'result.tier' } }],
      factories: { http: createHttpResolverFactory() },
      datasources: { crm: { kind: 'http', url: server.origin } },
      cacheStore: createLruCacheStore(),
    });
    for (let i = 0; i < 2; i++) {
      const out = await enrich(registry, { requestId: `r${i}`, principal: { id: 'zoe', attr: {} }, resources: [] });
      expect(out.items[0]?.input.principal?.['attr']).toEqual({});
      expect(out.items[0]?.denials).toEqual([]);
      expect(out.items[0]?.failures).toEqual([]);
    }
    expect(server.seen).toHaveLength(1);
  });

  it('never lets a failing upstream through: deny adds a denial, omit leaves the attribute missing', async () => {
    const server = await startServer((req, res) => {
      if (req.url.startsWith('/slow/')) return void setTimeout(() => json(res, 200, { tier: 'gold' }), 2_000).unref();
      if (req.url.startsWith('/bad/')) return void res.end('<html>');
      json(res, 500, { headers: req.headers });
    });
    const resolver = (name: string, path: string, onError: 'deny' | 'omit') => ({
      name,
      kind: 'http',
      datasource: 'crm',
      key: 'principal.id',
      path,
      timeout: '50ms',
      onError,
      provides: { [`principal.attr.${name.replace(/-/g, '_')}`]: 'result.tier' },
    });
    const registry = createResolverRegistry({
      configs: [
        resolver('err-deny', '/err/{key}', 'deny'),
        resolver('slow-deny', '/slow/{key}', 'deny'),
        resolver('bad-deny', '/bad/{key}', 'deny'),
        resolver('err-omit', '/err/{key}', 'omit'),
        resolver('slow-omit', '/slow/{key}', 'omit'),
      ],
      factories: { http: createHttpResolverFactory({ env }) },
      datasources: { crm: { kind: 'http', url: server.origin, headers: { authorization: 'Bearer ${CRM_TOKEN}' } } },
    });
    const out = await enrich(registry, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [{ kind: 'doc', id: 'd1', attr: {} }] });
    const item = out.items[0];
    expect(item?.input.principal?.['attr']).toEqual({});
    const byResolver = (a: { resolver: string }, b: { resolver: string }) => a.resolver.localeCompare(b.resolver);
    expect([...(item?.denials ?? [])].sort(byResolver)).toEqual([
      { code: 'resolver_failed', resolver: 'bad-deny', message: 'resolver `bad-deny` returned malformed data' },
      { code: 'resolver_failed', resolver: 'err-deny', message: 'resolver `err-deny` failed' },
      { code: 'resolver_failed', resolver: 'slow-deny', message: 'resolver `slow-deny` timed out' },
    ]);
    expect(item?.failures.map((f) => [f.resolver, f.code, f.onError]).sort()).toEqual(
      [
        ['bad-deny', 'ERR_RESOLVER_RESULT_INVALID', 'deny'],
        ['err-deny', 'ERR_RESOLVER_FAILED', 'deny'],
        ['err-omit', 'ERR_RESOLVER_FAILED', 'omit'],
        ['slow-deny', 'ERR_RESOLVER_TIMEOUT', 'deny'],
        ['slow-omit', 'ERR_RESOLVER_TIMEOUT', 'omit'],
      ].sort(),
    );
    expect(JSON.stringify(out)).not.toContain(SECRET);
    expect(server.seen.every((s) => s.headers['authorization'] === `Bearer ${SECRET}`)).toBe(true);
  });
});
