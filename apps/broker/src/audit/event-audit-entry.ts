/**
 * Decision-log entries of events other than checks: a delegation minted or refused, a revocation
 * recorded, a policy set put in force or refused.
 * Built off the request like check entries; neither holds a token (the minted token is never
 * part of the input).
 */
import { randomUUID } from 'node:crypto';
import type { JsonValue } from '@warden/core';
import type { PolicyChange } from '../policy-source/policy-reloader.js';
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

/**
 * A reload after boot (watched directory, git poll or `POST /v1/admin/policies/reload`), as an
 * admin change: `ALLOW` when the set went into force, `DENY` with its errors when it was refused.
 * Its `policyVersion` is the version in force once the reload was decided.
 */
export function policyChangeEvent(c: PolicyChange): AuditEvent {
  const input: Record<string, JsonValue> = { action: c.result === 'ok' ? 'policies-reloaded' : 'policies-refused', version: c.version, previous: c.previous, source: c.source };
  if (c.commit !== undefined) input['commit'] = c.commit;
  return {
    decisionId: randomUUID(),
    kind: 'admin',
    source: 'policy-source',
    policyVersion: c.result === 'ok' ? c.version : c.previous,
    identities: {},
    input,
    at: c.at,
    decision: c.result === 'ok' ? 'ALLOW' : 'DENY',
    reasons: c.result === 'ok' ? [] : [{ code: 'policy_compile_failed', errors: [...c.errors] }],
  };
}
