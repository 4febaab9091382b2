/**
 * Tool discovery fails closed: what it cannot plan faithfully is denied with a reason code, never
 * listed. A policy reading `request.context` (which the planner does not see) makes every
 * candidate of a request carrying context `plan_unsupported`, while `/v1/check` of the same call
 * decides it normally; a catalog that cannot be listed fails the request instead of answering a
 * partial (or empty) list as if it were whole.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { closedPort, writePolicyDir } from '../support/upstreams.js';

const GATEWAY_KEY = 'fail-closed-gateway-key-0123456789';
const POLICY = `---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - name: production-only
      actions: ["invoke"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          expr: has(request.context.env) && request.context.env == "production"
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: refund
  version: default
  rules:
    - name: refunds
      actions: ["invoke"]
      effect: EFFECT_ALLOW
      roles: ["user"]
    # A refund must say why. Cerbos's planner would take has() of the unknown argument as present
    # and drop this rule; discovery plans presence exactly, so the tool is listed on condition.
    - name: reason-required
      actions: ["invoke"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: "!has(R.attr.arguments.reason)"
`;

let broker: TestBroker;
beforeAll(async () => {
  const { dir, policyDir } = writePolicyDir({ 'tool.yaml': POLICY }, 'warden-fail-closed-');
  const port = await closedPort();
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
      datasources: { down: { kind: 'http', url: `http://127.0.0.1:${port}` } },
      resolvers: [{ name: 'down-catalog', kind: 'catalog', resourceKind: 'tool', source: 'http', datasource: 'down', path: '/tools', timeout: '500ms' }],
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir });
});
afterAll(async () => broker?.close());

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(broker.base + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-warden-api-key': GATEWAY_KEY }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const subject = { id: 'alice', roles: ['user'], attr: {} };

describe('tool discovery fails closed', () => {
  it('denies (plan_unsupported) what depends on request.context, which the check decides', async () => {
    const context = { env: 'production' };
    const plan = await post('/v1/plan', { subject, context, kind: 'tool', candidates: ['a', 'b'] });
    expect(plan.status).toBe(200);
    expect(plan.json['allowed']).toEqual([]);
    expect(plan.json['conditional']).toEqual([]);
    expect(plan.json['denied']).toEqual({ count: 2, reasons: { plan_unsupported: 2 } });
    const check = await post('/v1/check', { subject, context, action: 'invoke', resource: { kind: 'tool', id: 'a', attr: { arguments: {} } } });
    expect(check.json['decision']).toBe('ALLOW');
  });

  it('lists a tool whose DENY tests whether an argument is present on that condition, as the check decides', async () => {
    const plan = await post('/v1/plan', { subject, kind: 'refund', candidates: ['issue_refund'] });
    expect(plan.status).toBe(200);
    expect(plan.json['allowed']).toEqual([]);
    const conditional = plan.json['conditional'] as Array<{ id: string; text: string; needs: string[] }>;
    expect(conditional.map((c) => c.id)).toEqual(['issue_refund']);
    expect(conditional[0]?.text).toContain('has(arguments.reason)');
    const check = (args: Record<string, unknown>) => post('/v1/check', { subject, action: 'invoke', resource: { kind: 'refund', id: 'issue_refund', attr: { arguments: args } } });
    expect((await check({})).json['decision']).toBe('DENY');
    expect((await check({ reason: 'damaged' })).json['decision']).toBe('ALLOW');
  });

  it('refuses a request whose catalog cannot be listed (no partial list)', async () => {
    const plan = await post('/v1/plan', { subject, kind: 'tool', catalog: 'down-catalog' });
    expect(plan.status).toBe(503);
    expect((plan.json['error'] as { code: string; message: string }).code).toBe('ERR_CATALOG_UNAVAILABLE');
    expect((plan.json['error'] as { message: string }).message).toBe('catalog `down-catalog` could not be listed (failed)');
  });
});
