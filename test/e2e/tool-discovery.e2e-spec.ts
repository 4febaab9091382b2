import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ cwd: repoRoot, policyDir: `${repoRoot}/policies` });
});
afterAll(async () => broker?.close());

async function plan(body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${broker.base}/v1/plan`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe('scratch', () => {
  it('plans', async () => {
    for (const who of ['alice', 'carol', 'ray', 'sue']) {
      const r = await plan({ subject: { token: `${who}-demo-token` }, kind: 'tool', candidates: ['web_search', 'crm_lookup', 'issue_refund', 'shell_exec', 'lookup_order', 'create_ticket', 'edit_project_plan'] });
      console.log(who, r.status, JSON.stringify(r.json));
    }
    const r = await plan({ subject: { token: `olga-demo-token` }, kind: 'mcp_tool', action: 'call', candidates: ['database/drop_table', 'github/search_code', 'database/delete_tenant'] });
    console.log('olga', r.status, JSON.stringify(r.json));
    expect(1).toBe(1);
  });
});
