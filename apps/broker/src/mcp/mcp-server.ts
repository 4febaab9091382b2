/**
 * The MCP server the proxy runs for one HTTP request of one caller (stateless): the handlers of
 * `tools/*`, `prompts/*` and `resources/*`, each deciding with tool discovery or the same checks as
 * `/v1/check` before anything reaches an upstream. See `mcp-proxy.routes.ts` for the endpoint.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { JsonObject } from '@warden/resolvers';
import { decodeCursor, type ToolDiscoveryDeps } from '../plan/tool-discovery.js';
import type { McpAuthOptions } from './mcp-auth.js';
import { decideEntries, safeDenial, type McpCaller } from './mcp-access.js';
import { describeShownTool, listVisibleTools, mcpToolAttr } from './mcp-tool-listing.js';
import type { McpToolEntry, McpUpstreams } from './mcp-upstreams.js';

/** JSON-RPC error code of a call Warden denied (implementation-defined server error range). */
export const MCP_DENIED = -32003;

/** Tools per `tools/list` page. */
const TOOLS_PAGE = 100;

/** What the routes need, built at boot. */
export interface McpProxyDeps {
  readonly discovery: ToolDiscoveryDeps;
  readonly upstreams: McpUpstreams;
  readonly auth: McpAuthOptions;
  readonly onError: (message: string) => void;
}

/** `<upstream>.<name>` → its parts, or undefined. */
function splitName(deps: McpProxyDeps, name: string): { upstream: string; item: string } | undefined {
  const dot = name.indexOf('.');
  if (dot <= 0) return undefined;
  const upstream = name.slice(0, dot);
  return deps.upstreams.has(upstream) ? { upstream, item: name.slice(dot + 1) } : undefined;
}

/**
 * A denial as the SDK sends it: `code`, `message` and `data` of the thrown error become the
 * JSON-RPC error (an `McpError` would prefix the message with "MCP error -32003:").
 */
class McpDenial extends Error {
  readonly code = MCP_DENIED;
  constructor(
    message: string,
    readonly data: { reason: string },
  ) {
    super(message);
  }
}

function denied(message: string, code: string): McpDenial {
  return new McpDenial(message, { reason: code });
}

/** An upstream failure, without its text (it may quote internals). */
function upstreamFailed(deps: McpProxyDeps, upstream: string, err: unknown): McpError {
  if (err instanceof McpError) return err;
  deps.onError(`mcp upstream \`${upstream}\` failed: ${(err as Error).name}`);
  return new McpError(ErrorCode.InternalError, `the upstream MCP server \`${upstream}\` is unavailable`);
}

async function allTools(deps: McpProxyDeps): Promise<Map<string, { upstream: string; tool: McpToolEntry }>> {
  const out = new Map<string, { upstream: string; tool: McpToolEntry }>();
  for (const upstream of deps.upstreams.names()) {
    let tools: McpToolEntry[];
    try {
      tools = await deps.upstreams.listTools(upstream);
    } catch (err) {
      // SECURITY and honesty: no partial listing passed off as the whole one.
      throw upstreamFailed(deps, upstream, err);
    }
    for (const tool of tools) out.set(`${upstream}/${tool.name}`, { upstream, tool });
  }
  return out;
}

/** One MCP server for one HTTP request of `caller`. */
export function mcpServer(deps: McpProxyDeps, caller: McpCaller): Server {
  const server = new Server({ name: 'warden-mcp-proxy', version: '0.1.0' }, { capabilities: { tools: {}, prompts: {}, resources: {} } });
  const identity = { token: caller.token, subject: undefined, agent: caller.agent, delegation: caller.delegation, requestId: undefined, context: {} };

  server.setRequestHandler(ListToolsRequestSchema, async (request) => {
    const tools = await allTools(deps);
    const cursor = request.params?.cursor;
    let after: string | undefined;
    try {
      after = cursor === undefined ? undefined : decodeCursor(cursor);
    } catch {
      throw new McpError(ErrorCode.InvalidParams, 'invalid cursor');
    }
    const listed = [...tools.entries()].map(([id, t]) => ({ id, attr: mcpToolAttr(t.upstream, t.tool) }));
    const page = await listVisibleTools(deps.discovery, identity, listed, { after, limit: TOOLS_PAGE });
    const out: Tool[] = [];
    for (const shown of page.shown) {
      const t = tools.get(shown.id);
      if (t === undefined) continue;
      out.push({
        name: `${t.upstream}.${t.tool.name}`,
        ...(t.tool.title !== undefined ? { title: t.tool.title } : {}),
        ...(describeShownTool(t.tool.description, undefined, shown.condition) as Pick<Tool, 'description' | '_meta'>),
        inputSchema: t.tool.inputSchema as Tool['inputSchema'],
        ...(t.tool.annotations !== undefined ? { annotations: t.tool.annotations as Tool['annotations'] } : {}),
      });
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { tools: out, ...(page.cursor !== undefined ? { nextCursor: page.cursor } : {}) };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const { name } = request.params;
    const args = (request.params.arguments ?? {}) as JsonObject;
    const parts = splitName(deps, name);
    if (parts === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown tool \`${name}\``);
    let tools: McpToolEntry[];
    try {
      tools = await deps.upstreams.listTools(parts.upstream);
    } catch (err) {
      throw upstreamFailed(deps, parts.upstream, err);
    }
    const tool = tools.find((t) => t.name === parts.item);
    if (tool === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown tool \`${name}\``);
    const [verdict] = await decideEntries(deps.discovery, caller, 'mcp_tool', 'invoke', [{ id: `${parts.upstream}/${tool.name}`, attr: { ...mcpToolAttr(parts.upstream, tool), arguments: args } }]);
    // SECURITY: a denied call never reaches the upstream.
    if (verdict === undefined || !verdict.allowed) throw denied(safeDenial(verdict?.allowed === false ? verdict.reason : { code: 'policy_denied', message: '' }, `call tool \`${name}\``), verdict?.allowed === false ? verdict.reason.code : 'policy_denied');
    try {
      return (await deps.upstreams.callTool(parts.upstream, tool.name, args)) as Record<string, unknown>;
    } catch (err) {
      throw upstreamFailed(deps, parts.upstream, err);
    }
  });

  server.setRequestHandler(ListPromptsRequestSchema, async () => {
    const entries: Array<{ upstream: string; prompt: Awaited<ReturnType<McpUpstreams['listPrompts']>>[number] }> = [];
    for (const upstream of deps.upstreams.names()) {
      try {
        for (const prompt of await deps.upstreams.listPrompts(upstream)) entries.push({ upstream, prompt });
      } catch (err) {
        throw upstreamFailed(deps, upstream, err);
      }
    }
    const verdicts = await decideEntries(deps.discovery, caller, 'mcp_prompt', 'list', entries.map((e) => ({ id: `${e.upstream}/${e.prompt.name}`, attr: promptAttr(e.upstream, e.prompt) })));
    return { prompts: entries.filter((_e, i) => verdicts[i]?.allowed === true).map((e) => ({ ...e.prompt, name: `${e.upstream}.${e.prompt.name}` })) };
  });

  server.setRequestHandler(GetPromptRequestSchema, async (request) => {
    const { name } = request.params;
    const args = (request.params.arguments ?? {}) as Record<string, string>;
    const parts = splitName(deps, name);
    if (parts === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown prompt \`${name}\``);
    let prompts;
    try {
      prompts = await deps.upstreams.listPrompts(parts.upstream);
    } catch (err) {
      throw upstreamFailed(deps, parts.upstream, err);
    }
    const prompt = prompts.find((p) => p.name === parts.item);
    if (prompt === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown prompt \`${name}\``);
    const [verdict] = await decideEntries(deps.discovery, caller, 'mcp_prompt', 'get', [{ id: `${parts.upstream}/${prompt.name}`, attr: { ...promptAttr(parts.upstream, prompt), arguments: args } }]);
    if (verdict === undefined || !verdict.allowed) throw denied(safeDenial(verdict?.allowed === false ? verdict.reason : { code: 'policy_denied', message: '' }, `get prompt \`${name}\``), verdict?.allowed === false ? verdict.reason.code : 'policy_denied');
    try {
      return (await deps.upstreams.getPrompt(parts.upstream, prompt.name, args)) as Record<string, unknown> & { messages: never[] };
    } catch (err) {
      throw upstreamFailed(deps, parts.upstream, err);
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, async () => {
    const entries = await allResources(deps);
    const verdicts = await decideEntries(deps.discovery, caller, 'mcp_resource', 'list', entries.map((e) => ({ id: `${e.upstream}/${e.resource.uri}`, attr: resourceAttr(e.upstream, e.resource) })));
    return { resources: entries.filter((_e, i) => verdicts[i]?.allowed === true).map((e) => e.resource) };
  });

  server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
    const { uri } = request.params;
    const entry = (await allResources(deps)).find((e) => e.resource.uri === uri);
    if (entry === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown resource \`${uri}\``);
    const [verdict] = await decideEntries(deps.discovery, caller, 'mcp_resource', 'read', [{ id: `${entry.upstream}/${uri}`, attr: resourceAttr(entry.upstream, entry.resource) }]);
    if (verdict === undefined || !verdict.allowed) throw denied(safeDenial(verdict?.allowed === false ? verdict.reason : { code: 'policy_denied', message: '' }, `read resource \`${uri}\``), verdict?.allowed === false ? verdict.reason.code : 'policy_denied');
    try {
      return (await deps.upstreams.readResource(entry.upstream, uri)) as Record<string, unknown> & { contents: never[] };
    } catch (err) {
      throw upstreamFailed(deps, entry.upstream, err);
    }
  });
  return server;
}

function promptAttr(upstream: string, p: { name: string; description?: string }): JsonObject {
  return { server: upstream, name: p.name, ...(p.description !== undefined ? { description: p.description } : {}) };
}

function resourceAttr(upstream: string, r: { uri: string; name: string; mimeType?: string }): JsonObject {
  return { server: upstream, uri: r.uri, name: r.name, ...(r.mimeType !== undefined ? { mimeType: r.mimeType } : {}) };
}

async function allResources(deps: McpProxyDeps): Promise<Array<{ upstream: string; resource: Awaited<ReturnType<McpUpstreams['listResources']>>[number] }>> {
  const out: Array<{ upstream: string; resource: Awaited<ReturnType<McpUpstreams['listResources']>>[number] }> = [];
  for (const upstream of deps.upstreams.names()) {
    try {
      for (const resource of await deps.upstreams.listResources(upstream)) out.push({ upstream, resource });
    } catch (err) {
      throw upstreamFailed(deps, upstream, err);
    }
  }
  return out;
}

