/**
 * Warden's answers as extMcp result messages (`McpRequestResult` / `McpResponseResult`, as
 * `@grpc/proto-loader` encodes them: camelCase fields, enums by name, `google.protobuf.Struct` as
 * `{ fields }`), and the one mapping of refusals and errors to `AuthorizationError` codes:
 *
 * - a denial by policy, delegation or revocation, or a caller that cannot be identified:
 *   PERMISSION_DENIED (agentgateway answers the MCP client JSON-RPC -32001);
 * - only budget reasons (`budget_exhausted`): RESOURCE_EXHAUSTED (-32003);
 * - a malformed message: INVALID (-32600);
 * - anything failing inside Warden (a resolver failing with `onError: deny`, storage, a bug):
 *   UNKNOWN (-32603).
 *
 * SECURITY: Warden answers every message it could decode with a result, never with a gRPC error
 * status: agentgateway's `failureMode: failOpen` then applies only when Warden cannot be reached,
 * never to a refusal or to a failure inside Warden (fail closed). The `reason` is safe to show to
 * a model (the kind of refusal, never which policy, rule, resolver or attribute decided);
 * `mcp_error` (which agentgateway passes as the JSON-RPC error's `data`) carries the reason code
 * and the decision id.
 */
import type { JsonValue } from '@warden/core';
import type { Reason } from '../enrichment/enriched-check.js';
import { safeDenial } from '../mcp/mcp-access.js';
import { jsonToValue, type ValueMessage } from './cerbos-grpc.convert.js';

type Msg = Record<string, unknown>;

/** `AuthorizationError.Code`. */
export type ExtMcpErrorCode = 'UNKNOWN' | 'PERMISSION_DENIED' | 'RESOURCE_EXHAUSTED' | 'INVALID';

/** Reasons that mean Warden could not decide, not that the caller may not. */
const WARDEN_SIDE = new Set(['resolver_failed', 'resolvers_unavailable', 'revocation_state_stale', 'internal']);
/** Reasons that mean "who are you?" (as the forward-auth adapter reads them). */
const UNIDENTIFIED = /^(subject_unresolved|agent_unresolved|token_|delegation_(invalid|expired|signature|malformed|unverified))/;

/** The `pass` result. */
export const PASS: Msg = { pass: {} };

/** A JSON object as a `google.protobuf.Struct` to encode. */
export function jsonToStruct(o: Record<string, JsonValue>): { fields: Record<string, ValueMessage> } {
  const fields: Record<string, ValueMessage> = {};
  for (const k of Object.keys(o)) fields[k] = jsonToValue(o[k]);
  return { fields };
}

/** The `mutated` result. */
export function mutated(o: Record<string, JsonValue>): Msg {
  return { mutated: jsonToStruct(o) };
}

/** The `error` result. */
export function refusedWith(code: ExtMcpErrorCode, reason: string, data?: Record<string, JsonValue>): Msg {
  return { error: { code, reason, ...(data !== undefined ? { mcpError: jsonToStruct(data) } : {}) } };
}

/** The error code a set of denial reasons maps to. */
export function refusalCode(reasons: readonly Reason[]): ExtMcpErrorCode {
  if (reasons.some((r) => WARDEN_SIDE.has(r.code))) return 'UNKNOWN';
  if (reasons.length > 0 && reasons.every((r) => r.code === 'budget_exhausted')) return 'RESOURCE_EXHAUSTED';
  return 'PERMISSION_DENIED';
}

/** True when a reason says the caller could not be identified. */
export function isUnidentified(code: string): boolean {
  return UNIDENTIFIED.test(code);
}

/** True when a reason says Warden could not decide. */
export function isWardenSide(code: string): boolean {
  return WARDEN_SIDE.has(code);
}

/**
 * The refusal of `what` (e.g. "call tool `x`") for `reasons`.
 * @example refusal([{ code: 'policy_denied', message: '...' }], 'call tool `drop_table`', id) // { error: { code: 'PERMISSION_DENIED', ... } }
 */
export function refusal(reasons: readonly Reason[], what: string, decisionId?: string): Msg {
  const code = refusalCode(reasons);
  const shown = (code === 'UNKNOWN' ? reasons.find((r) => WARDEN_SIDE.has(r.code)) : code === 'PERMISSION_DENIED' ? reasons.find((r) => r.code !== 'budget_exhausted') : reasons[0]) ?? { code: 'policy_denied', message: '' };
  return refusedWith(code, safeDenial(shown, what), { reason: shown.code, ...(decisionId !== undefined ? { decisionId } : {}) });
}
