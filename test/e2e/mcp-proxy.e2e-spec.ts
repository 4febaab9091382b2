/**
 * The MCP proxy end to end: a real MCP client (the SDK's `Client` over Streamable HTTP) talks to
 * the broker's `/mcp`, which fronts a real MCP server (the SDK's `McpServer` on 127.0.0.1)
 * exposing the scenario tools, prompts and resources. Callers hold JWT access tokens from a real
 * oidc-provider, issued for the proxy's resource URL (RFC 8707); the shipped policies decide.
 * The upstream counts every call it receives, so a denied call provably never reaches it.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { z } from 'zod';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { readBody, writePolicyDir } from '../support/upstreams.js';

const PEOPLE: Record<string, { roles: string[]; groups: string[]; onCall: boolean }> = {
  alice: { roles: ['user'], groups: ['eng'], onCall: false },
  olga: { roles: ['user'], groups: ['eng', 'break-glass'], onCall: true },
  ray: { roles: ['support_agent', 'refund_approver'], groups: ['support'], onCall: false },
};

/** Calls the upstream received, by tool / prompt / resource. */
const received: Record<string, number> = {};
const count = (what: string): void => {
  received[what] = (received[what] ?? 0) + 1;
};

function scenarioServer(): McpServer {
  const s = new McpServer({ name: 'support-tools', version: '1.0.0' });
  s.registerTool('search_code', { description: 'Search the code base', inputSchema: { query: z.string() }, annotations: { readOnlyHint: true } }, async ({ query }) => {
    count('search_code');
    return { content: [{ type: 'text', text: `results for ${query}` }] };
  });
  s.registerTool('drop_table', { description: 'Drop a database table', inputSchema: { table: z.string() }, annotations: { readOnlyHint: false, destructiveHint: true } }, async ({ table }) => {
    count('drop_table');
    return { content: [{ type: 'text', text: `dropped ${table}` }] };
  });
  s.registerTool('issue_refund', { description: 'Refund an order', inputSchema: { orderId: z.string(), amount: z.number() }, annotations: { readOnlyHint: false, destructiveHint: false } }, async ({ orderId, amount }) => {
    count('issue_refund');
    return { content: [{ type: 'text', text: `refunded ${amount} on ${orderId}` }] };
  });
  s.registerPrompt('summarize_ticket', { description: 'Summarize a ticket', argsSchema: { ticket: z.string() } }, ({ ticket }) => {
    count('summarize_ticket');
    return { messages: [{ role: 'user', content: { type: 'text', text: `Summarize ticket ${ticket}` } }] };
  });
  s.registerPrompt('internal_runbook', { description: 'On-call runbook' }, () => {
    count('internal_runbook');
    return { messages: [{ role: 'user', content: { type: 'text', text: 'runbook' } }] };
  });
  s.registerResource('refund-policy', 'docs://refund-policy', { mimeType: 'text/plain' }, async (uri) => {
    count('refund-policy');
    return { contents: [{ uri: uri.href, text: 'Refunds up to 500 need no second approval.' }] };
  });
  s.registerResource('api-key', 'secret://api-key', { mimeType: 'text/plain' }, async (uri) => {
    count('api-key');
    return { contents: [{ uri: uri.href, text: 'sk-live-000' }] };
  });
  return s;
}

let idp: OidcTestIssuer;
let data: TestDatabase;
let upstream: HttpServer;
let broker: TestBroker;
let resource: string;

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

beforeAll(async () => {
  const port = await freePort();
  resource = `http://127.0.0.1:${port}/mcp`;
  idp = await startOidcIssuer({ resources: { [resource]: ['mcp:tools', 'mcp:read'], 'urn:another-resource': ['mcp:tools'] } });
  data = await createTestDatabase('warden_mcp');
  const c = new pg.Client({ connectionString: data.url });
  await c.connect();
  await c.query('create table approvers (user_id text primary key, approval_limit integer not null)');
  await c.query(`insert into approvers values ('ray', 500)`);
  await c.end();

  // The upstream: a real MCP server over Streamable HTTP (stateless: a server per request).
  upstream = createHttpServer((req, res) => {
    void (async () => {
      const text = await readBody(req);
      const server = scenarioServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, text === '' ? undefined : JSON.parse(text));
    })();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));

  const { dir } = writePolicyDir({}, 'warden-mcp-');
  const claim = (name: string) => [`principal.attr.${name}`, `result.${name}`];
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      datasources: { idp: { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true }, main: { kind: 'postgres', url: data.url } },
      resolvers: [
        { name: 'user-token', kind: 'jwt', datasource: 'idp', key: 'subject.token', audience: resource, provides: Object.fromEntries([['principal.id', 'result.sub'], ['principal.roles', 'result.roles'], claim('tenant'), claim('groups'), claim('onCall')]) },
        { name: 'approvers', kind: 'postgres', datasource: 'main', key: 'principal.id', query: 'select user_id as key, approval_limit from approvers where user_id = any($1)', provides: { 'principal.attr.approvalLimit': 'result.approval_limit' }, onError: 'omit' },
        // The operator's tool registry: which tools are read-only (annotations are only the
        // server's hints), and each tool's server, name and annotations (what minting a delegation
        // checks: it does not read the upstream's listing).
        {
          name: 'vetted-tools',
          kind: 'static',
          key: 'resource.id',
          when: 'R.kind == "mcp_tool"',
          data: {
            'support/search_code': { server: 'support', name: 'search_code', readOnly: true, annotations: { readOnlyHint: true } },
            'support/issue_refund': { server: 'support', name: 'issue_refund', readOnly: false, annotations: { readOnlyHint: false, destructiveHint: false } },
          },
          provides: { 'resource.attr.readOnly': 'result.readOnly', 'resource.attr.server': 'result.server', 'resource.attr.name': 'result.name', 'resource.attr.annotations': 'result.annotations' },
        },
        // An agent: a refund bot bound to the support server, approving refunds up to 300 itself.
        {
          name: 'agents',
          kind: 'static',
          key: 'agent.id',
          data: { 'refund-bot': { roles: ['agent', 'refund_approver'], attr: { tenant: 'acme', mcpServers: ['support'], sourceIp: '10.2.3.4', approvalLimit: 300 } } },
          provides: { 'agent.roles': 'result.roles', 'agent.attr': 'result.attr' },
        },
        // The upstream's tools/list as a catalog for POST /v1/plan.
        { name: 'support-tools', kind: 'catalog', resourceKind: 'mcp_tool', source: 'mcp', upstream: 'support' },
        { name: 'agent-directory', kind: 'static', key: 'resource.id', when: 'R.kind == "agent"', data: { 'refund-bot': { tenant: 'acme' } }, provides: { 'resource.attr.tenant': 'result.tenant' } },
      ],
      mcp: {
        resource,
        authorizationServers: [idp.issuer],
        requiredScopes: ['mcp:tools'],
        token: { datasource: 'idp' },
        upstreams: { support: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp` } },
      },
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir: join(repoRoot, 'policies'), databaseUrl: data.url, env: { WARDEN_HTTP_ADDR: `127.0.0.1:${port}` } });
});
afterAll(async () => {
  await broker?.close();
  await new Promise((resolve) => upstream?.close(resolve));
  await idp?.close();
  await data?.drop();
});

const tokenOf = (who: string, scopes: string[] = ['mcp:tools'], aud: string = resource): Promise<string> => idp.issueJwtFor(aud, scopes, { sub: who, tenant: 'acme', ...PEOPLE[who] });

async function connect(who: string, headers: Record<string, string> = {}, token?: string): Promise<Client> {
  const client = new Client({ name: `test-${who}`, version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${broker.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token ?? (await tokenOf(who))}`, ...headers } } }));
  return client;
}

async function denial(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
  throw new Error('expected a JSON-RPC error');
}

describe('MCP proxy (/mcp)', () => {
  it('lists each user only what they may call; conditional tools say their limit', async () => {
    const catalogs: Record<string, Array<{ name: string; description?: string; _meta?: Record<string, unknown> }>> = {};
    for (const who of ['alice', 'olga', 'ray']) {
      const client = await connect(who);
      catalogs[who] = (await client.listTools()).tools;
      await client.close();
    }
    expect(catalogs['alice']?.map((t) => t.name)).toEqual(['support.search_code']);
    expect(catalogs['olga']?.map((t) => t.name)).toEqual(['support.drop_table', 'support.search_code']);
    expect(catalogs['ray']?.map((t) => t.name)).toEqual(['support.issue_refund', 'support.search_code']);
    const refund = catalogs['ray']?.find((t) => t.name === 'support.issue_refund');
    expect(refund?.description).toBe('Refund an order\n\nWarden allows this tool only when: arguments.amount < 500');
    expect(refund?._meta).toEqual({ 'warden/condition': 'arguments.amount < 500', 'warden/conditionAttributes': ['arguments.amount'] });
  });

  it('forwards allowed calls and refuses denied ones before they reach the upstream', async () => {
    const alice = await connect('alice');
    const before = { ...received };
    const ok = await alice.callTool({ name: 'support.search_code', arguments: { query: 'refund' } });
    expect(ok.content).toEqual([{ type: 'text', text: 'results for refund' }]);
    expect(received['search_code']).toBe((before['search_code'] ?? 0) + 1);

    const refused = await denial(alice.callTool({ name: 'support.drop_table', arguments: { table: 'orders' } }));
    expect(refused.code).toBe(-32003);
    expect(refused.message).toContain('Warden denied this request (call tool `support.drop_table`): the user or agent is not allowed to do this');
    // Safe to show to a model: no policy, rule or attribute names.
    expect(refused.message).not.toMatch(/destructive|break.glass|mcp_tool\.|resource\.|deny-/);
    expect(refused.data).toEqual({ reason: 'policy_denied' });
    expect(received['drop_table'] ?? 0).toBe(0);
    await alice.close();

    const ray = await connect('ray');
    expect((await ray.callTool({ name: 'support.issue_refund', arguments: { orderId: 'o-1', amount: 120 } })).content).toEqual([{ type: 'text', text: 'refunded 120 on o-1' }]);
    const over = await denial(ray.callTool({ name: 'support.issue_refund', arguments: { orderId: 'o-1', amount: 900 } }));
    expect(over.code).toBe(-32003);
    expect(received['issue_refund']).toBe(1);
    const unknown = await denial(ray.callTool({ name: 'support.nope', arguments: {} }));
    expect(unknown.code).toBe(-32602);
    await ray.close();

    const olga = await connect('olga');
    expect((await olga.callTool({ name: 'support.drop_table', arguments: { table: 'tmp' } })).content).toEqual([{ type: 'text', text: 'dropped tmp' }]);
    expect(received['drop_table']).toBe(1);
    await olga.close();
  });

  it('decides for the agent named in the request and within the delegation it holds', async () => {
    const token = await tokenOf('ray');
    const bot = await connect('ray', { 'x-warden-agent': 'refund-bot' }, token);
    const listed = (await bot.listTools()).tools;
    // Both limits hold: ray's (500) and the bot's own (300).
    expect(listed.map((t) => [t.name, t._meta?.['warden/condition'] ?? null])).toEqual([
      ['support.issue_refund', 'arguments.amount < 500 && arguments.amount < 300'],
      ['support.search_code', null],
    ]);
    await bot.close();

    const minted = await fetch(`${broker.base}/v1/delegations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ subject: { token }, to: 'refund-bot', grants: [{ kind: 'mcp_tool', actions: ['invoke'], ids: ['support/issue_refund'], caps: { amount: 200 } }], ttl: '5m' }),
    });
    const mintedJson = (await minted.json()) as { token: string };
    expect(minted.status).toBe(201);
    const delegation = mintedJson.token;
    const delegated = await connect('ray', { 'x-warden-agent': 'refund-bot', 'x-warden-delegation': delegation }, token);
    const scoped = (await delegated.listTools()).tools;
    expect(scoped.map((t) => [t.name, t._meta?.['warden/condition'] ?? null])).toEqual([['support.issue_refund', 'arguments.amount < 500 && arguments.amount < 300 && arguments.amount <= 200']]);
    const before = received['issue_refund'] ?? 0;
    expect((await delegated.callTool({ name: 'support.issue_refund', arguments: { orderId: 'o-2', amount: 150 } })).content).toEqual([{ type: 'text', text: 'refunded 150 on o-2' }]);
    const over = await denial(delegated.callTool({ name: 'support.issue_refund', arguments: { orderId: 'o-2', amount: 250 } }));
    expect(over.data).toEqual({ reason: 'delegation_out_of_scope' });
    expect(over.message).toContain('this is outside what the agent was delegated');
    const outside = await denial(delegated.callTool({ name: 'support.search_code', arguments: { query: 'x' } }));
    expect(outside.data).toEqual({ reason: 'delegation_out_of_scope' });
    expect(received['issue_refund']).toBe(before + 1);
    await delegated.close();
  });

  it('checks prompts and resources with their own actions', async () => {
    const alice = await connect('alice');
    expect((await alice.listPrompts()).prompts.map((p) => p.name)).toEqual(['support.summarize_ticket']);
    const got = await alice.getPrompt({ name: 'support.summarize_ticket', arguments: { ticket: 'T-1' } });
    expect(got.messages[0]?.content).toEqual({ type: 'text', text: 'Summarize ticket T-1' });
    expect((await denial(alice.getPrompt({ name: 'support.internal_runbook' }))).code).toBe(-32003);
    expect(received['internal_runbook'] ?? 0).toBe(0);
    expect((await alice.listResources()).resources.map((r) => r.uri)).toEqual(['docs://refund-policy']);
    expect((await alice.readResource({ uri: 'docs://refund-policy' })).contents[0]).toMatchObject({ text: 'Refunds up to 500 need no second approval.' });
    expect((await denial(alice.readResource({ uri: 'secret://api-key' }))).code).toBe(-32003);
    expect(received['api-key'] ?? 0).toBe(0);
    await alice.close();

    const olga = await connect('olga');
    expect((await olga.listPrompts()).prompts.map((p) => p.name).sort()).toEqual(['support.internal_runbook', 'support.summarize_ticket']);
    await olga.close();
  });

  it('plans an upstream\'s tools/list as a catalog of POST /v1/plan, as the proxy lists it', async () => {
    const res = await fetch(`${broker.base}/v1/plan`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ subject: { token: await tokenOf('ray') }, kind: 'mcp_tool', catalog: 'support-tools' }) });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { allowed: string[]; conditional: Array<{ id: string; text: string }>; denied: { count: number } };
    expect(json.allowed).toEqual(['support/search_code']);
    expect(json.conditional.map((c) => [c.id, c.text])).toEqual([['support/issue_refund', 'arguments.amount < 500']]);
    expect(json.denied.count).toBe(1);
  });

  it('acts as an OAuth protected resource: metadata, 401 with resource_metadata, audience and scope checks', async () => {
    const meta = await fetch(`${broker.base}/.well-known/oauth-protected-resource/mcp`);
    expect(meta.status).toBe(200);
    expect(await meta.json()).toEqual({ resource, authorization_servers: [idp.issuer], bearer_methods_supported: ['header'], scopes_supported: ['mcp:tools'], resource_name: 'Warden MCP proxy' });
    const origin = new URL(resource).origin;
    const post = (headers: Record<string, string>) =>
      fetch(`${broker.base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });

    const none = await post({});
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe(`Bearer scope="mcp:tools", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);

    const garbage = await post({ authorization: 'Bearer not-a-jwt' });
    expect(garbage.status).toBe(401);
    expect(garbage.headers.get('www-authenticate')).toContain('error="invalid_token"');

    // A token the IdP issued for another resource is not accepted here.
    const elsewhere = await post({ authorization: `Bearer ${await tokenOf('alice', ['mcp:tools'], 'urn:another-resource')}` });
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.headers.get('www-authenticate')).toContain(`resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);

    const shortScope = await post({ authorization: `Bearer ${await tokenOf('alice', ['mcp:read'])}` });
    expect(shortScope.status).toBe(403);
    expect(shortScope.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="mcp:tools"');

    const ok = await post({ authorization: `Bearer ${await tokenOf('alice')}` });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name)).toEqual(['support.search_code']);
  });
});
