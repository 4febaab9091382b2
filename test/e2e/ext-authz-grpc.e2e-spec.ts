/**
 * Envoy's ext_authz over gRPC (`envoy.service.auth.v3.Authorization/Check`) on the broker's gRPC
 * listener, driven by a plain @grpc/grpc-js client built from Warden's own proto subset (the
 * messages Envoy sends), without an Envoy in between. Every scenario (an OpenAI-style model body,
 * MCP tools/call, an A2A message, a plain route, no credentials, an enrichment failure) is sent
 * both over gRPC and to the HTTP mode (`/v1/ext-authz/*`): same decision, same status, same hint
 * headers. Malformed messages and requests get an error or a denial, never an OK.
 */
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, loadPackageDefinition, status as GrpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_DIR } from '../../apps/broker/src/grpc/grpc-listener.js';
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
          ruleActivated: '{"maxTokens": 1024, "regions": ["eu-west-1", "eu-central-1"], "contentRestrictions": ["no-pii"], "tier": "standard", "bad": "a\\r\\nx-injected: 1", "decision-id": "forged"}'
    - name: substitute
      actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id == "gpt-4o"
      output:
        when:
          ruleActivated: '{"model": "gpt-4o-mini"}'
    - name: broken-output
      actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id == "broken-model"
      output:
        when:
          ruleActivated: '{"maxTokens": "lots"}'
`,
  'mcp_tool.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: mcp_tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id in ["search_docs", "flaky_tool"] || (R.id == "issue_refund" && R.attr.arguments.amount < 100)
`,
  'agent.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: agent
  version: default
  rules:
    - actions: [refund]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id in ["gw.local/a2a", "refund-agent"]
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
  'tool.yaml': `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id == "web_search"
`,
};

const config = (downPort: number) => `datasources:
  catalog-down: { kind: http, url: "http://127.0.0.1:${downPort}" }
resolvers:
  - name: tokens
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice, roles: [user] }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
  - name: tool-catalog
    kind: http
    datasource: catalog-down
    key: resource.id
    path: /tools/{key}
    when: R.kind == "mcp_tool" && R.id == "flaky_tool"
    timeout: 300ms
    onError: deny
    provides:
      resource.attr.risk: result.risk
`;

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

type Msg = Record<string, unknown>;
interface HeaderOption {
  header: { key: string; value: string };
  append?: { value?: boolean };
}
interface CheckResponse {
  status?: { code?: number; message?: string };
  okResponse?: { headers?: HeaderOption[]; headersToRemove?: string[] };
  deniedResponse?: { status?: { code?: number }; headers?: HeaderOption[]; body?: string };
  dynamicMetadata?: { fields?: Record<string, StructValue> };
}
interface StructValue {
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  listValue?: { values?: StructValue[] };
  structValue?: { fields?: Record<string, StructValue> };
}

function fromStruct(v: StructValue | undefined): unknown {
  if (v === undefined) return undefined;
  if (v.structValue !== undefined) return Object.fromEntries(Object.entries(v.structValue.fields ?? {}).map(([k, x]) => [k, fromStruct(x)]));
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map(fromStruct);
  return v.stringValue ?? v.numberValue ?? v.boolValue ?? null;
}

/** One scenario: the original request, as Envoy describes it in a CheckRequest and as the HTTP mode receives it. */
interface Scenario {
  name: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  want: { status: 200 | 400 | 401 | 403; hints?: Record<string, string>; meta?: Record<string, unknown>; reasons?: string[] };
}

const HOST = 'gw.local';
const ALICE = { authorization: 'Bearer alice-token' };
const JSON_CT = { 'content-type': 'application/json' };
const rpc = (method: string, params: Msg, id: number | string = 1) => JSON.stringify({ jsonrpc: '2.0', id, method, params });

const SCENARIOS: Scenario[] = [
  {
    name: 'OpenAI model body, allowed: the well-known hints come back',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] }),
    want: {
      status: 200,
      hints: { 'x-warden-max-tokens': '1024', 'x-warden-allowed-regions': 'eu-west-1,eu-central-1', 'x-warden-content-restrictions': 'no-pii', 'x-warden-tier': 'standard' },
      meta: { maxTokens: 1024, allowedRegions: ['eu-west-1', 'eu-central-1'], contentRestrictions: ['no-pii'], tier: 'standard' },
    },
  },
  {
    name: 'OpenAI model body, allowed with a model substitution',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: JSON.stringify({ model: 'gpt-4o' }),
    want: { status: 200, hints: { 'x-warden-model': 'gpt-4o-mini' } },
  },
  {
    name: 'OpenAI model body, denied (another model)',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: JSON.stringify({ model: 'o3-pro' }),
    want: { status: 403, reasons: ['policy_denied'] },
  },
  {
    name: 'OpenAI model body, denied (too many tokens)',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 100000 }),
    want: { status: 403, reasons: ['policy_denied'] },
  },
  {
    name: 'a well-known output the gateway cannot receive denies (fail closed)',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: JSON.stringify({ model: 'broken-model' }),
    want: { status: 403, reasons: ['output_invalid'] },
  },
  {
    name: 'MCP tools/call, allowed tool',
    method: 'POST',
    path: '/mcp',
    headers: { ...ALICE, ...JSON_CT },
    body: rpc('tools/call', { name: 'search_docs', arguments: { q: 'refunds' } }),
    want: { status: 200, hints: {} },
  },
  {
    name: 'MCP tools/call, denied by its arguments',
    method: 'POST',
    path: '/mcp',
    headers: { ...ALICE, ...JSON_CT },
    body: rpc('tools/call', { name: 'issue_refund', arguments: { amount: 500 } }),
    want: { status: 403, reasons: ['policy_denied'] },
  },
  {
    name: 'A2A message/send, allowed task type',
    method: 'POST',
    path: '/a2a',
    headers: { ...ALICE, ...JSON_CT },
    body: rpc('message/send', { message: { messageId: 'm1', role: 'user', parts: [{ kind: 'text', text: 'refund order 42' }] }, metadata: { taskType: 'refund' } }, 'r1'),
    want: { status: 200, hints: {} },
  },
  {
    name: 'A2A message/send, denied task type',
    method: 'POST',
    path: '/a2a',
    headers: { ...ALICE, ...JSON_CT },
    body: rpc('message/send', { message: { messageId: 'm2', role: 'user', parts: [{ kind: 'text', text: 'wire it' }] }, metadata: { taskType: 'wire_transfer' } }, 'r2'),
    want: { status: 403, reasons: ['policy_denied'] },
  },
  { name: 'plain route, allowed', method: 'GET', path: '/v1/models?limit=5', headers: ALICE, want: { status: 200, hints: {} } },
  { name: 'plain route, denied method', method: 'DELETE', path: '/v1/models', headers: ALICE, want: { status: 403 } },
  { name: 'no credentials: 401 with WWW-Authenticate', method: 'GET', path: '/v1/models', headers: {}, want: { status: 401, reasons: ['credentials_missing'] } },
  { name: 'an unknown token: 401', method: 'GET', path: '/v1/models', headers: { authorization: 'Bearer nobody' }, want: { status: 401 } },
  {
    name: 'an enrichment source that is down denies (onError: deny)',
    method: 'POST',
    path: '/mcp',
    headers: { ...ALICE, ...JSON_CT },
    body: rpc('tools/call', { name: 'flaky_tool', arguments: {} }),
    want: { status: 403 },
  },
  {
    name: 'a body claimed to be JSON that is not: 400',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...ALICE, ...JSON_CT },
    body: '{"model": "o3-pro", ',
    want: { status: 400 },
  },
  {
    name: 'an authorization that is not a bearer token: 400',
    method: 'GET',
    path: '/v1/models',
    headers: { authorization: 'Basic YTpi' },
    want: { status: 400 },
  },
];

let broker: TestBroker;
let client: Client;

function grpcCheck(message: Msg): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    (client as unknown as { Check(m: Msg, cb: (e: ServiceError | null, r: CheckResponse) => void): void }).Check(message, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

function checkRequest(s: { method: string; path: string; headers: Record<string, string>; body?: string; host?: string }, settings?: Record<string, string>): Msg {
  return {
    attributes: {
      request: { http: { id: 'req-1', method: s.method, path: s.path, host: s.host ?? HOST, headers: s.headers, ...(s.body !== undefined ? { body: s.body } : {}), protocol: 'HTTP/1.1', scheme: 'http' } },
      ...(settings !== undefined ? { contextExtensions: settings } : {}),
    },
  };
}

const headerMap = (list: HeaderOption[] | undefined): Record<string, string> => Object.fromEntries((list ?? []).map((h) => [h.header.key, h.header.value]));
const hintsOf = (h: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith('x-warden-') && k !== 'x-warden-decision-id' && k !== 'x-warden-policy-version'));

/** What a gateway does with the gRPC answer, as status, headers and body. */
function grpcOutcome(res: CheckResponse): { status: number; headers: Record<string, string>; body: string } {
  const code = res.status?.code ?? 0;
  if (res.okResponse !== undefined || res.deniedResponse === undefined) {
    expect(code).toBe(0);
    return { status: 200, headers: headerMap(res.okResponse?.headers), body: '' };
  }
  expect(code).not.toBe(0);
  expect(res.okResponse).toBeUndefined();
  return { status: res.deniedResponse.status?.code ?? 403, headers: headerMap(res.deniedResponse.headers), body: res.deniedResponse.body ?? '' };
}

async function httpOutcome(s: Scenario): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await fetch(`${broker.base}/v1/ext-authz${s.path}`, { method: s.method, headers: { ...s.headers, 'x-forwarded-host': HOST }, ...(s.body !== undefined ? { body: s.body } : {}) });
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  return { status: res.status, headers, body: await res.text() };
}

beforeAll(async () => {
  const { dir, policyDir } = writePolicyDir(POLICIES, 'warden-extauthz-grpc-');
  writeFileSync(join(dir, 'warden.yaml'), config(await closedPort()));
  broker = await startTestBroker({ cwd: dir, policyDir, grpc: true });
  const def = loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: [PROTO_DIR], keepCase: false, longs: String, enums: Number, defaults: false, oneofs: true });
  const pkg = loadPackageDefinition(def) as unknown as { envoy: { service: { auth: { v3: { Authorization: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } } } } };
  client = new pkg.envoy.service.auth.v3.Authorization(broker.grpcAddr as string, credentials.createInsecure());
}, 60_000);
afterAll(async () => {
  client?.close();
  await broker?.close();
});

describe('Envoy ext_authz over gRPC, and the same requests over HTTP', () => {
  for (const s of SCENARIOS) {
    it(s.name, async () => {
      const res = await grpcCheck(checkRequest(s));
      const g = grpcOutcome(res);
      expect(g.status).toBe(s.want.status);
      const h = await httpOutcome(s);
      expect(h.status).toBe(s.want.status);
      if (s.want.status === 200) {
        expect(hintsOf(g.headers)).toEqual(s.want.hints);
        expect(hintsOf(h.headers)).toEqual(s.want.hints);
        // Every header replaces what the client may have sent, never appends to it.
        expect(res.okResponse?.headers?.every((o) => o.append?.value === false)).toBe(true);
        expect(g.headers['x-warden-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
        expect(g.headers['x-warden-policy-version']).toBe(h.headers['x-warden-policy-version']);
        expect(g.headers['x-warden-policy-version']).toMatch(/^sha256:/);
        const meta = fromStruct({ structValue: res.dynamicMetadata }) as { decisionId: string; policyVersion: string; hints: Record<string, unknown> };
        expect(meta.decisionId).toBe(g.headers['x-warden-decision-id']);
        expect(meta.policyVersion).toBe(g.headers['x-warden-policy-version']);
        expect(Object.keys(meta.hints).length).toBe(Object.keys(s.want.hints ?? {}).length);
        if (s.want.meta !== undefined) expect(meta.hints).toEqual(s.want.meta);
        // `status` is always sent (OK is code 0, which proto3 leaves out of the encoding).
        expect(res.status).toBeDefined();
        return;
      }
      if (s.want.status === 400) {
        expect(res.status?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
        expect(JSON.parse(g.body)).toEqual(JSON.parse(h.body));
        expect((JSON.parse(g.body) as { error: { code: string } }).error.code).toBe('ERR_REQUEST_INVALID');
        return;
      }
      expect(res.status?.code).toBe({ 401: GrpcStatus.UNAUTHENTICATED, 403: GrpcStatus.PERMISSION_DENIED }[s.want.status]);
      const gb = JSON.parse(g.body) as { decision: string; reasons: Array<{ code: string; message: string }> };
      const hb = JSON.parse(h.body) as typeof gb;
      expect(gb.decision).toBe('DENY');
      expect(gb.reasons.map((r) => r.code)).toEqual(hb.reasons.map((r) => r.code));
      if (s.want.reasons !== undefined) expect(gb.reasons.map((r) => r.code)).toEqual(expect.arrayContaining(s.want.reasons));
      expect(g.headers['content-type']).toBe('application/json');
      if (s.want.status === 401) {
        expect(g.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(g.headers['www-authenticate']).toBe(h.headers['www-authenticate']);
      }
    });
  }

  it('reads the route settings (context_extensions) and the A2A target from them', async () => {
    const tool = grpcOutcome(await grpcCheck(checkRequest({ method: 'POST', path: '/anything', headers: ALICE }, { 'warden.kind': 'tool', 'warden.id': 'web_search', 'warden.action': 'invoke' })));
    expect(tool.status).toBe(200);
    const other = grpcOutcome(await grpcCheck(checkRequest({ method: 'POST', path: '/anything', headers: ALICE }, { 'warden.kind': 'tool', 'warden.id': 'shell', 'warden.action': 'invoke' })));
    expect(other.status).toBe(403);
    const body = rpc('message/send', { message: { messageId: 'm3', role: 'user', parts: [{ kind: 'text', text: 'x' }] }, metadata: { taskType: 'refund' } });
    expect(grpcOutcome(await grpcCheck(checkRequest({ method: 'POST', path: '/agents/x', headers: { ...ALICE, ...JSON_CT }, body }, { 'warden.id': 'refund-agent' }))).status).toBe(200);
    expect(grpcOutcome(await grpcCheck(checkRequest({ method: 'POST', path: '/agents/x', headers: { ...ALICE, ...JSON_CT }, body }, { 'warden.id': 'other-agent' }))).status).toBe(403);
  });

  it('reads raw_body and the raw header_map Envoy sends with pack_as_bytes / encode_raw_headers', async () => {
    const raw = (key: string, value: string) => ({ key, rawValue: Buffer.from(value) });
    const msg = (headers: Array<{ key: string; rawValue: Buffer }>, body: string) => ({
      attributes: { request: { http: { method: 'POST', path: '/v1/chat/completions', host: HOST, headerMap: { headers }, rawBody: Buffer.from(body) } } },
    });
    const ok = grpcOutcome(await grpcCheck(msg([raw('authorization', 'Bearer alice-token'), raw('content-type', 'application/json')], '{"model":"gpt-4o"}')));
    expect(ok.headers['x-warden-model']).toBe('gpt-4o-mini');
    const denied = grpcOutcome(await grpcCheck(msg([raw('authorization', 'Bearer alice-token')], '{"model":"o3-pro"}')));
    expect(denied.status).toBe(403);
    // SECURITY: two values of one credential header are refused, not picked from.
    const twice = await grpcCheck(msg([raw('authorization', 'Bearer alice-token'), raw('authorization', 'Bearer nobody')], '{"model":"gpt-4o"}'));
    expect(grpcOutcome(twice).status).toBe(400);
    expect(twice.deniedResponse?.body).toContain('more than once');
  });

  it('removes x-warden-* headers the client sent itself, so the upstream reads only what Warden gave', async () => {
    const res = await grpcCheck(
      checkRequest({ method: 'POST', path: '/v1/chat/completions', headers: { ...ALICE, ...JSON_CT, 'x-warden-model': 'o3-pro', 'x-warden-max-tokens': '999999', 'x-warden-api-key': 'guess' }, body: '{"model":"gpt-4o"}' }),
    );
    expect(grpcOutcome(res).headers['x-warden-model']).toBe('gpt-4o-mini');
    // Overwritten (x-warden-model) or removed (the others).
    expect(res.okResponse?.headersToRemove).toEqual(['x-warden-max-tokens', 'x-warden-api-key']);
  });
});

describe('malformed ext_authz messages and requests: an error or a denial, never an OK', () => {
  const refused = async (message: Msg): Promise<{ grpcError?: number; response?: CheckResponse }> => {
    try {
      const response = await grpcCheck(message);
      expect(response.okResponse).toBeUndefined();
      expect(response.status?.code ?? 0).not.toBe(0);
      return { response };
    } catch (err) {
      return { grpcError: (err as ServiceError).code };
    }
  };

  it('a message that is no HTTP check is INVALID_ARGUMENT', async () => {
    for (const m of [{}, { attributes: {} }, { attributes: { request: {} } }, { attributes: { contextExtensions: { a: 'b' } } }]) {
      const r = await refused(m);
      expect(r.grpcError).toBe(GrpcStatus.INVALID_ARGUMENT);
    }
  });

  it('a bad method, path or host, a header with CR/LF, an oversized body: a 400 denial naming the problem', async () => {
    const base = { method: 'GET', path: '/v1/models', headers: ALICE };
    const cases: Array<[Parameters<typeof checkRequest>[0], string]> = [
      [{ ...base, method: '' }, 'method'],
      [{ ...base, method: 'get' }, 'method'],
      [{ ...base, method: 'GET\r\nX-Injected: 1' }, 'method'],
      [{ ...base, path: '' }, 'path'],
      [{ ...base, path: '/v1/models\r\nx-injected: 1' }, 'path'],
      [{ ...base, host: 'gw.local\r\nx-injected: 1' }, 'host'],
      [{ ...base, headers: { authorization: 'Bearer alice-token\r\nx-injected: 1' } }, 'authorization'],
      [{ ...base, headers: { ...ALICE, 'x-warden-agent': 'planner\r\nx-injected: 1' } }, 'x-warden-agent'],
      [{ ...base, method: 'POST', headers: { ...ALICE, ...JSON_CT }, body: `{"model":"gpt-4o-mini","pad":"${'x'.repeat(2 * 1024 * 1024)}"}` }, 'too large'],
      [{ ...base, method: 'POST', headers: { ...ALICE, ...JSON_CT }, body: 'model=gpt-4o-mini' }, 'not JSON'],
      [{ ...base, method: 'POST', headers: { ...ALICE, ...JSON_CT, 'x-envoy-auth-partial-body': 'true' }, body: '{"model":"o3-pro","messages":[' }, 'cut short'],
    ];
    for (const [req, what] of cases) {
      const r = await refused(checkRequest(req));
      expect(r.response?.status?.code, what).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(r.response?.deniedResponse?.status?.code).toBe(400);
      const body = JSON.parse(r.response?.deniedResponse?.body ?? '{}') as { error: { code: string; message: string } };
      expect(body.error.code).toBe('ERR_REQUEST_INVALID');
      expect(body.error.message).toContain(what);
    }
  });

  it('the HTTP mode refuses the same oversized and non-JSON bodies', async () => {
    const post = (body: string) => fetch(`${broker.base}/v1/ext-authz/v1/chat/completions`, { method: 'POST', headers: { ...ALICE, ...JSON_CT }, body });
    expect((await post(`{"model":"gpt-4o-mini","pad":"${'x'.repeat(2 * 1024 * 1024)}"}`)).status).toBe(400);
    expect((await post('model=gpt-4o-mini')).status).toBe(400);
  });
});
