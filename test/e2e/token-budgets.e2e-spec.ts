/**
 * Token budgets through the real broker over HTTP (issue 6): `/v1/check` reserves the estimate of
 * every allowed model call in every budget that applies (per subject, team and gateway key),
 * policies read `request.context.budget`, `POST /v1/usage` settles once per idempotency key, and
 * unsettled reservations expire. Run twice: in-process (no `REDIS_URL`) and on the test Redis.
 * The budgets' clock is injected, so expiry and window rollover are exact. A third broker points
 * `REDIS_URL` at a closed port: checks a budget applies to fail closed.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenClient, WardenClientError } from '@warden/client';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { TEST_REDIS_URL } from '../support/services.js';
import { closedPort, writePolicyDir } from '../support/upstreams.js';

const POLICIES = {
  'model.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: model
  version: default
  rules:
    # Most models: the policy ignores the budget; the reservation alone holds the line.
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id != "guarded"
    # "guarded": the policy itself decides on the remaining budget.
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id == "guarded" && request.context.budget.daily.remaining >= request.context.budget.daily.estimate
`,
  'tool.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
`,
};

const KEY = 'budget-gateway-key-0123456789abcdef';
const CONFIG = `gateways:
  - name: gw-1
    apiKey: ${KEY}
budgets:
  - name: daily
    per: subject
    window: day
    limit: 1000
    defaultEstimate: 100
    reservationTtl: 3s
  - name: team_monthly
    per: team
    team: principal.attr.team
    window: month
    limit: 1000000000
  - name: gateway_slice
    per: key
    window: { period: 30m }
    limit: 1000000000000
    appliesTo: { kinds: [model], actions: [invoke] }
`;

interface Answer {
  decision: 'ALLOW' | 'DENY';
  reasons: Array<{ code: string; message: string }>;
  budget?: { reservationId: string; expiresAt: string; budgets: Record<string, { reserved: number; limit: number; remaining: number; resetsAt: string }> };
  error?: { code: string; message: string };
}

const DAY = 86_400_000;
/** Idempotency keys of this run (Redis remembers keys for 48 h: runs must not share them). */
const RUN = randomUUID();

function setup(redisUrl: string | undefined) {
  const ctx = { broker: undefined as unknown as TestBroker, clock: 0, team: `team-${randomUUID()}` };
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-budgets-');
    writeFileSync(join(dir, 'warden.yaml'), CONFIG);
    // Noon UTC today (real time, so Redis keys expire in the future): far from a day's edges.
    ctx.clock = Math.floor(Date.now() / DAY) * DAY + DAY / 2;
    ctx.broker = await startTestBroker({ cwd: dir, policyDir, env: redisUrl !== undefined ? { REDIS_URL: redisUrl } : {}, now: () => ctx.clock });
  });
  afterAll(async () => ctx.broker?.close());
  return ctx;
}

function subject(id: string, team: string | undefined) {
  return { id, roles: ['user'], attr: team !== undefined ? { team } : {} };
}

async function check(base: string, body: Record<string, unknown>, key: string = KEY): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`${base}/v1/check`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-warden-api-key': key }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Answer };
}

async function usage(base: string, body: unknown, key: string | null = KEY): Promise<{ status: number; json: Record<string, unknown> & { error?: { code: string } } }> {
  const res = await fetch(`${base}/v1/usage`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key !== null ? { 'x-warden-api-key': key } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
}

const invoke = (who: ReturnType<typeof subject>, model: string, attr: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  subject: who,
  action: 'invoke',
  resource: { kind: 'model', id: model, attr },
  ...extra,
});

describe.each([
  ['in-process', undefined],
  ['redis', TEST_REDIS_URL],
])('token budgets (%s)', (_name, redisUrl) => {
  const ctx = setup(redisUrl);
  const base = () => ctx.broker.base;

  it('200 concurrent checks against a budget of 10 estimates: exactly 10 ALLOW, the rest DENY budget_exhausted', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    const answers = await Promise.all(Array.from({ length: 200 }, () => check(base(), invoke(who, 'gpt-4o-mini'))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const allowed = answers.filter((a) => a.json.decision === 'ALLOW');
    expect(allowed).toHaveLength(10);
    expect(new Set(allowed.map((a) => a.json.budget?.reservationId)).size).toBe(10);
    for (const a of allowed) expect(a.json.budget?.budgets['daily']?.reserved).toBe(100);
    const denied = answers.filter((a) => a.json.decision === 'DENY');
    expect(denied).toHaveLength(190);
    for (const d of denied) {
      expect(d.json.budget).toBeUndefined();
      expect(d.json.reasons.map((r) => r.code)).toEqual(['budget_exhausted']);
      expect(d.json.reasons[0]?.message).toMatch(/^the token budget `daily` is exhausted: 0 of 1000 tokens left/);
    }
  });

  it('reserves max_tokens of the request; the policy reads request.context.budget and decides', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    const first = await check(base(), invoke(who, 'guarded', { max_tokens: 600 }));
    expect(first.json.decision).toBe('ALLOW');
    expect(first.json.budget?.budgets['daily']).toMatchObject({ reserved: 600, limit: 1000, remaining: 400 });
    // 400 left, 600 asked: the policy denies (not the reservation).
    const second = await check(base(), invoke(who, 'guarded', { max_tokens: 600 }));
    expect(second.json.decision).toBe('DENY');
    expect(second.json.reasons.map((r) => r.code)).toEqual(['policy_denied']);
    // A model whose policy ignores the budget: the reservation refuses it.
    const third = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 600 }));
    expect(third.json.reasons.map((r) => r.code)).toEqual(['budget_exhausted']);
    // `context.max_tokens` when the resource names none; it fits in what is left.
    const fourth = await check(base(), invoke(who, 'guarded', {}, { context: { max_tokens: 400 } }));
    expect(fourth.json.decision).toBe('ALLOW');
    expect(fourth.json.budget?.budgets['daily']).toMatchObject({ reserved: 400, remaining: 0 });
  });

  it('settles with the real count once per idempotency key; a repeat is not counted again', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    const r = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 500 }));
    const reservationId = r.json.budget?.reservationId as string;
    const report = { reservationId, tokens: 250, idempotencyKey: `call-${randomUUID()}` };
    const first = await usage(base(), report);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ counted: true, budgets: { daily: { used: 250, reserved: 0, remaining: 750 } } });
    const repeats = await Promise.all(Array.from({ length: 10 }, () => usage(base(), report)));
    expect(repeats.map((x) => [x.status, x.json['counted']])).toEqual(Array.from({ length: 10 }, () => [200, false]));
    // 750 left exactly: 250 was counted once.
    expect((await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 750 }))).json.decision).toBe('ALLOW');
    expect((await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1 }))).json.reasons.map((x) => x.code)).toEqual(['budget_exhausted']);
    // The same key for another count is a conflict, not a second report.
    const conflict = await usage(base(), { ...report, tokens: 9 });
    expect([conflict.status, conflict.json.error?.code]).toEqual([409, 'ERR_CONFLICT']);
  });

  it('records usage beyond the estimate', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    const r = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 100 }));
    const u = await usage(base(), { reservationId: r.json.budget?.reservationId, tokens: 1200, idempotencyKey: `${RUN}-k1` });
    expect(u.json).toMatchObject({ counted: true, budgets: { daily: { used: 1200, reserved: 0, remaining: 0 } } });
    const next = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 0 }));
    expect(next.json.reasons.map((x) => x.code)).toEqual(['budget_exhausted']);
  });

  it('releases an unsettled reservation when its time-to-live passes', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    expect((await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1000 }))).json.decision).toBe('ALLOW');
    expect((await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1 }))).json.decision).toBe('DENY');
    ctx.clock += 2_999;
    expect((await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1 }))).json.decision).toBe('DENY');
    ctx.clock += 1;
    const after = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1000 }));
    expect(after.json.decision).toBe('ALLOW');
  });

  it('starts afresh in the next window', async () => {
    const who = subject(`s-${randomUUID()}`, ctx.team);
    const r = await check(base(), invoke(who, 'gpt-4o-mini', { max_tokens: 1000 }));
    await usage(base(), { reservationId: r.json.budget?.reservationId, tokens: 1000, idempotencyKey: `${RUN}-all` });
    expect((await check(base(), invoke(who, 'guarded', { max_tokens: 1 }))).json.reasons.map((x) => x.code)).toEqual(['policy_denied']);
    const resetsAt = Date.parse(r.json.budget?.budgets['daily']?.resetsAt as string);
    expect(resetsAt).toBeGreaterThan(ctx.clock);
    ctx.clock = resetsAt;
    const next = await check(base(), invoke(who, 'guarded', { max_tokens: 1000 }));
    expect(next.json.decision).toBe('ALLOW');
    expect(next.json.budget?.budgets['daily']).toMatchObject({ reserved: 1000, remaining: 0, resetsAt: new Date(resetsAt + DAY).toISOString() });
  });

  it('reserves in every applicable budget at once, and denies what it cannot attribute', async () => {
    const r = await check(base(), invoke(subject(`s-${randomUUID()}`, ctx.team), 'gpt-4o-mini', { max_tokens: 10 }));
    expect(Object.keys(r.json.budget?.budgets ?? {}).sort()).toEqual(['daily', 'gateway_slice', 'team_monthly']);
    const noTeam = await check(base(), invoke(subject(`s-${randomUUID()}`, undefined), 'gpt-4o-mini', { max_tokens: 10 }));
    expect(noTeam.json.decision).toBe('DENY');
    expect(noTeam.json.reasons.map((x) => x.code)).toEqual(['budget_unattributable']);
    expect(noTeam.json.budget).toBeUndefined();
  });

  it('does no budget work for checks no budget applies to, and refuses a caller-stated context.budget', async () => {
    const tool = await check(base(), { subject: subject(`s-${randomUUID()}`, undefined), action: 'invoke', resource: { kind: 'tool', id: 'web_search' } });
    expect(tool.json.decision).toBe('ALLOW');
    expect(tool.json.budget).toBeUndefined();
    const forged = await check(base(), invoke(subject(`s-${randomUUID()}`, ctx.team), 'guarded', {}, { context: { budget: { daily: { remaining: 1e9, estimate: 0 } } } }));
    expect([forged.status, forged.json.error?.code]).toEqual([400, 'ERR_REQUEST_INVALID']);
    const badEstimate = await check(base(), invoke(subject(`s-${randomUUID()}`, ctx.team), 'gpt-4o-mini', { max_tokens: -5 }));
    expect(badEstimate.json.reasons.map((x) => x.code)).toEqual(['budget_estimate_invalid']);
  });

  it('refuses bad usage reports with stable codes', async () => {
    const r = await check(base(), invoke(subject(`s-${randomUUID()}`, ctx.team), 'gpt-4o-mini', { max_tokens: 10 }));
    const reservationId = r.json.budget?.reservationId as string;
    const a = `${RUN}-a`;
    const cases: Array<[unknown, number, string]> = [
      [{ reservationId, tokens: -1, idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId, tokens: 1.5, idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId, tokens: '10', idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId, tokens: 10 }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId, tokens: 10, idempotencyKey: 'x'.repeat(257) }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId, tokens: 10, idempotencyKey: 'bad\nkey' }, 400, 'ERR_REQUEST_INVALID'],
      [{ tokens: 10, idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId: 'not-an-id', tokens: 10, idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [{ decisionId: 'x', tokens: 10, idempotencyKey: a }, 400, 'ERR_REQUEST_INVALID'],
      [[1, 2], 400, 'ERR_REQUEST_INVALID'],
      [{ reservationId: `rsv_${'A'.repeat(22)}`, tokens: 10, idempotencyKey: a }, 404, 'ERR_BUDGET_RESERVATION_UNKNOWN'],
    ];
    for (const [body, status, code] of cases) {
      const u = await usage(base(), body);
      expect([JSON.stringify(body).slice(0, 60), u.status, u.json.error?.code]).toEqual([JSON.stringify(body).slice(0, 60), status, code]);
    }
    const anonymous = await usage(base(), { reservationId, tokens: 10, idempotencyKey: a }, null);
    expect([anonymous.status, anonymous.json.error?.code]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    const wrongKey = await usage(base(), { reservationId, tokens: 10, idempotencyKey: a }, 'not-the-gateway-key-0123456789');
    expect(wrongKey.status).toBe(401);
    // None of these was counted: the reservation still settles.
    expect((await usage(base(), { reservationId, tokens: 10, idempotencyKey: a })).json['counted']).toBe(true);
  });

  it('@warden/client settles through usage(), typed, and a retry with the same key is not counted', async () => {
    const warden = new WardenClient({ baseUrl: base(), apiKey: KEY });
    const r = await warden.check({ subject: subject(`s-${randomUUID()}`, ctx.team), actions: ['invoke'], resources: [{ kind: 'model', id: 'gpt-4o-mini', attr: { max_tokens: 300 } }] });
    expect(r.decision).toBe('ALLOW');
    const reservationId = r.budget?.reservationId as string;
    const report = { reservationId, tokens: 120, idempotencyKey: `${RUN}-req-1` };
    const first = await warden.usage(report);
    expect(first).toEqual({ reservationId, tokens: 120, counted: true, budgets: expect.objectContaining({ daily: { limit: 1000, used: 120, reserved: 0, remaining: 880 } }) });
    expect(await warden.usage(report)).toEqual({ reservationId, tokens: 120, counted: false });
    const err = await warden.usage({ ...report, tokens: 121 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenClientError);
    expect([(err as WardenClientError).status, (err as WardenClientError).code]).toEqual([409, 'ERR_CONFLICT']);
    await expect(warden.usage({ ...report, tokens: -1 })).rejects.toThrow(TypeError);
  });
});

describe('token budgets shared by two brokers on one Redis', () => {
  const brokers: TestBroker[] = [];
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-budgets-two-');
    // These brokers run on the real clock: reservations must outlive a slow machine's 200 checks.
    writeFileSync(join(dir, 'warden.yaml'), CONFIG.replace('reservationTtl: 3s', 'reservationTtl: 5m'));
    for (let i = 0; i < 2; i++) brokers.push(await startTestBroker({ cwd: dir, policyDir, env: { REDIS_URL: TEST_REDIS_URL } }));
  });
  afterAll(async () => Promise.all(brokers.map((b) => b.close())));

  it('200 concurrent checks spread over both never reserve more than the budget: exactly 10 ALLOW', async () => {
    const who = subject(`s-${randomUUID()}`, `team-${RUN}`);
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => check((brokers[i % 2] as TestBroker).base, invoke(who, 'gpt-4o-mini'))));
    const allowed = answers.filter((a) => a.json.decision === 'ALLOW');
    expect(allowed).toHaveLength(10);
    expect(answers.filter((a) => a.json.reasons.map((r) => r.code).join() === 'budget_exhausted')).toHaveLength(190);
    // A reservation made through one broker settles through the other.
    const u = await usage((brokers[1] as TestBroker).base, { reservationId: allowed[0]?.json.budget?.reservationId, tokens: 0, idempotencyKey: `${RUN}-two` });
    expect(u.json).toMatchObject({ counted: true, budgets: { daily: { used: 0, reserved: 900 } } });
  });
});

describe('token budgets while Redis is unreachable', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-budgets-down-');
    writeFileSync(join(dir, 'warden.yaml'), CONFIG);
    broker = await startTestBroker({ cwd: dir, policyDir, env: { REDIS_URL: `redis://127.0.0.1:${await closedPort()}` } });
  });
  afterAll(async () => broker?.close());

  it('fails closed for checks a budget applies to (DENY budget_unavailable), and only for those', async () => {
    const who = subject(`s-${randomUUID()}`, 'red');
    const model = await check(broker.base, invoke(who, 'gpt-4o-mini', { max_tokens: 10 }));
    expect(model.status).toBe(200);
    expect(model.json.decision).toBe('DENY');
    expect(model.json.reasons.map((r) => r.code)).toEqual(['budget_unavailable']);
    expect(model.json.budget).toBeUndefined();
    const guarded = await check(broker.base, invoke(who, 'guarded', { max_tokens: 10 }));
    expect(guarded.json.decision).toBe('DENY');
    const tool = await check(broker.base, { subject: who, action: 'invoke', resource: { kind: 'tool', id: 'web_search' } });
    expect(tool.json.decision).toBe('ALLOW');
  });

  it('answers a usage report 503 ERR_BUDGET_UNAVAILABLE, so the gateway retries with the same key', async () => {
    const u = await usage(broker.base, { reservationId: `rsv_${'B'.repeat(22)}`, tokens: 5, idempotencyKey: 'k' });
    expect([u.status, u.json.error?.code]).toEqual([503, 'ERR_BUDGET_UNAVAILABLE']);
  });
});

describe('token budgets behind the forward-auth adapter (/v1/ext-authz)', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-budgets-extauthz-');
    writeFileSync(
      join(dir, 'warden.yaml'),
      `gateways:
  - { name: edge, apiKey: edge-key-${RUN} }
resolvers:
  - name: tokens
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice-${RUN}, roles: [user] }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
budgets:
  - { name: daily, per: subject, window: day, limit: 1000 }
`,
    );
    broker = await startTestBroker({ cwd: dir, policyDir });
  });
  afterAll(async () => broker?.close());

  it("reserves the forwarded body's max_tokens, hands the gateway the reservation, and answers 429 budget_exhausted once spent", async () => {
    const envoy = (body: string) =>
      fetch(`${broker.base}/v1/ext-authz/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer alice-token' }, body });
    const first = await envoy('{"model":"gpt-4o-mini","max_tokens":600}');
    expect(first.status).toBe(200);
    const reservationId = first.headers.get('x-warden-reservation-id');
    expect(reservationId).toMatch(/^rsv_/);
    const spent = await envoy('{"model":"gpt-4o-mini","max_tokens":600}');
    expect(spent.status).toBe(429);
    expect(spent.headers.get('x-warden-reservation-id')).toBeNull();
    const json = (await spent.json()) as { decision: string; reasons: Array<{ code: string }> };
    expect(json.decision).toBe('DENY');
    expect(json.reasons.map((r) => r.code)).toEqual(['budget_exhausted']);
    // The gateway settles the first call at 100 real tokens: 900 are left, so 600 fit again.
    const settled = await fetch(`${broker.base}/v1/usage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-warden-api-key': `edge-key-${RUN}` },
      body: JSON.stringify({ reservationId, tokens: 100, idempotencyKey: 'call-1' }),
    });
    expect(settled.status).toBe(200);
    expect((await envoy('{"model":"gpt-4o-mini","max_tokens":600}')).status).toBe(200);
    // 100 used + 600 reserved: the default estimate (1024) does not fit in the 300 left; 300 does.
    expect((await envoy('{"model":"gpt-4o-mini"}')).status).toBe(429);
    expect((await envoy('{"model":"gpt-4o-mini","max_tokens":300}')).status).toBe(200);
  });
});
