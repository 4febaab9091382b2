/**
 * What every forward-auth mode shares (`/v1/ext-authz/*` over HTTP and Envoy's gRPC ext_authz):
 * the forwarded check as a `/v1/check` request, and a decided check as a gateway verdict (allowed
 * with its routing hints, or denied with a status and reasons; `GatewayVerdict` in
 * `@warden/gateway`). Each transport only renders the verdict in its own wire format, so both
 * answer the same request the same way.
 */
import { denialStatus, gatewayHints, type ForwardedCheck, type ForwardedRequestOptions, type GatewayVerdict, type ShownReason } from '@warden/gateway';
import type { JsonObject } from '@warden/resolvers';
import type { DecidedCheck } from './v1-check.routes.js';
import type { V1CheckRequest } from './v1-check.request.js';

/** Header names of the forward-auth modes (both default as in {@link ForwardedRequestOptions}). */
export interface ForwardAuthHeaders {
  /** Header naming the acting agent (default `x-warden-agent`). */
  agentHeader?: string;
  /** Header carrying a delegation token (default `x-warden-delegation`). */
  delegationHeader?: string;
}

/** The identity headers to read, as the adapter options. */
export function forwardedOptions(h: ForwardAuthHeaders): ForwardedRequestOptions {
  return { ...(h.agentHeader !== undefined ? { agentHeader: h.agentHeader } : {}), ...(h.delegationHeader !== undefined ? { delegationHeader: h.delegationHeader } : {}) };
}

/**
 * The forwarded check as the `/v1/check` request it is decided as. `gateway`: the trusted gateway
 * whose key came with the call (budgets `per: key` count its tokens); it grants nothing else here.
 */
export function toCheckRequest(c: ForwardedCheck, gateway?: string): V1CheckRequest {
  return {
    ...(gateway !== undefined ? { gateway } : {}),
    requestId: undefined,
    token: c.token,
    subject: undefined,
    agent: c.agent !== undefined ? { id: c.agent } : undefined,
    delegation: c.delegation,
    actions: [c.action],
    resources: [{ kind: c.resource.kind, id: c.resource.id, attr: c.resource.attr as JsonObject }],
    context: { http: { ...c.context.http } } as JsonObject,
    explain: false,
    needsTrust: false,
  };
}

/**
 * The verdict of a request that carries no credential at all (no bearer token, agent or
 * delegation), or undefined when it carries one: nothing to decide for nobody.
 */
export function missingCredentials(c: ForwardedCheck): GatewayVerdict | undefined {
  if (c.token !== undefined || c.agent !== undefined || c.delegation !== undefined) return undefined;
  return {
    allowed: false,
    decisionId: undefined,
    policyVersion: undefined,
    status: denialStatus(['credentials_missing']),
    reasons: [{ code: 'credentials_missing', message: 'the request carries no bearer token, agent or delegation' }],
    challenge: 'Bearer',
  };
}

/** The verdict of a decided forwarded check (one resource, one action). */
export function verdictOf(d: DecidedCheck): GatewayVerdict {
  const item = d.decisions[0];
  const allowed = item !== undefined && d.req.actions.every((a) => item.effects[a] === 'ALLOW');
  let reasons: ShownReason[];
  if (allowed) {
    const { hints, invalid } = gatewayHints(item.outputs);
    if (invalid.length === 0) {
      return d.budget !== undefined
        ? { allowed: true, decisionId: d.decisionId, policyVersion: d.policyVersion, hints, reservationId: d.budget.reservationId }
        : { allowed: true, decisionId: d.decisionId, policyVersion: d.policyVersion, hints };
    }
    // SECURITY: a restriction the gateway cannot receive would be lifted if dropped: deny.
    reasons = invalid.map((k) => ({ code: 'output_invalid', message: `the policy's output \`${k}\` has a value the gateway cannot receive` }));
  } else {
    reasons = (item?.reasons ?? [{ code: 'internal', message: 'no decision' }]).map((r) => ({ code: r.code, message: r.message }));
  }
  const status = denialStatus(reasons.map((r) => r.code));
  return { allowed: false, decisionId: d.decisionId, policyVersion: d.policyVersion, status, reasons, challenge: status.http === 401 ? 'Bearer error="invalid_token"' : undefined };
}
