/**
 * The decision log's writer thread (issue 7), the built broker as a child process with the NDJSON
 * sink: by default the writer runs in a worker thread of its own at the lowest priority (nice 19), and
 * every answered decision id reaches the file; `audit.thread: main` keeps it in the thread that
 * answers, with the same result. Linux only (thread priorities are read from /proc).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { eventually, expectStoppedCleanly, runCheckLoad, GATEWAY_HEADERS, INVOKE_TOOL_POLICY, GATEWAY_KEY } from '../support/audit-faults.js';
import { writePolicyDir } from '../support/upstreams.js';
import { repoRoot } from '../support/conformance.js';

const body = (c: number, n: number): unknown => ({ subject: { id: `user-${c}`, roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: `t-${n % 5}` } });

/** The nice value of each thread of `pid` (field 19 of /proc/<pid>/task/<tid>/stat). */
function threadNices(pid: number): number[] {
  const nices: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended meanwhile
    }
    nices.push(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nices;
}

const loggedIds = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { decisionId: string }).decisionId) : []);

/** Waits until `path` holds every answered decision id, then checks it holds each exactly once and nothing else. */
async function expectLoggedOnce(path: string, answered: string[], timeoutMs: number): Promise<void> {
  expect(await eventually(async () => loggedIds(path).length >= answered.length, timeoutMs)).toBe(true);
  const logged = loggedIds(path);
  expect(new Set(logged).size).toBe(logged.length);
  expect(new Set(logged)).toEqual(new Set(answered));
}

/** The decision log's counters and queue depth as the broker's /metrics shows them (the writer's thread reports them every 100 ms). */
async function auditCounters(base: string): Promise<{ entries: (result: string) => number; queued: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return {
    entries: (result) => Number(new RegExp(`^warden_audit_entries_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text)?.[1]),
    queued: Number(/^warden_audit_queue_depth (\d+)$/m.exec(text)?.[1]),
  };
}

describe.skipIf(process.platform !== 'linux')('the decision log\'s writer thread (NDJSON sink, built broker)', () => {
  const brokers: BrokerProcess[] = [];
  const dirs: string[] = [];

  beforeAll(() => ensureBrokerBuilt());
  afterAll(async () => {
    for (const b of brokers) await b.stop(2_000);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function start(thread: 'worker' | 'main' | undefined, policy = INVOKE_TOOL_POLICY, audit: Record<string, unknown> = {}): Promise<{ broker: BrokerProcess; path: string }> {
    const written = writePolicyDir({ 'tool.yaml': policy }, 'warden-audit-thread-');
    dirs.push(written.dir);
    const path = join(written.dir, 'audit.ndjson');
    writeFileSync(join(written.dir, 'warden.yaml'), stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], audit: { enabled: true, sink: 'ndjson', path, spillDir: join(written.dir, 'spill'), ...(thread !== undefined ? { thread } : {}), ...audit } }));
    const broker = await spawnBroker({ cwd: written.dir, env: { WARDEN_POLICY_DIR: written.policyDir } });
    brokers.push(broker);
    return { broker, path };
  }

  for (const thread of [undefined, 'main'] as const) {
    it(`${thread === undefined ? 'by default in a worker thread at nice 19' : 'with `thread: main` in the answering thread'}: every answered decision id is in the file once`, async () => {
      const { broker, path } = await start(thread);
      const pid = broker.process.pid as number;
      // The broker's own threads keep its priority; only the writer's thread (started with the broker, lowered as it starts) yields.
      const yielding = (): number => threadNices(pid).filter((n) => n === 19).length;
      if (thread === undefined) expect(await eventually(async () => yielding() === 1, 5_000)).toBe(true);
      expect(yielding()).toBe(thread === undefined ? 1 : 0);
      expect(threadNices(pid).filter((n) => n === 0).length).toBeGreaterThan(1);
      const load = await runCheckLoad({ base: broker.base, clients: 4, durationMs: 600, headers: GATEWAY_HEADERS, body }).done;
      const answered = load.returned.map((r) => r.id);
      expect(answered.length).toBeGreaterThan(50);
      await expectLoggedOnce(path, answered, 10_000);
      // The counters /metrics shows come from the writer's thread (reported every 100 ms).
      const scrape = async (): Promise<{ written: number; queued: number }> => {
        const c = await auditCounters(broker.base);
        return { written: c.entries('written'), queued: c.queued };
      };
      expect(await eventually(async () => (await scrape()).written === answered.length, 5_000)).toBe(true);
      expect(await scrape()).toEqual({ written: answered.length, queued: 0 });
      await broker.stop();
      expectStoppedCleanly(broker);
    });
  }

  // A writer queue of five entries: the thread's writer spills what does not fit and replays it, so
  // a burst loses nothing and repeats nothing. (What may wait posted to the thread is bounded by
  // max(4 x maxQueue, MAX_POSTED), but only once the ring is full, which a running thread with this
  // sink never lets happen; audit-thread.spec.ts holds a thread that stopped taking.)
  it('with a small `audit.maxQueue`, a burst of checks still reaches the file, every id once', async () => {
    const { broker, path } = await start(undefined, INVOKE_TOOL_POLICY, { maxQueue: 5 });
    // At least 250 checks: on a slow or busy machine 800 ms gave as few as 94 (CI of 2026-12-02 14:30).
    const load = await runCheckLoad({ base: broker.base, clients: 16, durationMs: 800, minAnswers: 250, headers: GATEWAY_HEADERS, body }).done;
    const answered = load.returned.map((r) => r.id);
    expect(answered.length).toBeGreaterThan(200);
    await expectLoggedOnce(path, answered, 15_000);
    // The spill file was used, and everything it took was replayed.
    const replayedAll = async (): Promise<boolean> => {
      const c = await auditCounters(broker.base);
      return c.entries('spilled') > 0 && c.entries('replayed') === c.entries('spilled');
    };
    expect(await eventually(replayedAll, 5_000)).toBe(true);
    await broker.stop();
    expectStoppedCleanly(broker);
  });

  // The worker thread composes `/v1/check`'s entries from the captured body and decision codes;
  // the answering thread (`thread: main`) composes them from the request's objects. Same entries.
  it('writes from the worker thread the entries the answering thread writes, for the same requests (masks, outputs, reasons, odd text)', async () => {
    const policy = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - name: users-invoke
      actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: request.resource.attr.risk != "critical"
      output:
        when:
          ruleActivated: '"ok:" + request.resource.id'
          conditionNotMet: '"no:" + request.resource.id'
    - actions: [read]
      effect: EFFECT_DENY
      roles: [user]
`;
    const bodies: string[] = [
      JSON.stringify({ requestId: 'r-1', subject: { id: 'alice', roles: ['user'], attr: { tenant: 'acme', n: 1.5 } }, agent: { id: 'bot' }, actions: ['invoke', 'read'], resources: [{ kind: 'tool', id: 'a', attr: { risk: 'low' } }, { kind: 'tool', id: 'b', attr: { risk: 'critical' } }], context: { model: 'gpt', prompt: 'a secret prompt', nested: { list: [1, 'é😀', null, true] } } }),
      // Spaces, another key order, escapes (a lone surrogate among them) as the caller wrote them.
      `{ "context" : { "q": "quote\\" and \\u2028 and \\ud800", "prompt": "hidden" },\n "resource": {"id":"ü-tool","kind":"tool","attr":{"risk":"low"}},
         "action":"invoke", "requestId": "r-2", "subject": {"roles":["user"],"id":"bøb"} }`,
      JSON.stringify({ requestId: 'r-3', subject: { token: 'not-a-token-of-any-issuer' }, action: 'invoke', resource: { kind: 'tool', id: 'c' } }),
      JSON.stringify({ requestId: 'r-4', subject: { id: 'carol', roles: ['guest'] }, agent: { id: 'bot-2', roles: ['agent'] }, actions: ['read'], resources: [{ kind: 'tool', id: 'a' }, { kind: 'tool', id: 'a' }] }),
    ];
    const entriesOf = async (thread: 'worker' | 'main'): Promise<Map<string, unknown>> => {
      const { broker, path } = await start(thread, policy, { maskPaths: ['context.prompt', 'subject.attr.tenant'] });
      for (const b of bodies) {
        const res = await fetch(`${broker.base}/v1/check`, { method: 'POST', headers: { ...GATEWAY_HEADERS, 'content-type': 'application/json' }, body: b });
        expect(res.status).toBe(200);
      }
      expect(await eventually(async () => loggedIds(path).length >= bodies.length, 10_000)).toBe(true);
      await broker.stop();
      const byRequest = new Map<string, unknown>();
      for (const line of readFileSync(path, 'utf8').split('\n').filter((l) => l !== '')) {
        const { decisionId, time, timings, ...rest } = JSON.parse(line) as { decisionId: string; time: string; timings?: unknown; requestId: string };
        expect([decisionId, time, timings]).not.toContain(undefined);
        byRequest.set(rest.requestId, rest);
      }
      return byRequest;
    };
    const worker = await entriesOf('worker');
    const main = await entriesOf('main');
    expect([...worker.keys()].sort()).toEqual(['r-1', 'r-2', 'r-3', 'r-4']);
    expect(worker).toEqual(main);
    // What was checked: masked input, outputs and reasons, the odd text as the caller sent it.
    const r1 = JSON.stringify(worker.get('r-1'));
    expect(r1).not.toContain('a secret prompt');
    expect(r1).toContain('"ok:a"');
    expect(r1).toContain('é😀');
    const r2 = worker.get('r-2') as { input: { context: Record<string, string> } };
    expect(r2.input.context).toEqual({ q: 'quote" and \u2028 and \ud800', prompt: '[masked]' });
  });
});

/**
 * The built writer thread's own file (dist's audit-worker.js) dying of an uncaught exception: a
 * post it cannot take (`entries` not a list) throws in its message handler, after a post of valid
 * entries it has taken but not yet queued. It spills them before it exits, and says so.
 */
describe('the built writer thread dying of an uncaught exception', () => {
  const dirs: string[] = [];
  beforeAll(() => ensureBrokerBuilt());
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('spills the entries it holds, tells the parent, and exits with code 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-audit-worker-'));
    dirs.push(dir);
    const spillPath = join(dir, 'spill', 'audit.spill.ndjson');
    const config = { enabled: true, sink: 'ndjson', path: join(dir, 'audit.ndjson'), spillDir: join(dir, 'spill'), spillPath, mode: 'best-effort', maskPaths: [], retentionDays: 90, nats: undefined, thread: 'worker', maxQueue: 20_000 };
    const worker = new Worker(join(repoRoot, 'dist/apps/broker/apps/broker/src/audit/audit-worker.js'), { workerData: { config, databaseUrl: undefined } });
    const messages: string[] = [];
    worker.on('message', (m: { t: string; message?: string }) => m.t === 'err' && messages.push(m.message ?? ''));
    const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
    const entries = [1, 2, 3].map((n) => {
      const entry = { decisionId: `d-${n}`, time: new Date(Date.UTC(2026, 10, 30, 20, 0, 0, n)).toISOString(), kind: 'check', policyVersion: 'v1', source: '/v1/check', decision: 'ALLOW', identities: {}, input: {}, results: [], reasons: [] };
      return { ...entry, subject: undefined, agent: undefined, resources: [], json: JSON.stringify(entry) };
    });
    // Both in one turn of the thread: the first is taken (its entries wait for the check phase), the second throws.
    worker.postMessage({ t: 'rec', at: Date.now(), entries });
    worker.postMessage({ t: 'rec', at: Date.now(), entries: 5 });
    expect(await exited).toBe(1);
    expect(messages.some((m) => /the writer's thread failed \(.*\); 3 entries it held spilled/.test(m))).toBe(true);
    const spilled = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { decisionId: string }).decisionId);
    expect(spilled).toEqual(['d-1', 'd-2', 'd-3']);
  });
});
