/**
 * Which listed MCP tools a caller is shown: tool discovery over the listed tools (resource kind
 * `mcp_tool`, action `invoke`), keeping the allowed ones and the conditional ones with their
 * condition. One filter for every MCP surface: the MCP proxy's `tools/list` and agentgateway's
 * extMcp `tools/list` response.
 */
import type { JsonValue } from '@warden/core';
import type { JsonObject } from '@warden/resolvers';
import { discoverTools, type DiscoveryRequest, type DiscoveryResult, type ToolDiscoveryDeps } from '../plan/tool-discovery.js';

/** Who asks (the identity fields of a discovery request). */
export type McpListingIdentity = Pick<DiscoveryRequest, 'requestId' | 'token' | 'subject' | 'agent' | 'delegation' | 'context'>;

/** A listed tool: its resource id and the attributes its listing gives it. */
export interface ListedTool {
  readonly id: string;
  readonly attr: JsonObject;
}

/** A tool the caller is shown, with the condition it is allowed under, if any. */
export interface ShownTool {
  readonly id: string;
  readonly condition?: { readonly text: string; readonly attributes: string[] };
}

/** The shown tools (allowed first, then conditional, as discovery answers), and what discovery denied. */
export interface ToolListing {
  readonly shown: ShownTool[];
  readonly denied: DiscoveryResult['denied'];
  readonly cursor?: string;
}

/** The attributes of a listed tool (`server` is the MCP server or backend that lists it). */
export function mcpToolAttr(server: string, t: { name: string; description?: string | undefined; annotations?: unknown }): JsonObject {
  return { server, name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), ...(t.annotations !== undefined ? { annotations: t.annotations as JsonValue } : {}) };
}

/**
 * The tools of `tools` (ids unique) the caller may call, `limit` at a time after `after`.
 * @example const listing = await listVisibleTools(deps, identity, [{ id: 'github/search', attr: { server: 'github', name: 'search' } }], { after: undefined, limit: 100 });
 */
export async function listVisibleTools(deps: ToolDiscoveryDeps, identity: McpListingIdentity, tools: readonly ListedTool[], page: { after: string | undefined; limit: number }): Promise<ToolListing> {
  const candidates = [...tools].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const found = await discoverTools(deps, { ...identity, kind: 'mcp_tool', action: 'invoke', candidates, catalog: undefined, after: page.after, limit: page.limit });
  const shown: ShownTool[] = found.allowed.map((id) => ({ id }));
  for (const c of found.conditional) shown.push({ id: c.id, condition: { text: c.text, attributes: c.attributes } });
  return { shown, denied: found.denied, ...(found.cursor !== undefined ? { cursor: found.cursor } : {}) };
}

/**
 * A shown tool's description and `_meta`: a conditional tool says its condition (in the
 * description, for models, and in `_meta["warden/condition"]`, for programs).
 */
export function describeShownTool(description: string | undefined, meta: Record<string, JsonValue> | undefined, condition: ShownTool['condition']): { description?: string; _meta?: Record<string, JsonValue> } {
  const note = condition === undefined ? '' : `\n\nWarden allows this tool only when: ${condition.text}`;
  const out: { description?: string; _meta?: Record<string, JsonValue> } = {};
  if (description !== undefined || note !== '') out.description = `${description ?? ''}${note}`.trim();
  if (condition !== undefined) out._meta = { ...meta, 'warden/condition': condition.text, 'warden/conditionAttributes': condition.attributes };
  else if (meta !== undefined) out._meta = meta;
  return out;
}
