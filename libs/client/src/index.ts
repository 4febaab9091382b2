/**
 * `@warden/client`: a typed client of Warden's native API (check, plan, delegate, revoke, the
 * revocation stream, usage) with a defined behaviour when Warden is unreachable: fail closed, or
 * an explicit degradation for read-only calls.
 */
export { WardenClient, WardenClientError, READ_ONLY_ACTIONS } from './warden-client.js';
export type {
  BudgetReservation,
  CheckRequest,
  CheckResult,
  ClientGrant,
  ClientReason,
  ClientResource,
  ClientSubject,
  DegradedCall,
  DelegateRequest,
  Delegation,
  PlanRequest,
  PlanResult,
  RevocationEvent,
  UsageReport,
  UsageResult,
  WardenClientOptions,
} from './warden-client.js';
