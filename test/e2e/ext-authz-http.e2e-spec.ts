/**
 * `/v1/ext-authz/*` as the gateways call it, without a gateway in between: Envoy's HTTP mode (the
 * original path after the prefix, the body when configured to send it), Traefik ForwardAuth
 * (`X-Forwarded-*`); answers are status codes and headers a gateway acts on.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { writePolicyDir } from '../support/upstreams.js';

const POLICIES = {
  'model.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: model
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id == "gpt-4o-mini" && (!has(R.attr.max_tokens) || R.attr.max_tokens <= 1024)
      output:
        when:
          ruleActivated: '{"max_tokens": 1024, "region": "eu-west-1", "bad": "a\\r\\nx-injected: 1"}'
`,
  'route.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: route
  version: default
  rules:
    - actions: [get]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id.endsWith("/v1/models")
`,
};

const CONFIG = `resolvers:
  - name: tokens
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice, roles: [user] }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
`;

let broker: TestBroker;

beforeAll(async () => {
  const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-extauthz-');
  writeFileSync(join(dir, 'warden.yaml'), CONFIG);
  broker = await startTestBroker({ cwd: dir, policyDir });
});
afterAll(async () => broker?.close());

const envoy = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${broker.base}/v1/ext-authz${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer alice-token', ...headers }, body });

describe('/v1/ext-authz over HTTP', () => {
  it("Envoy's HTTP mode with the body: the model decides, hints come back as headers", async () => {
    const res = await envoy('/v1/chat/completions', '{"model":"gpt-4o-mini","max_tokens":256}');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-warden-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-warden-policy-version')).toMatch(/^sha256:/);
    expect(res.headers.get('x-warden-region')).toBe('eu-west-1');
    expect(res.headers.get('x-warden-max_tokens')).toBe('1024');
    // SECURITY: a hint that would end the header line is dropped, not sent.
    expect(res.headers.get('x-warden-bad')).toBeNull();
    expect(res.headers.get('x-injected')).toBeNull();
  });

  it('denies another model, or too many tokens, with 403 and the reason', async () => {
    for (const body of ['{"model":"o3-pro"}', '{"model":"gpt-4o-mini","max_tokens":100000}']) {
      const res = await envoy('/v1/chat/completions', body);
      expect(res.status).toBe(403);
      const json = (await res.json()) as { decision: string; reasons: Array<{ code: string }> };
      expect(json.decision).toBe('DENY');
      expect(json.reasons.map((r) => r.code)).toContain('policy_denied');
    }
  });

  it('Traefik ForwardAuth: the original method and URI come from X-Forwarded-*', async () => {
    const ask = (method: string, uri: string) =>
      fetch(`${broker.base}/v1/ext-authz`, { headers: { authorization: 'Bearer alice-token', 'x-forwarded-method': method, 'x-forwarded-uri': uri, 'x-forwarded-host': 'api.local' } });
    expect((await ask('GET', '/v1/models')).status).toBe(200);
    expect((await ask('DELETE', '/v1/models')).status).toBe(403);
  });

  it('401 with WWW-Authenticate without credentials; bad input is a coded 400, never an ALLOW', async () => {
    const none = await fetch(`${broker.base}/v1/ext-authz/v1/models`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const basic = await fetch(`${broker.base}/v1/ext-authz/v1/models`, { headers: { authorization: 'Basic YTpi' } });
    expect(basic.status).toBe(400);
    expect(((await basic.json()) as { error: { code: string } }).error.code).toBe('ERR_REQUEST_INVALID');
    const badRpc = await envoy('/mcp', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x y' } }));
    expect(badRpc.status).toBe(400);
  });

  it('refuses an oversized body, a body claimed to be JSON that is not, and a repeated credential header; none is an ALLOW', async () => {
    // Above the broker's body limit (2 MiB by default): refused before any decision.
    const huge = await envoy('/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(3 * 1024 * 1024) }] }));
    expect(huge.status).toBe(400);
    expect(await huge.json()).toEqual({ error: { code: 'ERR_REQUEST_INVALID', message: 'request body too large' } });
    expect(huge.headers.get('x-warden-decision-id')).toBeNull();
    // A cut or garbled body must not fall back to deciding on the route alone.
    const garbled = await envoy('/v1/chat/completions', '{"model": "gpt-4o-mini", "max_tokens": 99999');
    expect(garbled.status).toBe(400);
    expect(((await garbled.json()) as { error: { code: string } }).error.code).toBe('ERR_REQUEST_INVALID');
    // Two agent headers (what a smuggled second header line would look like): refused, not merged.
    const twice = await fetch(`${broker.base}/v1/ext-authz/v1/models`, { headers: [['authorization', 'Bearer alice-token'], ['x-warden-agent', 'a'], ['x-warden-agent', 'b']] });
    expect(twice.status).toBe(400);
  });
});

describe('/v1/ext-authz with operator-chosen identity headers (forwardAuth)', () => {
  let custom: TestBroker;
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-extauthz-headers-');
    writeFileSync(join(dir, 'warden.yaml'), `${CONFIG}forwardAuth: { agentHeader: X-Agent-Id, delegationHeader: x-act-as }\n`);
    custom = await startTestBroker({ cwd: dir, policyDir });
  });
  afterAll(async () => custom?.close());

  it('reads the agent from the configured header and no longer from x-warden-agent', async () => {
    const ask = (headers: Record<string, string>) => fetch(`${custom.base}/v1/ext-authz/v1/models`, { headers });
    // The default name is just another header here: the request names nobody.
    const old = await ask({ 'x-warden-agent': 'support-bot' });
    expect(old.status).toBe(401);
    expect(((await old.json()) as { reasons: Array<{ code: string }> }).reasons.map((r) => r.code)).toEqual(['credentials_missing']);
    // The configured one names the agent, so the check is decided (and denied: no subject, no agent policy).
    const named = await ask({ 'x-agent-id': 'support-bot' });
    expect(named.headers.get('x-warden-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(named.status).not.toBe(200);
    // With the subject's token the agent header is read as well: both identities decide, and the
    // route policy has no rule for the agent, so the call is refused although alice alone may.
    expect((await ask({ authorization: 'Bearer alice-token' })).status).toBe(200);
    expect((await ask({ authorization: 'Bearer alice-token', 'x-agent-id': 'support-bot' })).status).toBe(403);
  });
});
