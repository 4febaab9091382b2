/**
 * Decision-log entries of events other than checks: a delegation minted or refused, a revocation
 * recorded.
 * Built off the request like check entries; neither holds a token (the minted token is never
 * part of the input).
 */
import type { JsonValue } from '@warden/core';
import { maskInput, type AuditEntry, type AuditEventKind, type AuditIdentities, type InputMask } from '@warden/audit';

/** What an event entry is made of. */
export interface AuditEvent {
  /** Unique per event: the delegation id, `revocation:<seq>` (a repeated revocation is the same event). */
  decisionId: string;
  kind: Exclude<AuditEventKind, 'check'>;
  source: string;
  policyVersion: string;
  identities: AuditIdentities;
  input: Record<string, JsonValue>;
  /** Epoch ms. */
  at: number;
  /** `DENY` for a refusal (a delegation Warden would not mint), with its reasons; default `ALLOW`. */
  decision?: 'ALLOW' | 'DENY';
  reasons?: JsonValue[];
}

/** The entry of an event. */
export function eventAuditEntry(e: AuditEvent, mask: InputMask): AuditEntry {
  return { decisionId: e.decisionId, time: new Date(e.at).toISOString(), kind: e.kind, policyVersion: e.policyVersion, source: e.source, decision: e.decision ?? 'ALLOW', identities: e.identities, input: maskInput(e.input, mask), results: [], reasons: e.reasons ?? [] };
}
