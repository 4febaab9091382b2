/**
 * Every resolver kind against a real upstream, through `POST /v1/check` and the Cerbos API:
 * identities from a real oidc-provider (a JWT verified locally by `jwt`, an opaque token through
 * `oidc-introspection`, a userinfo token through `oidc-userinfo`), resource attributes from a
 * Postgres table and a GraphQL API, principal attributes from a REST API and Redis. The policies
 * decide only on enriched attributes, so each ALLOW/DENY pair proves the attribute came from the
 * upstream; `explain` proves the provenance, the cache and the timings, and never the token.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';
import { sendJson, sleep, startHttpUpstream, startProjectsGraphql, v1Check, writePolicyDir, type HttpUpstream } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const FLAGS_PREFIX = `warden-e2e:${RUN}:flags`;

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.risk == "low" && P.attr.tenant == R.attr.tenant
    - actions: [export]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.tier == "gold"
    - actions: [beta]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.beta == true
    - actions: [describe]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.department == "eng"
`;

const PROJECT_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: project
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
`;

let idp: OidcTestIssuer;
let dataDb: TestDatabase;
let api: HttpUpstream;
let gql: HttpUpstream;
let redis: Redis;
let jwtBroker: TestBroker;
let introspectionBroker: TestBroker;
let userinfoBroker: TestBroker;

const TIERS: Record<string, string> = { alice: 'gold', bob: 'silver', carol: 'gold' };
const PROJECTS: Record<string, { id: string; owner: string }> = { 'p-alice': { id: 'p-alice', owner: 'alice' }, 'p-bob': { id: 'p-bob', owner: 'bob' } };

const jwtFor = (sub: string, tenant: string): Promise<string> => idp.issueJwt({ sub, roles: ['user'], tenant });

beforeAll(async () => {
  idp = await startOidcIssuer();

  dataDb = await createTestDatabase('warden_kinds');
  const c = new pg.Client({ connectionString: dataDb.url });
  await c.connect();
  await c.query('create table tools (id text primary key, risk text not null, tenant text not null)');
  await c.query(`insert into tools values ('search', 'low', 'acme'), ('wire-transfer', 'high', 'acme'), ('globex-search', 'low', 'globex'), ('calc', 'low', 'acme')`);
  await c.end();

  api = await startHttpUpstream((req, res) => {
    const m = /^\/users\/([^/]+)$/.exec(req.url ?? '');
    const tier = m ? TIERS[decodeURIComponent(m[1] as string)] : undefined;
    if (tier === undefined) sendJson(res, 404, { error: 'not found' });
    else sendJson(res, 200, { tier });
  });

  gql = await startProjectsGraphql(PROJECTS, ['owner']);

  redis = new Redis(TEST_REDIS_URL);
  await redis.set(`${FLAGS_PREFIX}:alice`, JSON.stringify({ beta: true }));
  await redis.set(`${FLAGS_PREFIX}:bob`, JSON.stringify({ beta: false }));

  const { dir, policyDir } = writePolicyDir({ 'tool.yaml': TOOL_POLICY, 'project.yaml': PROJECT_POLICY }, 'warden-kinds-');
  const oidcBase = { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true };
  const toolCatalog = {
    name: 'tool-catalog',
    kind: 'postgres',
    datasource: 'catalog',
    key: 'resource.id',
    when: 'R.kind == "tool"',
    query: 'select id as key, risk, tenant from tools where id = any($1)',
    cache: { ttl: '30s' },
    timeout: '2s',
    provides: { 'resource.attr.risk': 'result.risk', 'resource.attr.tenant': 'result.tenant' },
  };
  writeFileSync(
    join(dir, 'jwt.yaml'),
    stringify({
      datasources: {
        idp: { ...oidcBase, audience: idp.jwtAudience },
        catalog: { kind: 'postgres', url: dataDb.url },
        crm: { kind: 'http', url: api.url },
        sessions: { kind: 'redis', url: TEST_REDIS_URL },
        projects: { kind: 'graphql', url: `${gql.url}/graphql` },
      },
      resolvers: [
        {
          name: 'idp-jwt',
          kind: 'jwt',
          datasource: 'idp',
          key: 'subject.token',
          typ: 'at+jwt',
          cache: { ttl: '30s' },
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', 'principal.attr.tenant': 'result.tenant' },
        },
        toolCatalog,
        { name: 'crm-tier', kind: 'http', datasource: 'crm', key: 'principal.id', path: '/users/{key}', cache: { ttl: '30s' }, provides: { 'principal.attr.tier': 'result.tier' } },
        {
          name: 'session-flags',
          kind: 'redis',
          datasource: 'sessions',
          key: 'principal.id',
          keyTemplate: `${FLAGS_PREFIX}:{key}`,
          type: 'json',
          provides: { 'principal.attr.beta': 'result.beta' },
        },
        {
          name: 'project-info',
          kind: 'graphql',
          datasource: 'projects',
          key: 'resource.id',
          when: 'R.kind == "project"',
          query: 'query($keys: [ID!]!) { projects(ids: $keys) { id owner } }',
          resultPath: 'projects',
          provides: { 'resource.attr.owner': 'result.owner' },
        },
      ],
    }),
  );
  writeFileSync(
    join(dir, 'introspection.yaml'),
    stringify({
      datasources: {
        idp: { ...oidcBase, audience: idp.opaqueAudience, clientId: idp.clientId, clientSecret: '${IDP_SECRET}' },
        catalog: { kind: 'postgres', url: dataDb.url },
      },
      resolvers: [
        {
          name: 'idp-introspect',
          kind: 'oidc-introspection',
          datasource: 'idp',
          key: 'subject.token',
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', 'principal.attr.tenant': 'result.tenant' },
        },
        toolCatalog,
      ],
    }),
  );
  writeFileSync(
    join(dir, 'userinfo.yaml'),
    stringify({
      datasources: { idp: oidcBase },
      resolvers: [
        {
          name: 'idp-userinfo',
          kind: 'oidc-userinfo',
          datasource: 'idp',
          key: 'subject.token',
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', 'principal.attr.department': 'result.department' },
        },
      ],
    }),
  );
  [jwtBroker, introspectionBroker, userinfoBroker] = await Promise.all([
    startTestBroker({ cwd: dir, policyDir, env: { WARDEN_CONFIG: 'jwt.yaml' } }),
    startTestBroker({ cwd: dir, policyDir, env: { WARDEN_CONFIG: 'introspection.yaml', IDP_SECRET: idp.clientSecret } }),
    startTestBroker({ cwd: dir, policyDir, env: { WARDEN_CONFIG: 'userinfo.yaml' } }),
  ]);
});

afterAll(async () => {
  await Promise.all([jwtBroker?.close(), introspectionBroker?.close(), userinfoBroker?.close()]);
  if (redis !== undefined) {
    await redis.del(`${FLAGS_PREFIX}:alice`, `${FLAGS_PREFIX}:bob`);
    redis.disconnect();
  }
  await Promise.all([idp?.close(), api?.close(), gql?.close()]);
  await dataDb?.drop();
});

const tool = (id: string, attr?: Record<string, unknown>) => ({ kind: 'tool', id, ...(attr !== undefined ? { attr } : {}) });
const decisions = (a: Awaited<ReturnType<typeof v1Check>>) => a.json.results.map((r) => `${r.resource.id}:${r.decision}`);

describe('jwt + postgres: identity from a real IdP JWT, resource attributes from a table', () => {
  it('allows only the tools whose catalog risk and tenant satisfy the policy for the token tenant', async () => {
    const alice = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('alice', 'acme') }, action: 'invoke', resources: [tool('search'), tool('wire-transfer'), tool('globex-search')] });
    expect(alice.status).toBe(200);
    expect(decisions(alice)).toEqual(['search:ALLOW', 'wire-transfer:DENY', 'globex-search:DENY']);
    expect(alice.json.decision).toBe('DENY');
    expect(alice.json.reasons.map((r) => [r.code, r.resource?.id])).toEqual([
      ['policy_denied', 'wire-transfer'],
      ['policy_denied', 'globex-search'],
    ]);

    // The same request with another tenant in the token flips the tenant-bound decisions.
    const bob = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('bob', 'globex') }, action: 'invoke', resources: [tool('search'), tool('globex-search')] });
    expect(decisions(bob)).toEqual(['search:DENY', 'globex-search:ALLOW']);
  });

  it('overrides attributes the caller states with the catalog values, in both directions', async () => {
    const token = await jwtFor('alice', 'acme');
    const res = await v1Check(jwtBroker.base, {
      subject: { token },
      action: 'invoke',
      resources: [tool('wire-transfer', { risk: 'low', tenant: 'acme' }), tool('search', { risk: 'high', tenant: 'globex' })],
    });
    expect(decisions(res)).toEqual(['wire-transfer:DENY', 'search:ALLOW']);
  });

  it('denies a request whose token the jwt resolver refuses, naming the resolver', async () => {
    const res = await v1Check(jwtBroker.base, { subject: { token: 'not-a-jwt' }, action: 'invoke', resource: tool('search') });
    expect(res.status).toBe(200);
    expect(res.json.decision).toBe('DENY');
    expect(res.json.reasons).toEqual([expect.objectContaining({ code: 'token_invalid', resolver: 'idp-jwt' })]);
  });
});

describe('http, redis and graphql resolvers feed the policy', () => {
  it('http: the CRM tier decides `export`', async () => {
    const alice = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('alice', 'acme') }, action: 'export', resource: tool('search') });
    const bob = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('bob', 'acme') }, action: 'export', resource: tool('search') });
    expect([alice.json.decision, bob.json.decision]).toEqual(['ALLOW', 'DENY']);
    // The tiers came from the CRM API itself (keyed by the ids the JWT resolver produced).
    expect(api.requests).toEqual(expect.arrayContaining(['/users/alice', '/users/bob']));
  });

  it('redis: the session flag decides `beta`, read live on every request', async () => {
    const bobToken = await jwtFor('bob', 'acme');
    const alice = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('alice', 'acme') }, action: 'beta', resource: tool('search') });
    const bob = await v1Check(jwtBroker.base, { subject: { token: bobToken }, action: 'beta', resource: tool('search') });
    expect([alice.json.decision, bob.json.decision]).toEqual(['ALLOW', 'DENY']);
    await redis.set(`${FLAGS_PREFIX}:bob`, JSON.stringify({ beta: true }));
    const bobAgain = await v1Check(jwtBroker.base, { subject: { token: bobToken }, action: 'beta', resource: tool('search') });
    expect(bobAgain.json.decision).toBe('ALLOW');
    await redis.set(`${FLAGS_PREFIX}:bob`, JSON.stringify({ beta: false }));
  });

  it('graphql: the project owner decides `read`', async () => {
    const project = (id: string) => ({ kind: 'project', id });
    const alice = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('alice', 'acme') }, action: 'read', resources: [project('p-alice'), project('p-bob'), project('p-none')] });
    expect(decisions(alice)).toEqual(['p-alice:ALLOW', 'p-bob:DENY', 'p-none:DENY']);
    const bob = await v1Check(jwtBroker.base, { subject: { token: await jwtFor('bob', 'acme') }, action: 'read', resources: [project('p-alice'), project('p-bob')] });
    expect(decisions(bob)).toEqual(['p-alice:DENY', 'p-bob:ALLOW']);
  });
});

describe('explain', () => {
  it('reports provenance, cache hits with their age on a second call, and timings, and never the token', async () => {
    const token = await jwtFor('carol', 'acme');
    const body = { subject: { token }, actions: ['invoke', 'export'], resource: tool('calc'), explain: true };
    const first = await v1Check(jwtBroker.base, body);
    expect(first.json.decision).toBe('ALLOW');
    const e1 = first.json.explain;
    if (e1 === undefined) throw new Error('no explain');
    const a1 = e1.items[0]?.attributes ?? {};
    expect(a1['principal.id']).toMatchObject({ resolver: 'idp-jwt', cache: { hit: false, ageMs: 0, stale: false } });
    expect(a1['principal.attr.tenant']?.resolver).toBe('idp-jwt');
    expect(a1['resource.attr.risk']).toMatchObject({ resolver: 'tool-catalog', cache: { hit: false } });
    expect(a1['resource.attr.tenant']?.resolver).toBe('tool-catalog');
    expect(a1['principal.attr.tier']).toMatchObject({ resolver: 'crm-tier', cache: { hit: false } });
    expect(a1['principal.attr.beta']).toBeUndefined(); // no flags record for carol
    for (const p of Object.values(a1)) expect(p.durationMs).toBeGreaterThanOrEqual(0);
    expect(e1.items[0]?.input).toMatchObject({ principal: { id: 'carol', roles: ['user'], attr: { tenant: 'acme', tier: 'gold' } }, resource: { attr: { risk: 'low', tenant: 'acme' } } });
    expect(e1.resolvers.map((r) => r.resolver).sort()).toEqual(['crm-tier', 'idp-jwt', 'session-flags', 'tool-catalog']);
    const t = e1.timings;
    for (const v of [t.parseMs, t.enrichMs, t.evaluateMs, t.totalMs]) expect(v).toBeGreaterThanOrEqual(0);
    expect(t.totalMs).toBeGreaterThanOrEqual(t.enrichMs);

    await sleep(60);
    const crmCalls = api.requests.filter((p) => p === '/users/carol').length;
    const second = await v1Check(jwtBroker.base, body);
    expect(second.json.decision).toBe('ALLOW');
    const a2 = second.json.explain?.items[0]?.attributes ?? {};
    for (const path of ['principal.id', 'resource.attr.risk', 'principal.attr.tier']) {
      expect(a2[path]?.cache?.hit, path).toBe(true);
      expect(a2[path]?.cache?.stale, path).toBe(false);
      expect(a2[path]?.cache?.ageMs, path).toBeGreaterThanOrEqual(50);
    }
    // Served from the cache: the CRM was not asked again.
    expect(api.requests.filter((p) => p === '/users/carol').length).toBe(crmCalls);

    // SECURITY: neither the token nor any of its parts comes back.
    for (const res of [first, second]) {
      expect(res.text).not.toContain(token);
      for (const part of token.split('.')) expect(res.text).not.toContain(part);
      expect(res.json.explain?.items[0]?.input).not.toHaveProperty('subject');
    }
  });
});

describe('Cerbos API enrichment', () => {
  it('a resource attribute provided by a resolver changes the effect of /api/check/resources', async () => {
    const principal = { id: 'alice', roles: ['user'], attr: { tenant: 'acme' } };
    const entry = (id: string, attr: Record<string, unknown>) => ({ actions: ['invoke'], resource: { kind: 'tool', id, attr } });
    const res = await fetch(`${jwtBroker.base}/api/check/resources`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        principal,
        resources: [
          entry('wire-transfer', { risk: 'low', tenant: 'acme' }), // the catalog says high
          entry('search', { risk: 'high', tenant: 'acme' }), // the catalog says low
          entry('unlisted', { risk: 'low', tenant: 'acme' }), // not in the catalog: the caller's attributes stand
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: Array<{ resource: { id: string }; actions: Record<string, string> }> };
    expect(body.results.map((r) => `${r.resource.id}:${r.actions['invoke']}`)).toEqual(['wire-transfer:EFFECT_DENY', 'search:EFFECT_ALLOW', 'unlisted:EFFECT_ALLOW']);
  });
});

describe('oidc-introspection: an opaque token', () => {
  it('allows with the introspected identity and denies an inactive token as token_invalid', async () => {
    const token = await idp.issueOpaque({ sub: 'alice', roles: ['user'], tenant: 'acme' });
    expect(token.split('.')).toHaveLength(1); // opaque, not a JWT
    const ok = await v1Check(introspectionBroker.base, { subject: { token }, action: 'invoke', resources: [tool('search'), tool('wire-transfer')], explain: true });
    expect(decisions(ok)).toEqual(['search:ALLOW', 'wire-transfer:DENY']);
    expect(ok.json.explain?.items[0]?.attributes['principal.attr.tenant']?.resolver).toBe('idp-introspect');
    expect(ok.text).not.toContain(token);

    const globex = await idp.issueOpaque({ sub: 'bob', roles: ['user'], tenant: 'globex' });
    const other = await v1Check(introspectionBroker.base, { subject: { token: globex }, action: 'invoke', resources: [tool('search'), tool('globex-search')] });
    expect(decisions(other)).toEqual(['search:DENY', 'globex-search:ALLOW']);

    const bad = await v1Check(introspectionBroker.base, { subject: { token: `${token}x` }, action: 'invoke', resource: tool('search') });
    expect(bad.json.decision).toBe('DENY');
    expect(bad.json.reasons).toEqual([expect.objectContaining({ code: 'token_invalid', resolver: 'idp-introspect', message: expect.stringContaining('not active') })]);
  });
});

describe('oidc-userinfo: claims from the userinfo endpoint', () => {
  it('decides on the department the IdP returns for the token', async () => {
    const dave = await idp.issueUserinfoToken('dave', { roles: ['user'], department: 'eng' });
    const erin = await idp.issueUserinfoToken('erin', { roles: ['user'], department: 'sales' });
    const ok = await v1Check(userinfoBroker.base, { subject: { token: dave }, action: 'describe', resource: tool('search'), explain: true });
    expect(ok.json.decision).toBe('ALLOW');
    expect(ok.json.explain?.items[0]?.input).toMatchObject({ principal: { id: 'dave', attr: { department: 'eng' } } });
    expect(ok.json.explain?.items[0]?.attributes['principal.attr.department']?.resolver).toBe('idp-userinfo');
    const no = await v1Check(userinfoBroker.base, { subject: { token: erin }, action: 'describe', resource: tool('search') });
    expect(no.json.decision).toBe('DENY');
    expect(no.json.reasons.map((r) => r.code)).toEqual(['policy_denied']);
    const bad = await v1Check(userinfoBroker.base, { subject: { token: 'garbage-token' }, action: 'describe', resource: tool('search') });
    expect(bad.json.reasons).toEqual([expect.objectContaining({ code: 'token_invalid', resolver: 'idp-userinfo' })]);
  });
});
