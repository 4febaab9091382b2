/**
 * The official `@cerbos/http` client, pointed at Warden and at the real Cerbos 0.55 PDP serving
 * the same (shipped) policies, gets the same answers: effects, matched policies, effective derived
 * roles, outputs and validation errors, for every kind the starter set covers.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP } from '@cerbos/http';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { cerbosBin, startCerbos, type CerbosServer } from '../support/cerbos-process.js';
import { repoRoot } from '../support/conformance.js';

const policies = join(repoRoot, 'policies');
const present = existsSync(cerbosBin);

type Req = Parameters<HTTP['checkResources']>[0];

const alice = { id: 'alice', roles: ['user'], attr: { tenant: 'acme', plan: 'enterprise', approvalLimit: 500 } };
const agent = { id: 'support-bot', roles: ['agent', 'support_agent'], attr: { tenant: 'acme', scopes: ['model:invoke'], toolAllowList: ['lookup_order'] } };
const admin = { id: 'root', roles: ['admin'], attr: { tenant: 'acme' } };

const requests: Req[] = [
  {
    principal: alice,
    resources: [
      { resource: { kind: 'tool', id: 'search_docs', attr: { risk: 'low', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'shell', attr: { risk: 'critical', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'issue_refund', attr: { risk: 'medium', tenant: 'acme', amount: 120 } }, actions: ['invoke'] },
    ],
    includeMetadata: true,
  },
  {
    principal: agent,
    resources: [
      { resource: { kind: 'model', id: 'gpt', attr: { provider: 'openai', tier: 'standard', maxTokens: 1000, region: 'eu', dataClassification: 'internal' } }, actions: ['invoke', 'stream'] },
      { resource: { kind: 'tool', id: 'lookup_order', attr: { risk: 'medium', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'mcp_tool', id: 'fs.read', attr: { server: 'files', name: 'read', readOnly: true } }, actions: ['call', 'list'] },
    ],
    includeMetadata: true,
  },
  {
    principal: admin,
    resources: [
      { resource: { kind: 'model', id: 'big', attr: { provider: 'x', tier: 'premium', region: 'cn', maxTokens: 100 } }, actions: ['invoke'] },
      { resource: { kind: 'agent', id: 'helper', attr: { tenant: 'acme' } }, actions: ['delegate'] },
      { resource: { kind: 'tool', id: 'anything', scope: 'acme', attr: { risk: 'high', tenant: 'acme' } }, actions: ['invoke'] },
    ],
    includeMetadata: true,
  },
  {
    principal: { id: 'mallory', roles: ['user'], attr: { tenant: 'acme' } },
    resources: [{ resource: { kind: 'tool', id: 'search_docs', attr: { risk: 'low', tenant: 'acme' } }, actions: ['invoke'] }],
    includeMetadata: true,
  },
];

function comparable(res: Awaited<ReturnType<HTTP['checkResources']>>): unknown {
  return res.results.map((r) => ({
    resource: r.resource,
    actions: r.actions,
    validationErrors: [...r.validationErrors].map((e) => JSON.stringify(e)).sort(),
    outputs: [...r.outputs].map((o) => JSON.stringify(o)).sort(),
    matched: r.metadata ? Object.fromEntries(Object.entries(r.metadata.actions).map(([a, m]) => [a, m])) : undefined,
    effectiveDerivedRoles: r.metadata ? [...r.metadata.effectiveDerivedRoles].sort() : undefined,
  }));
}

(present ? describe : describe.skip)('@cerbos/http against Warden and the real Cerbos PDP', () => {
  let broker: TestBroker | undefined;
  let cerbos: CerbosServer;
  let wardenClient: HTTP;
  let cerbosClient: HTTP;

  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'warden-sdk-'));
    cerbos = await startCerbos({ storeDir: policies, workDir: work, globals: {} });
    let base: string;
    ({ base } = broker = await startTestBroker({ cwd: work, policyDir: policies }));
    wardenClient = new HTTP(base);
    cerbosClient = new HTTP(cerbos.url);
  }, 60_000);

  afterAll(async () => {
    await broker?.close();
    await cerbos?.stop();
  });

  it('the server is healthy through the client', async () => {
    await expect(wardenClient.checkResources(requests[0] as Req)).resolves.toBeDefined();
  });

  requests.forEach((req, i) => {
    it(`request ${i} (${req.principal.id}) gets the same answer from both`, async () => {
      const [w, c] = await Promise.all([wardenClient.checkResources(req), cerbosClient.checkResources(req)]);
      expect(JSON.stringify(comparable(w), null, 1)).toEqual(JSON.stringify(comparable(c), null, 1));
    });
  });

  it('answers the README example the same way (low-risk allowed, critical denied)', async () => {
    const w = await wardenClient.checkResources(requests[0] as Req);
    expect(w.isAllowed({ resource: { kind: 'tool', id: 'search_docs' }, action: 'invoke' })).toBe(true);
    expect(w.isAllowed({ resource: { kind: 'tool', id: 'shell' }, action: 'invoke' })).toBe(false);
  });
});
