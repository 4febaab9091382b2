/**
 * Agents acting for people, end to end on a real broker with real Postgres (and Redis for the
 * cross-instance part): two-identity decisions, minting and attenuating delegations, the attacks
 * of issue 4 each with its reason code, revocation (on this instance, on another, and through the
 * event stream), and failing closed for high-capability actions when revocation state is stale.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, base64url, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateDelegationKey, loadDelegationKeys, signDelegation, type DelegationChain, type Hop } from '@warden/delegation';
import { parseA2aRequest } from '@warden/gateway';
import { ClientFactory } from '@a2a-js/sdk/client';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';
import { sleep, v1Check, writePolicyDir, type V1Answer } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
// Warden's signing key, configured, so tests can sign chains Warden itself would never mint.
const WARDEN_KEY = await generateDelegationKey('ES256');
const WARDEN = await loadDelegationKeys([WARDEN_KEY], 'urn:warden:delegation');
const ADMIN_TOKEN = `admin-${RUN}-0123456789abcdef`;
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      roles: [user]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: R.id in ["lookup_order", "create_ticket"]
    - actions: [invoke]
      roles: [user]
      effect: EFFECT_ALLOW
      condition:
        match:
          all:
            of:
              - expr: R.id == "issue_refund"
              - expr: '"refund_approver" in P.roles'
              - expr: R.attr.amount <= P.attr.approvalLimit
    - actions: [invoke]
      roles: [agent]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: R.id in P.attr.allowedTools
`;

// Tokens name the subject; a directory keyed on the subject's id gives roles and attributes, so a
// check that carries only a delegation (no subject token, as between agents) still knows the human.
const TOKENS = { 'alice-token': { id: 'alice', sid: 's-alice-1' }, 'bob-token': { id: 'bob', sid: 's-bob-1' }, 'carol-token': { id: 'carol', sid: 's-carol-1' } };
const DIRECTORY = {
  alice: { roles: ['user', 'refund_approver'], approvalLimit: 500 },
  bob: { roles: ['user'], approvalLimit: 0 },
  carol: { roles: ['user'], approvalLimit: 0 },
};
const SUPPORT_TOOLS = ['lookup_order', 'create_ticket', 'issue_refund'];
const AGENTS = { 'support-bot': SUPPORT_TOOLS, planner: SUPPORT_TOOLS, executor: SUPPORT_TOOLS, 'rogue-bot': [] as string[] };
// Which agents each agent may call (agent-to-agent hops are checks on resource kind `agent`).
const MAY_CALL: Record<string, string[]> = { 'support-bot': ['refund-agent'], planner: ['refund-agent'], executor: [], 'rogue-bot': [] };

// Agent-to-agent: the called agent is the resource, the A2A task type the action.
const AGENT_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: agent
  version: default
  rules:
    # Delegating to an agent: people may, agents only when their own delegation allows it.
    - actions: [delegate]
      roles: [user]
      effect: EFFECT_ALLOW
    - actions: [delegate]
      roles: [agent]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: P.attr.canSubDelegate == true && R.id != "quarantined-bot"
    - actions: [lookup, message]
      roles: [user]
      effect: EFFECT_ALLOW
    - actions: [refund]
      roles: [user]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: '"refund_approver" in P.roles'
    - actions: [refund, lookup, message]
      roles: [agent]
      effect: EFFECT_ALLOW
      condition:
        match:
          expr: R.id in P.attr.mayCall
`;

function config(extra: Record<string, unknown> = {}): string {
  return stringify({
    gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
    admin: { bootstrapToken: ADMIN_TOKEN },
    resolvers: [
      { name: 'tokens', kind: 'static', key: 'subject.token', data: TOKENS, provides: { 'principal.id': 'result.id', 'principal.attr.sid': 'result.sid' } },
      { name: 'directory', kind: 'static', key: 'principal.id', data: DIRECTORY, provides: { 'principal.roles': 'result.roles', 'principal.attr.approvalLimit': 'result.approvalLimit' } },
      { name: 'agents', kind: 'static', key: 'agent.id', data: Object.fromEntries(Object.entries(AGENTS).map(([k, v]) => [k, { allowedTools: v, mayCall: MAY_CALL[k] ?? [] }])), provides: { 'agent.attr': 'result' } },
    ],
    delegation: { keys: [WARDEN_KEY], maxDepth: 3, maxDepthByAction: { delete: 1 }, ...extra },
    // Strict: an event's entry is in the decision log once its answer has arrived.
    audit: { enabled: true, mode: 'strict' },
  });
}

function brokerDir(extra: Record<string, unknown> = {}): { dir: string; policyDir: string } {
  const d = writePolicyDir({ 'tool.yaml': TOOL_POLICY, 'agent.yaml': AGENT_POLICY }, 'warden-delegation-');
  writeFileSync(join(d.dir, 'warden.yaml'), config(extra));
  return d;
}

type Answer = { status: number; json: any; text: string; headers: Headers };

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, text, json: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

const refund = (amount: number) => ({ kind: 'tool', id: 'issue_refund', attr: { amount } });
const tool = (id: string) => ({ kind: 'tool', id });
const codes = (a: V1Answer) => a.json.reasons.map((r) => r.code);

let broker: TestBroker;
const mint = (body: unknown, headers: Record<string, string> = {}) => call(broker.base, 'POST', '/v1/delegations', body, headers);
const check = (body: unknown) => v1Check(broker.base, body);

beforeAll(async () => {
  const { dir, policyDir } = brokerDir();
  broker = await startTestBroker({ cwd: dir, policyDir });
});
afterAll(async () => broker?.close());

describe('two identities', () => {
  it('a check without an agent is decided for the subject alone, as before', async () => {
    const a = await check({ subject: { token: 'alice-token' }, action: 'invoke', resource: tool('lookup_order') });
    expect(a.json.decision, a.text).toBe('ALLOW');
  });

  it('a check naming an agent needs the subject and the agent: either one denies', async () => {
    const both = await check({ subject: { token: 'alice-token' }, agent: { id: 'support-bot' }, action: 'invoke', resources: [tool('lookup_order'), refund(100)] });
    expect(both.json.results.map((r) => r.decision), both.text).toEqual(['ALLOW', 'ALLOW']);
    const rogue = await check({ subject: { token: 'alice-token' }, agent: { id: 'rogue-bot' }, action: 'invoke', resource: tool('lookup_order') });
    expect(rogue.json.decision).toBe('DENY');
    expect(rogue.json.reasons).toEqual([expect.objectContaining({ code: 'policy_denied', identity: 'agent', actions: ['invoke'], message: expect.stringContaining('rogue-bot') })]);
  });

  it('no policy lifts an agent above its human: the agent may refund, bob may not, so bob\'s agent may not', async () => {
    const a = await check({ subject: { token: 'bob-token' }, agent: { id: 'support-bot' }, action: 'invoke', resource: refund(10), explain: true });
    expect(a.json.decision).toBe('DENY');
    expect(a.json.reasons).toEqual([expect.objectContaining({ code: 'policy_denied', identity: 'subject', message: expect.stringContaining('`bob`') })]);
    expect(a.json.explain?.items[0]?.actions['invoke']).toEqual({ subject: { effect: 'DENY', policy: 'resource.tool.vdefault' }, agent: { effect: 'ALLOW', policy: 'resource.tool.vdefault' } });
    expect((a.json.explain as any).identities).toEqual({ subject: 'bob', agent: { id: 'support-bot', roles: ['agent'] } });
  });
});

describe('agent to agent (A2A)', () => {
  /** The JSON-RPC body the real A2A SDK sends to an agent for `taskType`. */
  async function a2aBody(taskType: string): Promise<unknown> {
    let captured: unknown;
    const server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString('utf8')));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        if (req.method === 'GET') {
          res.end(JSON.stringify({ name: 'refund-agent', description: 'refunds', version: '1.0.0', capabilities: {}, defaultInputModes: ['text/plain'], defaultOutputModes: ['text/plain'], skills: [], supportedInterfaces: [{ url: `${base}/rpc`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' }] }));
          return;
        }
        captured = JSON.parse(text);
        res.end(JSON.stringify({ jsonrpc: '2.0', id: (captured as { id: unknown }).id, error: { code: -32603, message: 'captured' } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const client = await new ClientFactory().createFromUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await client.sendMessage({ message: { messageId: 'm-1', contextId: 'c-1', taskId: '', role: 1, parts: [{ content: { $case: 'text', value: 'refund order 42' } }], metadata: { taskType } }, metadata: {} } as never).catch(() => undefined);
    } finally {
      server.close();
    }
    return captured;
  }

  it('decides which agents may call which, for which tasks, for which users', async () => {
    const refund = parseA2aRequest(await a2aBody('refund'), { target: 'refund-agent' });
    expect([refund.resource.kind, refund.resource.id, refund.action]).toEqual(['agent', 'refund-agent', 'refund']);
    const ask = (subject: string, agent: string, c = refund) => check({ subject: { token: subject }, agent: { id: agent }, action: c.action, resource: c.resource });
    expect((await ask('alice-token', 'support-bot')).json.decision).toBe('ALLOW');
    const bob = await ask('bob-token', 'support-bot');
    expect(bob.json.reasons.map((r) => [r.code, r.identity])).toEqual([['policy_denied', 'subject']]);
    const executor = await ask('alice-token', 'executor');
    expect(executor.json.reasons.map((r) => [r.code, r.identity])).toEqual([['policy_denied', 'agent']]);
    const payroll = parseA2aRequest(await a2aBody('refund'), { target: 'payroll-agent' });
    expect((await ask('alice-token', 'support-bot', payroll)).json.decision).toBe('DENY');
    const lookup = parseA2aRequest(await a2aBody('lookup'), { target: 'refund-agent' });
    expect((await ask('bob-token', 'support-bot', lookup)).json.decision).toBe('ALLOW');
  });
});

describe('delegations', () => {
  let rootToken: string;
  let rootId: string;
  let childToken: string;

  it('publishes the verification keys at /.well-known/jwks.json', async () => {
    const jwks = await call(broker.base, 'GET', '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    expect(jwks.json.keys).toEqual([expect.objectContaining({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: expect.any(String) })]);
    expect(jwks.json.keys[0]).not.toHaveProperty('d');
  });

  it('mints a delegation from the subject\'s token, within what the subject may do', async () => {
    const grants = [
      { kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] },
      { kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 300 } },
    ];
    const m = await mint({ subject: { token: 'alice-token' }, to: 'planner', grants, canSubDelegate: true, maxDepth: 2, ttl: '10m', task: 'refund-42' });
    expect(m.status, m.text).toBe(201);
    expect(m.json).toMatchObject({ subject: 'alice', agent: 'planner', depth: 1, chain: [m.json.delegationId] });
    rootToken = m.json.token;
    rootId = m.json.delegationId;
    // The decision log holds the minted delegation (kind delegation), never its token.
    const logged = await call(broker.base, 'GET', '/v1/audit?subject=alice&agent=planner', undefined, { authorization: `Bearer ${ADMIN_TOKEN}` });
    const minted = (logged.json.entries as Array<{ decisionId: string; kind: string }>).find((e) => e.decisionId === rootId);
    expect(minted).toMatchObject({ kind: 'delegation', source: '/v1/delegations', identities: { subject: 'alice', agent: 'planner', delegationChain: [rootId] }, input: { from: 'alice', to: 'planner', task: 'refund-42' } });
    expect(logged.text).not.toContain(rootToken);
    expect(logged.text).not.toContain('alice-token');
    const jwks = await call(broker.base, 'GET', '/.well-known/jwks.json');
    expect(jwks.json.keys.map((k: { kid: string }) => k.kid)).toContain(decodeProtectedHeader(rootToken).kid);
  });

  it('refuses to mint what the subject may not do, with the reason', async () => {
    const notHers = await mint({ subject: { token: 'alice-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['drop_table'] }] });
    expect([notHers.status, notHers.json.error.code], notHers.text).toEqual([403, 'ERR_DELEGATION_REFUSED']);
    expect(notHers.json.error.message).toMatch(/alice.*may not.*drop_table/);
    // The refusal is a decision too: in the log, DENY with its reason, under the id the caller got.
    const refusedId = notHers.headers.get('x-warden-decision-id');
    expect(refusedId).toMatch(/.+/);
    const logged = await call(broker.base, 'GET', '/v1/audit?subject=alice&decision=DENY', undefined, { authorization: `Bearer ${ADMIN_TOKEN}` });
    const entry = (logged.json.entries as Array<{ decisionId: string }>).find((e) => e.decisionId === refusedId);
    expect(entry).toMatchObject({ kind: 'delegation', decision: 'DENY', identities: { subject: 'alice', agent: 'planner' }, reasons: [{ code: 'delegation_scope_exceeded' }], input: { to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['drop_table'] }] } });
    expect(logged.text).not.toContain('alice-token');
    const aboveLimit = await mint({ subject: { token: 'alice-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 1000 } }] });
    expect(aboveLimit.status, aboveLimit.text).toBe(403);
    const unknown = await mint({ subject: { token: 'nobody' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] }] });
    expect(unknown.status, unknown.text).toBe(401);
    const badBody = await mint({ subject: { token: 'alice-token' }, to: 'planner', grants: [] });
    expect([badBody.status, badBody.json.error.code]).toEqual([400, 'ERR_REQUEST_INVALID']);
  });

  it('a check with the delegation is allowed only inside its grants, and says which hop denied', async () => {
    const ok = await check({ agent: { id: 'planner' }, delegation: rootToken, action: 'invoke', resources: [refund(200), tool('lookup_order')] });
    expect(ok.json.results.map((r) => r.decision), ok.text).toEqual(['ALLOW', 'ALLOW']);
    const over = await check({ agent: { id: 'planner' }, delegation: rootToken, action: 'invoke', resources: [refund(400), tool('create_ticket')], explain: true });
    expect(over.json.results.map((r) => r.decision)).toEqual(['DENY', 'DENY']);
    expect(over.json.reasons).toEqual([
      expect.objectContaining({ code: 'delegation_out_of_scope', delegation: rootId, resource: { kind: 'tool', id: 'issue_refund' } }),
      expect.objectContaining({ code: 'delegation_out_of_scope', delegation: rootId, resource: { kind: 'tool', id: 'create_ticket' } }),
    ]);
    const e = over.json.explain as any;
    expect(e.identities).toMatchObject({ subject: 'alice', agent: { id: 'planner' }, delegation: { subject: 'alice', chain: [{ id: rootId, from: 'alice', to: 'planner', task: 'refund-42' }] } });
    expect(e.items[0].actions.invoke).toEqual({ subject: { effect: 'ALLOW', policy: 'resource.tool.vdefault' }, agent: { effect: 'ALLOW', policy: 'resource.tool.vdefault' }, delegation: 'DENY' });
  });

  it('an agent presenting another agent\'s token, or for another subject, is denied', async () => {
    const other = await check({ agent: { id: 'support-bot' }, delegation: rootToken, action: 'invoke', resource: tool('lookup_order') });
    expect(codes(other)).toEqual(['delegation_actor_mismatch']);
    const bob = await check({ subject: { token: 'bob-token' }, agent: { id: 'planner' }, delegation: rootToken, action: 'invoke', resource: tool('lookup_order') });
    expect(codes(bob)).toEqual(['delegation_subject_mismatch']);
    const noAgent = await check({ delegation: rootToken, action: 'invoke', resource: tool('lookup_order') });
    expect([noAgent.status, (noAgent.json as any).error.code]).toEqual([400, 'ERR_REQUEST_INVALID']);
  });

  it('forged, tampered and expired tokens are denied with their reason', async () => {
    const [h, p, s] = rootToken.split('.') as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    claims.wdn.hops[0].grants[1].caps.amount = 100000;
    const tampered = await check({ agent: { id: 'planner' }, delegation: `${h}.${base64url.encode(JSON.stringify(claims))}.${s}`, action: 'invoke', resource: refund(1000) });
    expect(codes(tampered)).toEqual(['delegation_invalid']);
    const ring = await loadDelegationKeys([await generateDelegationKey()], 'urn:warden:delegation');
    const forged = await new SignJWT(JSON.parse(new TextDecoder().decode(base64url.decode(p)))).setProtectedHeader({ alg: 'ES256', kid: ring.signer.kid, typ: 'wdn-delegation+jwt' }).sign(ring.signer.key);
    expect(codes(await check({ agent: { id: 'planner' }, delegation: forged, action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_invalid']);
    const expired = await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }).setProtectedHeader({ alg: 'ES256', kid: ring.signer.kid, typ: 'wdn-delegation+jwt' }).sign(ring.signer.key);
    expect(codes(await check({ agent: { id: 'planner' }, delegation: expired, action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_invalid']);
  });

  it('re-verifies every hop of a chain signed with Warden\'s own key: widened grants, forbidden onward hops, depth, lifetimes', async () => {
    const now = Math.floor(Date.now() / 1000);
    const hop = (h: Partial<Hop> & Pick<Hop, 'id' | 'from' | 'to'>): Hop => ({ grants: [{ kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] }], canSubDelegate: true, maxDepth: 3, iat: now, exp: now + 600, ...h });
    const crafted = async (hops: Hop[]) => {
      const chain: DelegationChain = { subject: 'alice', hops };
      return codes(await check({ agent: { id: 'executor' }, delegation: await signDelegation(chain, WARDEN.signer), action: 'invoke', resource: tool('lookup_order') }));
    };
    const root = hop({ id: 'x1', from: 'alice', to: 'planner' });
    expect(await crafted([root, hop({ id: 'x2', from: 'planner', to: 'executor' })])).toEqual([]);
    expect(await crafted([root, hop({ id: 'x2', from: 'planner', to: 'executor', grants: [{ kind: 'tool', actions: ['*'] }] })])).toEqual(['delegation_scope_exceeded']);
    expect(await crafted([{ ...root, canSubDelegate: false }, hop({ id: 'x2', from: 'planner', to: 'executor' })])).toEqual(['delegation_subdelegation_forbidden']);
    expect(await crafted([{ ...root, maxDepth: 1 }, hop({ id: 'x2', from: 'planner', to: 'executor', maxDepth: 1 })])).toEqual(['delegation_depth_exceeded']);
    expect(await crafted([{ ...root, exp: now - 1 }, hop({ id: 'x2', from: 'planner', to: 'executor', exp: now + 600 })])).toEqual(['delegation_expired']);
    expect(await crafted([root, hop({ id: 'x2', from: 'mallory', to: 'executor' })])).toEqual(['delegation_chain_broken']);
  });

  it('a delegation expires with its lifetime', async () => {
    const m = await mint({ subject: { token: 'alice-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] }], ttl: '1s' });
    expect(m.status, m.text).toBe(201);
    const body = { agent: { id: 'planner' }, delegation: m.json.token, action: 'invoke', resource: tool('lookup_order') };
    expect((await check(body)).json.decision).toBe('ALLOW');
    // A lifetime is at least what was asked (JWT times are whole seconds), so at most 2 s here.
    await sleep(2100);
    expect(codes(await check(body))).toEqual(['delegation_expired']);
  });

  it('sub-delegation narrows: inside the parent only, only when granted, within depth', async () => {
    const child = await mint({ delegation: rootToken, agent: { id: 'planner' }, to: 'executor', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 100 } }], maxDepth: 2 });
    expect(child.status, child.text).toBe(201);
    expect(child.json).toMatchObject({ subject: 'alice', agent: 'executor', depth: 2, chain: [rootId, child.json.delegationId] });
    childToken = child.json.token;
    const inside = await check({ agent: { id: 'executor' }, delegation: childToken, action: 'invoke', resources: [refund(50), refund(150), tool('lookup_order')] });
    expect(inside.json.results.map((r) => r.decision), inside.text).toEqual(['ALLOW', 'DENY', 'DENY']);
    const refusal = async (body: Record<string, unknown>) => {
      const r = await mint({ delegation: rootToken, agent: { id: 'planner' }, to: 'executor', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 100 } }], maxDepth: 2, ...body });
      return [r.status, r.json?.error?.code, r.json?.error?.message];
    };
    expect(await refusal({ grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 301 } }] })).toEqual([403, 'ERR_DELEGATION_REFUSED', expect.stringContaining('does not grant')]);
    expect(await refusal({ grants: [{ kind: 'tool', actions: ['invoke'], ids: ['create_ticket'] }] })).toEqual([403, 'ERR_DELEGATION_REFUSED', expect.any(String)]);
    expect(await refusal({ maxDepth: 3 })).toEqual([403, 'ERR_DELEGATION_REFUSED', expect.stringContaining('maxDepth')]);
    expect(await refusal({ agent: { id: 'support-bot' } })).toEqual([403, 'ERR_DELEGATION_REFUSED', expect.stringContaining('held by `planner`')]);
    // The agent policy decides whom an agent may delegate to (action `delegate` on the target).
    expect(await refusal({ to: 'quarantined-bot' })).toEqual([403, 'ERR_DELEGATION_REFUSED', '`planner` may not delegate to agent `quarantined-bot` (policy)']);
    const onward = await mint({ delegation: childToken, agent: { id: 'executor' }, to: 'support-bot', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 10 } }], maxDepth: 2 });
    expect([onward.status, onward.json.error.message]).toEqual([403, expect.stringContaining('does not allow onward delegation')]);
  });

  it('revoking a delegation denies its descendants on the next call', async () => {
    expect((await check({ agent: { id: 'executor' }, delegation: childToken, action: 'invoke', resource: refund(50) })).json.decision).toBe('ALLOW');
    const forbidden = await call(broker.base, 'DELETE', `/v1/delegations/${rootId}`, undefined, { authorization: 'Bearer bob-token' });
    expect([forbidden.status, forbidden.json.error.code]).toEqual([403, 'ERR_FORBIDDEN']);
    const revoked = await call(broker.base, 'DELETE', `/v1/delegations/${rootId}`, undefined, { authorization: 'Bearer alice-token' });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json.revoked).toMatchObject({ target: 'delegation', id: rootId, by: 'alice' });
    const after = await check({ agent: { id: 'executor' }, delegation: childToken, action: 'invoke', resource: refund(50) });
    expect(codes(after)).toEqual(['delegation_revoked']);
    const again = await mint({ delegation: childToken, agent: { id: 'executor' }, to: 'support-bot', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 10 } }] });
    expect(again.status).toBe(403);
    expect((await call(broker.base, 'DELETE', '/v1/delegations/dlg_nope', undefined, { authorization: 'Bearer alice-token' })).status).toBe(404);
  });

  it('revoking a subject\'s session stops the chains minted from it and the subject\'s own checks; revoking a subject stops every check for it', async () => {
    const m = await mint({ subject: { token: 'carol-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] }] });
    expect(m.status, m.text).toBe(201);
    const viaAgent = { agent: { id: 'planner' }, delegation: m.json.token, action: 'invoke', resource: tool('lookup_order') };
    const direct = { subject: { token: 'carol-token' }, action: 'invoke', resource: tool('lookup_order') };
    expect([(await check(viaAgent)).json.decision, (await check(direct)).json.decision]).toEqual(['ALLOW', 'ALLOW']);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    expect((await call(broker.base, 'POST', '/v1/admin/revocations', { target: 'session', id: 's-carol-1' }, admin)).status).toBe(201);
    expect([codes(await check(viaAgent)), codes(await check(direct))]).toEqual([['session_revoked'], ['session_revoked']]);
    const bobBefore = await check({ subject: { token: 'bob-token' }, action: 'invoke', resource: tool('lookup_order') });
    expect(bobBefore.json.decision).toBe('ALLOW');
    const cerbosApi = () => call(broker.base, 'POST', '/api/check/resources', { requestId: 'r', principal: { id: 'bob', roles: ['user'] }, resources: [{ actions: ['invoke'], resource: { kind: 'tool', id: 'lookup_order' } }] });
    expect((await cerbosApi()).json.results[0].actions).toEqual({ invoke: 'EFFECT_ALLOW' });
    expect((await call(broker.base, 'POST', '/v1/admin/revocations', { target: 'subject', id: 'bob' }, admin)).status).toBe(201);
    expect(codes(await check({ subject: { token: 'bob-token' }, action: 'invoke', resource: tool('lookup_order') }))).toEqual(['subject_revoked']);
    // The Cerbos-compatible API denies a revoked principal too, naming the reason in its outputs.
    const after = (await cerbosApi()).json.results[0];
    expect(after.actions).toEqual({ invoke: 'EFFECT_DENY' });
    expect(after.outputs).toEqual([expect.objectContaining({ src: 'warden#subject_revoked', action: 'invoke' })]);
  });

  it('an admin revokes an agent: every check it makes is denied', async () => {
    const noAuth = await call(broker.base, 'POST', '/v1/admin/revocations', { target: 'agent', id: 'rogue-2' });
    expect(noAuth.status).toBe(401);
    const bad = await call(broker.base, 'POST', '/v1/admin/revocations', { target: 'planet', id: 'x' }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect([bad.status, bad.json.error.message]).toEqual([400, expect.stringContaining('`target`')]);
    const r = await call(broker.base, 'POST', '/v1/admin/revocations', { target: 'agent', id: 'support-bot', reason: 'compromised' }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(r.status, r.text).toBe(201);
    const a = await check({ subject: { token: 'alice-token' }, agent: { id: 'support-bot' }, action: 'invoke', resource: tool('lookup_order') });
    expect(codes(a)).toEqual(['agent_revoked']);
  });
});

describe('across instances', () => {
  let db: TestDatabase;
  let a: TestBroker;
  let b: TestBroker;
  beforeAll(async () => {
    db = await createTestDatabase();
    const d1 = brokerDir({ revocationPoll: '1h' });
    a = await startTestBroker({ cwd: d1.dir, policyDir: d1.policyDir, databaseUrl: db.url, env: { REDIS_URL: TEST_REDIS_URL } });
    b = await startTestBroker({ cwd: d1.dir, policyDir: d1.policyDir, databaseUrl: db.url, env: { REDIS_URL: TEST_REDIS_URL } });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('share signing keys; a revocation made on one denies on the other at once (Redis pub/sub), and the stream reports it', async () => {
    const m = await call(a.base, 'POST', '/v1/delegations', { subject: { token: 'alice-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['lookup_order'] }] });
    expect(m.status, m.text).toBe(201);
    const body = { agent: { id: 'planner' }, delegation: m.json.token, action: 'invoke', resource: tool('lookup_order') };
    expect((await v1Check(b.base, body)).json.decision).toBe('ALLOW');

    const controller = new AbortController();
    const stream = await fetch(`${b.base}/v1/revocations/stream`, { headers: { 'x-warden-api-key': GATEWAY_KEY }, signal: controller.signal });
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    let seen = '';
    const until = async (needle: string) => {
      const deadline = Date.now() + 5000;
      while (!seen.includes(needle) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      return seen.includes(needle);
    };
    expect(await until(': connected')).toBe(true);

    const t0 = Date.now();
    const revoked = await call(a.base, 'DELETE', `/v1/delegations/${m.json.delegationId}`, undefined, { 'x-warden-api-key': GATEWAY_KEY });
    expect(revoked.status, revoked.text).toBe(200);
    let decision = 'ALLOW';
    while (decision === 'ALLOW' && Date.now() - t0 < 1000) {
      decision = (await v1Check(b.base, body)).json.decision;
      if (decision === 'ALLOW') await sleep(10);
    }
    expect(decision).toBe('DENY');
    expect(await until(m.json.delegationId)).toBe(true);
    expect(seen).toMatch(/event: revocation\ndata: \{"seq":\d+,"target":"delegation"/);
    controller.abort();
  });
});

describe('stale revocation state', () => {
  let stale: TestBroker;
  beforeAll(async () => {
    const d = brokerDir({ highCapabilityActions: ['invoke'], revocationPoll: '1h', revocationMaxStaleness: '200ms' });
    // Redis unreachable and no poll within the bound: the instance cannot confirm its state.
    stale = await startTestBroker({ cwd: d.dir, policyDir: d.policyDir, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  });
  afterAll(async () => stale?.close());

  it('denies high-capability actions, with the reason, once the state is older than the bound', async () => {
    await sleep(400);
    const a = await v1Check(stale.base, { subject: { token: 'alice-token' }, action: 'invoke', resource: tool('lookup_order') });
    expect(codes(a), a.text).toEqual(['revocation_state_stale']);
    const other = await v1Check(stale.base, { subject: { token: 'alice-token' }, action: 'read', resource: tool('lookup_order') });
    expect(other.json.reasons.map((r) => r.code)).toEqual(['policy_denied']);
  });
});

describe('external RFC 8693 actor tokens', () => {
  const ISSUER = 'https://idp.test';
  let idp: http.Server;
  let ext: TestBroker;
  let key: Awaited<ReturnType<typeof generateKeyPair>>;
  beforeAll(async () => {
    key = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(key.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
    idp = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const d = brokerDir({ externalIssuers: [{ issuer: ISSUER, jwksUri: `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks` }] });
    ext = await startTestBroker({ cwd: d.dir, policyDir: d.policyDir });
  });
  afterAll(async () => {
    await ext?.close();
    idp?.close();
  });

  const actorToken = (claims: Record<string, unknown>, signer = key.privateKey, exp = Math.floor(Date.now() / 1000) + 300) =>
    new SignJWT({ act: { sub: 'support-bot', act: { sub: 'orchestrator' } }, scope: 'everything', ...claims }).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).setIssuer(ISSUER).setSubject('alice').setExpirationTime(exp).sign(signer);

  it('names who acts for whom and grants nothing: the subject and the agent still decide', async () => {
    const token = await actorToken({});
    const a = await v1Check(ext.base, { agent: { id: 'support-bot' }, delegation: token, action: 'invoke', resources: [tool('lookup_order'), refund(100), refund(10_000)], explain: true });
    expect(a.json.results.map((r) => r.decision), a.text).toEqual(['ALLOW', 'ALLOW', 'DENY']);
    expect(a.json.reasons).toEqual([expect.objectContaining({ code: 'policy_denied', identity: 'subject', resource: { kind: 'tool', id: 'issue_refund' } })]);
    expect((a.json.explain as any).identities.delegation).toMatchObject({ subject: 'alice', issuer: ISSUER, actors: ['support-bot', 'orchestrator'] });
  });

  it('refuses a token held by another agent, signed by an unknown key, or expired', async () => {
    const token = await actorToken({});
    expect(codes(await v1Check(ext.base, { agent: { id: 'executor' }, delegation: token, action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_actor_mismatch']);
    const stranger = await generateKeyPair('RS256');
    expect(codes(await v1Check(ext.base, { agent: { id: 'support-bot' }, delegation: await actorToken({}, stranger.privateKey), action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_invalid']);
    expect(codes(await v1Check(ext.base, { agent: { id: 'support-bot' }, delegation: await actorToken({}, key.privateKey, Math.floor(Date.now() / 1000) - 60), action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_expired']);
    const noActor = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).setIssuer(ISSUER).setSubject('alice').setExpirationTime('5m').sign(key.privateKey);
    expect(codes(await v1Check(ext.base, { agent: { id: 'support-bot' }, delegation: noActor, action: 'invoke', resource: tool('lookup_order') }))).toEqual(['delegation_invalid']);
  });
});

