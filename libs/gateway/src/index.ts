/**
 * `@warden/gateway`: wire formats in, check inputs out (DESIGN.md section 2). No policy logic.
 * Today: A2A JSON-RPC requests (agent-to-agent calls) as checks on resource kind `agent`.
 */
export { parseA2aRequest } from './a2a/a2a-request.js';
export type { A2aCheck, A2aParseOptions } from './a2a/a2a-request.js';
