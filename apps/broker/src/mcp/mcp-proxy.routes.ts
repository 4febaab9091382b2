/**
 * `/mcp`: a Streamable HTTP MCP endpoint (MCP SDK, stateless: one server per HTTP request) in
 * front of the upstream MCP servers of `mcp.upstreams`. Upstream items are exposed as
 * `<upstream>.<name>` (tools and prompts; resources keep their URI).
 *
 * - `tools/list`: only the tools tool discovery lists for the caller (allowed, or conditional with
 *   the condition in the description and in `_meta["warden/condition"]`), paged with the
 *   discovery cursor.
 * - `tools/call`: checked like `/v1/check` (resource kind `mcp_tool`, action `invoke`, the call's
 *   arguments as `R.attr.arguments`); a denied call never reaches the upstream and is a JSON-RPC
 *   error ({@link MCP_DENIED}) whose message is safe to show to the model.
 * - `prompts/list` / `prompts/get` (kind `mcp_prompt`, actions `list` / `get`) and
 *   `resources/list` / `resources/read` (kind `mcp_resource`, actions `list` / `read`): the same
 *   checks with their own actions.
 *
 * The caller: `Authorization: Bearer <token>` (see `mcp-auth.ts`), `x-warden-agent` (agent id),
 * `x-warden-agent-token` and `x-warden-delegation` (a delegation token the agent holds).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { isWardenError } from '@warden/core';
import { authenticateMcp, MCP_METADATA_PATHS, protectedResourceMetadata, resourceUrl } from './mcp-auth.js';
import type { McpCaller } from './mcp-access.js';
import { mcpServer, type McpProxyDeps } from './mcp-server.js';

export { MCP_DENIED, type McpProxyDeps } from './mcp-server.js';

/** Header naming the acting agent, its credential, and the delegation it holds. */
export const AGENT_HEADER = 'x-warden-agent';
export const AGENT_TOKEN_HEADER = 'x-warden-agent-token';
export const DELEGATION_HEADER = 'x-warden-delegation';

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

async function handle(deps: McpProxyDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const resource = resourceUrl(deps.auth, request.headers.host, request.protocol);
  let auth;
  try {
    auth = await authenticateMcp(deps.auth, deps.discovery, request.headers.authorization, resource);
  } catch (err) {
    const status = isWardenError(err) && err.code === 'ERR_STORAGE_UNAVAILABLE' ? 503 : 500;
    return reply.code(status).send({ error: 'temporarily_unavailable', error_description: 'the caller could not be authenticated right now' });
  }
  if (!auth.ok) {
    if (auth.wwwAuthenticate !== undefined) void reply.header('www-authenticate', auth.wwwAuthenticate);
    return reply.code(auth.status).header('cache-control', 'no-store').send(auth.body);
  }
  const agentId = header(request, AGENT_HEADER);
  const agentToken = header(request, AGENT_TOKEN_HEADER);
  const caller: McpCaller = {
    token: auth.token,
    agent: agentId === undefined ? undefined : { id: agentId, ...(agentToken !== undefined ? { token: agentToken } : {}) },
    delegation: header(request, DELEGATION_HEADER),
  };
  if (caller.delegation !== undefined && caller.agent === undefined) {
    return reply.code(400).send({ error: { code: 'ERR_REQUEST_INVALID', message: `\`${DELEGATION_HEADER}\` needs \`${AGENT_HEADER}\`: the agent that holds it` } });
  }
  const server = mcpServer(deps, caller);
  // Stateless: no session, JSON answers; the server and transport live for this request.
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  reply.hijack();
  reply.raw.on('close', () => {
    void transport.close();
    void server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(request.raw, reply.raw, request.body);
  } catch (err) {
    deps.onError(`mcp request failed: ${(err as Error).name}`);
    if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: ErrorCode.InternalError, message: 'internal error' }, id: null }));
  }
  return undefined;
}

/** Registers `/mcp` and the protected-resource metadata on `app`. */
export async function registerMcpProxy(app: FastifyInstance, deps: McpProxyDeps): Promise<void> {
  await app.register(async (api) => {
    for (const path of MCP_METADATA_PATHS) {
      api.get(path, async (request, reply) => reply.header('content-type', 'application/json').send(protectedResourceMetadata(deps.auth, resourceUrl(deps.auth, request.headers.host, request.protocol))));
    }
    for (const method of ['POST', 'GET', 'DELETE'] as const) api.route({ method, url: '/mcp', handler: (request, reply) => handle(deps, request, reply) });
  });
}

