#!/usr/bin/env node
// The demo's upstream MCP server: the scenario tools, a prompt pair and two resources, served
// over Streamable HTTP on 127.0.0.1 (MCP_DEMO_PORT, default 3596) with the MCP SDK. The shipped
// warden.yaml registers it as the upstream `support` of Warden's MCP proxy (/mcp):
//
//   npm run demo:mcp-server      # then, with `npm start` running, see README.md "MCP proxy"
//
// It answers every call it receives (it has no authorization of its own): that is Warden's job.
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const port = Number(process.env.MCP_DEMO_PORT ?? 3596);

function demoServer() {
  const s = new McpServer({ name: 'support-demo', version: '1.0.0' });
  s.registerTool('lookup_order', { description: 'Look up an order', inputSchema: { orderId: z.string() }, annotations: { readOnlyHint: true } }, async ({ orderId }) => ({
    content: [{ type: 'text', text: `order ${orderId}: shipped` }],
  }));
  s.registerTool('issue_refund', { description: 'Refund an order', inputSchema: { orderId: z.string(), amount: z.number() }, annotations: { readOnlyHint: false, destructiveHint: false } }, async ({ orderId, amount }) => ({
    content: [{ type: 'text', text: `refunded ${amount} on ${orderId}` }],
  }));
  s.registerTool('drop_table', { description: 'Drop a database table', inputSchema: { table: z.string() }, annotations: { readOnlyHint: false, destructiveHint: true } }, async ({ table }) => ({
    content: [{ type: 'text', text: `dropped ${table}` }],
  }));
  s.registerPrompt('summarize_ticket', { description: 'Summarize a support ticket', argsSchema: { ticket: z.string() } }, ({ ticket }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Summarize ticket ${ticket}` } }],
  }));
  s.registerPrompt('internal_runbook', { description: 'The on-call runbook' }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'Runbook: ...' } }] }));
  s.registerResource('refund-policy', 'docs://refund-policy', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'Refunds up to 500 need no second approval.' }] }));
  s.registerResource('api-key', 'secret://api-key', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'sk-demo-not-a-real-key' }] }));
  return s;
}

const http = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const server = demoServer();
    // Stateless: a server and transport per request.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, text === '' ? undefined : JSON.parse(text));
    } catch {
      if (!res.headersSent) res.writeHead(400).end();
    }
  });
});
http.listen(port, '127.0.0.1', () => console.log(`demo MCP server on http://127.0.0.1:${port}/mcp`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => http.close(() => process.exit(0)));
