/**
 * Operations of the built broker as a separate OS process (`node dist/.../main.js`):
 *
 * - with `WARDEN_WORKERS=2`, every scrape of `/metrics` shows the sum over both workers,
 *   whichever worker answered (each request below comes on a new connection, so the primary's
 *   round robin spreads them);
 * - on SIGTERM a check already in flight (held by a slow resolver upstream) is answered in full
 *   before the process exits, and no new connection is accepted once it stops.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { sendJson, startHttpUpstream, writePolicyDir, type HttpUpstream } from '../support/upstreams.js';

const GATEWAY_KEY = `gw-${randomBytes(4).toString('hex')}-0123456789abcdef`;
const SLOW_MS = 1500;

const DOC_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.ok == true
`;

/** One request on a connection of its own (no keep-alive pool), so the cluster spreads them. */
function request(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      `${base}${path}`,
      { method, agent: false, headers: { connection: 'close', 'x-warden-api-key': GATEWAY_KEY, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function sample(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

const check = (id: string) => ({ subject: { id: 'alice', roles: ['user'] }, actions: ['read'], resources: [{ kind: 'doc', id }] });

let upstream: HttpUpstream;
let db: TestDatabase;
let dir: string;
let policyDir: string;
/** Set when the upstream received a `slow` request (the check is then in flight in the broker). */
let slowArrived: () => void = () => undefined;

beforeAll(async () => {
  ensureBrokerBuilt();
  upstream = await startHttpUpstream((req, res) => {
    if (req.url === '/attrs/slow') {
      slowArrived();
      setTimeout(() => sendJson(res, 200, { ok: true }), SLOW_MS);
      return;
    }
    sendJson(res, 200, { ok: true });
  });
  db = await createTestDatabase();
  ({ dir, policyDir } = writePolicyDir({ 'doc.yaml': DOC_POLICY }, 'warden-ops-proc-'));
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      datasources: { api: { kind: 'http', url: upstream.url } },
      // No cache: every check calls the upstream.
      resolvers: [{ name: 'doc-attrs', kind: 'http', datasource: 'api', key: 'resource.id', path: '/attrs/{key}', when: 'R.kind == "doc"', onError: 'deny', timeout: '5s', provides: { 'resource.attr.ok': 'result.ok' } }],
      gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
    }),
  );
}, 180_000);

afterAll(async () => {
  await upstream?.close();
  await db?.drop();
});

describe('metrics across cluster workers', () => {
  let broker: BrokerProcess | undefined;
  afterAll(async () => broker?.stop());

  it('every scrape shows the sum over both workers', async () => {
    broker = await spawnBroker({ cwd: dir, env: { WARDEN_POLICY_DIR: policyDir, DATABASE_URL: db.url, WARDEN_WORKERS: '2' } });
    const base = broker.base;
    const N = 10;
    for (let i = 0; i < N; i++) {
      const r = await request(base, 'POST', '/v1/check', check(`ok-${i}`));
      expect(r.status, r.text).toBe(200);
      expect(JSON.parse(r.text).decision).toBe('ALLOW');
    }
    for (let i = 0; i < 4; i++) {
      const m = await request(base, 'GET', '/metrics');
      expect(m.status, m.text).toBe(200);
      expect(sample(m.text, 'warden_decisions_total{effect="ALLOW",kind="doc",action="read"}')).toBe(N);
      expect(sample(m.text, 'warden_request_duration_seconds_count{route="/v1/check"}')).toBe(N);
      // Each worker loaded the policies once: the sum is the number of workers.
      expect(sample(m.text, 'warden_policy_loads_total{result="success"}')).toBe(2);
    }
  });
});

describe('graceful shutdown', () => {
  it('answers a check in flight at SIGTERM, then exits and accepts no new connection', async () => {
    const broker = await spawnBroker({ cwd: dir, env: { WARDEN_POLICY_DIR: policyDir, DATABASE_URL: db.url } });
    try {
      const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
      const inFlight = request(broker.base, 'POST', '/v1/check', check('slow'));
      await arrived;
      const exited = new Promise<number | null>((resolve) => broker.process.once('exit', (code) => resolve(code)));
      broker.process.kill('SIGTERM');
      const answer = await inFlight;
      expect(answer.status, answer.text).toBe(200);
      expect(JSON.parse(answer.text).decision).toBe('ALLOW');
      await exited;
      await expect(request(broker.base, 'GET', '/healthz')).rejects.toThrow(/ECONNREFUSED/);
      expect(broker.stderr()).not.toMatch(/still in flight|"level":"error"/);
    } finally {
      await broker.stop();
    }
  });
});
