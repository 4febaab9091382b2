/**
 * The decision log's writer thread (issue 7), the built broker as a child process with the NDJSON
 * sink: by default the writer runs in a worker thread of its own at the lowest priority (nice 19), and
 * every answered decision id reaches the file; `audit.thread: main` keeps it in the thread that
 * answers, with the same result. Linux only (thread priorities are read from /proc).
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { eventually, expectStoppedCleanly, runCheckLoad, GATEWAY_HEADERS, INVOKE_TOOL_POLICY, GATEWAY_KEY } from '../support/audit-faults.js';
import { writePolicyDir } from '../support/upstreams.js';

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

describe.skipIf(process.platform !== 'linux')('the decision log\'s writer thread (NDJSON sink, built broker)', () => {
  const brokers: BrokerProcess[] = [];
  const dirs: string[] = [];

  beforeAll(() => ensureBrokerBuilt());
  afterAll(async () => {
    for (const b of brokers) await b.stop(2_000);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function start(thread: 'worker' | 'main' | undefined): Promise<{ broker: BrokerProcess; path: string }> {
    const written = writePolicyDir({ 'tool.yaml': INVOKE_TOOL_POLICY }, 'warden-audit-thread-');
    dirs.push(written.dir);
    const path = join(written.dir, 'audit.ndjson');
    writeFileSync(join(written.dir, 'warden.yaml'), stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], audit: { enabled: true, sink: 'ndjson', path, spillDir: join(written.dir, 'spill'), ...(thread !== undefined ? { thread } : {}) } }));
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
      expect(await eventually(async () => loggedIds(path).length >= answered.length, 10_000)).toBe(true);
      const logged = loggedIds(path);
      expect(new Set(logged).size).toBe(logged.length);
      expect(new Set(logged)).toEqual(new Set(answered));
      // The counters /metrics shows come from the writer's thread (reported every 100 ms).
      const scrape = async (): Promise<{ written: number; queued: number }> => {
        const text = await (await fetch(`${broker.base}/metrics`)).text();
        return { written: Number(/^warden_audit_entries_total\{result="written"\} (\d+)$/m.exec(text)?.[1]), queued: Number(/^warden_audit_queue_depth (\d+)$/m.exec(text)?.[1]) };
      };
      expect(await eventually(async () => (await scrape()).written === answered.length, 5_000)).toBe(true);
      expect(await scrape()).toEqual({ written: answered.length, queued: 0 });
      await broker.stop();
      expectStoppedCleanly(broker);
    });
  }
});
