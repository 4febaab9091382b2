/**
 * Two broker PROCESSES (the built `main.js`, one worker each) sharing one Postgres database and
 * one Redis, as two replicas behind a load balancer would: a resolver registered on one is used
 * by the other within a second (Postgres LISTEN/NOTIFY), the shared cache never serves a value
 * past its ttl on either, and a delete on one stops the other within a second.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';
import { sendJson, sleep, startHttpUpstream, v1Check, writePolicyDir, type HttpUpstream, type V1Answer } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const ADMIN_TOKEN = `admin-${RUN}-0123456789abcdef`;
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;
/** Resolver names carry the run id: the Redis cache namespace derives from the config, and Redis outlives the test. */
const TIER = `tier-${RUN}`;
const PLAN = `plan-${RUN}`;

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [export]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.tier == "gold"
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.plan == "pro"
`;

let db: TestDatabase;
let crm: HttpUpstream;
let a: BrokerProcess;
let b: BrokerProcess;
const plans: Record<string, string> = { bob: 'pro' };

const check = (broker: BrokerProcess, who: string, action: 'export' | 'invoke', explain = false): Promise<V1Answer> =>
  v1Check(broker.base, { subject: { id: who, roles: ['user'] }, action, resource: { kind: 'tool', id: 'search' }, explain }, { 'x-warden-api-key': GATEWAY_KEY });

async function admin(broker: BrokerProcess, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${broker.base}/v1/admin/resolvers${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

/** Polls `broker` every 10 ms until `who` gets `want`; resolves to the ms it took, or fails after `limitMs`. */
async function msUntil(broker: BrokerProcess, who: string, action: 'export' | 'invoke', want: 'ALLOW' | 'DENY', since: number, limitMs = 3_000): Promise<number> {
  for (;;) {
    const res = await check(broker, who, action);
    expect(res.status, res.text).toBe(200);
    if (res.json.decision === want) return performance.now() - since;
    if (performance.now() - since > limitMs) throw new Error(`still ${res.json.decision} after ${limitMs}ms: ${res.text}`);
    await sleep(10);
  }
}

const httpResolver = (name: string, path: string, attr: string, extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'http',
  datasource: 'crm',
  key: 'principal.id',
  path,
  provides: { [`principal.attr.${attr}`]: `result.${attr}` },
  ...extra,
});

beforeAll(async () => {
  ensureBrokerBuilt();
  db = await createTestDatabase('warden_two');
  crm = await startHttpUpstream((req, res) => {
    const [, kind, who] = (req.url ?? '').split('/');
    if (kind === 'users' && who === 'alice') return sendJson(res, 200, { tier: 'gold' });
    if (kind === 'plans' && who !== undefined && plans[who] !== undefined) return sendJson(res, 200, { plan: plans[who] });
    sendJson(res, 404, {});
  });
  const { dir, policyDir } = writePolicyDir({ 'tool.yaml': TOOL_POLICY }, 'warden-two-');
  const config = join(dir, 'warden.yaml');
  writeFileSync(config, stringify({ datasources: { crm: { kind: 'http', url: crm.url } }, gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }] }));
  const env = { WARDEN_POLICY_DIR: policyDir, WARDEN_CONFIG: config, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, WARDEN_ADMIN_TOKEN: ADMIN_TOKEN };
  // Started together on an empty database: both run the migrations at once.
  [a, b] = await Promise.all([spawnBroker({ cwd: dir, env }), spawnBroker({ cwd: dir, env })]);
  expect(a.base).not.toBe(b.base);
}, 180_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await crm?.close();
  await db?.drop();
});

describe('two broker processes sharing Postgres and Redis', () => {
  it('a resolver registered through A is used by B within one second', async () => {
    expect((await check(b, 'alice', 'export')).json.decision).toBe('DENY');
    const created = await admin(a, 'POST', '', httpResolver(TIER, '/users/{key}', 'tier'));
    expect(created.status, created.text).toBe(201);
    const t0 = performance.now();
    // A applies its own change before answering.
    expect((await check(a, 'alice', 'export')).json.decision).toBe('ALLOW');
    const ms = await msUntil(b, 'alice', 'export', 'ALLOW', t0);
    expect(ms).toBeLessThan(1_000);
    const onB = await admin(b, 'GET', `/${TIER}`);
    expect(onB.status).toBe(200);
    expect(JSON.parse(onB.text)).toMatchObject({ name: TIER, version: 1, source: 'admin' });
  });

  it('a change made through B is used by A within one second', async () => {
    const replaced = await admin(b, 'PUT', `/${TIER}`, { ...httpResolver(TIER, '/users/{key}', 'tier'), provides: { 'principal.attr.tier': '"silver"' } });
    expect(replaced.status, replaced.text).toBe(200);
    const t0 = performance.now();
    expect((await check(b, 'alice', 'export')).json.decision).toBe('DENY');
    expect(await msUntil(a, 'alice', 'export', 'DENY', t0)).toBeLessThan(1_000);
    const back = await admin(a, 'POST', `/${TIER}/rollback`, { version: 1 });
    expect(back.status, back.text).toBe(200);
    const t1 = performance.now();
    expect(await msUntil(b, 'alice', 'export', 'ALLOW', t1)).toBeLessThan(1_000);
  });

  it('a cached value is shared through Redis but not served by the other broker past its ttl', async () => {
    const created = await admin(a, 'POST', '', httpResolver(PLAN, '/plans/{key}', 'plan', { cache: { ttl: '1s' } }));
    expect(created.status, created.text).toBe(201);
    await msUntil(b, 'nobody', 'invoke', 'DENY', performance.now()); // B has the resolver (and nobody has a plan)
    const calls = (): number => crm.requests.filter((p) => p === '/plans/bob').length;

    const onA = await check(a, 'bob', 'invoke', true);
    // A stored the entry before answering: its ttl ends no later than one second from now.
    const stored = Date.now();
    expect(onA.json.decision, onA.text).toBe('ALLOW');
    expect(onA.json.explain?.items[0]?.attributes['principal.attr.plan']?.cache?.hit).toBe(false);
    expect(calls()).toBe(1);

    // B is served A's value from the shared tier: a hit, and the API was not asked again.
    const onB = await check(b, 'bob', 'invoke', true);
    expect(onB.json.decision, onB.text).toBe('ALLOW');
    expect(onB.json.explain?.items[0]?.attributes['principal.attr.plan']?.cache).toMatchObject({ hit: true, stale: false });
    expect(calls()).toBe(1);

    // The upstream changes. Until the ttl is over B may still serve the cached value, but only as
    // a fresh hit younger than the ttl; from then on both brokers see the new answer.
    plans['bob'] = 'free';
    let servedOld = 0;
    for (;;) {
      const sent = Date.now();
      if (sent > stored + 1_000 + 20) break;
      const res = await check(b, 'bob', 'invoke', true);
      const plan = res.json.explain?.items[0]?.attributes['principal.attr.plan'];
      if (res.json.decision === 'ALLOW') {
        servedOld += 1;
        expect(plan?.cache?.hit, res.text).toBe(true);
        expect(plan?.cache?.ageMs, res.text).toBeLessThan(1_000);
        expect(sent, 'served the old value past its ttl').toBeLessThan(stored + 1_000);
      }
      await sleep(25);
    }
    expect(servedOld).toBeGreaterThan(0); // the window was observed
    const [afterB, afterA] = [await check(b, 'bob', 'invoke', true), await check(a, 'bob', 'invoke', true)];
    expect(afterB.json.decision, afterB.text).toBe('DENY');
    expect(afterA.json.decision, afterA.text).toBe('DENY');
    for (const res of [afterA, afterB]) {
      const principal = res.json.explain?.items[0]?.input['principal'] as { attr?: Record<string, unknown> };
      expect(principal.attr?.['plan']).toBe('free');
    }
    expect(calls()).toBeGreaterThanOrEqual(2);
    plans['bob'] = 'pro';
  });

  it('deleting a resolver on A stops B using it within one second', async () => {
    expect((await check(b, 'alice', 'export')).json.decision).toBe('ALLOW');
    const deleted = await admin(a, 'DELETE', `/${TIER}`);
    expect(deleted.status, deleted.text).toBe(204);
    const t0 = performance.now();
    expect((await check(a, 'alice', 'export')).json.decision).toBe('DENY');
    expect(await msUntil(b, 'alice', 'export', 'DENY', t0)).toBeLessThan(1_000);
    expect((await admin(b, 'GET', `/${TIER}`)).status).toBe(404);
    expect((await admin(a, 'DELETE', `/${PLAN}`)).status).toBe(204);
  });

  it('both processes stay healthy (nothing unexpected on stderr)', () => {
    for (const p of [a, b]) expect(p.stderr()).not.toMatch(/ERROR|unhandled|cannot start/i);
  });
});
