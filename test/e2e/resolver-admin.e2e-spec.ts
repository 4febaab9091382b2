/**
 * The admin API for resolvers (`/v1/admin/resolvers`) on a real broker with a real Postgres
 * store: authentication (bootstrap token and IdP tokens from a real oidc-provider) and the admin
 * policy, the whole lifecycle (create, read, list, replace, delete, versions, rollback, optimistic
 * concurrency), coded 400s naming the resolver for every kind of bad config, 409 for resolvers
 * owned by warden.yaml, the dry run, and the decisive part: a change is what the very next
 * `/v1/check` uses.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { sendJson, startHttpUpstream, v1Check, writePolicyDir, type HttpUpstream } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const ADMIN_TOKEN = `admin-${RUN}-0123456789abcdef`;
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;
const CRM_SECRET = `crm-secret-${RUN}`;

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [export]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.tier == "gold"
`;

let idp: OidcTestIssuer;
let crm: HttpUpstream;
let broker: TestBroker;

/** An admin answer; `json` is read loosely (`any`): each test asserts the fields it relies on. */
type AdminAnswer = { status: number; text: string; json: any };

/** An admin call; `token` undefined sends no Authorization header. */
async function admin(method: string, path: string, body?: unknown, token: string | undefined = ADMIN_TOKEN): Promise<AdminAnswer> {
  const res = await fetch(`${broker.base}/v1/admin/resolvers${path}`, {
    method,
    headers: { ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: text === '' ? undefined : JSON.parse(text) };
}

/** `export` on a tool by alice (stated by the trusted gateway): ALLOW only when her tier is gold. */
async function aliceExports(): Promise<'ALLOW' | 'DENY'> {
  const a = await v1Check(broker.base, { subject: { id: 'alice', roles: ['user'] }, action: 'export', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });
  expect(a.status, a.text).toBe(200);
  return a.json.decision;
}

const tierResolver = (field: string) => ({
  kind: 'http',
  datasource: 'crm',
  key: 'principal.id',
  path: '/users/{key}',
  provides: { 'principal.attr.tier': `result.${field}` },
});

beforeAll(async () => {
  idp = await startOidcIssuer();
  crm = await startHttpUpstream((req, res) => {
    // The datasource's secret header is required: a dry run that works proves it was sent.
    if (req.headers.authorization !== `Bearer ${CRM_SECRET}`) return sendJson(res, 401, { error: 'unauthorized' });
    const m = /^\/users\/([^/]+)$/.exec(req.url ?? '');
    if (m?.[1] === 'alice') return sendJson(res, 200, { tier: 'gold', level: 'bronze' });
    sendJson(res, 404, {});
  });
  const { dir, policyDir } = writePolicyDir({ 'tool.yaml': TOOL_POLICY }, 'warden-admin-');
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      datasources: {
        crm: { kind: 'http', url: crm.url, headers: { Authorization: 'Bearer ${CRM_SECRET}' } },
        idp: { kind: 'oidc', issuer: idp.issuer, audience: idp.jwtAudience, allowInsecureHttp: true },
      },
      resolvers: [{ name: 'file-dept', kind: 'static', key: 'principal.id', data: { alice: { department: 'eng' } }, provides: { 'principal.attr.department': 'result.department' } }],
      gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
      admin: { jwt: { datasource: 'idp', rolesClaim: 'roles' } },
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir, env: { WARDEN_ADMIN_TOKEN: ADMIN_TOKEN, CRM_SECRET } });
});

afterAll(async () => {
  await broker?.close();
  await Promise.all([idp?.close(), crm?.close()]);
});

describe('authentication and authorisation', () => {
  it('401 without a token, with another scheme, and with a wrong token', async () => {
    for (const [token, header] of [
      [undefined, undefined],
      ['wrong-token-0123456789abcdef', undefined],
      [undefined, `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`],
    ] as const) {
      const res = await fetch(`${broker.base}/v1/admin/resolvers`, { headers: header !== undefined ? { authorization: header } : token !== undefined ? { authorization: `Bearer ${token}` } : {} });
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('ERR_UNAUTHENTICATED');
    }
    // Nothing a refused caller asks for happens.
    const res = await admin('POST', '', { name: 'sneaky', ...tierResolver('tier') }, 'wrong-token-0123456789abcdef');
    expect(res.status).toBe(401);
    expect((await admin('GET', '/sneaky')).status).toBe(404);
  });

  it('403 for a valid IdP token whose roles do not allow the action; a viewer may read but not write', async () => {
    const nobody = await idp.issueJwt({ sub: 'eve', roles: ['user'] });
    const list = await admin('GET', '', undefined, nobody);
    expect(list.status).toBe(403);
    expect(list.json.error).toEqual({ code: 'ERR_FORBIDDEN', message: '`eve` may not `list` resolvers' });

    const noRoles = await idp.issueJwt({ sub: 'eve' });
    const r = await admin('GET', '', undefined, noRoles);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('ERR_FORBIDDEN');

    const viewer = await idp.issueJwt({ sub: 'vic', roles: ['warden-viewer'] });
    expect((await admin('GET', '', undefined, viewer)).status).toBe(200);
    const write = await admin('POST', '', { name: 'viewer-made', ...tierResolver('tier') }, viewer);
    expect(write.status).toBe(403);
    expect(write.json.error).toEqual({ code: 'ERR_FORBIDDEN', message: '`vic` may not `create` resolvers' });

    const expired = await idp.signJwt({ sub: 'ada', roles: ['warden-admin'], iat: Math.floor(Date.now() / 1000) - 1200, exp: Math.floor(Date.now() / 1000) - 600 });
    const e = await admin('GET', '', undefined, expired);
    expect(e.status).toBe(401);
    expect(e.json.error).toEqual({ code: 'ERR_UNAUTHENTICATED', message: 'admin token refused: token expired' });
  });

  it('an IdP admin may write, and is recorded as the actor', async () => {
    const ada = await idp.issueJwt({ sub: 'ada', roles: ['warden-admin'] });
    const created = await admin('POST', '', { name: `ada-made-${RUN}`, kind: 'static', key: 'principal.id', data: {}, provides: { 'principal.attr.ada': 'result' } }, ada);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ version: 1, updatedBy: 'ada', source: 'admin' });
    expect((await admin('DELETE', `/ada-made-${RUN}`, undefined, ada)).status).toBe(204);
  });
});

describe('lifecycle', () => {
  it('create, read, list, replace, versions, rollback and delete; each change is used by the next /v1/check', async () => {
    expect(await aliceExports()).toBe('DENY');

    const created = await admin('POST', '', { name: 'crm-tier', ...tierResolver('tier') });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ name: 'crm-tier', source: 'admin', version: 1, updatedBy: 'bootstrap', config: { name: 'crm-tier', ...tierResolver('tier') } });
    expect(await aliceExports()).toBe('ALLOW');

    const read = await admin('GET', '/crm-tier');
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ name: 'crm-tier', version: 1, config: tierResolver('tier') });

    const list = await admin('GET', '');
    expect(list.status).toBe(200);
    expect(list.json.status).toEqual({ ok: true });
    const names = (list.json.resolvers as Array<{ name: string; source: string }>).map((r) => `${r.name}:${r.source}`);
    expect(names).toEqual(expect.arrayContaining(['file-dept:file', 'crm-tier:admin']));

    const duplicate = await admin('POST', '', { name: 'crm-tier', ...tierResolver('tier') });
    expect(duplicate.status).toBe(409);
    expect(duplicate.json.error.code).toBe('ERR_CONFLICT');

    // Replace: alice's `level` is bronze, so the policy now denies.
    const replaced = await admin('PUT', '/crm-tier', tierResolver('level'));
    expect(replaced.status, replaced.text).toBe(200);
    expect(replaced.json).toMatchObject({ version: 2, config: tierResolver('level') });
    expect(await aliceExports()).toBe('DENY');

    const stale = await admin('PUT', '/crm-tier?expectedVersion=1', tierResolver('tier'));
    expect(stale.status).toBe(409);
    expect(stale.json.error.code).toBe('ERR_CONFLICT');
    expect(await aliceExports()).toBe('DENY');

    const rolledBack = await admin('POST', '/crm-tier/rollback', { version: 1 });
    expect(rolledBack.status, rolledBack.text).toBe(200);
    expect(rolledBack.json).toMatchObject({ version: 3, config: tierResolver('tier') });
    expect(await aliceExports()).toBe('ALLOW');

    const deleted = await admin('DELETE', '/crm-tier?expectedVersion=3');
    expect(deleted.status).toBe(204);
    expect(await aliceExports()).toBe('DENY');
    expect((await admin('GET', '/crm-tier')).status).toBe(404);

    const versions = await admin('GET', '/crm-tier/versions');
    expect(versions.status).toBe(200);
    expect((versions.json.versions as Array<{ version: number; action: string; actor: string; config: unknown }>).map((v) => [v.version, v.action, v.actor, v.config === null])).toEqual([
      [1, 'create', 'bootstrap', false],
      [2, 'replace', 'bootstrap', false],
      [3, 'rollback', 'bootstrap', false],
      [4, 'delete', 'bootstrap', true],
    ]);

    // A deleted resolver can be brought back by rolling back to one of its versions.
    const revived = await admin('POST', '/crm-tier/rollback', { version: 2 });
    expect(revived.status, revived.text).toBe(200);
    expect(revived.json).toMatchObject({ version: 5, config: tierResolver('level') });
    expect((await admin('DELETE', '/crm-tier')).status).toBe(204);

    expect((await admin('POST', '/crm-tier/rollback', { version: 99 })).status).toBe(404);
    expect((await admin('GET', '/never-existed/versions')).status).toBe(404);
  });
});

describe('refused configs', () => {
  const base = { kind: 'static', key: 'principal.id', data: { alice: { x: 1 } } };
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['unknown kind', { name: 'bad-kind', kind: 'ldap', key: 'principal.id', provides: { 'principal.attr.k': 'result' } }, 'ERR_RESOLVER_KIND_UNKNOWN', /unknown kind `ldap`/],
    ['unknown datasource', { name: 'bad-ds', ...tierResolver('tier'), datasource: 'nope' }, 'ERR_RESOLVER_DATASOURCE_UNKNOWN', /unknown datasource `nope`/],
    ['duplicate provides', { name: 'bad-dup', ...base, provides: { 'principal.attr.department': 'result.x' } }, 'ERR_RESOLVER_PROVIDES_CONFLICT', /`principal\.attr\.department`.*`file-dept`/],
    ['bad CEL', { name: 'bad-cel', ...base, provides: { 'principal.attr.y': 'result.x +' } }, 'ERR_RESOLVER_CEL_INVALID', /provides\.principal\.attr\.y/],
    ['bad field', { name: 'bad-field', ...base, provides: { 'principal.attr.z': 'result' }, timeout: 'soon' }, 'ERR_RESOLVER_CONFIG_INVALID', /`timeout`/],
  ];

  it.each(cases)('%s: 400 with a code naming the resolver, and nothing stored', async (_label, config, code, message) => {
    const res = await admin('POST', '', config);
    expect(res.status, res.text).toBe(400);
    expect(res.json.error.code).toBe(code);
    expect(res.json.error.message).toContain(`resolver \`${config['name'] as string}\``);
    expect(res.json.error.message).toMatch(message);
    expect((await admin('GET', `/${config['name'] as string}`)).status).toBe(404);
  });

  it('dependency cycle: 400 naming the cycle, the first resolver kept', async () => {
    const a = await admin('POST', '', { name: 'cyc-a', ...base, key: 'principal.attr.cycB', provides: { 'principal.attr.cycA': 'result.x' } });
    expect(a.status, a.text).toBe(201);
    const b = await admin('POST', '', { name: 'cyc-b', ...base, key: 'principal.attr.cycA', provides: { 'principal.attr.cycB': 'result.x' } });
    expect(b.status, b.text).toBe(400);
    expect(b.json.error.code).toBe('ERR_RESOLVER_DEPENDENCY_CYCLE');
    expect(b.json.error.message).toMatch(/`cyc-[ab] -> cyc-[ab] -> cyc-[ab]`/);
    expect((await admin('GET', '/cyc-b')).status).toBe(404);
    expect((await admin('GET', '')).json.status).toEqual({ ok: true });
    expect((await admin('DELETE', '/cyc-a')).status).toBe(204);
  });

  it('409 for creating, replacing or deleting a resolver defined in warden.yaml', async () => {
    const body = { ...base, provides: { 'principal.attr.department': 'result.x' } };
    for (const [method, path, payload] of [
      ['PUT', '/file-dept', body],
      ['DELETE', '/file-dept', undefined],
      ['POST', '', { name: 'file-dept', ...body }],
      ['POST', '/file-dept/rollback', { version: 1 }],
    ] as const) {
      const res = await admin(method, path, payload);
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(409);
      expect(res.json.error).toEqual({ code: 'ERR_READ_ONLY', message: 'resolver `file-dept` is defined in warden.yaml; change it there' });
    }
    const read = await admin('GET', '/file-dept');
    expect(read.json).toMatchObject({ name: 'file-dept', source: 'file' });
  });
});

describe('dry run', () => {
  it('runs a stored resolver on a sample input and returns attributes and timings, never the datasource secret', async () => {
    expect((await admin('POST', '', { name: 'crm-dry', ...tierResolver('tier') })).status).toBe(201);
    const res = await admin('POST', '/crm-dry/test', { input: { principal: { id: 'alice' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.json.items[0].input.principal).toEqual({ id: 'alice', attr: { tier: 'gold' } });
    expect(res.json.items[0].attributes['principal.attr.tier']).toMatchObject({ resolver: 'crm-dry', durationMs: expect.any(Number) });
    expect(res.json.items[0].failures).toEqual([]);
    expect(res.json.runs).toEqual([expect.objectContaining({ resolver: 'crm-dry', calls: 1, keys: 1 })]);
    expect(res.json.durationMs).toBeGreaterThanOrEqual(0);
    for (const body of [res.text, (await admin('GET', '')).text, (await admin('GET', '/crm-dry')).text]) expect(body).not.toContain(CRM_SECRET);
    expect((await admin('DELETE', '/crm-dry')).status).toBe(204);
  });

  it('tests an unsaved config without storing it, reports failures, and never returns the subject token', async () => {
    const token = await idp.issueJwt({ sub: 'alice', roles: ['user'], team: 'blue' });
    const config = { kind: 'jwt', datasource: 'idp', key: 'subject.token', provides: { 'principal.attr.team': 'result.team' } };
    const ok = await admin('POST', '/draft-jwt/test', { config, input: { subject: { token } } });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.items[0].input.principal).toEqual({ attr: { team: 'blue' } });
    expect(ok.json.items[0].input).not.toHaveProperty('subject');
    expect(ok.text).not.toContain(token);
    for (const part of token.split('.')) expect(ok.text).not.toContain(part);
    expect((await admin('GET', '/draft-jwt')).status).toBe(404);

    const refused = await admin('POST', '/draft-jwt/test', { config, input: { subject: { token: `${token}x` } } });
    expect(refused.status).toBe(200);
    expect(refused.json.items[0].denials).toEqual([expect.objectContaining({ code: 'token_invalid', resolver: 'draft-jwt', message: 'token signature invalid' })]);

    const broken = await admin('POST', '/draft-bad/test', { config: { ...config, kind: 'ldap' }, input: {} });
    expect(broken.status).toBe(400);
    expect(broken.json.error.code).toBe('ERR_RESOLVER_KIND_UNKNOWN');
    expect((await admin('POST', '/nothing-here/test', { input: {} })).status).toBe(404);
  });
});
