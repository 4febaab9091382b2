/**
 * The upstream MCP servers of the proxy (`mcp.upstreams`), each reached through one MCP SDK
 * `Client` over Streamable HTTP, connected on first use and reconnected after a failure. Listings
 * (tools, prompts, resources) follow every page; they are what tool discovery plans and what a
 * call is checked against, so a tool's attributes (annotations) are the server's own.
 *
 * SECURITY: the headers configured for an upstream (its credentials) go to that upstream only;
 * the caller's own token is never forwarded.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JsonValue } from '@warden/core';
import type { McpToolListing } from '@warden/resolvers';
import type { McpUpstreamConfig } from '../config/broker-config.js';

/** A prompt as an upstream lists it. */
export interface McpPromptListing {
  readonly name: string;
  readonly description?: string;
  readonly arguments?: ReadonlyArray<{ name: string; description?: string; required?: boolean }>;
}

/** A resource as an upstream lists it. */
export interface McpResourceListing {
  readonly uri: string;
  readonly name: string;
  readonly description?: string;
  readonly mimeType?: string;
}

/** A tool listing with the input schema the proxy passes on. */
export interface McpToolEntry extends McpToolListing {
  readonly inputSchema: Record<string, unknown>;
  readonly title?: string;
}

/** Most pages read from one listing (a server that never stops paging is cut off, loudly). */
const MAX_PAGES = 100;
const VERSION = '0.1.0';

/** The upstream servers, by name. */
export class McpUpstreams {
  private readonly clients = new Map<string, Promise<Client>>();
  private readonly byName: ReadonlyMap<string, McpUpstreamConfig>;

  constructor(configs: readonly McpUpstreamConfig[]) {
    this.byName = new Map(configs.map((c) => [c.name, c]));
  }

  /** The upstream names, in configuration order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private client(name: string): Promise<Client> {
    const existing = this.clients.get(name);
    if (existing !== undefined) return existing;
    const config = this.byName.get(name);
    if (config === undefined) return Promise.reject(new Error(`no upstream MCP server \`${name}\``));
    const client = new Client({ name: 'warden-mcp-proxy', version: VERSION });
    const transport = new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: config.headers } });
    const connecting = client.connect(transport).then(() => client);
    connecting.catch(() => this.clients.delete(name));
    client.onclose = () => this.clients.delete(name);
    this.clients.set(name, connecting);
    return connecting;
  }

  /** Runs `fn` on the upstream's client; a failure drops the connection so the next call reconnects. */
  private async use<T>(name: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await this.client(name);
    try {
      return await fn(c);
    } catch (err) {
      // Protocol errors (the server answered) keep the session; transport failures drop it.
      if (!(err instanceof Error && 'code' in err && typeof (err as { code: unknown }).code === 'number')) {
        this.clients.delete(name);
        await c.close().catch(() => undefined);
      }
      throw err;
    }
  }

  private async pages<T>(name: string, page: (c: Client, cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | undefined }>): Promise<T[]> {
    return this.use(name, async (c) => {
      const out: T[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < MAX_PAGES; i++) {
        const r = await page(c, cursor);
        out.push(...r.items);
        if (r.nextCursor === undefined) return out;
        cursor = r.nextCursor;
      }
      throw new Error(`upstream \`${name}\` listed more than ${MAX_PAGES} pages`);
    });
  }

  /** Every tool of upstream `name`. */
  listTools(name: string, signal?: AbortSignal): Promise<McpToolEntry[]> {
    return this.pages(name, async (c, cursor) => {
      const r = await c.listTools(cursor !== undefined ? { cursor } : {}, signal !== undefined ? { signal } : {});
      return {
        items: r.tools.map((t) => ({
          name: t.name,
          inputSchema: t.inputSchema as Record<string, unknown>,
          ...(t.title !== undefined ? { title: t.title } : {}),
          ...(t.description !== undefined ? { description: t.description } : {}),
          ...(t.annotations !== undefined ? { annotations: t.annotations as Record<string, JsonValue> } : {}),
        })),
        nextCursor: r.nextCursor,
      };
    });
  }

  /** Every prompt of upstream `name` (none when it has no prompts capability). */
  listPrompts(name: string): Promise<McpPromptListing[]> {
    return this.pages(name, async (c, cursor) => {
      if (c.getServerCapabilities()?.prompts === undefined) return { items: [] };
      const r = await c.listPrompts(cursor !== undefined ? { cursor } : {});
      return { items: r.prompts as McpPromptListing[], nextCursor: r.nextCursor };
    });
  }

  /** Every resource of upstream `name` (none when it has no resources capability). */
  listResources(name: string): Promise<McpResourceListing[]> {
    return this.pages(name, async (c, cursor) => {
      if (c.getServerCapabilities()?.resources === undefined) return { items: [] };
      const r = await c.listResources(cursor !== undefined ? { cursor } : {});
      return { items: r.resources as McpResourceListing[], nextCursor: r.nextCursor };
    });
  }

  callTool(name: string, tool: string, args: Record<string, unknown>): Promise<unknown> {
    return this.use(name, (c) => c.callTool({ name: tool, arguments: args }));
  }

  getPrompt(name: string, prompt: string, args: Record<string, string>): Promise<unknown> {
    return this.use(name, (c) => c.getPrompt({ name: prompt, arguments: args }));
  }

  readResource(name: string, uri: string): Promise<unknown> {
    return this.use(name, (c) => c.readResource({ uri }));
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}
