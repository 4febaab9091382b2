/**
 * The scale-out of docker-compose.yml, on 127.0.0.1: Debian's nginx runs the shipped
 * `deploy/nginx/warden-lb.conf` (only the replicas' addresses and the listen ports rewritten) in
 * front of two broker replicas that share one Postgres database, one Redis and one NATS JetStream
 * decision log. Checks through nginx are answered by both replicas; every decision id a client got
 * is on the stream exactly once, whichever replica made it; with one replica stopped, nginx sends
 * everything to the other and no client sees an error.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, JSONCodec, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { createTestDatabase, TEST_NATS_URL, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';
import { closedPort, sleep, writePolicyDir } from '../support/upstreams.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
if (NGINX === undefined) console.warn('skipping the scale-out e2e: nginx is not installed (.ci/run installs it)');
const NATS_URL = TEST_NATS_URL;
const LB_CONF = join(import.meta.dirname, '../../deploy/nginx/warden-lb.conf');

const RUN = randomBytes(4).toString('hex');
const SUBJECT = `warden.audit.scaleout.${RUN}`;
const STREAM = `WARDEN_AUDIT_SCALEOUT_${RUN}`;

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
          expr: R.id != "shell_exec"
`;

const CONFIG = `resolvers:
  - name: tokens-${RUN}
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice, roles: [user] }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
audit:
  enabled: true
  sink: nats
  nats: { url: "${NATS_URL}", subject: "${SUBJECT}", stream: "${STREAM}" }
`;

let db: TestDatabase;
let replicas: TestBroker[] = [];
let nginxDir: string;
let lbBase: string;
let nc: NatsConnection | undefined;
/** Each replica's log lines about the decision log (shown when the stream misses entries). */
const auditLogs: string[][] = [[], []];
/** Each replica's data directory (its spill files). */
const dataDirs: string[] = [];

function nginx(...args: string[]): void {
  const r = spawnSync(NGINX as string, [...args, '-c', join(nginxDir, 'nginx.conf'), '-p', `${nginxDir}/`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`nginx ${args.join(' ')} failed: ${r.stderr}`);
}

const portOf = (base: string): string => new URL(base).port;

/** Decisions per replica, from its own /metrics (warden_decisions_total summed). */
async function decisionsOf(broker: TestBroker): Promise<number> {
  const text = await (await fetch(`${broker.base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('warden_decisions_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** One check through nginx; returns its decision id (the check must be answered 200). */
async function checkThroughLb(tool: string): Promise<{ decisionId: string; decision: string }> {
  const res = await fetch(`${lbBase}/v1/check`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ subject: { token: 'alice-token' }, action: 'invoke', resource: { kind: 'tool', id: tool } }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as { decisionId: string; decision: string };
}

/** Reads every message of the stream: decision ids in stream order. */
async function streamIds(): Promise<string[]> {
  const jsm = await (nc as NatsConnection).jetstreamManager();
  const info = await jsm.streams.info(STREAM);
  const codec = JSONCodec<{ decisionId: string }>();
  const ids: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) ids.push(codec.decode((await jsm.streams.getMessage(STREAM, { seq })).data).decisionId);
  return ids;
}

describe.runIf(NGINX !== undefined)('two replicas behind the shipped nginx load-balancer config, audit to one NATS stream', () => {
  beforeAll(async () => {
    db = await createTestDatabase('warden_scale');
    const { dir, policyDir } = writePolicyDir({ 'tool.yaml': TOOL_POLICY }, 'warden-scale-');
    writeFileSync(join(dir, 'warden.yaml'), CONFIG);
    for (let i = 0; i < 2; i++) {
      const lines = auditLogs[i] as string[];
      const logDestination = {
        write: (line: string): void => {
          if (line.includes('audit')) lines.push(line.trim());
        },
      };
      dataDirs.push(join(dir, `spill-${i}`));
      replicas.push(await startTestBroker({ cwd: dir, policyDir, databaseUrl: db.url, grpc: true, logDestination, env: { REDIS_URL: TEST_REDIS_URL, WARDEN_DATA_DIR: dataDirs[i] as string } }));
    }
    const [a, b] = replicas as [TestBroker, TestBroker];
    const httpPort = await closedPort();
    const grpcPort = await closedPort();
    lbBase = `http://127.0.0.1:${httpPort}`;
    nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir, { recursive: true });
    // The shipped file, with the compose service names and container ports replaced by ours.
    const lb = readFileSync(LB_CONF, 'utf8')
      .replace('server broker-1:3594', `server 127.0.0.1:${portOf(a.base)}`)
      .replace('server broker-2:3594', `server 127.0.0.1:${portOf(b.base)}`)
      .replace('server broker-1:3595', `server ${a.grpcAddr as string}`)
      .replace('server broker-2:3595', `server ${b.grpcAddr as string}`)
      .replace('listen 80;', `listen 127.0.0.1:${httpPort};`)
      .replace('listen 81 http2;', `listen 127.0.0.1:${grpcPort} http2;`);
    expect(lb).not.toMatch(/broker-\d:/);
    writeFileSync(join(nginxDir, 'warden-lb.conf'), lb);
    writeFileSync(
      join(nginxDir, 'nginx.conf'),
      `worker_processes 1; pid ${nginxDir}/nginx.pid; error_log ${nginxDir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${nginxDir}/b; proxy_temp_path ${nginxDir}/p; fastcgi_temp_path ${nginxDir}/f; uwsgi_temp_path ${nginxDir}/u; scgi_temp_path ${nginxDir}/s;
  include ${nginxDir}/warden-lb.conf;
}
`,
    );
    nginx('-t');
    nginx();
    nc = await connect({ servers: NATS_URL });
  }, 60_000);

  afterAll(async () => {
    if (nginxDir !== undefined && existsSync(join(nginxDir, 'nginx.pid'))) {
      try {
        process.kill(Number(readFileSync(join(nginxDir, 'nginx.pid'), 'utf8').trim()), 'SIGQUIT');
      } catch {
        /* already gone */
      }
    }
    for (const r of replicas) await r.close().catch(() => undefined);
    replicas = [];
    if (nc !== undefined) {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(STREAM).catch(() => undefined);
      await nc.close();
    }
    await db?.drop();
  });

  it('spreads checks over both replicas and logs every decision id once on the shared stream; one replica stopped, the other answers everything', async () => {
    const [a, b] = replicas as [TestBroker, TestBroker];
    const ids: string[] = [];
    // Concurrent clients, so least_conn has more than one connection to balance.
    const round = async (n: number): Promise<void> => {
      const tools = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 'shell_exec' : 'web_search'));
      const answers = await Promise.all(tools.map(checkThroughLb));
      answers.forEach((x, i) => {
        expect(x.decision).toBe(tools[i] === 'shell_exec' ? 'DENY' : 'ALLOW');
        ids.push(x.decisionId);
      });
    };
    for (let i = 0; i < 10; i++) await round(8);
    const [onA, onB] = [await decisionsOf(a), await decisionsOf(b)];
    expect(onA + onB).toBe(80);
    expect(onA).toBeGreaterThan(0);
    expect(onB).toBeGreaterThan(0);

    // Replica b goes away (as a container stop would): nginx retries on a, clients see only 200s.
    await b.close();
    for (let i = 0; i < 5; i++) await round(8);
    expect(await decisionsOf(a)).toBe(onA + 40);

    // Every id any client got is on the stream exactly once (b flushed on close; a within its
    // flush interval). What is asserted is that none is lost or doubled, not how fast, so the wait
    // is 40 s. Two full CI runs found 40 ids missing (after 10 s, then after 40 s; which replica's
    // was not recorded: with least_conn each replica answers 4 of each round of 8, so 40 is b's
    // share as much as a's last rounds). One cause fits either count: a stop in the backoff after a
    // transient sink failure left b's entries in its spill file, which a replica stopped for good
    // never replays; a stop now tries the sink once more (audit-writer.spec.ts). A failure names
    // the checks missing, a's counters and what both replicas' decision logs reported.
    const deadline = Date.now() + 40_000;
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = await streamIds();
      if (seen.length >= ids.length) break;
      await sleep(100);
    }
    expect(new Set(ids).size).toBe(120);
    if (seen.length !== ids.length) {
      // Which checks (0-79 both replicas, 80-119 a alone), what a's writer counted, and what both logged.
      const missing = ids.flatMap((x, i) => (seen.includes(x) ? [] : [i]));
      const aAudit = (await (await fetch(`${a.base}/metrics`)).text()).split('\n').filter((l) => l.startsWith('warden_audit_'));
      const spills = dataDirs.map((d, i) => `${'ab'[i]}: ${existsSync(d) ? readdirSync(d).map((f) => `${f} (${readFileSync(join(d, f), 'utf8').split('\n').length - 1} lines)`).join(', ') : 'none'}`);
      expect.fail(
        `the stream holds ${seen.length} of ${ids.length} ids; missing checks #${missing.join(', #')}\nspill files: ${spills.join('; ')}\na's audit metrics:\n${aAudit.join('\n')}\na logged:\n${(auditLogs[0] as string[]).join('\n')}\nb logged:\n${(auditLogs[1] as string[]).join('\n')}`,
      );
    }
    expect([...seen].sort()).toEqual([...ids].sort());
  }, 90_000);
});
