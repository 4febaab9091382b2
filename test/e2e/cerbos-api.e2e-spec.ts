/**
 * Boots the real broker (Nest on Fastify, 127.0.0.1:0) over a small temporary policy directory
 * and talks Cerbos's HTTP API to it with fetch: decisions, the response shape, and every class
 * of bad input answered 400 `{code: 3, message}` and never an ALLOW.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { startTestBroker, type TestBroker } from '../support/broker.js';

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: ["invoke", "describe"]
      effect: EFFECT_ALLOW
      roles: ["user"]
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
`;

let broker: TestBroker | undefined;
let base: string;
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

async function post(body: unknown, init: { raw?: string | Uint8Array; contentType?: string } = {}) {
  const res = await fetch(`${base}/api/check/resources`, {
    method: 'POST',
    headers: { 'content-type': init.contentType ?? 'application/json' },
    body: typeof init.raw === 'object' ? new Uint8Array(init.raw) : (init.raw ?? JSON.stringify(body)),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

const principal = { id: 'alice', roles: ['user'], attr: { department: 'eng' } };
const tool = (id = 'search', actions = ['invoke']) => ({ actions, resource: { kind: 'tool', id, attr: { owner: 'alice' } } });

async function token(claims: Record<string, unknown>, expiresIn = '5m') {
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuedAt().setExpirationTime(expiresIn).sign(privateKey);
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-e2e-'));
  mkdirSync(join(dir, 'policies', 'resource_policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'resource_policies', 'tool.yaml'), TOOL_POLICY);
  const keys = await generateKeyPair('ES256', { extractable: true });
  privateKey = keys.privateKey;
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  writeFileSync(
    join(dir, 'warden.yaml'),
    `server:
  requestLimits: { maxResourcesPerRequest: 5, maxActionsPerResource: 5 }
auxData:
  jwt:
    keySets:
      - id: test
        local: { file: jwks.json }
`,
  );
  ({ base } = broker = await startTestBroker({ cwd: dir, policyDir: join(dir, 'policies') }));
});

afterAll(async () => {
  await broker?.close();
});

describe('Cerbos API: decisions', () => {
  it('allows a user to invoke a tool', async () => {
    const res = await post({ requestId: 'r1', principal, resources: [tool()] });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      requestId: 'r1',
      results: [{ resource: { id: 'search', kind: 'tool' }, actions: { invoke: 'EFFECT_ALLOW' } }],
    });
    expect(typeof res.json['cerbosCallId']).toBe('string');
    expect(res.json['cerbosCallId']).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('denies an action no rule allows, and a kind with no policy', async () => {
    const res = await post({ principal, resources: [tool('search', ['delete']), { actions: ['invoke'], resource: { kind: 'model', id: 'm' } }] });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      results: [
        { resource: { id: 'search', kind: 'tool' }, actions: { delete: 'EFFECT_DENY' } },
        { resource: { id: 'm', kind: 'model' }, actions: { invoke: 'EFFECT_DENY' } },
      ],
      cerbosCallId: expect.any(String),
    });
  });

  it('echoes policyVersion and scope and adds meta with includeMeta', async () => {
    const res = await post({
      includeMeta: true,
      principal: { id: 'bob', roles: ['admin'] },
      resources: [{ actions: ['invoke', 'delete'], resource: { kind: 'tool', id: 't', policyVersion: 'default' } }],
    });
    expect(res.status).toBe(200);
    const result = (res.json['results'] as Record<string, unknown>[])[0];
    expect(result).toMatchObject({
      resource: { id: 't', kind: 'tool', policyVersion: 'default' },
      actions: { invoke: 'EFFECT_ALLOW', delete: 'EFFECT_ALLOW' },
      meta: { actions: { invoke: { matchedPolicy: 'resource.tool.vdefault' }, delete: { matchedPolicy: 'resource.tool.vdefault' } } },
    });
  });

  it('accepts snake_case field names and any content type, as Cerbos does', async () => {
    const res = await post({ request_id: 'x', principal, resources: [tool()] }, { contentType: 'text/plain' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ requestId: 'x', results: [{ actions: { invoke: 'EFFECT_ALLOW' } }] });
  });

  it('verifies auxData.jwt against the configured key set', async () => {
    const ok = await post({ principal, resources: [tool()], auxData: { jwt: { token: await token({ sub: 'alice' }), keySetId: 'test' } } });
    expect(ok.status).toBe(200);
    const implicit = await post({ principal, resources: [tool()], auxData: { jwt: { token: await token({ sub: 'alice' }) } } });
    expect(implicit.status).toBe(200);
  });
});

describe('Cerbos API: other routes', () => {
  it('reports health like Cerbos', async () => {
    const res = await fetch(`${base}/_cerbos/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'SERVING' });
  });

  it('reports server info like Cerbos', async () => {
    const res = await fetch(`${base}/api/server_info`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ version: expect.any(String), commit: expect.any(String), buildDate: expect.any(String) });
  });

  it('answers a known route called with another method 501 Method Not Allowed, as Cerbos does', async () => {
    for (const [method, url] of [
      ['GET', '/api/check/resources'],
      ['PUT', '/api/check'],
      ['DELETE', '/api/check_resource_batch'],
      ['POST', '/api/server_info'],
      ['POST', '/_cerbos/health'],
    ] as const) {
      const res = await fetch(`${base}${url}`, { method });
      expect(res.status, `${method} ${url}`).toBe(501);
      expect(await res.json()).toEqual({ code: 12, message: 'Method Not Allowed' });
    }
  });

  it('answers unknown routes with the Cerbos error shape', async () => {
    const res = await fetch(`${base}/api/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ code: 5, message: 'Not Found' });
  });
});

describe('Cerbos API: bad input is a 400 and never an ALLOW', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const cases: [string, unknown, { raw?: string | Uint8Array; message?: string | RegExp }][] = [
    ['missing principal', { resources: [tool()] }, { message: 'validation error: principal: value is required' }],
    ['null principal', { principal: null, resources: [tool()] }, { message: 'validation error: principal: value is required' }],
    ['missing resources', { principal }, { message: 'validation error: resources: value is required' }],
    ['empty resources', { principal, resources: [] }, { message: 'validation error: resources: value is required' }],
    ['empty actions', { principal, resources: [tool('a', [])] }, { message: 'validation error: resources[0].actions: value is required' }],
    ['missing actions', { principal, resources: [{ resource: { kind: 'tool', id: 'a' } }] }, { message: 'validation error: resources[0].actions: value is required' }],
    ['empty action name', { principal, resources: [tool('a', [''])] }, { message: 'validation error: resources[0].actions[0]: must be at least 1 characters' }],
    ['duplicate actions', { principal, resources: [tool('a', ['invoke', 'invoke'])] }, { message: 'validation error: resources[0].actions: repeated value must contain unique items' }],
    ['empty resource id', { principal, resources: [{ actions: ['invoke'], resource: { kind: 'tool', id: '' } }] }, { message: 'validation error: resources[0].resource.id: value is required' }],
    ['empty resource kind', { principal, resources: [{ actions: ['invoke'], resource: { kind: '', id: 'a' } }] }, { message: 'validation error: resources[0].resource.kind: value is required' }],
    ['missing resource', { principal, resources: [{ actions: ['invoke'] }] }, { message: 'validation error: resources[0].resource: value is required' }],
    ['empty principal id', { principal: { id: '', roles: ['user'] }, resources: [tool()] }, { message: 'validation error: principal.id: value is required' }],
    ['no roles', { principal: { id: 'a', roles: [] }, resources: [tool()] }, { message: 'validation error: principal.roles: value is required' }],
    ['empty role name', { principal: { id: 'a', roles: [''] }, resources: [tool()] }, { message: 'validation error: principal.roles[0]: must be at least 1 characters' }],
    ['duplicate roles', { principal: { id: 'a', roles: ['user', 'user'] }, resources: [tool()] }, { message: 'validation error: principal.roles: repeated value must contain unique items' }],
    ['bad policy version', { principal: { id: 'a', roles: ['user'], policyVersion: 'a b' }, resources: [tool()] }, { message: /^validation error: principal\.policy_version: does not match regex pattern/ }],
    ['bad scope', { principal, resources: [{ actions: ['invoke'], resource: { kind: 'tool', id: 'a', scope: 'a..b' } }] }, { message: /^validation error: resources\[0\]\.resource\.scope: does not match regex pattern/ }],
    ['empty attribute name', { principal: { ...principal, attr: { '': 1 } }, resources: [tool()] }, { message: 'validation error: principal.attr[""]: must be at least 1 characters' }],
    ['several violations', {}, { message: 'validation errors:\n - principal: value is required\n - resources: value is required' }],
    ['wrong type for id', { principal: { id: 5, roles: ['user'] }, resources: [tool()] }, { message: /invalid value for string field id/ }],
    ['wrong type for roles', { principal: { id: 'a', roles: 'user' }, resources: [tool()] }, { message: /invalid value/ }],
    ['wrong type for action', { principal, resources: [tool('a', [1 as unknown as string])] }, { message: /invalid value for string field actions/ }],
    ['wrong type for includeMeta', { includeMeta: 'yes', principal, resources: [tool()] }, { message: /invalid value for bool field includeMeta/ }],
    ['attr is an array', { principal: { ...principal, attr: [1] }, resources: [tool()] }, { message: /invalid value/ }],
    ['unknown top-level field', { principal, resources: [tool()], admin: true }, { message: 'proto: unknown field "admin"' }],
    ['unknown principal field', { principal: { ...principal, isAdmin: true }, resources: [tool()] }, { message: 'proto: unknown field "isAdmin"' }],
    ['unknown resource field', { principal, resources: [{ actions: ['invoke'], resource: { kind: 'tool', id: 'a', owner: 'x' } }] }, { message: 'proto: unknown field "owner"' }],
    ['too many resources', { principal, resources: [1, 2, 3, 4, 5, 6].map((i) => tool(`t${i}`)) }, { message: 'number of resources in batch (6) exceeds configured limit (5)' }],
    ['too many actions', { principal, resources: [tool('a', ['invoke', 'b', 'c', 'd', 'e', 'f'])] }, { message: 'number of actions (6) exceeds configured limit (5)' }],
    ['invalid JWT', { principal, resources: [tool()], auxData: { jwt: { token: 'abc' } } }, { message: 'invalid auxData' }],
    ['unknown key set', { principal, resources: [tool()], auxData: { jwt: { token: 'abc', keySetId: 'nope' } } }, { message: 'invalid auxData' }],
    ['empty JWT', { principal, resources: [tool()], auxData: { jwt: { token: '' } } }, { message: 'validation error: aux_data.jwt.token: value is required' }],
    ['JSON syntax error', undefined, { raw: '{"principal":', message: /^proto: syntax error/ }],
    ['a JSON array', undefined, { raw: '[]', message: /syntax error/ }],
    ['JSON null', undefined, { raw: 'null', message: /syntax error/ }],
    ['a non-finite number', undefined, { raw: `{"principal":{"id":"a","roles":["user"],"attr":{"n":1e400}},"resources":[${JSON.stringify(tool())}]}`, message: /invalid google.protobuf.Value/ }],
    ['invalid UTF-8', undefined, { raw: Buffer.concat([Buffer.from('{"principal":{"id":"a'), Buffer.from([0xff]), Buffer.from(`","roles":["user"]},"resources":[${JSON.stringify(tool())}]}`)]), message: /invalid UTF-8/ }],
    ['deeply nested attribute', undefined, { raw: `{"principal":{"id":"a","roles":["user"],"attr":{"x":${deep(100)}}},"resources":[${JSON.stringify(tool())}]}`, message: /max depth/ }],
    ['very deeply nested attribute', undefined, { raw: `{"principal":{"id":"a","roles":["user"],"attr":{"x":${deep(200_000)}}},"resources":[${JSON.stringify(tool())}]}`, message: /max depth/ }],
    ['huge body', undefined, { raw: `{"principal":{"id":"a","roles":["user"],"attr":{"x":"${'a'.repeat(3 * 1024 * 1024)}"}},"resources":[${JSON.stringify(tool())}]}`, message: 'request body too large' }],
  ];

  it.each(cases)('%s', async (_name, body, opts) => {
    const res = await post(body, opts.raw !== undefined ? { raw: opts.raw } : {});
    expect(res.status).toBe(400);
    expect(Object.keys(res.json).sort()).toEqual(['code', 'message']);
    expect(res.json['code']).toBe(3);
    if (typeof opts.message === 'string') expect(res.json['message']).toBe(opts.message);
    else if (opts.message !== undefined) expect(res.json['message']).toMatch(opts.message);
    expect(res.text).not.toContain('EFFECT_ALLOW');
  });

  it('rejects an expired or foreign-signed token', async () => {
    const expired = await post({ principal, resources: [tool()], auxData: { jwt: { token: await token({ sub: 'a' }, '-1m') } } });
    expect(expired.status).toBe(400);
    expect(expired.json).toEqual({ code: 3, message: 'invalid auxData' });
    const other = await generateKeyPair('ES256');
    const foreign = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(other.privateKey);
    const res = await post({ principal, resources: [tool()], auxData: { jwt: { token: foreign } } });
    expect(res.status).toBe(400);
    expect(res.text).not.toContain('EFFECT_ALLOW');
  });
});
