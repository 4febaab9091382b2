/**
 * Why a delegation was refused (minting) or rejected (at a check). `reason` is the stable code a
 * deny answer carries; the message is safe to show to an agent (never a token, never a key).
 */
import { WardenError, type WardenErrorCode } from '@warden/core';

/** Stable reason codes of delegation failures. */
export type DelegationReason =
  | 'delegation_invalid'
  | 'delegation_expired'
  | 'delegation_chain_broken'
  | 'delegation_scope_exceeded'
  | 'delegation_depth_exceeded'
  | 'delegation_subdelegation_forbidden'
  | 'delegation_actor_mismatch'
  | 'delegation_subject_mismatch'
  | 'delegation_policy_denied'
  | 'delegation_out_of_scope'
  | 'delegation_revoked';

/** A delegation problem: `ERR_DELEGATION_INVALID` at a check, `ERR_DELEGATION_REFUSED` when minting. */
export class DelegationError extends WardenError {
  readonly reason: DelegationReason;

  constructor(code: Extract<WardenErrorCode, 'ERR_DELEGATION_INVALID' | 'ERR_DELEGATION_REFUSED'>, reason: DelegationReason, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.reason = reason;
  }
}

/** True when `err` is a {@link DelegationError}. */
export function isDelegationError(err: unknown): err is DelegationError {
  return err instanceof DelegationError;
}
