/**
 * The Cerbos gRPC API (`cerbos.svc.v1.CerbosService`) on Warden's gRPC listener, driven by the
 * official `@cerbos/grpc` client unchanged: CheckResources (allow, deny, outputs, includeMeta
 * with matched policies, scopes and effective derived roles), PlanResources (conditional,
 * always allowed, always denied) and ServerInfo answer what Warden's HTTP API answers, and the
 * same requests sent to the real Cerbos 0.55 PDP's gRPC listener get the same answers (ignoring
 * `cerbosCallId`). Malformed requests, encoded with Cerbos's own message schemas and sent raw,
 * get INVALID_ARGUMENT with the message the Cerbos PDP sends, never an answer. With resolvers
 * configured, gRPC requests are enriched as HTTP ones are.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { Client as GrpcJsClient, credentials, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CheckResourcesRequestSchema, PlanResourcesRequestSchema } from '@cerbos/api/cerbos/request/v1/request_pb';
import { CheckResourcesResponseSchema, PlanResourcesResponseSchema } from '@cerbos/api/cerbos/response/v1/response_pb';
import { GRPC } from '@cerbos/grpc';
import { HTTP } from '@cerbos/http';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { cerbosBin, startCerbos, type CerbosServer } from '../support/cerbos-process.js';
import { repoRoot } from '../support/conformance.js';

const policies = join(repoRoot, 'policies');
const present = existsSync(cerbosBin);

type CheckReq = Parameters<GRPC['checkResources']>[0];
type PlanReq = Parameters<GRPC['planResources']>[0];
type CheckRes = Awaited<ReturnType<GRPC['checkResources']>>;

const alice = { id: 'alice', roles: ['user'], attr: { tenant: 'acme', plan: 'enterprise', approvalLimit: 500 } };
const agent = { id: 'support-bot', roles: ['agent', 'support_agent'], attr: { tenant: 'acme', scopes: ['model:invoke'], toolAllowList: ['lookup_order'] } };
const admin = { id: 'root', roles: ['admin'], attr: { tenant: 'acme' } };

const checks: CheckReq[] = [
  {
    requestId: 'grpc-1',
    principal: alice,
    resources: [
      { resource: { kind: 'tool', id: 'search_docs', attr: { risk: 'low', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'shell', attr: { risk: 'critical', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'issue_refund', attr: { risk: 'medium', tenant: 'acme', amount: 120 } }, actions: ['invoke'] },
    ],
    includeMetadata: true,
  },
  {
    requestId: 'grpc-2',
    principal: agent,
    resources: [
      { resource: { kind: 'model', id: 'gpt', attr: { provider: 'openai', tier: 'standard', maxTokens: 1000, region: 'eu', dataClassification: 'internal' } }, actions: ['invoke', 'stream'] },
      { resource: { kind: 'model', id: 'far', attr: { provider: 'openai', tier: 'standard', maxTokens: 1000, region: 'cn', dataClassification: 'internal' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'lookup_order', attr: { risk: 'medium', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'mcp_tool', id: 'fs.read', attr: { server: 'files', name: 'read', readOnly: true } }, actions: ['call', 'list'] },
    ],
    includeMetadata: true,
  },
  {
    requestId: 'grpc-3',
    principal: admin,
    resources: [
      { resource: { kind: 'model', id: 'big', attr: { provider: 'x', tier: 'premium', region: 'cn', maxTokens: 100 } }, actions: ['invoke'] },
      { resource: { kind: 'agent', id: 'helper', attr: { tenant: 'acme' } }, actions: ['delegate'] },
      { resource: { kind: 'tool', id: 'anything', scope: 'acme', attr: { risk: 'high', tenant: 'acme' } }, actions: ['invoke'] },
    ],
    includeMetadata: true,
  },
  {
    requestId: 'grpc-4',
    principal: { id: 'mallory', roles: ['user'], attr: { tenant: 'acme' } },
    resources: [{ resource: { kind: 'tool', id: 'search_docs', attr: { risk: 'low', tenant: 'acme' } }, actions: ['invoke'] }],
  },
];

const plans: Record<'conditional' | 'allowed' | 'denied', PlanReq> = {
  conditional: { requestId: 'plan-1', action: 'invoke', principal: { id: 'alice', roles: ['user'], attr: { tenant: 'acme' } }, resource: { kind: 'tool' }, includeMetadata: true },
  allowed: { requestId: 'plan-2', action: 'read', principal: { id: 'root', roles: ['admin'], attr: { tenant: 'acme' } }, resource: { kind: 'mcp_tool' }, includeMetadata: true },
  denied: { requestId: 'plan-3', actions: ['invoke', 'list'], principal: { id: 'nobody', roles: ['guest'], attr: {} }, resource: { kind: 'tool' }, includeMetadata: true },
};

/** A response without its call id (a fresh ULID per call), as plain data. */
function withoutCallId<T extends { cerbosCallId?: string | undefined }>(res: T): unknown {
  const { cerbosCallId: _id, ...rest } = res;
  return JSON.parse(JSON.stringify(rest)) as unknown;
}

/** JSON with object keys sorted (map and Struct order is not part of the answer). */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}

/** As the HTTP differential test compares: outputs, validation errors and derived roles in a fixed order. */
function comparable(res: CheckRes): unknown {
  return {
    requestId: res.requestId,
    results: res.results.map((r) => ({
      resource: r.resource,
      actions: r.actions,
      validationErrors: [...r.validationErrors].map(canonical).sort(),
      outputs: [...r.outputs].map(canonical).sort(),
      metadata: r.metadata === undefined ? undefined : { actions: r.metadata.actions, effectiveDerivedRoles: [...r.metadata.effectiveDerivedRoles].sort() },
    })),
  };
}

/** A unary call with a message encoded by Cerbos's own schemas, bypassing the SDK's request building. */
function rawCall<I extends DescMessage, O extends DescMessage>(addr: string, method: string, input: I, output: O, init: MessageInitShape<I>): Promise<{ error?: ServiceError; response?: unknown }> {
  const client = new GrpcJsClient(addr, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/cerbos.svc.v1.CerbosService/${method}`,
      (m: MessageInitShape<I>) => Buffer.from(toBinary(input, create(input, m))),
      (b: Buffer) => fromBinary(output, b),
      init,
      new Metadata(),
      (error, response) => {
        client.close();
        resolve(error ? { error } : { response });
      },
    );
  });
}

(present ? describe : describe.skip)('the Cerbos gRPC API through @cerbos/grpc, against Warden and the real Cerbos PDP', () => {
  let broker: TestBroker;
  let cerbos: CerbosServer;
  let warden: GRPC;
  let wardenHttp: HTTP;
  let reference: GRPC;

  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'warden-grpc-'));
    [cerbos, broker] = await Promise.all([startCerbos({ storeDir: policies, workDir: work, globals: {} }), startTestBroker({ cwd: work, policyDir: policies, grpc: true })]);
    warden = new GRPC(broker.grpcAddr as string, { tls: false });
    wardenHttp = new HTTP(broker.base);
    reference = new GRPC(cerbos.grpcAddr, { tls: false });
  }, 60_000);

  afterAll(async () => {
    warden?.close();
    reference?.close();
    await broker?.close();
    await cerbos?.stop();
  });

  it('listens on a free port of 127.0.0.1', () => {
    expect(broker.grpcAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(broker.grpcAddr).not.toBe('127.0.0.1:0');
  });

  it('serverInfo answers what GET /api/server_info answers', async () => {
    const info = await warden.serverInfo();
    const http = (await (await fetch(`${broker.base}/api/server_info`)).json()) as Record<string, string>;
    expect(info).toEqual({ version: http['version'], commit: http['commit'], buildDate: http['buildDate'] });
    expect(info.version).not.toBe('');
  });

  it('checkResources allows, denies, and reports outputs and metadata', async () => {
    const res = await warden.checkResources(checks[0] as CheckReq);
    expect(res.requestId).toBe('grpc-1');
    expect(res.cerbosCallId).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(res.isAllowed({ resource: { kind: 'tool', id: 'search_docs' }, action: 'invoke' })).toBe(true);
    expect(res.isAllowed({ resource: { kind: 'tool', id: 'shell' }, action: 'invoke' })).toBe(false);
    const search = res.findResult({ kind: 'tool', id: 'search_docs' });
    expect(search?.metadata?.actions['invoke']?.matchedPolicy).toBe('resource.tool.vdefault');
    expect(search?.metadata?.effectiveDerivedRoles.length).toBeGreaterThan(0);

    const agentRes = await warden.checkResources(checks[1] as CheckReq);
    const far = agentRes.findResult({ kind: 'model', id: 'far' });
    expect(far?.actions['invoke']).toBe('EFFECT_DENY');
    expect(far?.outputs.length).toBeGreaterThan(0);
    expect(JSON.stringify(far?.outputs)).toContain('eu');

    const scoped = (await warden.checkResources(checks[2] as CheckReq)).findResult({ kind: 'tool', id: 'anything' });
    expect(scoped?.resource.scope).toBe('acme');
    expect(scoped?.metadata?.actions['invoke']?.matchedScope).toBe('acme');
  });

  checks.forEach((req, i) => {
    it(`check ${i} (${req.principal.id}): gRPC answers what HTTP answers, and what the Cerbos PDP answers`, async () => {
      const [w, h, c] = await Promise.all([warden.checkResources(req), wardenHttp.checkResources(req), reference.checkResources(req)]);
      expect(withoutCallId(w)).toEqual(withoutCallId(h));
      expect(comparable(w)).toEqual(comparable(c));
    });
  });

  it('planResources: a conditional filter, always allowed, always denied', async () => {
    const conditional = await warden.planResources(plans.conditional);
    expect(conditional.kind).toBe('KIND_CONDITIONAL');
    expect(conditional.requestId).toBe('plan-1');
    expect(conditional.metadata?.conditionString).toContain('request.resource.attr.risk');
    expect((await warden.planResources(plans.allowed)).kind).toBe('KIND_ALWAYS_ALLOWED');
    expect((await warden.planResources(plans.denied)).kind).toBe('KIND_ALWAYS_DENIED');
  });

  (Object.keys(plans) as Array<keyof typeof plans>).forEach((name) => {
    it(`plan ${name}: gRPC answers what HTTP answers, and what the Cerbos PDP answers`, async () => {
      const req = plans[name];
      const [w, h, c] = await Promise.all([warden.planResources(req), wardenHttp.planResources(req), reference.planResources(req)]);
      expect(withoutCallId(w)).toEqual(withoutCallId(h));
      expect(withoutCallId(w)).toEqual(withoutCallId(c));
    });
  });

  const principal = { id: 'alice', roles: ['user'], attr: {} };
  const entry = (i: number) => ({ actions: ['invoke'], resource: { kind: 'tool', id: `t${i}`, attr: {} } });
  const badChecks: Record<string, MessageInitShape<typeof CheckResourcesRequestSchema>> = {
    'missing principal': { resources: [entry(0)] },
    'empty actions': { principal, resources: [{ actions: [], resource: { kind: 'tool', id: 'x' } }] },
    'no resources': { principal, resources: [] },
    'a resource without kind or id': { principal, resources: [{ actions: ['invoke'], resource: { attr: {} } }] },
    'duplicate and empty actions': { principal, resources: [{ actions: ['a', 'a', ''], resource: { kind: 'tool', id: 'x' } }] },
    'too many resources': { principal, resources: Array.from({ length: 51 }, (_, i) => entry(i)) },
    'too many actions': { principal, resources: [{ actions: Array.from({ length: 51 }, (_, i) => `a${i}`), resource: { kind: 'tool', id: 'x' } }] },
    'a bad scope': { principal: { ...principal, scope: '..bad' }, resources: [entry(0)] },
  };

  Object.entries(badChecks).forEach(([name, init]) => {
    it(`CheckResources with ${name}: INVALID_ARGUMENT with Cerbos's message, never an answer`, async () => {
      const [w, c] = await Promise.all([
        rawCall(broker.grpcAddr as string, 'CheckResources', CheckResourcesRequestSchema, CheckResourcesResponseSchema, init),
        rawCall(cerbos.grpcAddr, 'CheckResources', CheckResourcesRequestSchema, CheckResourcesResponseSchema, init),
      ]);
      expect(w.response).toBeUndefined();
      expect(c.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(w.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(w.error?.details).toBe(c.error?.details);
    });
  });

  const badPlans: Record<string, MessageInitShape<typeof PlanResourcesRequestSchema>> = {
    'missing principal': { action: 'invoke', resource: { kind: 'tool' } },
    'no action': { principal, resource: { kind: 'tool' } },
    'no resource kind': { action: 'invoke', principal, resource: {} },
    'both action and actions': { action: 'invoke', actions: ['invoke'], principal, resource: { kind: 'tool' } },
  };

  Object.entries(badPlans).forEach(([name, init]) => {
    it(`PlanResources with ${name}: INVALID_ARGUMENT with Cerbos's message, never a plan`, async () => {
      const [w, c] = await Promise.all([
        rawCall(broker.grpcAddr as string, 'PlanResources', PlanResourcesRequestSchema, PlanResourcesResponseSchema, init),
        rawCall(cerbos.grpcAddr, 'PlanResources', PlanResourcesRequestSchema, PlanResourcesResponseSchema, init),
      ]);
      expect(w.response).toBeUndefined();
      expect(c.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(w.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(w.error?.details).toBe(c.error?.details);
    });
  });
});

describe('the Cerbos gRPC API enriches requests through the resolvers, as the HTTP API does', () => {
  let broker: TestBroker;
  let warden: GRPC;
  let wardenHttp: HTTP;

  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'warden-grpc-enrich-'));
    writeFileSync(
      join(work, 'warden.yaml'),
      `resolvers:
  - name: tool-catalog
    kind: static
    key: resource.id
    when: R.kind == "tool"
    data:
      shell: { risk: critical, tenant: acme }
      search_docs: { risk: low, tenant: acme }
    provides:
      resource.attr.risk: result.risk
      resource.attr.tenant: result.tenant
    onError: deny
`,
    );
    broker = await startTestBroker({ cwd: work, policyDir: policies, grpc: true });
    warden = new GRPC(broker.grpcAddr as string, { tls: false });
    wardenHttp = new HTTP(broker.base);
  }, 60_000);

  afterAll(async () => {
    warden?.close();
    await broker?.close();
  });

  const req: CheckReq = {
    requestId: 'enrich',
    principal: { id: 'alice', roles: ['user'], attr: { tenant: 'acme' } },
    resources: [
      // The caller claims `low`; the catalogue says `critical`.
      { resource: { kind: 'tool', id: 'shell', attr: { risk: 'low', tenant: 'acme' } }, actions: ['invoke'] },
      { resource: { kind: 'tool', id: 'search_docs', attr: {} }, actions: ['invoke'] },
    ],
    includeMetadata: true,
  };

  it('decides on the resolved attributes, not on what the caller claims', async () => {
    const res = await warden.checkResources(req);
    expect(res.isAllowed({ resource: { kind: 'tool', id: 'search_docs' }, action: 'invoke' })).toBe(true);
    const shell = res.findResult({ kind: 'tool', id: 'shell' });
    expect(shell?.actions['invoke']).toBe('EFFECT_DENY');
    expect(shell?.outputs.map((o) => o.source)).toContain('resource.tool.vdefault#deny-critical');
  });

  it('answers what the HTTP API answers', async () => {
    const [w, h] = await Promise.all([warden.checkResources(req), wardenHttp.checkResources(req)]);
    expect(withoutCallId(w)).toEqual(withoutCallId(h));
  });
});
