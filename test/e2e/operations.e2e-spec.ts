/**
 * Operations endpoints of a real broker (one in-process worker, a real HTTP upstream for its
 * resolver): `/metrics` counts what checks did (decisions by effect, kind and action; resolver
 * calls, failures and durations; request durations per route; policy loads); `/healthz` is 200
 * while the process is up; `/readyz` is 200 only when policies, the database and (when configured)
 * Redis answer, and 503 naming Redis when it is a closed port; a failing resolver is logged as
 * one JSON line naming the request and decision, without the gateway's key.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { TEST_REDIS_URL } from '../support/services.js';
import { closedPort, sendJson, startHttpUpstream, v1Check, writePolicyDir, type HttpUpstream } from '../support/upstreams.js';

const GATEWAY_KEY = `gw-${randomBytes(4).toString('hex')}-0123456789abcdef`;

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

/** One sample of a Prometheus text exposition, or 0 when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1] as string] = l[2] as string;
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return 0;
}

async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

let upstream: HttpUpstream;
let broker: TestBroker;
/** The JSON lines the main broker logged. */
const logged: string[] = [];

beforeAll(async () => {
  // `/attrs/ok` answers; anything else is a 500 (a resolver failure, denied under `onError: deny`).
  upstream = await startHttpUpstream((req, res) => (req.url === '/attrs/ok' ? sendJson(res, 200, { ok: true }) : sendJson(res, 500, { error: 'boom' })));
  const { dir, policyDir } = writePolicyDir({ 'doc.yaml': DOC_POLICY }, 'warden-ops-');
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      datasources: { api: { kind: 'http', url: upstream.url } },
      resolvers: [{ name: 'doc-attrs', kind: 'http', datasource: 'api', key: 'resource.id', path: '/attrs/{key}', when: 'R.kind == "doc"', onError: 'deny', timeout: '3s', provides: { 'resource.attr.ok': 'result.ok' } }],
      gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir, logDestination: { write: (line: string) => void logged.push(line) } });
});

afterAll(async () => {
  await broker?.close();
  await upstream?.close();
});

describe('/metrics', () => {
  it('counts decisions by effect, kind and action, resolver runs and failures, and request durations', async () => {
    const before = await scrape(broker.base);
    const subject = { id: 'alice', roles: ['user'] };
    const v1 = await v1Check(
      broker.base,
      { subject, actions: ['read'], resources: [{ kind: 'doc', id: 'ok' }, { kind: 'doc', id: 'broken' }, { kind: 'unknown-kind', id: 'x' }] },
      { 'x-warden-api-key': GATEWAY_KEY },
    );
    expect(v1.status, v1.text).toBe(200);
    expect(v1.json.results.map((r) => r.decision)).toEqual(['ALLOW', 'DENY', 'DENY']);
    const cerbos = await fetch(`${broker.base}/api/check/resources`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ principal: subject, resources: [{ actions: ['read', 'write'], resource: { kind: 'doc', id: 'ok' } }] }),
    });
    expect(cerbos.status).toBe(200);
    const after = await scrape(broker.base);
    const delta = (name: string, labels: Record<string, string> = {}): number => sample(after, name, labels) - sample(before, name, labels);

    expect(delta('warden_decisions_total', { effect: 'ALLOW', kind: 'doc', action: 'read' })).toBe(2);
    expect(delta('warden_decisions_total', { effect: 'DENY', kind: 'doc', action: 'read' })).toBe(1);
    expect(delta('warden_decisions_total', { effect: 'DENY', kind: 'doc', action: 'write' })).toBe(1);
    // A kind no policy names is not a label value of its own.
    expect(delta('warden_decisions_total', { effect: 'DENY', kind: 'other', action: 'read' })).toBe(1);
    expect(after).not.toContain('unknown-kind');

    expect(delta('warden_resolver_calls_total', { resolver: 'doc-attrs' })).toBeGreaterThanOrEqual(2);
    expect(delta('warden_resolver_errors_total', { resolver: 'doc-attrs' })).toBe(1);
    expect(delta('warden_resolver_duration_seconds_count', { resolver: 'doc-attrs' })).toBeGreaterThanOrEqual(2);
    expect(delta('warden_stage_duration_seconds_count', { api: 'v1', stage: 'enrich' })).toBe(1);
    for (const stage of ['parse', 'evaluate', 'total']) expect(delta('warden_stage_duration_seconds_count', { api: 'v1', stage }), stage).toBe(1);
    expect(delta('warden_stage_duration_seconds_sum', { api: 'v1', stage: 'total' })).toBeGreaterThan(delta('warden_stage_duration_seconds_sum', { api: 'v1', stage: 'evaluate' }));
    expect(delta('warden_stage_duration_seconds_count', { api: 'cerbos', stage: 'enrich' })).toBe(1);
    expect(delta('warden_request_duration_seconds_count', { route: '/v1/check' })).toBe(1);
    expect(delta('warden_request_duration_seconds_count', { route: '/api/check/resources' })).toBe(1);
    expect(delta('warden_request_duration_seconds_sum', { route: '/v1/check' })).toBeGreaterThan(0);
    expect(sample(after, 'warden_request_duration_seconds_bucket', { route: '/v1/check', le: '+Inf' })).toBe(sample(after, 'warden_request_duration_seconds_count', { route: '/v1/check' }));
    expect(sample(after, 'warden_policy_loads_total', { result: 'success' })).toBe(1);
    expect(sample(after, 'warden_policy_loads_total', { result: 'failure' })).toBe(0);
    expect(after).toContain('# TYPE warden_policy_loads_total counter');
  });
});

async function getJson(url: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('/healthz and /readyz', () => {
  let withRedis: TestBroker | undefined;
  let redisDown: TestBroker | undefined;
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir({ 'doc.yaml': DOC_POLICY }, 'warden-ops-ready-');
    const port = await closedPort();
    [withRedis, redisDown] = await Promise.all([
      startTestBroker({ cwd: dir, policyDir, env: { REDIS_URL: TEST_REDIS_URL } }),
      startTestBroker({ cwd: dir, policyDir, env: { REDIS_URL: `redis://127.0.0.1:${port}` } }),
    ]);
  });
  afterAll(async () => {
    await withRedis?.close();
    await redisDown?.close();
  });

  it('is live and ready with policies and a database, and does not check Redis when none is configured', async () => {
    expect(await getJson(`${broker.base}/healthz`)).toEqual({ status: 200, json: { status: 'ok' } });
    expect(await getJson(`${broker.base}/readyz`)).toEqual({ status: 200, json: { status: 'ready', checks: { policies: 'ok', database: 'ok' } } });
  });

  it('is ready when the configured Redis answers', async () => {
    expect(await getJson(`${(withRedis as TestBroker).base}/readyz`)).toEqual({ status: 200, json: { status: 'ready', checks: { policies: 'ok', database: 'ok', redis: 'ok' } } });
  });

  it('answers 503 naming redis when the configured Redis does not answer, and stays live', async () => {
    const b = redisDown as TestBroker;
    const ready = await getJson(`${b.base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json['status']).toBe('not_ready');
    expect(ready.json['notReady']).toEqual(['redis']);
    const checks = ready.json['checks'] as Record<string, string>;
    expect(checks['policies']).toBe('ok');
    expect(checks['database']).toBe('ok');
    expect(checks['redis']).toBe('not_connected');
    // SECURITY: a driver code, never the URL or host.
    expect(JSON.stringify(ready.json)).not.toContain('127.0.0.1');
    expect((await getJson(`${b.base}/healthz`)).status).toBe(200);
  });
});

describe('logs', () => {
  it('writes a resolver failure as a JSON line with level, time, msg, requestId and decisionId, and no secret', async () => {
    const answer = await v1Check(
      broker.base,
      { requestId: 'ops-log-1', subject: { id: 'alice', roles: ['user'] }, actions: ['read'], resources: [{ kind: 'doc', id: 'broken-for-log' }] },
      { 'x-warden-api-key': GATEWAY_KEY },
    );
    expect(answer.json.decision).toBe('DENY');
    const lines = logged.filter((l) => l.includes('ops-log-1'));
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(line.endsWith('\n')).toBe(true);
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'warn', requestId: 'ops-log-1', decisionId: answer.json['decisionId'], resolver: 'doc-attrs', onError: 'deny' });
    expect(typeof entry['code']).toBe('string');
    expect(entry['msg']).toMatch(/^resolver `doc-attrs`: .*HTTP 500/);
    expect(new Date(entry['time'] as string).toISOString()).toBe(entry['time']);
    for (const l of logged) expect(l).not.toContain(GATEWAY_KEY);
  });
});
