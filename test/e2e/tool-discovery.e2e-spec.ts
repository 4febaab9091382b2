/**
 * `POST /v1/plan` end to end on the embedded defaults' demo configuration (the repository's
 * `warden.yaml`: demo tokens, the demo tables in Postgres, the shipped policies): allowed and
 * conditional tools with their residual condition, what a delegation's caps add, catalogs,
 * pagination that never cuts silently, and the request errors. Every plan is held to `/v1/check`
 * of the same broker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ cwd: repoRoot, policyDir: `${repoRoot}/policies` });
});
afterAll(async () => broker?.close());

type PlanJson = {
  allowed: string[];
  conditional: Array<{ id: string; condition: unknown; text: string; attributes: string[] }>;
  denied: { count: number; reasons: Record<string, number> };
  truncated: boolean;
  cursor?: string;
  error?: { code: string; message: string };
};

async function post<T = PlanJson>(path: string, body: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${broker.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as T };
}

const DEMO_TOOLS = ['web_search', 'crm_lookup', 'issue_refund', 'shell_exec', 'lookup_order', 'create_ticket', 'edit_project_plan'];

async function decisionOf(body: Record<string, unknown>, id: string, args: Record<string, unknown>): Promise<string> {
  const r = await post<{ results: Array<{ decision: string }> }>('/v1/check', { ...body, action: 'invoke', resource: { kind: 'tool', id, attr: { arguments: args } } });
  expect(r.status).toBe(200);
  return r.json.results[0]?.decision as string;
}

describe('POST /v1/plan (tool discovery)', () => {
  it('lists what a support approver may use, with the refund limit as the condition on the arguments', async () => {
    const who = { subject: { token: 'ray-demo-token' } };
    const { status, json } = await post('/v1/plan', { ...who, kind: 'tool', candidates: DEMO_TOOLS });
    expect(status).toBe(200);
    expect(json.allowed).toEqual(['create_ticket', 'crm_lookup', 'lookup_order', 'web_search']);
    expect(json.conditional).toEqual([
      { id: 'issue_refund', condition: { expression: { operator: 'lt', operands: [{ variable: 'request.resource.attr.arguments.amount' }, { value: 500 }] } }, text: 'arguments.amount < 500', attributes: ['arguments.amount'] },
    ]);
    expect(json.denied).toEqual({ count: 2, reasons: { policy_denied: 2 } });
    expect(json.truncated).toBe(false);
    expect(json.cursor).toBeUndefined();
    // The check agrees: allowed whatever the arguments, conditional exactly as the condition says, the rest denied.
    expect(await decisionOf(who, 'web_search', { q: 'x' })).toBe('ALLOW');
    expect(await decisionOf(who, 'issue_refund', { amount: 499 })).toBe('ALLOW');
    expect(await decisionOf(who, 'issue_refund', { amount: 500 })).toBe('DENY');
    expect(await decisionOf(who, 'shell_exec', {})).toBe('DENY');
    expect(await decisionOf(who, 'edit_project_plan', { projectId: 'apollo' })).toBe('DENY');
  });

  it('gives two users different catalogs', async () => {
    const alice = await post('/v1/plan', { subject: { token: 'alice-demo-token' }, kind: 'tool', candidates: DEMO_TOOLS });
    const carol = await post('/v1/plan', { subject: { token: 'carol-demo-token' }, kind: 'tool', candidates: DEMO_TOOLS });
    expect(alice.json.allowed).toEqual(['web_search']);
    expect(alice.json.conditional).toEqual([]);
    expect(carol.json.allowed).toEqual(['web_search']);
    expect(carol.json.conditional.map((c) => [c.id, c.text])).toEqual([['issue_refund', 'arguments.amount < 1000']]);
  });

  it('ANDs the delegation: its grants decide which tools, its caps bound the arguments', async () => {
    const minted = await post<{ token: string }>('/v1/delegations', {
      subject: { token: 'carol-demo-token' },
      to: 'support-bot',
      grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 300 } }, { kind: 'tool', actions: ['invoke'], ids: ['web_search'] }],
      ttl: '5m',
    });
    expect(minted.status).toBe(201);
    const who = { subject: { token: 'carol-demo-token' }, agent: { id: 'support-bot' }, delegation: minted.json.token };
    const { status, json } = await post('/v1/plan', { ...who, kind: 'tool', candidates: ['issue_refund', 'web_search', 'lookup_order'] });
    expect(status).toBe(200);
    // web_search: carol may, the agent may (low risk, its tenant), the delegation grants it.
    expect(json.allowed).toEqual(['web_search']);
    expect(json.conditional.map((c) => [c.id, c.text, c.attributes])).toEqual([['issue_refund', 'arguments.amount < 1000 && arguments.amount <= 300', ['arguments.amount']]]);
    // lookup_order: carol may not (medium risk), nor was it delegated.
    expect(json.denied).toEqual({ count: 1, reasons: { policy_denied: 1 } });
    expect(await decisionOf(who, 'web_search', { q: 'x' })).toBe('ALLOW');
    for (const [amount, want] of [[250, 'ALLOW'], [300, 'ALLOW'], [301, 'DENY'], [999, 'DENY']] as const) expect(await decisionOf(who, 'issue_refund', { amount })).toBe(want);
    expect(await decisionOf(who, 'lookup_order', {})).toBe('DENY');
  });

  it('lists a catalog in pages: `truncated` and a `cursor` whenever candidates remain, never a silent cut', async () => {
    const who = { subject: { token: 'ray-demo-token' }, kind: 'tool', catalog: 'demo-tools' };
    const whole = await post('/v1/plan', who);
    expect(whole.status).toBe(200);
    expect(whole.json.truncated).toBe(false);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await post('/v1/plan', { ...who, limit: 3, ...(cursor !== undefined ? { cursor } : {}) });
      expect(page.status).toBe(200);
      pages += 1;
      seen.push(...page.json.allowed, ...page.json.conditional.map((c) => c.id));
      expect(page.json.truncated).toBe(page.json.cursor !== undefined);
      cursor = page.json.cursor;
    } while (cursor !== undefined);
    expect(pages).toBe(3); // 7 demo tools, 3 per page
    expect(seen.sort()).toEqual([...whole.json.allowed, ...whole.json.conditional.map((c) => c.id)].sort());
    expect(whole.json.allowed.length + whole.json.conditional.length + whole.json.denied.count).toBe(7);
  });

  it('enriches a whole catalog with one call per resolver (explain)', async () => {
    const { status, json } = await post<PlanJson & { explain: { resolvers: Array<{ resolver: string; calls: number; keys: number; hits: number }>; timings: Record<string, number> } }>('/v1/plan', {
      subject: { token: 'ray-demo-token' },
      kind: 'tool',
      catalog: 'demo-tools',
      explain: true,
    });
    expect(status).toBe(200);
    const tools = json.explain.resolvers.find((r) => r.resolver === 'demo-tool-catalog');
    // Seven tools: one batch (or none, when the in-process cache already holds them all).
    expect(tools?.calls ?? 0).toBeLessThanOrEqual(1);
    expect((tools?.keys ?? 0) + (tools?.hits ?? 0)).toBe(7);
    expect(Object.keys(json.explain.timings).sort()).toEqual(['enrichMs', 'listMs', 'planMs', 'totalMs']);
  });

  it('denies every candidate of a caller nobody recognises, with the reason', async () => {
    const { status, json } = await post('/v1/plan', { subject: { token: 'nobody-token' }, kind: 'tool', candidates: DEMO_TOOLS });
    expect(status).toBe(200);
    expect(json.allowed).toEqual([]);
    expect(json.conditional).toEqual([]);
    expect(json.denied).toEqual({ count: 7, reasons: { subject_unresolved: 7 } });
  });

  it('refuses malformed requests with stable codes', async () => {
    const cases: Array<[unknown, number, string, string]> = [
      [{ subject: { token: 't' }, candidates: ['a'] }, 400, 'ERR_REQUEST_INVALID', '`kind`'],
      [{ subject: { token: 't' }, kind: 'tool' }, 400, 'ERR_REQUEST_INVALID', '`candidates`'],
      [{ subject: { token: 't' }, kind: 'tool', candidates: ['a'], catalog: 'demo-tools' }, 400, 'ERR_REQUEST_INVALID', '`candidates`'],
      [{ subject: { token: 't' }, kind: 'tool', candidates: ['a'], cursor: 'not-a-cursor' }, 400, 'ERR_REQUEST_INVALID', '`cursor`'],
      [{ subject: { token: 't' }, kind: 'tool', candidates: ['a'], limit: 0 }, 400, 'ERR_REQUEST_INVALID', '`limit`'],
      [{ subject: { token: 't' }, kind: 'tool', catalog: 'nope' }, 400, 'ERR_REQUEST_INVALID', '`catalog`'],
      [{ subject: { token: 't' }, kind: 'model', catalog: 'demo-tools' }, 400, 'ERR_REQUEST_INVALID', 'lists `tool`'],
      [{ subject: { token: 't' }, kind: 'tool', candidates: ['a'], extra: 1 }, 400, 'ERR_REQUEST_INVALID', '`extra`'],
      [{ subject: { id: 'alice', roles: ['admin'] }, kind: 'tool', candidates: ['a'] }, 401, 'ERR_UNAUTHENTICATED', 'x-warden-api-key'],
      [{ subject: { token: 't' }, kind: 'tool', candidates: Array.from({ length: 1001 }, (_, i) => `t${i}`) }, 400, 'ERR_REQUEST_LIMIT_EXCEEDED', '`candidates`'],
    ];
    for (const [body, status, code, mentions] of cases) {
      const r = await post<{ error: { code: string; message: string } }>('/v1/plan', body);
      expect({ body, status: r.status, code: r.json.error.code }).toEqual({ body, status, code });
      expect(r.json.error.message).toContain(mentions);
    }
  });
});
