/**
 * The example Node pre-request plugin (`examples/gateway-plugin/pre-request.ts`, built on
 * `@warden/client`) against a real broker: allowed calls carry Warden's headers (the well-known
 * output mapping of the other adapters), denials carry their status (401, 403, 429 for an
 * exhausted budget), the gateway settles the tokens it spent, and an unreachable Warden fails
 * closed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenClient } from '@warden/client';
import { createPreRequest, type GatewayRequest } from '../../examples/gateway-plugin/pre-request.js';
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
          expr: R.id == "gpt-4o-mini"
      output:
        when:
          ruleActivated: '{"maxTokens": 512, "regions": ["eu-west-1", "eu-central-1"]}'
`,
};

const KEY = 'plugin-gateway-key-0123456789';
const CONFIG = `gateways:
  - { name: edge, apiKey: ${KEY} }
resolvers:
  - name: tokens
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice, roles: [user] }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
budgets:
  - { name: daily, per: subject, window: day, limit: 1000 }
`;

let broker: TestBroker;
let preRequest: (req: GatewayRequest) => Promise<Awaited<ReturnType<ReturnType<typeof createPreRequest>>>>;

beforeAll(async () => {
  const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-plugin-');
  writeFileSync(join(dir, 'warden.yaml'), CONFIG);
  broker = await startTestBroker({ cwd: dir, policyDir });
  preRequest = createPreRequest(new WardenClient({ baseUrl: broker.base, apiKey: KEY, timeoutMs: 2000 }));
});
afterAll(async () => broker?.close());

const call = (body: GatewayRequest['body'], token: string | null = 'alice-token') => preRequest({ headers: token !== null ? { authorization: `Bearer ${token}` } : {}, body });

describe('the example pre-request plugin', () => {
  it("lets an allowed call through with the policy's outputs as the adapters' headers, and settles its tokens", async () => {
    const v = await call({ model: 'gpt-4o-mini', max_tokens: 600 });
    if (!v.allow) throw new Error(`expected an allow, got ${JSON.stringify(v)}`);
    expect(v.headers['x-warden-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(v.headers['x-warden-max-tokens']).toBe('512');
    expect(v.headers['x-warden-allowed-regions']).toBe('eu-west-1,eu-central-1');
    // 600 reserved of 1000: another 600 does not fit (429) until the first call settles at 100.
    const over = await call({ model: 'gpt-4o-mini', max_tokens: 600 });
    expect(over).toMatchObject({ allow: false, status: 429 });
    await v.settle(100, 'req-1');
    await v.settle(100, 'req-1'); // a retry of the same report counts once
    expect((await call({ model: 'gpt-4o-mini', max_tokens: 600 })).allow).toBe(true);
    // 100 used + 600 reserved: 300 left.
    expect(await call({ model: 'gpt-4o-mini', max_tokens: 301 })).toMatchObject({ allow: false, status: 429 });
  });

  it('refuses a model the policy does not allow (403), a caller without a token (401) and an unknown token (401)', async () => {
    expect(await call({ model: 'o3-reasoner', max_tokens: 10 })).toMatchObject({ allow: false, status: 403 });
    expect(await call({ model: 'gpt-4o-mini' }, null)).toMatchObject({ allow: false, status: 401 });
    expect(await call({ model: 'gpt-4o-mini', max_tokens: 10 }, 'nobody')).toMatchObject({ allow: false, status: 401 });
  });

  it('fails closed when Warden cannot be reached', async () => {
    const closed = createPreRequest(new WardenClient({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 300 }));
    expect(await closed({ headers: { authorization: 'Bearer alice-token' }, body: { model: 'gpt-4o-mini' } })).toMatchObject({ allow: false, status: 503 });
  });
});
