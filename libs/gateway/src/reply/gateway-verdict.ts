/**
 * What a gateway is told about a forwarded request, whatever the transport: allowed with its
 * routing hints, or denied with a status, reasons and (for a 401) a challenge. Built by the
 * broker from a decided check; rendered by each forward-auth mode (HTTP headers and status,
 * Envoy's `CheckResponse`). Pure.
 */
import type { DenialStatus } from './denial-status.js';
import type { GatewayHint } from './gateway-hints.js';

/** A reason as a gateway's client sees it. */
export interface ShownReason {
  readonly code: string;
  readonly message: string;
}

/** An allowed request. */
export interface AllowedVerdict {
  readonly allowed: true;
  readonly decisionId: string;
  readonly policyVersion: string;
  readonly hints: readonly GatewayHint[];
  /**
   * The token budget reservation the check made, to settle with `POST /v1/usage`. SECURITY: the
   * capability to settle; only the gateway gets it (never as a header Envoy would pass upstream).
   */
  readonly reservationId?: string;
}

/** A denied request. */
export interface DeniedVerdict {
  readonly allowed: false;
  /** Absent when the request was refused before any decision (no credentials at all). */
  readonly decisionId: string | undefined;
  readonly policyVersion: string | undefined;
  readonly status: DenialStatus;
  readonly reasons: readonly ShownReason[];
  /** `WWW-Authenticate` of a 401. */
  readonly challenge: string | undefined;
}

/** What a gateway is told. */
export type GatewayVerdict = AllowedVerdict | DeniedVerdict;

/**
 * The JSON body of a denial: `{decision, decisionId, reasons: [{code, message}]}`.
 * @example denialJson(v) // '{"decision":"DENY","decisionId":"…","reasons":[{"code":"policy_denied","message":"…"}]}'
 */
export function denialJson(v: DeniedVerdict): string {
  return JSON.stringify(v.decisionId !== undefined ? { decision: 'DENY', decisionId: v.decisionId, reasons: v.reasons } : { decision: 'DENY', reasons: v.reasons });
}
