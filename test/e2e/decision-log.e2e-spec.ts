/**
 * The decision log end to end: a real broker (Postgres sink in its own database) answers N
 * `/v1/check` and Cerbos `CheckResources` calls; once it has shut down (which flushes the
 * writer), every decision id it returned is in `warden_audit_log` exactly once, with the
 * effects it answered, and no credential value is stored.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createPgDb } from '@warden/persistence';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { GRPC } from '@cerbos/grpc';
import { runCli } from '../../apps/cli/src/main.js';
import { closedPort, sleep, v1Check, writePolicyDir } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;
const SECRET = `SECRET-${RUN}`;

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id != "shell"
`;

type Row = { decision_id: string; decision: string; subject: string | null; agent: string | null; source: string; resources: string[]; entry: { results: Array<{ actions: Record<string, { effect: string; policy?: string; rule?: string; agent?: unknown }> }>; input: Record<string, unknown> } };

describe('decision log (Postgres sink)', () => {
  let db: TestDatabase;
  let broker: TestBroker | undefined;
  let dir: string;
  const returned = new Map<string, 'ALLOW' | 'DENY'>();
  let rows: Row[] = [];

  beforeAll(async () => {
    const written = writePolicyDir({ 'tool.yaml': TOOL_POLICY });
    dir = written.dir;
    writeFileSync(
      join(dir, 'warden.yaml'),
      stringify({
        gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
        // Enriched attributes are logged with their provenance; `principal.attr.ssn` is masked.
        // `tools` writes into the resources the gateway sent: their input stays as sent.
        resolvers: [
          { name: 'people', kind: 'static', key: 'principal.id', data: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`user-${i}`, { dept: `dept-${i}`, ssn: `${SECRET}-ssn` }])), provides: { 'principal.attr.dept': 'result.dept', 'principal.attr.ssn': 'result.ssn' } },
          { name: 'tools', kind: 'static', key: 'resource.id', data: { search: { owner: 'team-search' }, shell: { owner: 'team-shell' } }, provides: { 'resource.attr.owner': 'result.owner' } },
        ],
        audit: { enabled: true, sink: 'postgres', maskPaths: ['context.prompt', 'principal.attr.ssn', 'resources.*.attr.ssn'], spillDir: join(dir, 'spill') },
      }),
    );
    db = await createTestDatabase('warden_audit_e2e');
    broker = await startTestBroker({ cwd: dir, policyDir: written.policyDir, databaseUrl: db.url });
    const base = broker.base;
    const v1 = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        v1Check(
          base,
          { subject: { id: `user-${i % 5}`, roles: ['user'] }, agent: { id: 'bot' }, action: 'invoke', resource: { kind: 'tool', id: i % 4 === 0 ? 'shell' : 'search', attr: { risk: 'low', ssn: `${SECRET}-r` } }, context: { prompt: `${SECRET} ${i}` } },
          { 'x-warden-api-key': GATEWAY_KEY },
        ),
      ),
    );
    for (const a of v1) {
      expect(a.status).toBe(200);
      returned.set(a.json.decisionId as string, a.json.decision as 'ALLOW' | 'DENY');
    }
    // A subject token no resolver can read: denied, and its value must not be stored.
    const tokenCheck = await v1Check(base, { subject: { token: SECRET }, action: 'invoke', resource: { kind: 'tool', id: 'search' } });
    expect(tokenCheck.json.decision).toBe('DENY');
    returned.set(tokenCheck.json.decisionId as string, 'DENY');
    // An agent token and a delegation token: neither value may be stored either.
    const agentCheck = await v1Check(base, { subject: { id: 'carol', roles: ['user'] }, agent: { id: 'bot-2', token: `${SECRET}-agent` }, delegation: `${SECRET}.delegation.token`, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });
    expect(agentCheck.status).toBe(200);
    returned.set(agentCheck.json.decisionId as string, agentCheck.json.decision as 'ALLOW' | 'DENY');
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${base}/api/check/resources`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ principal: { id: `cerbos-${i}`, roles: ['user'] }, resources: [{ resource: { kind: 'tool', id: i % 2 === 0 ? 'search' : 'shell' }, actions: ['invoke'] }], auxData: {} }),
      });
      const body = (await res.json()) as { cerbosCallId: string; results: Array<{ actions: Record<string, string> }> };
      expect(res.status).toBe(200);
      returned.set(body.cerbosCallId, body.results[0]?.actions['invoke'] === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY');
    }
    // Shutting down flushes the writer.
    await broker.close();
    broker = undefined;
    const read = createPgDb({ url: db.url, max: 1 });
    rows = (await read.query<Row>('select decision_id, decision, subject, agent, source, resources, entry from warden_audit_log')).rows;
    await read.close();
  });

  afterAll(async () => {
    await broker?.close();
    await db?.drop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('holds every returned decision id exactly once, with the decision that was returned', () => {
    expect(returned.size).toBe(52);
    expect(rows).toHaveLength(52);
    expect(new Set(rows.map((r) => r.decision_id))).toEqual(new Set(returned.keys()));
    for (const r of rows) expect(r.decision).toBe(returned.get(r.decision_id));
    expect(rows.filter((r) => r.decision === 'DENY').length).toBeGreaterThanOrEqual(10 + 5 + 1);
  });

  it('records who acted, what was decided, by which policy for Cerbos calls, and which surface', () => {
    const v1 = rows.filter((r) => r.source === '/v1/check');
    const cerbos = rows.filter((r) => r.source === '/api/check/resources');
    expect(v1).toHaveLength(42);
    expect(cerbos).toHaveLength(10);
    const shell = v1.find((r) => r.resources[0] === 'tool/shell' && r.agent === 'bot');
    expect(shell).toMatchObject({ decision: 'DENY', subject: expect.stringMatching(/^user-/) });
    expect(cerbos.every((r) => r.entry.results[0]?.actions['invoke']?.policy === 'resource.tool.vdefault')).toBe(true);
    // ... and the rule that decided (the policy's only rule allows; a denial matched no rule).
    expect(cerbos.filter((r) => r.decision === 'ALLOW').every((r) => r.entry.results[0]?.actions['invoke']?.rule === 'resource.tool.vdefault#rule-001')).toBe(true);
    expect(cerbos.filter((r) => r.decision === 'DENY').every((r) => r.entry.results[0]?.actions['invoke']?.rule === undefined)).toBe(true);
    // `/v1/check` entries name the policies too (subject and acting agent), without `explain`.
    // (The agent `bot` has only the default role `agent`, which the policy does not allow: the
    // subject's policy allows `search`, the agent's denies it, so the action is denied.)
    const search = v1.find((r) => r.agent === 'bot' && r.resources[0] === 'tool/search');
    expect(search?.entry.results[0]?.actions['invoke']).toMatchObject({ effect: 'DENY', policy: 'resource.tool.vdefault', rule: 'resource.tool.vdefault#rule-001', agent: { effect: 'DENY', policy: expect.any(String) } });
    // Stage timings of every `/v1/check`, also without `explain`.
    for (const r of v1) {
      const t = (r.entry as unknown as { timings: Record<string, number> }).timings;
      expect(t).toEqual({ parseMs: expect.any(Number), enrichMs: expect.any(Number), evaluateMs: expect.any(Number), totalMs: expect.any(Number) });
      expect(t['totalMs']).toBeGreaterThan(0);
      expect(t['totalMs']).toBeCloseTo((t['parseMs'] ?? 0) + (t['enrichMs'] ?? 0) + (t['evaluateMs'] ?? 0), 2);
    }
  });

  it('never stores a credential or a masked value', () => {
    expect(JSON.stringify(rows)).not.toContain(SECRET);
    const withToken = rows.find((r) => r.subject === null && r.source === '/v1/check');
    expect(withToken?.entry.input['subject']).toEqual({ token: '[masked]' });
    const withAgentToken = rows.find((r) => r.agent === 'bot-2');
    expect(withAgentToken?.entry.input).toMatchObject({ agent: { id: 'bot-2', token: '[masked]' }, delegation: '[masked]' });
    // `context.prompt` is masked by `audit.maskPaths`.
    expect(rows.find((r) => r.agent === 'bot')?.entry.input['context']).toEqual({ prompt: '[masked]' });
    // So is the enriched `principal.attr.ssn`; other enriched attributes are kept with their provenance.
    const enriched = rows.find((r) => r.subject === 'user-3' && r.source === '/v1/check')?.entry as unknown as { attributes: Record<string, Record<string, { value: unknown; resolver: string }>> };
    const attrs = Object.values(enriched.attributes)[0];
    expect(attrs?.['principal.attr.dept']).toMatchObject({ value: 'dept-3', resolver: 'people', durationMs: expect.any(Number) });
    expect(attrs?.['principal.attr.ssn']).toMatchObject({ value: '[masked]', resolver: 'people' });
    // The input is what the gateway sent, not what enrichment later wrote into the request: the
    // resource's attributes as sent (`ssn` masked by `resources.*.attr.ssn`), without the owner `tools` resolved.
    const input = (enriched as unknown as { input: { subject: unknown; resources: unknown } }).input;
    expect(input.subject).toEqual({ id: 'user-3', roles: ['user'], attr: {} });
    expect(input.resources).toEqual([{ kind: 'tool', id: expect.stringMatching(/^(shell|search)$/), attr: { risk: 'low', ssn: '[masked]' } }]);
    expect(attrs?.['resource.attr.owner']).toMatchObject({ value: expect.stringMatching(/^team-/), resolver: 'tools' });
  });
});

describe('decision log, mode strict (NDJSON sink)', () => {
  const started: Array<{ broker: TestBroker; dir: string }> = [];
  afterAll(async () => {
    for (const s of started) {
      await s.broker.close();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  async function start(audit: Record<string, unknown>): Promise<{ base: string; dir: string }> {
    const written = writePolicyDir({ 'tool.yaml': TOOL_POLICY });
    writeFileSync(join(written.dir, 'not-a-dir'), '');
    const resolvePaths = (v: unknown): unknown => (typeof v === 'string' && v.startsWith('./') ? join(written.dir, v) : v);
    writeFileSync(join(written.dir, 'warden.yaml'), stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], audit: Object.fromEntries(Object.entries(audit).map(([k, v]) => [k, resolvePaths(v)])) }));
    const broker = await startTestBroker({ cwd: written.dir, policyDir: written.policyDir });
    started.push({ broker, dir: written.dir });
    return { base: broker.base, dir: written.dir };
  }

  const ask = (base: string) => v1Check(base, { subject: { id: 'alice', roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });

  it('answers only once the entry is durable: it is in the file when the answer arrives', async () => {
    const { base, dir } = await start({ enabled: true, sink: 'ndjson', mode: 'strict', path: './log/audit.ndjson', spillDir: './spill' });
    const { readFileSync } = await import('node:fs');
    for (let i = 0; i < 3; i++) {
      const a = await ask(base);
      expect(a.status).toBe(200);
      const ids = readFileSync(join(dir, 'log/audit.ndjson'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { decisionId: string }).decisionId);
      expect(ids).toContain(a.json.decisionId);
    }
  });

  it('reports at /metrics what the log spilled: entries and bytes waiting, none dropped, none written', async () => {
    // The sink's path is a file's child (it cannot be created); the spill file works.
    const { base } = await start({ enabled: true, sink: 'ndjson', mode: 'strict', path: './not-a-dir/audit.ndjson', spillDir: './spill' });
    for (let i = 0; i < 3; i++) expect((await ask(base)).json.decision).toBe('ALLOW');
    const text = await (await fetch(`${base}/metrics`)).text();
    const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('warden_audit_entries_total{result="spilled"}')).toBe(3);
    expect(value('warden_audit_entries_total{result="written"}')).toBe(0);
    expect(value('warden_audit_entries_total{result="dropped"}')).toBe(0);
    expect(value('warden_audit_queue_depth')).toBe(0);
    expect(value('warden_audit_spill_bytes')).toBeGreaterThan(300);
    // Three checks leave the writer's thread nothing to be starved over.
    expect(value('warden_audit_event_loop_yields_total')).toBe(0);
    // The writer's own pauses for the event loop: how many depends on the scheduler, but the series is there.
    expect(value('warden_audit_writer_yields_total')).toBeGreaterThanOrEqual(0);
  });

  it('denies the check (reason audit_unavailable) when neither the sink nor the spill file can take the entry', async () => {
    const { base } = await start({ enabled: true, sink: 'ndjson', mode: 'strict', path: './not-a-dir/audit.ndjson', spillDir: './not-a-dir/spill' });
    const a = await ask(base);
    expect(a.status).toBe(200);
    expect(a.json.decision).toBe('DENY');
    expect((a.json as unknown as { results: Array<{ actions: Record<string, string> }> }).results[0]?.actions).toEqual({ invoke: 'DENY' });
    expect((a.json as unknown as { reasons: Array<{ code: string }> }).reasons.map((r) => r.code)).toEqual(['audit_unavailable']);
  });
});

describe('GET /v1/audit', () => {
  const ADMIN = `admin-${RUN}-0123456789abcdef`;
  let broker: TestBroker;
  let dir: string;
  const ids: string[] = [];

  beforeAll(async () => {
    const written = writePolicyDir({ 'tool.yaml': TOOL_POLICY });
    dir = written.dir;
    writeFileSync(join(dir, 'warden.yaml'), stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], admin: { bootstrapToken: ADMIN }, audit: { enabled: true, mode: 'strict', spillDir: join(dir, 'spill') } }));
    broker = await startTestBroker({ cwd: dir, policyDir: written.policyDir, grpc: true });
    // Strict: each entry is in the table once its answer arrives.
    for (let i = 0; i < 7; i++) {
      const a = await v1Check(broker.base, { subject: { id: i < 4 ? 'alice' : 'bob', roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: i % 2 === 0 ? 'search' : 'shell' } }, { 'x-warden-api-key': GATEWAY_KEY });
      ids.push(a.json.decisionId as string);
    }
  });
  afterAll(async () => {
    await broker?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const get = (qs: string, headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` }) => fetch(`${broker.base}/v1/audit${qs}`, { headers });

  it('needs an admin token', async () => {
    expect((await get('', {})).status).toBe(401);
    expect((await get('', { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
  });

  it('filters and pages newest first with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await get(`?subject=alice&limit=3${cursor !== undefined ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { entries: Array<{ decisionId: string; identities: { subject: string } }>; nextCursor?: string };
      seen.push(...body.entries.map((e) => e.decisionId));
      cursor = body.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(2);
    expect(new Set(seen)).toEqual(new Set(ids.slice(0, 4)));
    expect(seen).toHaveLength(4);
    const denied = (await (await get('?decision=DENY&resourceKind=tool&resourceId=shell')).json()) as { entries: Array<{ decisionId: string }> };
    expect(new Set(denied.entries.map((e) => e.decisionId))).toEqual(new Set([ids[1], ids[3], ids[5]]));
    const none = (await (await get('?from=2999-01-01T00:00:00Z')).json()) as { entries: unknown[] };
    expect(none.entries).toEqual([]);
  });

  it('exports every matching entry as NDJSON', async () => {
    const res = await get('?subject=bob', { authorization: `Bearer ${ADMIN}`, accept: 'application/x-ndjson' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => (JSON.parse(l) as { decisionId: string }).decisionId);
    expect(new Set(lines)).toEqual(new Set(ids.slice(4)));
  });

  it('records revocations as events (kind revocation), once per revocation even when repeated', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${broker.base}/v1/admin/revocations`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ target: 'agent', id: 'rogue-bot', reason: 'compromised' }) });
      expect(res.status).toBe(201);
    }
    const all = (await (await get('?limit=1000')).json()) as { entries: Array<{ kind: string; source: string; input: Record<string, unknown> }> };
    const revocations = all.entries.filter((e) => e.kind === 'revocation');
    expect(revocations).toHaveLength(1);
    expect(revocations[0]).toMatchObject({ source: '/v1/admin/revocations', input: { target: 'agent', id: 'rogue-bot', by: 'admin:bootstrap', reason: 'compromised' } });
  });

  it('records a plan (kind plan, keyed by its planId) with the allowed candidates', async () => {
    const res = await fetch(`${broker.base}/v1/plan`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-warden-api-key': GATEWAY_KEY },
      body: JSON.stringify({ subject: { id: 'dora', roles: ['user'] }, kind: 'tool', action: 'invoke', candidates: ['search', 'shell'] }),
    });
    const plan = (await res.json()) as { planId: string; allowed: string[] };
    expect(res.status, JSON.stringify(plan)).toBe(200);
    expect(plan.allowed).toEqual(['search']);
    const logged = (await (await get('?subject=dora')).json()) as { entries: Array<Record<string, unknown>> };
    expect(logged.entries).toHaveLength(1);
    expect(logged.entries[0]).toMatchObject({ decisionId: plan.planId, kind: 'plan', source: '/v1/plan', decision: 'ALLOW', results: [{ resource: { kind: 'tool', id: 'search' }, decision: 'ALLOW' }], reasons: [{ code: 'denied', count: 1 }] });
  });

  it('records resolver changes (kind admin) with who made them', async () => {
    const res = await fetch(`${broker.base}/v1/admin/resolvers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'dept', kind: 'static', key: 'principal.id', data: { erin: { dept: 'eng' } }, provides: { 'principal.attr.dept': 'result.dept' } }),
    });
    expect(res.status, await res.text()).toBe(201);
    const logged = (await (await get('?subject=bootstrap')).json()) as { entries: Array<Record<string, unknown>> };
    expect(logged.entries).toHaveLength(1);
    expect(logged.entries[0]).toMatchObject({ kind: 'admin', source: '/v1/admin/resolvers', decision: 'ALLOW', input: { action: 'create', resolver: 'dept', version: 1 } });
  });

  it('accepts `human` for `subject` (not both)', async () => {
    const res = await get('?human=bob');
    const body = (await res.json()) as { entries: Array<{ decisionId: string }> };
    expect(new Set(body.entries.map((e) => e.decisionId))).toEqual(new Set(ids.slice(4)));
    expect((await get('?human=bob&subject=bob')).status).toBe(400);
  });

  it('`warden audit tail` prints the newest entries oldest first, then follows new ones until stopped', async () => {
    const out: string[] = [];
    const errors: string[] = [];
    const stop = new AbortController();
    const lines = (): Array<{ decisionId: string; identities: { subject: string } }> => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { decisionId: string; identities: { subject: string } });
    const until = async (ok: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 5000; !ok(); await sleep(20)) if (Date.now() > deadline) throw new Error(`timed out; printed ${out.join('')} ${errors.join('')}`);
    };
    const run = runCli(['audit', 'tail', '--url', broker.base, '--token', ADMIN, '--human', 'alice', '-n', '2', '--follow', '--interval', '100'], { stdout: (t) => out.push(t), stderr: (t) => errors.push(t), signal: stop.signal, env: {} });
    await until(() => lines().length >= 2);
    expect(new Set(lines().map((e) => e.decisionId))).toEqual(new Set(ids.slice(2, 4)));
    const bob = await v1Check(broker.base, { subject: { id: 'bob', roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });
    const alice = await v1Check(broker.base, { subject: { id: 'alice', roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });
    await until(() => lines().length >= 3);
    await sleep(300);
    stop.abort();
    expect(await run).toBe(0);
    expect(lines().map((e) => e.decisionId)).toEqual([...lines().slice(0, 2).map((e) => e.decisionId), alice.json.decisionId]);
    expect(lines().some((e) => e.decisionId === bob.json.decisionId)).toBe(false);
    expect(errors).toEqual([]);
  });

  it('`warden audit tail` exits 1 naming the refusal for a bad token, 80 for a bad flag', async () => {
    const errors: string[] = [];
    const io = { stdout: () => undefined, stderr: (t: string) => errors.push(t), env: {} };
    expect(await runCli(['audit', 'tail', '--url', broker.base, '--token', 'wrong-token-0123456789'], io)).toBe(1);
    expect(errors.join('')).toContain('answered 401');
    expect(await runCli(['audit', 'tail', '--decision', 'MAYBE'], io)).toBe(80);
    expect(errors.join('')).toContain('--decision must be ALLOW or DENY');
    expect(await runCli(['audit', 'tail', '--url', `http://127.0.0.1:${await closedPort()}`, '--token', ADMIN], io)).toBe(1);
    expect(errors.join('')).toContain('cannot reach');
  });

  it('records every decision API: the Cerbos and AuthZEN checks (ids in a header where the body has none), PlanResources, and the gRPC service', async () => {
    const post = async (path: string, body: unknown): Promise<{ res: Response; json: Record<string, unknown> }> => {
      const res = await fetch(`${broker.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { res, json: (await res.json()) as Record<string, unknown> };
    };
    const set = await post('/api/check', { requestId: 'r1', principal: { id: 'gwen', roles: ['user'] }, resource: { kind: 'tool', instances: { search: { attr: {} }, shell: { attr: {} } } }, actions: ['invoke'] });
    const authzen = await post('/access/v1/evaluation', { subject: { type: 'user', id: 'gwen', properties: { roles: ['user'] } }, resource: { type: 'tool', id: 'shell' }, action: { name: 'invoke' } });
    const plan = await post('/api/plan/resources', { requestId: 'p1', principal: { id: 'gwen', roles: ['user'] }, resource: { kind: 'tool' }, action: 'invoke' });
    for (const r of [set, authzen, plan]) expect(r.res.status, JSON.stringify(r.json)).toBe(200);
    const grpc = new GRPC(broker.grpcAddr as string, { tls: false });
    const grpcCheck = await grpc.checkResources({ principal: { id: 'gwen', roles: ['user'] }, resources: [{ resource: { kind: 'tool', id: 'search' }, actions: ['invoke'] }] });
    const grpcPlan = await grpc.planResources({ principal: { id: 'gwen', roles: ['user'] }, resource: { kind: 'tool' }, action: 'invoke' });
    grpc.close();
    const logged = (await (await get('?subject=gwen&limit=100')).json()) as { entries: Array<{ decisionId: string; kind: string; source: string; decision: string; results: unknown[]; reasons: Array<Record<string, unknown>> }> };
    const byId = new Map(logged.entries.map((e) => [e.decisionId, e]));
    expect(logged.entries).toHaveLength(5);
    expect(byId.get(set.res.headers.get('x-warden-decision-id') ?? '')).toMatchObject({ kind: 'check', source: '/api/check', decision: 'DENY', results: [{ resource: { kind: 'tool', id: 'search' }, decision: 'ALLOW' }, { resource: { kind: 'tool', id: 'shell' }, decision: 'DENY' }] });
    expect(byId.get(authzen.res.headers.get('x-warden-decision-id') ?? '')).toMatchObject({ kind: 'check', source: '/access/v1/evaluation', decision: 'DENY' });
    expect(byId.get(plan.json['cerbosCallId'] as string)).toMatchObject({ kind: 'plan', source: '/api/plan/resources', decision: 'ALLOW', reasons: [{ code: 'plan', filter: 'KIND_CONDITIONAL' }] });
    expect(byId.get(grpcCheck.cerbosCallId)).toMatchObject({ kind: 'check', source: 'cerbos.svc.v1.CerbosService/CheckResources', decision: 'ALLOW' });
    expect(byId.get(grpcPlan.cerbosCallId)).toMatchObject({ kind: 'plan', source: 'cerbos.svc.v1.CerbosService/PlanResources' });
    // The Cerbos check's own id is in its body, not in a header.
    expect((await post('/api/check/resources', { principal: { id: 'gwen', roles: ['user'] }, resources: [{ resource: { kind: 'tool', id: 'search' }, actions: ['invoke'] }] })).res.headers.get('x-warden-decision-id')).toBeNull();
  });

  it('rejects unknown filters and bad values with 400', async () => {
    for (const qs of ['?user=alice', '?decision=MAYBE', '?from=yesterday', '?limit=0', '?cursor=xyz', '?resourceId=search']) {
      const res = await get(qs);
      expect(res.status, qs).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_REQUEST_INVALID');
    }
  });
});

describe('decision log: a broker replays the spill file a previous process left', () => {
  it('writes the spilled entries to Postgres at start, without new traffic, before closing', async () => {
    const written = writePolicyDir({ 'tool.yaml': TOOL_POLICY });
    const spillDir = join(written.dir, 'spill');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(spillDir, { recursive: true });
    const left = Array.from({ length: 3 }, (_, i) => ({ decisionId: `left-${RUN}-${i}`, time: new Date(Date.now() - 60_000 + i).toISOString(), kind: 'check', policyVersion: 'old', source: '/v1/check', decision: 'DENY', identities: { subject: 'alice' }, input: {}, results: [], reasons: [] }));
    writeFileSync(join(spillDir, 'audit.spill.ndjson'), left.map((e) => `${JSON.stringify(e)}\n`).join(''));
    writeFileSync(join(written.dir, 'warden.yaml'), stringify({ audit: { enabled: true, spillDir } }));
    const db = await createTestDatabase('warden_audit_replay');
    try {
      const broker = await startTestBroker({ cwd: written.dir, policyDir: written.policyDir, databaseUrl: db.url });
      const read = createPgDb({ url: db.url, max: 1 });
      try {
        let found: string[] = [];
        // Polls the table (the replay runs on its own, right after start); no fixed sleep.
        for (let i = 0; i < 200 && found.length < 3; i++) {
          found = (await read.query<{ decision_id: string }>('select decision_id from warden_audit_log order by time')).rows.map((r) => r.decision_id);
          if (found.length < 3) await new Promise((r) => setTimeout(r, 25));
        }
        expect(found).toEqual(left.map((e) => e.decisionId));
      } finally {
        await read.close();
        await broker.close();
      }
      // Removed once replayed (checked after close: the removal follows the insert's commit).
      const { existsSync } = await import('node:fs');
      expect(existsSync(join(spillDir, 'audit.spill.ndjson'))).toBe(false);
    } finally {
      await db.drop();
      rmSync(written.dir, { recursive: true, force: true });
    }
  });
});

