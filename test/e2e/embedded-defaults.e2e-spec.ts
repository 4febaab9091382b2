/**
 * The README's promise: on a fresh clone, with no DATABASE_URL, REDIS_URL or IdP, the broker
 * starts on its embedded defaults (PGlite, the root warden.yaml's demo resolvers) and the README's
 * curl examples return the enriched decisions it shows. The request bodies are read from the
 * README itself so the documentation cannot drift from what the broker does.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBrokerConfig } from '../../apps/broker/src/config/load-broker-config.js';
import { createBrokerApp } from '../../apps/broker/src/create-broker-app.js';

const ROOT = join(import.meta.dirname, '../..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The JSON body of the README's first curl to `path`. */
/** The JSON body of the README's `nth` curl example for `path`. */
function readmeBody(path: string, nth = 0): unknown {
  const all = [...README.matchAll(new RegExp(`curl -s http://127\\.0\\.0\\.1:3594${path.replaceAll('/', '\\/')} [^\\n]*-d '([\\s\\S]*?)'\\n`, 'g'))];
  const m = all[nth];
  if (m === undefined) throw new Error(`README has no curl example number ${nth + 1} for ${path}`);
  return JSON.parse(m[1] as string);
}

let app: NestFastifyApplication;
let base: string;
const scratch = mkdtempSync(join(tmpdir(), 'warden-pglite-'));
// Like `.warden/pglite` on a fresh clone: the parent does not exist yet.
const dataDir = join(scratch, 'not-yet', 'pglite');
const admin = 'readme-admin-token-0123456789';

beforeAll(async () => {
  // The embedded defaults: the repository's own warden.yaml, no database or Redis URL.
  // The data directory is the test's own, so runs never share (or leave) state in the repository.
  const config = loadBrokerConfig({ cwd: ROOT, env: { WARDEN_HTTP_ADDR: '127.0.0.1:0', WARDEN_ADMIN_TOKEN: admin, WARDEN_DATA_DIR: dataDir } });
  expect(config.database.url).toBeUndefined();
  expect(config.redisUrl).toBeUndefined();
  expect(config.workers).toBe(1);
  app = await createBrokerApp(config);
  await app.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
});
afterAll(async () => {
  await app?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('embedded defaults (npm start on a fresh clone)', () => {
  it('answers the README /v1/check example as documented: web_search ALLOW, shell_exec DENY', async () => {
    const { status, json } = await post('/v1/check', readmeBody('/v1/check'));
    expect(status).toBe(200);
    expect(json['decision']).toBe('DENY');
    const results = json['results'] as Array<{ resource: { id: string }; decision: string }>;
    expect(results.map((r) => [r.resource.id, r.decision])).toEqual([
      ['web_search', 'ALLOW'],
      ['shell_exec', 'DENY'],
    ]);
    expect(json['policyVersion']).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(json['reasons']).toEqual([{ code: 'policy_denied', message: '`invoke` on tool `shell_exec` is not allowed by policy', resource: { kind: 'tool', id: 'shell_exec' }, actions: ['invoke'] }]);
    // Outputs stay with their resource; nothing is repeated at the top level.
    expect(json).not.toHaveProperty('outputs');
    expect(json).not.toHaveProperty('requestId');
  });

  it('answers compactly: one reason per denied resource naming its actions; explain adds each action\'s policy', async () => {
    const body = { requestId: 'compact-1', subject: { token: 'alice-demo-token' }, actions: ['invoke', 'purge'], resources: [{ kind: 'tool', id: 'web_search' }, { kind: 'tool', id: 'shell_exec' }] };
    const { status, json } = await post('/v1/check', body);
    expect(status).toBe(200);
    expect(json['requestId']).toBe('compact-1');
    expect(json['results']).toEqual([
      { resource: { kind: 'tool', id: 'web_search' }, decision: 'DENY', actions: { invoke: 'ALLOW', purge: 'DENY' } },
      { resource: { kind: 'tool', id: 'shell_exec' }, decision: 'DENY', actions: { invoke: 'DENY', purge: 'DENY' }, outputs: [expect.objectContaining({ action: 'invoke' }), expect.objectContaining({ action: 'purge' })] },
    ]);
    expect(json['reasons']).toEqual([
      { code: 'policy_denied', message: '`purge` on tool `web_search` is not allowed by policy', resource: { kind: 'tool', id: 'web_search' }, actions: ['purge'] },
      { code: 'policy_denied', message: '`invoke` and `purge` on tool `shell_exec` are not allowed by policy', resource: { kind: 'tool', id: 'shell_exec' }, actions: ['invoke', 'purge'] },
    ]);
    const explained = await post('/v1/check', { ...body, explain: true });
    const items = (explained.json['explain'] as { items: Array<{ actions: Record<string, { policy: string }> }> }).items;
    expect(items.map((i) => i.actions)).toEqual([
      { invoke: { policy: 'resource.tool.vdefault' }, purge: { policy: expect.any(String) } },
      { invoke: { policy: 'resource.tool.vdefault' }, purge: { policy: expect.any(String) } },
    ]);
  });

  it('follows the README delegation example: mint for the planner, then its check allows only what was delegated', async () => {
    const minted = await post('/v1/delegations', readmeBody('/v1/delegations'));
    expect(minted.status, JSON.stringify(minted.json)).toBe(201);
    expect(minted.json).toMatchObject({ subject: 'alice', agent: 'planner', depth: 1 });
    const body = readmeBody('/v1/check', 1) as Record<string, unknown>;
    expect(body['delegation']).toBe('eyJ…');
    const { json } = await post('/v1/check', { ...body, delegation: minted.json['token'] });
    const results = json['results'] as Array<{ resource: { id: string }; decision: string }>;
    expect(results.map((r) => [r.resource.id, r.decision])).toEqual([
      ['web_search', 'ALLOW'],
      ['crm_lookup', 'DENY'],
    ]);
    expect((json['reasons'] as Array<{ code: string; identity?: string }>).map((r) => [r.code, r.identity])).toEqual([
      ['policy_denied', 'subject'],
      ['delegation_out_of_scope', undefined],
    ]);
  });

  it('answers the README /v1/plan examples as documented: the refund limit as a condition, pages with a cursor', async () => {
    const first = await post('/v1/plan', readmeBody('/v1/plan'));
    expect(first.status).toBe(200);
    expect(first.json['allowed']).toEqual(['web_search']);
    expect((first.json['conditional'] as Array<{ id: string; text: string; attributes: string[] }>).map((c) => [c.id, c.text, c.attributes])).toEqual([['issue_refund', 'arguments.amount < 1000', ['arguments.amount']]]);
    expect(first.json['denied']).toEqual({ count: 2, reasons: { policy_denied: 2 } });
    expect(first.json['truncated']).toBe(false);
    const paged = await post('/v1/plan', readmeBody('/v1/plan', 1));
    expect(paged.status).toBe(200);
    expect(paged.json['allowed']).toEqual(['create_ticket', 'crm_lookup']);
    expect(paged.json['truncated']).toBe(true);
    expect(typeof paged.json['cursor']).toBe('string');
  });

  it('serves the MCP proxy\'s protected-resource metadata and refuses an unauthenticated MCP request as the README shows', async () => {
    const res = await fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`);
    const meta = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
    expect(await meta.json()).toMatchObject({ resource: `${base}/mcp`, bearer_methods_supported: ['header'] });
  });

  it('runs the six scenarios of `npm run demo`, every decision as the scenario says', async () => {
    const { runDemo } = await import('../../scripts/demo.mjs');
    const rows = await runDemo(base);
    expect(new Set(rows.map((r) => r.scenario.slice(0, 2)))).toEqual(new Set(['1.', '2.', '3.', '4.', '5.', '6.']));
    expect(rows.filter((r) => r.decision !== r.expected)).toEqual([]);
    expect(rows.length).toBeGreaterThanOrEqual(25);
    // The reasons are the scenarios' own: the policy outputs and the delegation codes.
    const reasons = rows.map((r) => r.reason).join(' ');
    for (const r of ['frontier_model_restricted', 'eu_data_residency', 'refund_within_approval_limit', 'destructive_tool_break_glass_only', 'delegation_out_of_scope', 'delegation_revoked']) expect(reasons).toContain(r);
  });

  it('enriches from the embedded demo table: explain names the resolvers', async () => {
    const body = { ...(readmeBody('/v1/check') as object), explain: true };
    const { json } = await post('/v1/check', body);
    const items = (json['explain'] as { items: Array<{ attributes: Record<string, { resolver: string }>; input: Record<string, unknown> }> }).items;
    expect(items[1]?.attributes['resource.attr.risk']?.resolver).toBe('demo-tool-catalog');
    expect(items[1]?.attributes['principal.id']?.resolver).toBe('demo-tokens');
    expect((items[1]?.input['resource'] as { attr: unknown }).attr).toEqual({ risk: 'critical', tenant: 'acme' });
    expect(JSON.stringify(json)).not.toContain('alice-demo-token');
  });

  it('answers the README Cerbos-API example as documented: the catalogue overrides the caller', async () => {
    const { status, json } = await post('/api/check/resources', readmeBody('/api/check/resources'));
    expect(status).toBe(200);
    const results = json['results'] as Array<{ resource: { id: string }; actions: Record<string, string> }>;
    expect(results.map((r) => [r.resource.id, r.actions['invoke']])).toEqual([
      ['web_search', 'EFFECT_ALLOW'],
      ['shell_exec', 'EFFECT_DENY'],
    ]);
  });

  it('answers the README plan and AuthZEN examples as documented', async () => {
    const plan = await post('/api/plan/resources', readmeBody('/api/plan/resources'));
    expect(plan.status).toBe(200);
    expect((plan.json['meta'] as { filterDebug: string }).filterDebug).toBe(
      '(and (not (eq request.resource.attr.risk "critical")) (or (and (eq request.resource.attr.risk "low") (eq "acme" request.resource.attr.tenant)) (eq request.resource.attr.owner "alice")))',
    );
    const authzen = await post('/access/v1/evaluation', readmeBody('/access/v1/evaluation'));
    expect(authzen).toEqual({ status: 200, json: { decision: true } });
  });

  it('explain never echoes a credential: subject, agent or delegation token', async () => {
    const body = { subject: { token: 'alice-demo-token' }, agent: { id: 'bot', token: 'agent-secret-tok' }, delegation: 'deleg-secret-tok', action: 'invoke', resource: { kind: 'tool', id: 'web_search' }, explain: true };
    const { json } = await post('/v1/check', body);
    const text = JSON.stringify(json);
    for (const secret of ['alice-demo-token', 'agent-secret-tok', 'deleg-secret-tok']) expect(text).not.toContain(secret);
    const items = (json['explain'] as { items: Array<{ input: Record<string, unknown> }> }).items;
    expect(items[0]?.input['agent']).toEqual({ id: 'bot' });
  });

  it('bad input is a coded 4xx naming the problem, never a decision', async () => {
    const cases: Array<[unknown, Record<string, string>, number, string, string]> = [
      [{ subject: { id: 'alice', roles: ['admin'] }, action: 'invoke', resource: { kind: 'tool', id: 'shell_exec' } }, {}, 401, 'ERR_UNAUTHENTICATED', 'x-warden-api-key'],
      [{ subject: { id: 'alice', roles: ['admin'] }, action: 'invoke', resource: { kind: 'tool', id: 'shell_exec' } }, { 'x-warden-api-key': 'not-a-configured-gateway-key' }, 401, 'ERR_UNAUTHENTICATED', 'x-warden-api-key'],
      [{ subject: { token: 'alice-demo-token' }, action: 'invoke' }, {}, 400, 'ERR_REQUEST_INVALID', '`resource`'],
      [{ subject: { token: 'alice-demo-token' }, action: 'invoke', resource: { kind: 'tool' } }, {}, 400, 'ERR_REQUEST_INVALID', '`resource.id`'],
      [{ subject: { token: 'alice-demo-token' }, action: 'invoke', resource: { kind: 'tool', id: 'x' }, principal: {} }, {}, 400, 'ERR_REQUEST_INVALID', '`principal`'],
    ];
    for (const [body, headers, status, code, fragment] of cases) {
      const res = await post('/v1/check', body, headers);
      expect(res.status).toBe(status);
      expect(res.json).toEqual({ error: { code, message: expect.stringContaining(fragment) } });
      expect(res.json['decision']).toBeUndefined();
    }
    const raw = await fetch(`${base}/v1/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"subject": ' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe('ERR_REQUEST_INVALID');
  });

  it('an unknown token is denied, never allowed', async () => {
    const { json } = await post('/v1/check', { subject: { token: 'nobody' }, action: 'invoke', resource: { kind: 'tool', id: 'web_search' } });
    expect(json['decision']).toBe('DENY');
    expect(json['reasons']).toEqual([expect.objectContaining({ code: 'subject_unresolved' })]);
  });

  it('the README admin example registers a resolver on the embedded database, used at once', async () => {
    const m = /-H 'content-type: application\/json' -d '(\{"name":"departments"[\s\S]*?)'\n/.exec(README);
    expect(m).not.toBeNull();
    const created = await post('/v1/admin/resolvers', JSON.parse((m?.[1] as string).replace(/\n\s*/g, ' ')), { authorization: `Bearer ${admin}` });
    expect(created.status).toBe(201);
    expect(created.json['version']).toBe(1);
    const { json } = await post('/v1/check', { subject: { token: 'alice-demo-token' }, action: 'invoke', resource: { kind: 'tool', id: 'web_search' }, explain: true });
    const attrs = (json['explain'] as { items: Array<{ attributes: Record<string, { resolver: string }> }> }).items[0]?.attributes;
    expect(attrs?.['principal.attr.dept']?.resolver).toBe('departments');
  });

  it('keeps admin-registered resolvers across a restart (the embedded database is on disk)', async () => {
    await app.close();
    const config = loadBrokerConfig({ cwd: ROOT, env: { WARDEN_HTTP_ADDR: '127.0.0.1:0', WARDEN_ADMIN_TOKEN: admin, WARDEN_DATA_DIR: dataDir } });
    app = await createBrokerApp(config);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const res = await fetch(`${base}/v1/admin/resolvers/departments`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { version: number }).version).toBe(1);
  });
});
