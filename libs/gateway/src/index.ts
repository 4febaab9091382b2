/**
 * `@warden/gateway`: wire formats in, check inputs out (DESIGN.md section 2). No policy logic.
 * A2A JSON-RPC requests (agent-to-agent calls) as checks on resource kind `agent`, and requests a
 * gateway forwards for authorization (Envoy ext_authz, nginx auth_request, Traefik ForwardAuth),
 * and agentgateway's extMcp policy messages (MCP requests and listings as checks).
 */
export { parseA2aRequest } from './a2a/a2a-request.js';
export type { A2aCheck, A2aParseOptions } from './a2a/a2a-request.js';
export { parseForwardedRequest } from './http/forwarded-request.js';
export type { ForwardedCheck, ForwardedRequest, ForwardedRequestOptions } from './http/forwarded-request.js';
export { EXT_MCP_METADATA_KEYS, parseExtMcpIdentity, parseExtMcpRequest, parseExtMcpResponse } from './ext-mcp/ext-mcp-message.js';
export type { ExtMcpIdentity, ExtMcpMessage, ExtMcpRequestCheck, ExtMcpResource, ExtMcpResponseCheck } from './ext-mcp/ext-mcp-message.js';
