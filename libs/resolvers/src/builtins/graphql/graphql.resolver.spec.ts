import { createServer, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from '../../resolver-registry.js';
import type { DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import { createGuardedFetch, GraphQLFetchError } from './graphql-fetch.js';
import { createGraphQLResolverFactory, parseGraphQLResolverConfig } from './graphql.resolver.js';

interface Project {
  id: string;
  owner: string;
  team: string;
}

interface TestServer {
  readonly origin: string;
  readonly port: number;
  /** HTTP requests received, with their headers. */
  readonly requests: IncomingHttpHeaders[];
  /** The `ids` argument of every `projects` / `projectMap` field the GraphQL server ran. */
  readonly lookups: string[][];
  /** Resolves when a request's connection closed before the answer was sent. */
  readonly aborted: Promise<void>;
}

const servers: Server[] = [];

async function listen(handler: RequestListener, requests: IncomingHttpHeaders[] = []): Promise<{ origin: string; port: number; aborted: Promise<void> }> {
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (onAbort = resolve));
  const server = createServer((req, res) => {
    requests.push(req.headers);
    res.on('close', () => {
      if (!res.writableFinished) onAbort();
    });
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, port, aborted };
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

const PROJECTS: Record<string, Project> = Object.fromEntries(
  Array.from({ length: 60 }, (_, i) => [`p${i}`, { id: `p${i}`, owner: `owner-${i}`, team: `team-${i % 3}` }]),
);
PROJECTS['42'] = { id: '42', owner: 'numeric', team: 'n' };

interface YogaOptions {
  /** Milliseconds before the `projects` field answers. */
  readonly delayMs?: number;
}

/** A real GraphQL server (graphql-yoga) over the PROJECTS table. */
async function startGraphQL(options: YogaOptions = {}): Promise<TestServer> {
  const lookups: string[][] = [];
  const requests: IncomingHttpHeaders[] = [];
  const schema = createSchema({
    typeDefs: /* GraphQL */ `
      scalar JSON
      type Project {
        id: ID!
        owner: String
        team: String
        audit: String
      }
      type Query {
        projects(ids: [ID!]!, team: String): [Project]!
        projectMap(ids: [ID!]!): JSON
        failing(ids: [ID!]!): [Project!]!
        whoami: String
      }
      type Mutation {
        deleteProject(id: ID!): Boolean
      }
    `,
    resolvers: {
      Query: {
        projects: async (_: unknown, args: { ids: string[]; team?: string }) => {
          lookups.push(args.ids);
          if (options.delayMs !== undefined) await new Promise((r) => setTimeout(r, options.delayMs).unref());
          return args.ids.map((id) => PROJECTS[id] ?? null).filter((p) => p === null || args.team === undefined || p.team === args.team);
        },
        projectMap: (_: unknown, args: { ids: string[] }) => {
          lookups.push(args.ids);
          return Object.fromEntries(args.ids.filter((id) => PROJECTS[id] !== undefined).map((id) => [id, PROJECTS[id]]));
        },
        failing: (_: unknown, args: { ids: string[] }) => {
          lookups.push(args.ids);
          throw new Error(`database exploded while loading ${args.ids.join(',')}`);
        },
      },
      Project: {
        audit: (p: Project) => {
          if (p.id === 'p2') throw new Error('audit service down for p2');
          return `audited-${p.id}`;
        },
      },
    },
  });
  const yoga = createYoga({ schema, logging: false, maskedErrors: false });
  const { origin, port, aborted } = await listen(yoga, requests);
  return { origin, port, requests, lookups, aborted };
}

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });
const SECRET = 'gq1-s3cr3t-T0KEN-value';
const KEY_SECRET = 'key-value-that-must-not-leak';
const env = { API_TOKEN: SECRET };
const QUERY = 'query Projects($keys: [ID!]!) { projects(ids: $keys) { id owner team } }';
const base = { name: 'projects', kind: 'graphql', datasource: 'api', key: 'resource.attr.projectId', query: QUERY, resultPath: 'projects', provides: { 'resource.attr.owner': 'result.owner' } };

function resolverFor(origin: string, options: Record<string, unknown> = {}, datasource: Partial<DatasourceConfig> = {}) {
  const factory = createGraphQLResolverFactory({ env });
  const config = factory.parseConfig({ ...base, ...options });
  return factory.create(config, { now: Date.now, datasource: { kind: 'graphql', url: `${origin}/graphql`, ...datasource } });
}

async function resolve(origin: string, keys: JsonValue[], options: Record<string, unknown> = {}, datasource: Partial<DatasourceConfig> = {}) {
  return resolverFor(origin, options, datasource).resolveMany(keys, ctx());
}

const messages = (out: ReadonlyArray<unknown>) => (out as ResolverError[]).map((e) => [e.code, e.message]);

describe(createGraphQLResolverFactory.name, () => {
  it('batches 60 resources into one GraphQL request with a de-duplicated 50-key list', async () => {
    const server = await startGraphQL();
    const registry = createResolverRegistry({
      configs: [{ ...base, provides: { 'resource.attr.owner': 'result.owner', 'resource.attr.team': 'result.team' } }],
      factories: { graphql: createGraphQLResolverFactory({ env }) },
      datasources: { api: { kind: 'graphql', url: `${server.origin}/graphql` } },
    });
    const resources = Array.from({ length: 60 }, (_, i) => ({ kind: 'doc', id: `d${i}`, attr: { projectId: `p${i % 50}` } }));
    const out = await enrich(registry, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(out.items.map((i) => i.input.resource?.['attr'])).toEqual(
      resources.map((r) => ({ projectId: r.attr.projectId, owner: PROJECTS[r.attr.projectId]?.owner, team: PROJECTS[r.attr.projectId]?.team })),
    );
    expect(server.requests).toHaveLength(1);
    expect(server.lookups).toEqual([Array.from({ length: 50 }, (_, i) => `p${i}`)]);
    expect(out.runs).toEqual([expect.objectContaining({ resolver: 'projects', calls: 1, keys: 50 })]);
  });

  it('answers keys in order: not-found for missing and null entries, numbers matched as strings', async () => {
    const server = await startGraphQL();
    const out = await resolve(server.origin, ['p1', 'nope', 42, 'p1', 'p3']);
    expect(out).toEqual([PROJECTS['p1'], undefined, PROJECTS['42'], PROJECTS['p1'], PROJECTS['p3']]);
    expect(server.lookups).toEqual([['p1', 'nope', '42', 'p3']]);
  });

  it('splits keys into chunks of maxKeys and sends static variables', async () => {
    const server = await startGraphQL();
    const query = 'query($keys: [ID!]!, $team: String) { projects(ids: $keys, team: $team) { id owner } }';
    const out = await resolve(server.origin, ['p0', 'p1', 'p3', 'p4', 'p6'], { query, maxKeys: 2, variables: { team: 'team-0' } });
    expect(out).toEqual([{ id: 'p0', owner: 'owner-0' }, undefined, { id: 'p3', owner: 'owner-3' }, undefined, { id: 'p6', owner: 'owner-6' }]);
    expect(server.lookups.sort()).toEqual([['p0', 'p1'], ['p3', 'p4'], ['p6']]);
    expect(server.requests).toHaveLength(3);
  });

  it('reads a map-shaped answer (key -> object) and a custom keysVariable', async () => {
    const server = await startGraphQL();
    const query = 'query Map($ids: [ID!]!) { projectMap(ids: $ids) }';
    const out = await resolve(server.origin, ['p5', 'missing', 'p7'], { query, keysVariable: 'ids', resultPath: 'projectMap' });
    expect(out).toEqual([PROJECTS['p5'], undefined, PROJECTS['p7']]);
  });

  it('matches list entries on keyField, reading the result under an alias', async () => {
    const server = await startGraphQL();
    const query = 'query($keys: [ID!]!) { byOwner: projects(ids: $keys) { owner team } whoami }';
    // The server looks the keys up as ids; only the entry whose `owner` equals a requested key matches.
    const out = await resolve(server.origin, ['p1', 'owner-2', 'p2'], { query, resultPath: 'byOwner', keyField: 'owner' });
    expect(out).toEqual([undefined, { owner: 'owner-2', team: 'team-2' }, undefined]);
  });

  it('fails every key with ERR_RESOLVER_FAILED on GraphQL errors without data, quoting no upstream text or key', async () => {
    const server = await startGraphQL();
    const query = 'query Failing($keys: [ID!]!) { failing(ids: $keys) { id } }';
    const out = await resolve(server.origin, ['p1', KEY_SECRET], { query, resultPath: 'failing' });
    expect(messages(out)).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query `Failing`: answered 1 GraphQL error(s) and no data']));
    expect(JSON.stringify(messages(out))).not.toMatch(/exploded|key-value/);
  });

  it('fails only the key an error path points at when the answer is partial', async () => {
    const server = await startGraphQL();
    const query = 'query($keys: [ID!]!) { projects(ids: $keys) { id audit } }';
    const out = await resolve(server.origin, ['p1', 'p2', 'p3'], { query });
    expect(out[0]).toEqual({ id: 'p1', audit: 'audited-p1' });
    expect(messages([out[1]])).toEqual([['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query: answered a GraphQL error for this key']]);
    expect(out[2]).toEqual({ id: 'p3', audit: 'audited-p3' });
  });

  it('fails the whole chunk when an error cannot be pinned to one entry', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { projects: [{ id: 'p1' }, null] }, errors: [{ message: 'p2 vanished', path: ['projects', 1] }] }));
    });
    const out = await resolve(server.origin, ['p1', 'p2']);
    expect(messages(out)).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query `Projects`: answered 1 GraphQL error(s)']));
  });

  it('fails a non-2xx answer with ERR_RESOLVER_FAILED naming the status only', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: 'db password is hunter2' }] }));
    });
    const out = await resolve(server.origin, ['p1', KEY_SECRET]);
    expect(messages(out)).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query `Projects`: answered HTTP 500']));
  });

  it('does not follow redirects', async () => {
    const other = await startGraphQL();
    const server = await listen((_req, res) => {
      res.writeHead(307, { location: `${other.origin}/graphql` });
      res.end();
    });
    const out = await resolve(server.origin, ['p1']);
    expect(messages(out)).toEqual([['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query `Projects`: answered HTTP 307']]);
    expect(other.requests).toHaveLength(0);
  });

  it('fails malformed bodies and wrong shapes with ERR_RESOLVER_RESULT_INVALID', async () => {
    const bodies: Record<string, [string, string]> = {
      '/junk': ['text/plain', 'I am not JSON at all'],
      '/truncated': ['application/json', '{"data": {"projects": ['],
      '/array': ['application/json', '[1, 2]'],
      '/no-path': ['application/json', '{"data": {"other": []}}'],
      '/no-data': ['application/json', '{"data": null}'],
      '/string': ['application/json', '{"data": {"projects": "nope"}}'],
      '/no-id': ['application/json', '{"data": {"projects": [{"owner": "x"}]}}'],
      '/twice': ['application/json', '{"data": {"projects": [{"id": "p1", "owner": "a"}, {"id": "p1", "owner": "b"}, {"id": "p3"}]}}'],
    };
    const server = await listen((req, res) => {
      const [type, body] = bodies[req.url ?? ''] ?? ['text/plain', ''];
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    });
    const at = (path: string, keys: JsonValue[] = ['p1']) => resolve(server.origin, keys, {}, { url: `${server.origin}${path}` });
    const prefix = 'resolver `projects`: graphql query `Projects`: ';
    const invalid = 'answered a body that is not a GraphQL JSON response';
    expect(messages(await at('/junk'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + invalid]]);
    expect(messages(await at('/truncated'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + invalid]]);
    expect(messages(await at('/array'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + invalid]]);
    expect(messages(await at('/no-path'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + 'the answer has no `projects`']]);
    expect(messages(await at('/no-data'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + 'answered no data']]);
    expect(messages(await at('/string'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + 'expected a list or a map at `projects`']]);
    expect(messages(await at('/no-id'))).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + 'an entry at `projects` has no `id`']]);
    const twice = await at('/twice', ['p1', 'p3']);
    expect(messages([twice[0]])).toEqual([['ERR_RESOLVER_RESULT_INVALID', prefix + 'the answer has two entries for one key at `projects`']]);
    expect(twice[1]).toEqual({ id: 'p3' });
  });

  it('refuses an answer over maxResponseBytes', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { projects: [{ id: 'p1', owner: 'x'.repeat(5000) }] } }));
    });
    const out = await resolve(server.origin, ['p1'], { maxResponseBytes: 1000 });
    expect(messages(out)).toEqual([['ERR_RESOLVER_RESULT_INVALID', 'resolver `projects`: graphql query `Projects`: answered more than 1000 bytes']]);
  });

  it('times out a slow server under withTimeout and abandons the request', async () => {
    const server = await startGraphQL({ delayMs: 2_000 });
    const sut = withTimeout(resolverFor(server.origin), 50);
    const t0 = performance.now();
    const out = await sut.resolveMany(['p1', 'p2'], ctx());
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect((out as ResolverError[]).map((e) => e.code)).toEqual(['ERR_RESOLVER_TIMEOUT', 'ERR_RESOLVER_TIMEOUT']);
    await server.aborted;
  });

  it('answers ERR_RESOLVER_ABORTED at once for an aborted signal, sending nothing', async () => {
    const server = await startGraphQL();
    const controller = new AbortController();
    controller.abort();
    const out = await resolverFor(server.origin).resolveMany(['p1'], { requestId: 'r', signal: controller.signal });
    expect((out as ResolverError[]).map((e) => e.code)).toEqual(['ERR_RESOLVER_ABORTED']);
    expect(await resolverFor(server.origin).resolveMany([], ctx())).toEqual([]);
    expect(server.requests).toHaveLength(0);
  });

  it('fails a server that is down (connection refused)', async () => {
    const server = await startGraphQL();
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    const out = await resolve(server.origin, ['p1']);
    expect(messages(out)).toEqual([['ERR_RESOLVER_FAILED', 'resolver `projects`: graphql query `Projects`: request failed (ECONNREFUSED)']]);
  });

  it('fails keys that cannot be sent, without failing their neighbours', async () => {
    const server = await startGraphQL();
    const out = await resolve(server.origin, [{ nested: 1 }, 'p1', 'x'.repeat(2000)]);
    expect(isResolverError(out[0])).toBe(true);
    expect(out[1]).toEqual(PROJECTS['p1']);
    expect((out[2] as ResolverError).message).not.toContain('xxxx');
    expect(server.lookups).toEqual([['p1']]);
  });

  it('sends datasource header secrets and never puts them (or keys) in errors', async () => {
    const requests: IncomingHttpHeaders[] = [];
    const server = await listen((req, res) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: `bad token ${String(req.headers['authorization'])}` }] }));
    }, requests);
    const out = await resolve(server.origin, [KEY_SECRET], {}, { headers: { Authorization: 'Bearer ${API_TOKEN}', 'X-Tenant': 'acme' } });
    expect(requests[0]?.['authorization']).toBe(`Bearer ${SECRET}`);
    expect(requests[0]?.['x-tenant']).toBe('acme');
    expect(requests[0]?.['content-type']).toBe('application/json');
    const err = out[0] as ResolverError;
    expect(err.code).toBe('ERR_RESOLVER_FAILED');
    const seen = JSON.stringify({ message: err.message, stack: err.stack, cause: String(err.cause) });
    expect(seen).not.toContain(SECRET);
    expect(seen).not.toContain(KEY_SECRET);
  });
});

describe('graphql origin allowlist', () => {
  it('the guarded fetch refuses an origin outside the allowlist before connecting', async () => {
    const allowed = await startGraphQL();
    const other = await startGraphQL();
    const guarded = createGuardedFetch({ allowedOrigins: new Set([allowed.origin]), maxResponseBytes: 1024 });
    await expect(guarded(`${other.origin}/graphql`, { method: 'POST' })).rejects.toThrow(GraphQLFetchError);
    await expect(guarded(`http://user:pw@127.0.0.1:${allowed.port}/graphql`)).rejects.toMatchObject({ reason: 'origin' });
    expect(other.requests).toHaveLength(0);
    const ok = await guarded(`${allowed.origin}/graphql?query=${encodeURIComponent('{ whoami }')}`);
    expect(ok.status).toBe(200);
    expect(allowed.requests).toHaveLength(1);
  });

  it('gives resolvers no way to choose the endpoint, and checks the datasource', () => {
    const factory = createGraphQLResolverFactory({ env });
    expect(() => factory.parseConfig({ ...base, url: 'http://169.254.169.254/' })).toThrow('resolver `projects`: field `url`: unknown field');
    expect(() => factory.parseConfig({ ...base, path: '/other' })).toThrow('field `path`: unknown field');
    const build = (datasource: DatasourceConfig) => buildResolverRegistry({ configs: [base], factories: { graphql: factory }, datasources: { api: datasource } }).errors.map((e) => e.message);
    expect(build({ kind: 'graphql', url: 'http://127.0.0.1:1/graphql', allowHosts: ['not a host!'] })[0]).toContain('field `datasource.allowHosts`');
    expect(build({ kind: 'graphql', url: 'http://user:pw@127.0.0.1:1/graphql' })[0]).toContain('field `datasource.url`: credentials in the URL are not allowed');
    expect(build({ kind: 'graphql', url: 'file:///etc/passwd' })[0]).toContain('field `datasource.url`');
    expect(build({ kind: 'http', url: 'http://127.0.0.1:1/graphql' })[0]).toContain('expected a datasource of kind `graphql`, got `http`');
    expect(build({ kind: 'graphql', url: 'http://127.0.0.1:1/graphql', pool: 3 })[0]).toContain('field `datasource.pool`: unknown field');
    const unset = build({ kind: 'graphql', url: 'http://127.0.0.1:1/graphql', headers: { Authorization: 'Bearer ${MISSING_TOKEN}' } });
    expect(unset[0]).toContain('environment variable `MISSING_TOKEN` is not set');
    expect(build({ kind: 'graphql', url: 'http://127.0.0.1:1/graphql', headers: { Authorization: 'Bearer ${API_TOKEN}' } })).toEqual([]);
  });
});

describe(parseGraphQLResolverConfig.name, () => {
  const bad = (extra: Record<string, unknown>) => () => parseGraphQLResolverConfig({ ...base, ...extra });

  it('accepts a valid config with defaults', () => {
    const config = parseGraphQLResolverConfig(base);
    expect(config).toMatchObject({ kind: 'graphql', datasource: 'api', keysVariable: 'keys', keyField: 'id', resultPath: ['projects'], maxKeys: 100, variables: {}, operationName: 'Projects' });
  });

  it('refuses GraphQL syntax errors, naming `query` and the position', () => {
    expect(bad({ query: 'query($keys: [ID!]!) { projects(ids: $keys) { id }' })).toThrow(/^resolver `projects`: field `query`: invalid GraphQL at line 1, column \d+: expected Name, found <EOF>$/);
    expect(bad({ query: '' })).toThrow('field `query`: expected a GraphQL query');
    expect(bad({ query: undefined })).toThrow('field `query`');
  });

  it('refuses mutations, subscriptions, several operations and type definitions', () => {
    expect(bad({ query: 'mutation($keys: [ID!]!) { deleteProject(id: $keys) }' })).toThrow('field `query`: expected a query, not a mutation');
    expect(bad({ query: 'subscription($keys: [ID!]!) { projects(ids: $keys) { id } }' })).toThrow('field `query`: expected a query, not a subscription');
    expect(bad({ query: `${QUERY} query Other { whoami }` })).toThrow('field `query`: expected exactly one operation, found 2');
    expect(bad({ query: 'type Project { id: ID }' })).toThrow('field `query`: expected one query and its fragments only');
    expect(parseGraphQLResolverConfig({ ...base, query: 'query($keys: [ID!]!) { ...F } fragment F on Query { projects(ids: $keys) { id } }' }).query).toContain('fragment F');
  });

  it('requires the keys variable to be declared as a list, and static variables to match the query', () => {
    expect(bad({ query: 'query($ids: [ID!]!) { projects(ids: $ids) { id } }' })).toThrow('field `query`: the query does not declare the keys variable `$keys`');
    expect(bad({ query: 'query($keys: ID!) { projects(ids: [$keys]) { id } }' })).toThrow('field `query`: the keys variable `$keys` must be a list');
    expect(bad({ variables: { team: 'x' } })).toThrow('field `variables.team`: the query does not declare this variable');
    expect(bad({ variables: { keys: ['p1'] } })).toThrow('field `variables.keys`: the keys variable is filled with the keys');
    expect(bad({ query: 'query($keys: [ID!]!, $team: String!) { projects(ids: $keys, team: $team) { id } }' })).toThrow('field `variables`: the query requires `$team`');
    expect(bad({ variables: 'x' })).toThrow('field `variables`: expected a map');
  });

  it('refuses unknown fields and bad resultPath, keyField, maxKeys and datasource', () => {
    expect(bad({ batch: {} })).toThrow('field `batch`: unknown field');
    expect(bad({ resultPath: undefined })).toThrow('field `resultPath`');
    expect(bad({ resultPath: 'a..b' })).toThrow('field `resultPath`');
    expect(bad({ resultPath: 'nothing' })).toThrow('field `resultPath`: the query selects no root field `nothing`');
    expect(bad({ keyField: 'a-b' })).toThrow('field `keyField`');
    expect(bad({ keysVariable: '$keys' })).toThrow('field `keysVariable`');
    expect(bad({ maxKeys: 0 })).toThrow('field `maxKeys`: expected an integer from 1 to 10000');
    expect(bad({ maxResponseBytes: 1.5 })).toThrow('field `maxResponseBytes`');
    expect(bad({ datasource: undefined })).toThrow('field `datasource`');
    expect(bad({ kind: 'http' })).toThrow('field `kind`: expected `graphql`, got `http`');
  });
});
