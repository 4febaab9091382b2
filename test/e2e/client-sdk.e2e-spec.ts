/**
 * `@warden/client` against a real broker (the repository's warden.yaml and policies on the test
 * PostgreSQL server): check, delegate, check with the delegation, revoke and see the revocation
 * arrive on the stream; then against a port nothing listens on: a check fails closed, and only a
 * configured read-only call is let through by degradation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenClient, WardenClientError } from '@warden/client';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { closedPort } from '../support/upstreams.js';
import { join } from 'node:path';

const ADMIN = 'client-sdk-admin-token-0123456789';
let broker: TestBroker;
let warden: WardenClient;

beforeAll(async () => {
  broker = await startTestBroker({ cwd: repoRoot, policyDir: join(repoRoot, 'policies'), env: { WARDEN_ADMIN_TOKEN: ADMIN } });
  warden = new WardenClient({ baseUrl: broker.base });
});
afterAll(async () => broker?.close());

describe('@warden/client against the broker', () => {
  it('checks: an allowed and a denied tool, with reasons', async () => {
    const r = await warden.check({ subject: { token: 'alice-demo-token' }, actions: ['invoke'], resources: [{ kind: 'tool', id: 'web_search' }, { kind: 'tool', id: 'shell_exec' }] });
    expect(r.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.results.map((x) => [x.resource.id, x.decision])).toEqual([
      ['web_search', 'ALLOW'],
      ['shell_exec', 'DENY'],
    ]);
    expect(r.reasons.some((x) => x.code === 'policy_denied')).toBe(true);
  });

  it('delegates, checks with the delegation, revokes, and the stream reports the revocation', async () => {
    const d = await warden.delegate({ subject: { token: 'alice-demo-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['web_search'] }], ttl: '5m', task: 'sdk-test' });
    expect(d.token.split('.')).toHaveLength(3);
    const asAgent = { subject: { token: 'alice-demo-token' }, agent: { id: 'planner' }, delegation: d.token, actions: ['invoke'], resources: [{ kind: 'tool', id: 'web_search' }] } as const;
    expect((await warden.check(asAgent)).decision).toBe('ALLOW');

    const admin = new WardenClient({ baseUrl: broker.base, bearer: ADMIN });
    const abort = new AbortController();
    const seen = (async () => {
      for await (const ev of admin.revocations({ after: 0, signal: abort.signal })) if (ev.id === d.delegationId) return ev;
      return undefined;
    })();
    await warden.revoke(d.delegationId, { token: 'alice-demo-token' });
    const ev = await Promise.race([seen, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))]);
    abort.abort();
    expect(ev).toMatchObject({ target: 'delegation', id: d.delegationId });
    const after = await warden.check(asAgent);
    expect(after.decision).toBe('DENY');
    expect(after.reasons.map((x) => x.code)).toContain('delegation_revoked');
  });

  it('refuses a delegation beyond what the subject may do, as a typed error', async () => {
    const err = await warden.delegate({ subject: { token: 'alice-demo-token' }, to: 'planner', grants: [{ kind: 'tool', actions: ['invoke'], ids: ['shell_exec'] }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenClientError);
    expect((err as WardenClientError).status).toBe(403);
  });
});

describe('@warden/client when Warden is unreachable', () => {
  it('fails closed, and degrades only the configured read-only calls', async () => {
    const port = await closedPort();
    const offline = new WardenClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 500, degradation: [{ kind: 'tool', id: 'search_docs', action: 'read' }] });
    const denied = await offline.check({ subject: { token: 'alice-demo-token' }, actions: ['invoke'], resources: [{ kind: 'tool', id: 'search_docs' }] });
    expect(denied.decision).toBe('DENY');
    expect(denied.reasons[0]?.code).toBe('warden_unreachable');
    const degraded = await offline.check({ subject: { token: 'alice-demo-token' }, actions: ['read'], resources: [{ kind: 'tool', id: 'search_docs' }] });
    expect(degraded.decision).toBe('ALLOW');
    expect(degraded.reasons[0]?.code).toBe('degraded');
  });

  it('refuses a degradation list that names a high-capability action', () => {
    expect(() => new WardenClient({ baseUrl: 'http://127.0.0.1:1', degradation: [{ kind: 'tool', id: 'shell_exec', action: 'invoke' }] })).toThrow(/read-only/);
  });
});
