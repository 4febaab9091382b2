/**
 * How a gateway answers a denial, from its reason codes: "who are you?" (401, gRPC
 * UNAUTHENTICATED), "not now" (429, RESOURCE_EXHAUSTED: a budget is used up), or "no" (403,
 * PERMISSION_DENIED). Shared by every forward-auth mode (HTTP and Envoy's gRPC ext_authz) so
 * the same denial gets the same status whatever the transport. Pure.
 */

/** What a denied request is answered with. */
export interface DenialStatus {
  /** HTTP status the client receives. */
  readonly http: 401 | 403 | 429;
  /** The matching gRPC (google.rpc.Code) status of Envoy's `CheckResponse.status`. */
  readonly grpc: 16 | 7 | 8;
}

/** Reasons that mean "who are you?" rather than "no". */
const UNAUTHENTICATED = /^(subject_unresolved|agent_unresolved|credentials_missing|token_|delegation_(invalid|expired|signature|malformed|unverified))/;

/** The reason code a budget check denies with. */
export const BUDGET_EXHAUSTED = 'budget_exhausted';

/**
 * The status of a denial with these reason codes. Precedence: a credential problem (401) over
 * an exhausted budget (429) over any other denial (403); no reason at all is a 403.
 * @example denialStatus(['budget_exhausted']) // { http: 429, grpc: 8 }
 */
export function denialStatus(codes: readonly string[]): DenialStatus {
  let budget = false;
  for (const c of codes) {
    if (UNAUTHENTICATED.test(c)) return { http: 401, grpc: 16 };
    if (c === BUDGET_EXHAUSTED) budget = true;
  }
  return budget ? { http: 429, grpc: 8 } : { http: 403, grpc: 7 };
}
