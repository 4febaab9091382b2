#!/usr/bin/env node
// `npm run demo`: the six scenarios of the brief against a running broker on its embedded
// defaults (`npm start`; the demo tokens, agents and catalogues of ./warden.yaml). Prints one row
// per request (scenario, caller, request, decision, reason) and exits 1 when a decision is not the
// expected one. WARDEN_URL points it elsewhere (default http://127.0.0.1:3594).

const tok = (who) => ({ token: `${who}-demo-token` });

/** One check: who asks, what, and the decision the scenario expects. */
const check = (caller, body, expected, label) => ({ kind: 'check', caller, body, expected, label });

export const SCENARIOS = [
  {
    name: '1. frontier model: research/platform-ai, production only',
    steps: [
      check('dave (research)', { subject: tok('dave'), action: 'invoke', resource: { kind: 'model', id: 'o3-reasoner', attr: { environment: 'production' } } }, 'ALLOW', 'invoke o3-reasoner from production'),
      check('dave (research)', { subject: tok('dave'), action: 'invoke', resource: { kind: 'model', id: 'o3-reasoner', attr: { environment: 'staging' } } }, 'DENY', 'invoke o3-reasoner from staging'),
      check('erin (sales)', { subject: tok('erin'), action: 'invoke', resource: { kind: 'model', id: 'o3-reasoner', attr: { environment: 'production' } } }, 'DENY', 'invoke o3-reasoner from production'),
    ],
  },
  {
    name: '2. EU users and EU data stay in the EU',
    steps: [
      check('eva (EU resident)', { subject: tok('eva'), action: 'invoke', resource: { kind: 'model', id: 'gpt-4o-mini-us' } }, 'DENY', 'invoke gpt-4o-mini-us'),
      check('eva (EU resident)', { subject: tok('eva'), action: 'invoke', resource: { kind: 'model', id: 'gpt-4o-mini-eu' } }, 'ALLOW', 'invoke gpt-4o-mini-eu'),
      check('alice (US)', { subject: tok('alice'), action: 'invoke', resource: { kind: 'model', id: 'gpt-4o-mini-us', attr: { dataResidency: 'EU' } } }, 'DENY', 'invoke gpt-4o-mini-us with EU data'),
      check('alice (US)', { subject: tok('alice'), action: 'invoke', resource: { kind: 'model', id: 'gpt-4o-mini-us' } }, 'ALLOW', 'invoke gpt-4o-mini-us'),
    ],
  },
  {
    name: '3. support agent for support users; refunds need an approver under the limit',
    steps: [
      check('support-bot for sue', { subject: tok('sue'), agent: { id: 'support-bot' }, action: 'invoke', resource: { kind: 'tool', id: 'lookup_order' } }, 'ALLOW', 'lookup_order'),
      check('support-bot for sue', { subject: tok('sue'), agent: { id: 'support-bot' }, action: 'invoke', resource: { kind: 'tool', id: 'create_ticket' } }, 'ALLOW', 'create_ticket'),
      check('support-bot for sue', { subject: tok('sue'), agent: { id: 'support-bot' }, action: 'invoke', resource: { kind: 'tool', id: 'issue_refund', attr: { amount: 200 } } }, 'DENY', 'issue_refund 200 (sue is no approver)'),
      check('support-bot for ray', { subject: tok('ray'), agent: { id: 'support-bot' }, action: 'invoke', resource: { kind: 'tool', id: 'issue_refund', attr: { amount: 200 } } }, 'ALLOW', 'issue_refund 200 (limit 500)'),
      check('support-bot for ray', { subject: tok('ray'), agent: { id: 'support-bot' }, action: 'invoke', resource: { kind: 'tool', id: 'issue_refund', attr: { amount: 600 } } }, 'DENY', 'issue_refund 600 (limit 500)'),
    ],
  },
  {
    name: '4. project plans: the owning team only',
    steps: [
      check('tina (team-apollo)', { subject: tok('tina'), action: 'invoke', resource: { kind: 'tool', id: 'edit_project_plan', attr: { projectId: 'apollo' } } }, 'ALLOW', 'edit_project_plan apollo'),
      check('tina (team-apollo)', { subject: tok('tina'), action: 'invoke', resource: { kind: 'tool', id: 'edit_project_plan', attr: { projectId: 'zeus' } } }, 'DENY', 'edit_project_plan zeus'),
      check('alice (team-zeus)', { subject: tok('alice'), action: 'invoke', resource: { kind: 'tool', id: 'edit_project_plan', attr: { projectId: 'zeus' } } }, 'ALLOW', 'edit_project_plan zeus'),
    ],
  },
  {
    name: '5. destructive MCP tools: on-call break-glass only',
    steps: [
      check('olga (on call, break-glass)', { subject: tok('olga'), actions: ['list', 'call'], resource: { kind: 'mcp_tool', id: 'database/drop_table' } }, 'ALLOW', 'list+call database/drop_table'),
      check('otto (break-glass, off call)', { subject: tok('otto'), actions: ['list', 'call'], resource: { kind: 'mcp_tool', id: 'database/drop_table' } }, 'DENY', 'list+call database/drop_table'),
      check('otto (break-glass, off call)', { subject: tok('otto'), action: 'list', resource: { kind: 'mcp_tool', id: 'database/delete_tenant' } }, 'DENY', 'list database/delete_tenant (no annotations)'),
      check('alice', { subject: tok('alice'), actions: ['list', 'call'], resource: { kind: 'mcp_tool', id: 'github/search_code' } }, 'ALLOW', 'list+call github/search_code (read-only)'),
    ],
  },
  { name: '6. planner delegates to executor; revoking stops it', steps: [{ kind: 'delegation' }] },
];

async function call(base, method, path, body, headers = {}) {
  const res = await fetch(`${base}${path}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

/** The reason a row shows: the first denial's code, and a policy output's reason when there is one. */
function reasonOf(json) {
  if (json.error !== undefined) return `${json.error.code}: ${json.error.message}`;
  const outputs = (json.results ?? []).flatMap((r) => r.outputs ?? []).map((o) => o.val?.reason).filter((r) => typeof r === 'string');
  const codes = (json.reasons ?? []).map((r) => (r.identity !== undefined ? `${r.code} (${r.identity})` : r.code));
  return [...new Set([...codes, ...outputs])].join(', ') || '–';
}

async function delegationSteps(base) {
  const rows = [];
  const row = (caller, request, expected, decision, reason) => rows.push({ caller, request, expected, decision, reason });
  const grant = (ids) => [{ kind: 'tool', actions: ['invoke'], ids }];
  const root = await call(base, 'POST', '/v1/delegations', { subject: tok('alice'), to: 'planner', grants: grant(['web_search']), canSubDelegate: true, maxDepth: 2, ttl: '10m', task: 'demo' });
  row('alice -> planner', 'mint: invoke web_search, may pass on', 'MINTED', root.status === 201 ? 'MINTED' : 'REFUSED', root.status === 201 ? `depth ${root.json.depth}` : reasonOf(root.json));
  if (root.status !== 201) return rows;
  const wider = await call(base, 'POST', '/v1/delegations', { delegation: root.json.token, agent: { id: 'planner' }, to: 'executor', grants: grant(['web_search', 'crm_lookup']), maxDepth: 2 });
  row('planner -> executor', 'mint: web_search + crm_lookup', 'REFUSED', wider.status === 201 ? 'MINTED' : 'REFUSED', wider.status === 201 ? '–' : wider.json.error.message);
  const child = await call(base, 'POST', '/v1/delegations', { delegation: root.json.token, agent: { id: 'planner' }, to: 'executor', grants: grant(['web_search']), maxDepth: 2 });
  row('planner -> executor', 'mint: web_search', 'MINTED', child.status === 201 ? 'MINTED' : 'REFUSED', child.status === 201 ? `depth ${child.json.depth}` : reasonOf(child.json));
  if (child.status !== 201) return rows;
  const onward = await call(base, 'POST', '/v1/delegations', { delegation: child.json.token, agent: { id: 'executor' }, to: 'planner', grants: grant(['web_search']), maxDepth: 2 });
  row('executor -> planner', 'mint: pass it on', 'REFUSED', onward.status === 201 ? 'MINTED' : 'REFUSED', onward.status === 201 ? '–' : onward.json.error.message);
  const ask = (id) => call(base, 'POST', '/v1/check', { subject: tok('alice'), agent: { id: 'executor' }, delegation: child.json.token, action: 'invoke', resource: { kind: 'tool', id } });
  for (const [id, expected] of [['web_search', 'ALLOW'], ['crm_lookup', 'DENY']]) {
    const a = await ask(id);
    row('executor for alice', `invoke ${id}`, expected, a.json.decision, reasonOf(a.json));
  }
  const revoked = await call(base, 'DELETE', `/v1/delegations/${root.json.delegationId}`, undefined, { authorization: 'Bearer alice-demo-token' });
  row('alice', "revoke the planner's delegation", 'REVOKED', revoked.status === 200 ? 'REVOKED' : 'FAILED', revoked.status === 200 ? `seq ${revoked.json.revoked.seq}` : reasonOf(revoked.json));
  const after = await ask('web_search');
  row('executor for alice', 'invoke web_search', 'DENY', after.json.decision, reasonOf(after.json));
  return rows;
}

/** Runs every scenario against `base`; one row per request. */
export async function runDemo(base) {
  const rows = [];
  for (const s of SCENARIOS) {
    for (const step of s.steps) {
      if (step.kind === 'delegation') {
        for (const r of await delegationSteps(base)) rows.push({ scenario: s.name, ...r });
        continue;
      }
      const a = await call(base, 'POST', '/v1/check', step.body);
      rows.push({ scenario: s.name, caller: step.caller, request: step.label, expected: step.expected, decision: a.json.decision ?? `HTTP ${a.status}`, reason: reasonOf(a.json) });
    }
  }
  return rows;
}

function print(rows) {
  const cols = ['scenario', 'caller', 'request', 'decision', 'reason'];
  const cell = (r, c) => (c === 'decision' && r.decision !== r.expected ? `${r.decision} (expected ${r.expected})` : String(r[c]));
  const width = Object.fromEntries(cols.map((c) => [c, Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r, c).length)))]));
  const line = (vals) => vals.map((v, i) => (i === cols.length - 1 ? v : v.slice(0, width[cols[i]]).padEnd(width[cols[i]]))).join(' | ');
  console.log(line(cols));
  console.log(cols.map((c) => '-'.repeat(width[c])).join('-|-'));
  let last = '';
  for (const r of rows) {
    console.log(line(cols.map((c) => (c === 'scenario' ? (r.scenario === last ? '' : r.scenario) : cell(r, c)))));
    last = r.scenario;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const base = process.env.WARDEN_URL ?? 'http://127.0.0.1:3594';
  runDemo(base).then(
    (rows) => {
      print(rows);
      const wrong = rows.filter((r) => r.decision !== r.expected);
      console.log(`\n${rows.length} requests, ${wrong.length === 0 ? 'every decision as expected' : `${wrong.length} not as expected`}`);
      process.exit(wrong.length === 0 ? 0 : 1);
    },
    (err) => {
      console.error(`demo: cannot run against ${base} (is the broker started with \`npm start\`?): ${err.message}`);
      process.exit(2);
    },
  );
}
