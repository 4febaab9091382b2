/**
 * Decision-log entries of the check routes. The route hands the writer a record over what it
 * already holds (a closure, or for `/v1/check`, the busiest, a `V1CheckEntry` of
 * v1-check-entry.ts); the writer
 * builds it once, in the event loop's check phase after the route has answered (best-effort) or at
 * once (strict), and keeps only the serialised entry (`/v1/check`'s composes itself, into the
 * writer's ring where it can; the others build an {@link AuditEntry}). INVARIANT: the objects
 * captured are not modified between the answer and that call (the request's inputs belong to it
 * alone).
 */
import type { CheckOutput, JsonValue } from '@warden/core';
import { filterDebug, type PlanOutput } from '@warden/decision';
import { maskInput, MASKED, type AuditActionEffect, type AuditEntry, type AuditResult, type InputMask } from '@warden/audit';
import type { PlanResourcesRequest } from '../http/plan-resources.request.js';
import type { CheckRequest } from '../http/request-common.js';
import type { DiscoveryRequest, DiscoveryResult } from '../plan/tool-discovery.js';

/**
 * The entry of a decision of the Cerbos and AuthZEN check APIs, keyed by the id it answered with
 * (`cerbosCallId`, or the `x-warden-decision-id` header of the APIs whose body has no id).
 */
export function cerbosCheckAuditEntry(callId: string, source: string, req: CheckRequest, outputs: readonly CheckOutput[], policyVersion: string, mask: InputMask, at: number): AuditEntry {
  const first = req.inputs[0];
  const principal = first?.principal;
  const input: Record<string, JsonValue> = {
    principal: principal === undefined ? null : { id: principal.id, roles: principal.roles, attr: principal.attr },
    resources: req.inputs.map((i) => ({ kind: i.resource.kind, id: i.resource.id, attr: i.resource.attr, actions: i.actions })),
  };
  if (req.jwt !== undefined || req.jwts !== undefined) input['auxData'] = { jwt: MASKED };
  const results: AuditResult[] = [];
  let all = true;
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i] as CheckOutput;
    const src = req.inputs[i];
    const actions: Record<string, AuditActionEffect> = {};
    let allowed = true;
    for (const [a, e] of Object.entries(o.actions)) {
      const effect = e.effect === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY';
      if (effect !== 'ALLOW') allowed = false;
      actions[a] = { effect, policy: e.policy, ...(e.rule !== undefined ? { rule: e.rule } : {}), ...(e.scope !== undefined ? { scope: e.scope } : {}) };
    }
    all &&= allowed;
    const r: AuditResult = { resource: { kind: src?.resource.kind ?? '', id: o.resourceId }, decision: allowed ? 'ALLOW' : 'DENY', actions };
    if (o.outputs.length > 0) r.outputs = o.outputs as unknown as JsonValue[];
    results.push(r);
  }
  const entry: AuditEntry = {
    decisionId: callId,
    time: new Date(at).toISOString(),
    kind: 'check',
    policyVersion,
    source,
    decision: all ? 'ALLOW' : 'DENY',
    identities: principal !== undefined ? { subject: principal.id } : {},
    input: maskInput(input, mask),
    results,
    reasons: [],
  };
  if (req.requestId !== undefined) entry.requestId = req.requestId;
  return entry;
}

/**
 * The entry of a `/v1/plan` answer (kind `plan`, keyed by its `planId`): the allowed candidates
 * as `ALLOW` results, the conditional ones (with their condition text) and the denied count by
 * reason as reasons. `decision` is `ALLOW` when any candidate was allowed or conditional.
 */
export function planAuditEntry(req: DiscoveryRequest, result: DiscoveryResult, policyVersion: string, mask: InputMask, at: number): AuditEntry {
  const input: Record<string, JsonValue> = { kind: req.kind, action: req.action, context: req.context as Record<string, JsonValue>, limit: req.limit };
  if (req.candidates !== undefined) input['candidates'] = req.candidates.map((c) => c.id);
  if (req.catalog !== undefined) input['catalog'] = req.catalog;
  if (req.after !== undefined) input['after'] = req.after;
  // SECURITY: token values never reach the log.
  if (req.token !== undefined) input['subject'] = { token: MASKED };
  else if (req.subject !== undefined) input['subject'] = req.subject as unknown as JsonValue;
  if (req.agent !== undefined) input['agent'] = req.agent as unknown as JsonValue;
  if (req.delegation !== undefined) input['delegation'] = MASKED;
  const results: AuditResult[] = result.allowed.map((id) => ({ resource: { kind: req.kind, id }, decision: 'ALLOW', actions: { [req.action]: { effect: 'ALLOW' } } }));
  const reasons: JsonValue[] = [];
  if (result.conditional.length > 0) reasons.push({ code: 'conditional', candidates: result.conditional.map((c) => ({ id: c.id, condition: c.text })) });
  if (result.denied.count > 0) reasons.push({ code: 'denied', count: result.denied.count, reasons: result.denied.reasons });
  const subject = req.subject?.id;
  const entry: AuditEntry = {
    decisionId: result.planId,
    time: new Date(at).toISOString(),
    kind: 'plan',
    policyVersion,
    source: '/v1/plan',
    decision: result.allowed.length > 0 || result.conditional.length > 0 ? 'ALLOW' : 'DENY',
    identities: { ...(subject !== undefined ? { subject } : {}), ...(req.agent !== undefined ? { agent: req.agent.id } : {}) },
    input: maskInput(input, mask),
    results,
    reasons,
  };
  if (req.requestId !== undefined) entry.requestId = req.requestId;
  return entry;
}

/**
 * The entry of a Cerbos `PlanResources` answer (kind `plan`, keyed by its `cerbosCallId`): the
 * filter as Cerbos prints it (`filterDebug`) in a reason; `DENY` only when it is always denied.
 */
export function cerbosPlanAuditEntry(callId: string, source: string, req: PlanResourcesRequest, output: PlanOutput, policyVersion: string, mask: InputMask, at: number): AuditEntry {
  const { principal, resource, actions } = req.input;
  const input: Record<string, JsonValue> = { principal: { id: principal.id, roles: principal.roles, attr: principal.attr }, resource: { kind: resource.kind, attr: (resource.attr ?? {}) as Record<string, JsonValue> }, actions: [...actions] };
  if (req.jwt !== undefined || req.jwts !== undefined) input['auxData'] = { jwt: MASKED };
  const entry: AuditEntry = {
    decisionId: callId,
    time: new Date(at).toISOString(),
    kind: 'plan',
    policyVersion,
    source,
    decision: output.filter.kind === 'KIND_ALWAYS_DENIED' ? 'DENY' : 'ALLOW',
    identities: { subject: principal.id },
    input: maskInput(input, mask),
    results: [],
    reasons: [{ code: 'plan', filter: output.filter.kind, condition: output.policyMatch ? filterDebug(output.filter) : 'NO_MATCH', matchedScopes: output.matchedScopes as Record<string, JsonValue> }],
  };
  if (req.requestId !== undefined) entry.requestId = req.requestId;
  return entry;
}
