/**
 * Decision-log fault tests (issue 7), NATS JetStream sink on a PRIVATE nats-server (its
 * JetStream store kept across restarts, so the stream survives); the built broker is a child
 * process whose own database is a throwaway one on the test PostgreSQL.
 *
 * - Outage under load: eight clients send `/v1/check` for ten seconds; one second in, the server
 *   is stopped (SIGTERM) and 6.5 s later started again on the same port and store (longer than
 *   the sink's 5 s acknowledgement timeout: batches fail and are spilled, then replayed).
 *   Afterwards the stream, read from its first message, holds every decision id a client
 *   received exactly once and no other, each client's decisions in the order it received them;
 *   the spill file is gone.
 * - SIGTERM while the server is down (after the sink had connected): the broker stops at once,
 *   its queued entries in the spill file; started again with the server back, it sends them
 *   exactly once.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, JSONCodec } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { eventually, expectStoppedCleanly, runCheckLoad, spilledDecisionIds, GATEWAY_HEADERS, INVOKE_TOOL_POLICY, GATEWAY_KEY } from '../support/audit-faults.js';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { privateServicesMissing, startPrivateNats, type PrivateNats } from '../support/private-services.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { sleep, writePolicyDir } from '../support/upstreams.js';

const STREAM = 'WARDEN_AUDIT_FAULTS';
const SUBJECT = 'warden.audit.faults';
const body = (c: number): unknown => ({ subject: { id: `user-${c}`, roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: 'search' } });

const missing = privateServicesMissing('nats');
if (missing !== undefined) console.warn(`audit-faults-nats: skipped: ${missing}`);

/** Messages in the stream (0 before the sink created it). */
async function streamCount(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const info = await (await nc.jetstreamManager()).streams.info(STREAM).catch((err: Error) => {
      if (err.message.includes('stream not found')) return undefined;
      throw err;
    });
    return info?.state.messages ?? 0;
  } finally {
    await nc.close();
  }
}

/** Every entry of the stream, from the first, in stream order (an ordered consumer). */
async function streamEntries(url: string): Promise<Array<{ decisionId: string; seq: number }>> {
  const total = await streamCount(url);
  const out: Array<{ decisionId: string; seq: number }> = [];
  if (total === 0) return out;
  const nc = await connect({ servers: url });
  try {
    const codec = JSONCodec<{ decisionId: string }>();
    const consumer = await nc.jetstream().consumers.get(STREAM);
    const msgs = await consumer.fetch({ max_messages: total, expires: 10_000 });
    for await (const m of msgs) {
      out.push({ decisionId: codec.decode(m.data).decisionId, seq: m.seq });
      if (out.length === total) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe.skipIf(missing !== undefined)('decision log, NATS sink stopped and started again', () => {
  let server: PrivateNats;
  let db: TestDatabase;
  let broker: BrokerProcess | undefined;
  let dir: string;
  let policyDir: string;
  let spillPath: string;

  const startBroker = async (): Promise<BrokerProcess> => {
    broker = await spawnBroker({ cwd: dir, env: { DATABASE_URL: db.url, WARDEN_POLICY_DIR: policyDir } });
    return broker;
  };

  /** SIGTERM, and the stop must be clean. */
  async function stopBroker(b: BrokerProcess): Promise<void> {
    await b.stop(9_000);
    broker = undefined;
    expectStoppedCleanly(b);
  }

  beforeAll(async () => {
    ensureBrokerBuilt();
    server = await startPrivateNats();
    db = await createTestDatabase('warden_audit_faults');
    ({ dir, policyDir } = writePolicyDir({ 'tool.yaml': INVOKE_TOOL_POLICY }, 'warden-audit-faults-nats-'));
    spillPath = join(dir, 'spill', 'audit.spill.ndjson');
    writeFileSync(
      join(dir, 'warden.yaml'),
      stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], audit: { enabled: true, sink: 'nats', spillDir: join(dir, 'spill'), nats: { url: server.url, subject: SUBJECT, stream: STREAM } } }),
    );
  });

  afterAll(async () => {
    await broker?.stop(2_000);
    await server?.destroy();
    await db?.drop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every returned decision id, exactly once and in order, across an outage under load', async () => {
    const b = await startBroker();
    const load = runCheckLoad({ base: b.base, clients: 8, durationMs: 10_000, headers: GATEWAY_HEADERS, body });
    await sleep(1_000);
    const stoppedAt = Date.now();
    await server.stop('term');
    await sleep(6_500);
    await server.start();
    const startedAt = Date.now();
    const result = await load.done;

    // Decisions do not need the sink: none failed, and plenty were answered during the outage.
    expect(result.failed, result.failures.join('\n')).toBe(0);
    const ids = result.returned.map((r) => r.id);
    expect(ids.length).toBeGreaterThan(200);
    expect(result.returned.filter((r) => r.at > stoppedAt && r.at < startedAt).length).toBeGreaterThan(50);
    // ... and the sink did fail under them (the writer spilled).
    expect(b.stderr()).toContain('audit: sink `nats` failed');

    // The writer replays the spill file by itself once the server is back (no restart of the broker).
    const drained = await eventually(async () => !existsSync(spillPath) && (await streamCount(server.url)) >= ids.length, 30_000, 250);
    expect(drained, `spill file present: ${existsSync(spillPath)}; messages: ${await streamCount(server.url).catch(() => -1)} of ${ids.length}\n${b.stderr().slice(-3000)}`).toBe(true);
    await stopBroker(b);

    const entries = await streamEntries(server.url);
    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.decisionId, (counts.get(e.decisionId) ?? 0) + 1);
    expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
    expect(entries).toHaveLength(ids.length);
    expect(new Set(counts.keys())).toEqual(new Set(ids));
    // Each client's decisions are in the stream in the order the client received them.
    const position = new Map(entries.map((e, i) => [e.decisionId, i]));
    const outOfOrder: string[] = [];
    for (let c = 0; c < 8; c++) {
      const mine = result.returned.filter((r) => r.client === c).map((r) => position.get(r.id) ?? -1);
      for (let i = 1; i < mine.length; i++) if ((mine[i] as number) < (mine[i - 1] as number)) outOfOrder.push(`client ${c}: answer ${i} at ${mine[i]}, before ${mine[i - 1]}`);
    }
    expect(outOfOrder.slice(0, 5)).toEqual([]);
    expect(existsSync(spillPath)).toBe(false);
  });

  it('SIGTERM while the server is down: queued entries go to the spill file at once, and the next start sends them once', async () => {
    const before = await streamCount(server.url);
    const b = await startBroker();
    // A first decision connects the sink, so the outage below cuts a live connection.
    const warm = await runCheckLoad({ base: b.base, clients: 1, durationMs: 100, headers: GATEWAY_HEADERS, body }).done;
    expect(await eventually(async () => (await streamCount(server.url)) === before + warm.returned.length, 10_000)).toBe(true);
    await server.stop('term');
    const load = await runCheckLoad({ base: b.base, clients: 8, durationMs: 1_000, headers: GATEWAY_HEADERS, body }).done;
    expect(load.failed, load.failures.join('\n')).toBe(0);
    const returned = load.returned.map((r) => r.id);
    const t0 = Date.now();
    await stopBroker(b);
    // The stop waits neither for the server nor for the sink's acknowledgement timeout (nor runs into the broker's 8 s grace, which exits with 1).
    expect(Date.now() - t0).toBeLessThan(4_000);
    expect(spilledDecisionIds(spillPath).sort()).toEqual([...returned].sort());

    await server.start();
    const again = await startBroker();
    expect(await eventually(async () => !existsSync(spillPath), 20_000, 200), again.stderr().slice(-2000)).toBe(true);
    await stopBroker(again);
    const entries = (await streamEntries(server.url)).slice(before + warm.returned.length);
    expect(entries.map((e) => e.decisionId).sort()).toEqual([...returned].sort());
  });
});
