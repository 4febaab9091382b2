/**
 * agentgateway's extMcp service (`agentgateway.dev.ext_mcp.ExtMcp`) on the broker's gRPC listener,
 * driven as agentgateway drives it: a grpc-js client built from Warden's own
 * `ext_mcp.proto` (loaded with proto-loader options other than the server's: snake_case fields),
 * against the real broker on 127.0.0.1 with the shipped policies. Every decision is held to
 * `/v1/check` of the same broker for the same caller: a call passes exactly when the check allows
 * it, a `tools/list` result keeps exactly the tools the check allows. Callers without credentials,
 * with unknown ones, or stating a subject without the gateway key are refused; a resolver failing
 * with `onError: deny` is an error, never a pass or a shortened listing; malformed messages are
 * INVALID, undecodable bytes a gRPC error status (grpc-js's INTERNAL), never a result.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, status as GrpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PROTO_DIR } from '../../apps/broker/src/grpc/grpc-listener.js';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { closedPort, v1Check, writePolicyDir } from '../support/upstreams.js';

const GATEWAY_KEY = 'agentgateway-test-key-0123456789abcdef';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
// protobufjs defines the well-known types in camelCase whatever `keepCase` says.
type StructMsg = { fields: Record<string, ValueMsg> };
type ValueMsg = { nullValue?: 'NULL_VALUE'; numberValue?: number; stringValue?: string; boolValue?: boolean; structValue?: StructMsg; listValue?: { values: ValueMsg[] } };

function toValue(v: Json): ValueMsg {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}
function toStruct(o: { [k: string]: Json }): StructMsg {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toValue(v)])) };
}
function fromValue(v: ValueMsg & { kind?: string }): Json {
  if (v.structValue !== undefined) return fromStruct(v.structValue);
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map(fromValue);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return null;
}
function fromStruct(s: StructMsg | undefined): { [k: string]: Json } {
  return Object.fromEntries(Object.entries(s?.fields ?? {}).map(([k, v]) => [k, fromValue(v)]));
}

/** A result message as the client decodes it. */
interface ResultMsg {
  result?: 'pass' | 'mutated' | 'error';
  pass?: object;
  mutated?: StructMsg;
  error?: { code?: string; reason?: string; mcp_error?: StructMsg };
}

interface ExtMcpClient extends Client {
  CheckRequest(req: object, md: Metadata, cb: (err: ServiceError | null, res: ResultMsg) => void): void;
  CheckResponse(req: object, md: Metadata, cb: (err: ServiceError | null, res: ResultMsg) => void): void;
}

// The upstream's tools/list result, as an MCP server answers it.
const TOOLS: Array<{ [k: string]: Json }> = [
  { name: 'search_code', description: 'Search the code base', inputSchema: { type: 'object', properties: { query: { type: 'string' } } }, annotations: { readOnlyHint: true } },
  { name: 'drop_table', description: 'Drop a database table', inputSchema: { type: 'object', properties: { table: { type: 'string' } } }, annotations: { readOnlyHint: false, destructiveHint: true } },
  { name: 'issue_refund', description: 'Refund an order', inputSchema: { type: 'object', properties: { orderId: { type: 'string' }, amount: { type: 'number' } } }, annotations: { readOnlyHint: false, destructiveHint: false } },
];
const ARGS: Record<string, { [k: string]: Json }> = { search_code: { query: 'x' }, drop_table: { table: 't' }, issue_refund: { orderId: 'o-1', amount: 100 } };

let broker: TestBroker;
let client: ExtMcpClient;

beforeAll(async () => {
  const { dir } = writePolicyDir({}, 'warden-extmcp-');
  const down = await closedPort();
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      gateways: [{ name: 'agentgateway', apiKey: GATEWAY_KEY }],
      datasources: { down: { kind: 'http', url: `http://127.0.0.1:${down}` } },
      resolvers: [
        {
          name: 'people',
          kind: 'static',
          key: 'subject.token',
          data: {
            'alice-token': { sub: 'alice', roles: ['user'], tenant: 'acme', groups: ['eng'], onCall: false },
            'olga-token': { sub: 'olga', roles: ['user'], tenant: 'acme', groups: ['eng', 'break-glass'], onCall: true },
            'ray-token': { sub: 'ray', roles: ['support_agent', 'refund_approver'], tenant: 'acme', groups: ['support'], onCall: false },
          },
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', 'principal.attr.tenant': 'result.tenant', 'principal.attr.groups': 'result.groups', 'principal.attr.onCall': 'result.onCall' },
        },
        { name: 'approvers', kind: 'static', key: 'principal.id', data: { ray: { limit: 500 } }, provides: { 'principal.attr.approvalLimit': 'result.limit' } },
        // The operator's registry of vetted tools (ids as the MCP proxy names them: <server>/<tool>).
        // A tools/call carries only the name and arguments, so what policies read of a tool besides
        // (read-only, annotations) comes from here, the same at listing and at call time.
        {
          name: 'vetted-tools',
          kind: 'static',
          key: 'resource.id',
          when: 'R.kind == "mcp_tool"',
          data: {
            'support/search_code': { server: 'support', name: 'search_code', readOnly: true, annotations: { readOnlyHint: true } },
            'support/issue_refund': { server: 'support', name: 'issue_refund', readOnly: false, annotations: { readOnlyHint: false, destructiveHint: false } },
          },
          provides: { 'resource.attr.server': 'result.server', 'resource.attr.name': 'result.name', 'resource.attr.readOnly': 'result.readOnly', 'resource.attr.annotations': 'result.annotations' },
        },
        { name: 'agents', kind: 'static', key: 'agent.id', data: { 'refund-bot': { roles: ['agent', 'refund_approver'], attr: { tenant: 'acme', mcpServers: ['support'], approvalLimit: 300 } } }, provides: { 'agent.roles': 'result.roles', 'agent.attr': 'result.attr' } },
        // Agents as delegation targets (minting checks `delegate` on them).
        { name: 'agent-directory', kind: 'static', key: 'resource.id', when: 'R.kind == "agent"', data: { 'refund-bot': { tenant: 'acme' } }, provides: { 'resource.attr.tenant': 'result.tenant' } },
        // A resolver that cannot answer (nothing listens), needed for one tool only.
        { name: 'flaky-registry', kind: 'http', datasource: 'down', key: 'resource.id', path: '/tools/{key}', when: 'R.kind == "mcp_tool" && R.attr.name == "flaky_tool"', timeout: '300ms', onError: 'deny', provides: { 'resource.attr.vetted': 'result.vetted' } },
      ],
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir: join(repoRoot, 'policies'), grpc: true });
  const def = loadSync(join(PROTO_DIR, 'agentgateway/dev/ext_mcp/ext_mcp.proto'), { keepCase: true, enums: String, longs: String, defaults: false, oneofs: true, includeDirs: [PROTO_DIR] });
  const pkg = loadPackageDefinition(def) as unknown as { agentgateway: { dev: { ext_mcp: { ExtMcp: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => ExtMcpClient } } } };
  client = new pkg.agentgateway.dev.ext_mcp.ExtMcp(broker.grpcAddr as string, credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await broker?.close();
});

function rpc(method: 'CheckRequest' | 'CheckResponse', req: object, md: Metadata = new Metadata()): Promise<ResultMsg> {
  return new Promise((resolve, reject) => client[method](req, md, (err, res) => (err !== null ? reject(err) : resolve(res))));
}

const meta = (m: { [k: string]: Json }): StructMsg => toStruct(m);

function callTool(who: { [k: string]: Json }, name: string, args: { [k: string]: Json }, md?: Metadata): Promise<ResultMsg> {
  return rpc('CheckRequest', { service_name: 'support', method: 'tools/call', metadata_context: meta(who), mcp_request: toStruct({ name, arguments: args }) }, md);
}

function listTools(who: { [k: string]: Json }, tools: Array<{ [k: string]: Json }> = TOOLS): Promise<ResultMsg> {
  return rpc('CheckResponse', { service_name: 'support', method: 'tools/list', metadata_context: meta(who), mcp_response: toStruct({ tools, nextCursor: 'page-2' }) });
}

/** `/v1/check` of the same call: the decision the service must agree with. */
async function checked(who: { [k: string]: Json }, tool: { [k: string]: Json }, args: { [k: string]: Json }, headers: Record<string, string> = {}): Promise<'ALLOW' | 'DENY'> {
  const name = tool['name'] as string;
  const attr = { server: 'support', name, ...(tool['description'] !== undefined ? { description: tool['description'] } : {}), ...(tool['annotations'] !== undefined ? { annotations: tool['annotations'] } : {}), arguments: args };
  const body: Record<string, unknown> = { action: 'invoke', resource: { kind: 'mcp_tool', id: `support/${name}`, attr } };
  if (typeof who['token'] === 'string') body['subject'] = { token: who['token'] };
  if (typeof who['authorization'] === 'string') body['subject'] = { token: (who['authorization'] as string).slice('Bearer '.length) };
  if (who['subject'] !== undefined) body['subject'] = who['subject'];
  if (typeof who['agent'] === 'string') body['agent'] = { id: who['agent'] };
  if (typeof who['delegation'] === 'string') body['delegation'] = who['delegation'];
  const r = await v1Check(broker.base, body, headers);
  expect(r.status).toBe(200);
  return r.json.decision;
}

function errorOf(r: ResultMsg): { code: string | undefined; reason: string | undefined; data: { [k: string]: Json } } {
  expect(r.result).toBe('error');
  return { code: r.error?.code, reason: r.error?.reason, data: fromStruct(r.error?.mcp_error) };
}

function listed(r: ResultMsg): Array<{ [k: string]: Json }> {
  if (r.result === 'pass') return TOOLS;
  expect(r.result).toBe('mutated');
  const result = fromStruct(r.mutated);
  expect(result['nextCursor']).toBe('page-2');
  return result['tools'] as Array<{ [k: string]: Json }>;
}

describe('ExtMcp CheckRequest', () => {
  it('passes a call exactly when /v1/check allows it, and refuses the rest PERMISSION_DENIED with a reason safe for a model', async () => {
    const cases: Array<[string, { [k: string]: Json }, string, { [k: string]: Json }]> = [
      ['alice', { authorization: 'Bearer alice-token' }, 'search_code', { query: 'x' }],
      ['alice', { authorization: 'Bearer alice-token' }, 'drop_table', { table: 'users' }],
      ['olga', { token: 'olga-token' }, 'drop_table', { table: 'users' }],
      ['ray', { token: 'ray-token' }, 'issue_refund', { orderId: 'o-1', amount: 120 }],
      ['ray', { token: 'ray-token' }, 'issue_refund', { orderId: 'o-1', amount: 900 }],
      // The agent's own limit (300) applies to what it does for ray.
      ['ray via refund-bot', { token: 'ray-token', agent: 'refund-bot' }, 'issue_refund', { orderId: 'o-1', amount: 200 }],
      ['ray via refund-bot', { token: 'ray-token', agent: 'refund-bot' }, 'issue_refund', { orderId: 'o-1', amount: 400 }],
    ];
    const seen = { pass: 0, denied: 0 };
    for (const [who, md, tool, args] of cases) {
      const want = await checked(md, TOOLS.find((t) => t['name'] === tool) ?? { name: tool }, args);
      // The gateway sends the call's name and arguments only (no listing attributes): ask the check the same.
      const bare = await checked(md, { name: tool }, args);
      expect(bare, `${who} ${tool}`).toBe(want);
      const r = await callTool(md, tool, args);
      if (want === 'ALLOW') {
        expect(r, `${who} ${tool} ${JSON.stringify(args)}`).toEqual({ result: 'pass', pass: {} });
        seen.pass += 1;
      } else {
        const e = errorOf(r);
        expect(e.code, `${who} ${tool}`).toBe('PERMISSION_DENIED');
        expect(e.reason).toBe(`Warden denied this request (call tool \`${tool}\`): the user or agent is not allowed to do this (with these arguments)`);
        expect(e.data['reason']).toBe('policy_denied');
        expect(e.data['decisionId']).toMatch(/^[0-9A-Za-z-]{8,}$/);
        seen.denied += 1;
      }
    }
    // Both outcomes occurred (the cases are not all one way).
    expect(seen).toEqual({ pass: 4, denied: 3 });
  });

  it('refuses a caller without credentials, or with an unknown token, on calls and on other methods', async () => {
    for (const md of [{}, { authorization: null }] as Array<{ [k: string]: Json }>) {
      const e = errorOf(await callTool(md, 'search_code', {}));
      expect(e.code).toBe('PERMISSION_DENIED');
      expect(e.reason).toMatch(/carries no credentials/);
      expect(e.data['reason']).toBe('credentials_missing');
      const init = errorOf(await rpc('CheckRequest', { service_name: 'support', method: 'initialize', metadata_context: meta(md) }));
      expect(init.code).toBe('PERMISSION_DENIED');
    }
    const unknown = errorOf(await callTool({ token: 'nobody-token' }, 'search_code', { query: 'x' }));
    expect(unknown.code).toBe('PERMISSION_DENIED');
    expect(unknown.reason).toMatch(/the caller could not be identified/);
    const init = errorOf(await rpc('CheckRequest', { service_name: 'support', method: 'initialize', metadata_context: meta({ token: 'nobody-token' }) }));
    expect(init).toMatchObject({ code: 'PERMISSION_DENIED', data: { reason: 'subject_unresolved' } });
    // A known caller's other requests pass.
    for (const method of ['initialize', 'tools/list', 'ping']) {
      expect(await rpc('CheckRequest', { service_name: 'support', method, metadata_context: meta({ token: 'alice-token' }) })).toEqual({ result: 'pass', pass: {} });
    }
  });

  it('accepts a stated subject only with the trusted gateway key (gRPC metadata x-warden-api-key)', async () => {
    const subject = { subject: { id: 'alice', roles: ['user'], attr: { groups: ['eng'], onCall: false } } };
    const trusted = new Metadata();
    trusted.set('x-warden-api-key', GATEWAY_KEY);
    const wrong = new Metadata();
    wrong.set('x-warden-api-key', 'not-the-key');
    for (const md of [undefined, wrong]) {
      const e = errorOf(await callTool(subject, 'search_code', { query: 'x' }, md));
      expect(e.code).toBe('PERMISSION_DENIED');
      expect(e.reason).toMatch(/needs a trusted gateway's `x-warden-api-key`/);
    }
    const headers = { 'x-warden-api-key': GATEWAY_KEY };
    expect(await checked(subject, { name: 'search_code' }, { query: 'x' }, headers)).toBe('ALLOW');
    expect(await callTool(subject, 'search_code', { query: 'x' }, trusted)).toEqual({ result: 'pass', pass: {} });
    expect(await checked(subject, { name: 'drop_table' }, { table: 't' }, headers)).toBe('DENY');
    expect(errorOf(await callTool(subject, 'drop_table', { table: 't' }, trusted)).code).toBe('PERMISSION_DENIED');
  });

  it('decides within the delegation the agent holds, as /v1/check does', async () => {
    const minted = await fetch(`${broker.base}/v1/delegations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ subject: { token: 'ray-token' }, to: 'refund-bot', grants: [{ kind: 'mcp_tool', actions: ['invoke'], ids: ['support/issue_refund'], caps: { amount: 200 } }], ttl: '5m' }),
    });
    expect(minted.status).toBe(201);
    const who = { token: 'ray-token', agent: 'refund-bot', delegation: ((await minted.json()) as { token: string }).token };
    expect(await checked(who, { name: 'issue_refund' }, { orderId: 'o', amount: 150 })).toBe('ALLOW');
    expect(await callTool(who, 'issue_refund', { orderId: 'o', amount: 150 })).toEqual({ result: 'pass', pass: {} });
    for (const [tool, args] of [['issue_refund', { orderId: 'o', amount: 250 }], ['search_code', { query: 'x' }]] as const) {
      expect(await checked(who, { name: tool }, args)).toBe('DENY');
      const e = errorOf(await callTool(who, tool, args));
      expect(e.code).toBe('PERMISSION_DENIED');
      expect(e.reason).toBe(`Warden denied this request (call tool \`${tool}\`): this is outside what the agent was delegated`);
      expect(e.data['reason']).toBe('delegation_out_of_scope');
    }
    const tools = listed(await listTools(who));
    expect(tools.map((t) => [t['name'], (t['_meta'] as { [k: string]: Json } | undefined)?.['warden/condition'] ?? null])).toEqual([['issue_refund', 'arguments.amount < 500 && arguments.amount < 300 && arguments.amount <= 200']]);
    // A delegation that does not verify is refused even where nothing is decided.
    const forged = errorOf(await rpc('CheckRequest', { service_name: 'support', method: 'initialize', metadata_context: meta({ ...who, delegation: `${who.delegation.slice(0, -4)}AAAA` }) }));
    expect(forged.code).toBe('PERMISSION_DENIED');
    expect(forged.data['reason']).toMatch(/^delegation_/);
  });

  it('fails closed: a resolver failing with onError deny is an error (UNKNOWN), never a pass', async () => {
    const e = errorOf(await callTool({ token: 'olga-token' }, 'flaky_tool', {}));
    expect(e.code).toBe('UNKNOWN');
    expect(e.reason).toBe('Warden denied this request (call tool `flaky_tool`): information needed to decide is unavailable right now; try again later');
    expect(e.data['reason']).toBe('resolver_failed');
  });

  it('checks prompts/get and resources/read as the MCP proxy does', async () => {
    const get = (who: { [k: string]: Json }, name: string) => rpc('CheckRequest', { service_name: 'support', method: 'prompts/get', metadata_context: meta(who), mcp_request: toStruct({ name, arguments: {} }) });
    expect(await get({ token: 'alice-token' }, 'summarize_ticket')).toEqual({ result: 'pass', pass: {} });
    expect(errorOf(await get({ token: 'alice-token' }, 'internal_runbook')).code).toBe('PERMISSION_DENIED');
    expect(await get({ token: 'olga-token' }, 'internal_runbook')).toEqual({ result: 'pass', pass: {} });
    const read = (uri: string) => rpc('CheckRequest', { service_name: 'support', method: 'resources/read', metadata_context: meta({ token: 'alice-token' }), mcp_request: toStruct({ uri }) });
    expect(await read('docs://refund-policy')).toEqual({ result: 'pass', pass: {} });
    expect(errorOf(await read('secret://api-key')).code).toBe('PERMISSION_DENIED');
  });

  it('answers malformed messages INVALID, naming the problem, never pass', async () => {
    const who = meta({ token: 'alice-token' });
    const bad: Array<[object, RegExp]> = [
      [{ service_name: 'support', metadata_context: who, mcp_request: toStruct({ name: 'search_code' }) }, /`method` is required/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: who }, /`mcp_request` is required for `tools\/call`/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: who, mcp_request: toStruct({ name: 5 }) }, /`mcp_request.name` must be a non-empty name/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: who, mcp_request: toStruct({ name: 'search_code', arguments: 'query=x' }) }, /`mcp_request.arguments` must be an object/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: who, mcp_request: toStruct({ name: 'search_code', arguments: ['x'] }) }, /`mcp_request.arguments` must be an object/],
      [{ method: 'tools/call', metadata_context: who, mcp_request: toStruct({ name: 'search_code' }) }, /`service_name` is required/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: meta({ token: 'alice-token', tokn: 'x' }), mcp_request: toStruct({ name: 'search_code' }) }, /`metadata_context.tokn`: unknown key/],
      [{ service_name: 'support', method: 'tools/call', metadata_context: meta({ authorization: 'Basic YWxpY2U=' }), mcp_request: toStruct({ name: 'search_code' }) }, /must be `Bearer <token>`/],
    ];
    for (const [req, why] of bad) {
      const e = errorOf(await rpc('CheckRequest', req));
      expect(e.code, JSON.stringify(req)).toBe('INVALID');
      expect(e.reason).toMatch(why);
    }
    const e = errorOf(await rpc('CheckResponse', { service_name: 'support', method: 'tools/list', metadata_context: who, mcp_response: toStruct({ tools: 'search_code' }) }));
    expect(e).toMatchObject({ code: 'INVALID', reason: expect.stringMatching(/`mcp_response.tools` must be a list/) });
  });

  it('answers bytes that are no McpRequest with a gRPC error status, never a result', async () => {
    // A length-delimited field 2 (`method`) holding invalid UTF-8 inside, then a truncated field.
    const raw = Buffer.from([0x12, 0x05, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x1a, 0x7f]);
    const err = await new Promise<ServiceError | null>((resolve) => {
      client.makeUnaryRequest('/agentgateway.dev.ext_mcp.ExtMcp/CheckRequest', (b: Buffer) => b, (b: Buffer) => b, raw, (e) => resolve(e));
    });
    // grpc-js refuses the bytes before Warden sees a message: INTERNAL, "Error deserializing request".
    expect(err?.code).toBe(GrpcStatus.INTERNAL);
    expect(err?.details).toMatch(/deserializ/i);
  });
});

describe('ExtMcp CheckResponse', () => {
  it('keeps in a tools/list result exactly the tools /v1/check allows the same caller', async () => {
    const callers: Array<{ [k: string]: Json }> = [{ token: 'alice-token' }, { token: 'olga-token' }, { token: 'ray-token' }, { token: 'ray-token', agent: 'refund-bot' }];
    const shapes = new Set<string>();
    for (const who of callers) {
      const allowed: string[] = [];
      for (const t of TOOLS) if ((await checked(who, t, ARGS[t['name'] as string] as { [k: string]: Json })) === 'ALLOW') allowed.push(t['name'] as string);
      const tools = listed(await listTools(who));
      expect(tools.map((t) => t['name']), JSON.stringify(who)).toEqual(TOOLS.map((t) => t['name']).filter((n) => allowed.includes(n as string)));
      shapes.add(allowed.join(','));
      // Entries are the upstream's own (schema and all), only conditional ones say their condition.
      for (const t of tools) {
        const original = TOOLS.find((o) => o['name'] === t['name']) as { [k: string]: Json };
        expect(t['inputSchema']).toEqual(original['inputSchema']);
        if (t['_meta'] === undefined) expect(t).toEqual(original);
      }
    }
    // The callers see different listings (so the filter is not a constant).
    expect(shapes.size).toBeGreaterThanOrEqual(3);
  });

  it('says the condition of a conditionally allowed tool, which /v1/check then enforces on the arguments', async () => {
    const tools = listed(await listTools({ token: 'ray-token' }));
    const refund = tools.find((t) => t['name'] === 'issue_refund');
    expect(refund?.['description']).toBe('Refund an order\n\nWarden allows this tool only when: arguments.amount < 500');
    expect(refund?.['_meta']).toEqual({ 'warden/condition': 'arguments.amount < 500', 'warden/conditionAttributes': ['arguments.amount'] });
    const refundTool = TOOLS[2] as { [k: string]: Json };
    expect(await checked({ token: 'ray-token' }, refundTool, { orderId: 'o', amount: 499 })).toBe('ALLOW');
    expect(await checked({ token: 'ray-token' }, refundTool, { orderId: 'o', amount: 500 })).toBe('DENY');
    expect((await callTool({ token: 'ray-token' }, 'issue_refund', { orderId: 'o', amount: 499 })).result).toBe('pass');
    expect((await callTool({ token: 'ray-token' }, 'issue_refund', { orderId: 'o', amount: 500 })).result).toBe('error');
  });

  it('refuses the listing of an unidentified caller, and one Warden cannot decide, instead of shortening it', async () => {
    expect(errorOf(await listTools({})).code).toBe('PERMISSION_DENIED');
    const unknown = errorOf(await listTools({ token: 'nobody-token' }));
    expect(unknown.code).toBe('PERMISSION_DENIED');
    expect(unknown.reason).toMatch(/the caller could not be identified/);
    const flaky = errorOf(await listTools({ token: 'olga-token' }, [...TOOLS, { name: 'flaky_tool', inputSchema: { type: 'object' } }]));
    expect(flaky.code).toBe('UNKNOWN');
    expect(flaky.data['reason']).toBe('resolver_failed');
  });

  it('filters prompts/list and resources/list as the MCP proxy does; other results pass', async () => {
    const prompts = await rpc('CheckResponse', { service_name: 'support', method: 'prompts/list', metadata_context: meta({ token: 'alice-token' }), mcp_response: toStruct({ prompts: [{ name: 'summarize_ticket' }, { name: 'internal_runbook' }] }) });
    expect(fromStruct(prompts.mutated)['prompts']).toEqual([{ name: 'summarize_ticket' }]);
    const resources = await rpc('CheckResponse', { service_name: 'support', method: 'resources/list', metadata_context: meta({ token: 'alice-token' }), mcp_response: toStruct({ resources: [{ uri: 'docs://refund-policy', name: 'refund-policy' }, { uri: 'secret://api-key', name: 'api-key' }] }) });
    expect(fromStruct(resources.mutated)['resources']).toEqual([{ uri: 'docs://refund-policy', name: 'refund-policy' }]);
    const olga = await rpc('CheckResponse', { service_name: 'support', method: 'prompts/list', metadata_context: meta({ token: 'olga-token' }), mcp_response: toStruct({ prompts: [{ name: 'summarize_ticket' }, { name: 'internal_runbook' }] }) });
    expect(olga).toEqual({ result: 'pass', pass: {} });
    expect(await rpc('CheckResponse', { service_name: 'support', method: 'tools/call', metadata_context: meta({ token: 'alice-token' }), mcp_response: toStruct({ content: [] }) })).toEqual({ result: 'pass', pass: {} });
  });
});
