/**
 * `@warden/gateway`: wire formats in, check inputs out (DESIGN.md section 2). No policy logic.
 * A2A JSON-RPC requests (agent-to-agent calls) as checks on resource kind `agent`, requests a
 * gateway forwards for authorization (Envoy ext_authz over HTTP and gRPC, nginx auth_request,
 * Traefik ForwardAuth), agentgateway's extMcp policy messages (MCP requests and listings as
 * checks), and what goes back to a gateway: the status of a denial, the routing hints of an allow,
 * and Envoy's `CheckResponse`.
 */
export { parseA2aRequest } from './a2a/a2a-request.js';
export type { A2aCheck, A2aParseOptions } from './a2a/a2a-request.js';
export { parseForwardedRequest } from './http/forwarded-request.js';
export type { ForwardedCheck, ForwardedRequest, ForwardedRequestOptions } from './http/forwarded-request.js';
export { EXT_MCP_METADATA_KEYS, parseExtMcpIdentity, parseExtMcpRequest, parseExtMcpResponse } from './ext-mcp/ext-mcp-message.js';
export type { ExtMcpIdentity, ExtMcpMessage, ExtMcpRequestCheck, ExtMcpResource, ExtMcpResponseCheck } from './ext-mcp/ext-mcp-message.js';
export { BUDGET_EXHAUSTED, denialStatus } from './reply/denial-status.js';
export type { DenialStatus } from './reply/denial-status.js';
export { gatewayHints, RESERVED_HEADERS } from './reply/gateway-hints.js';
export type { GatewayHint, GatewayHints } from './reply/gateway-hints.js';
export { denialJson } from './reply/gateway-verdict.js';
export type { AllowedVerdict, DeniedVerdict, GatewayVerdict, ShownReason } from './reply/gateway-verdict.js';
export { envoyBadRequest, envoyCheckResponse, envoyForwardedRequest, envoyHttpAttributesOrThrow } from './envoy/envoy-check.js';
export type { EnvoyAnswerContext, EnvoyHttpAttributes } from './envoy/envoy-check.js';
