/**
 * Decision-log entries of the check routes. The route hands the writer a closure over what it
 * already holds; the writer calls it once, in the event loop's check phase after the route has
 * answered (best-effort) or at once (strict), and keeps only the serialised entry. INVARIANT: the
 * objects captured are not modified between the answer and that call (the request's inputs
 * belong to it alone).
 */
import type { CheckOutput, JsonValue } from '@warden/core';
import { filterDebug, type PlanOutput } from '@warden/decision';
import { maskInput, MASKED, type AuditActionEffect, type AuditEntry, type AuditResult, type InputMask } from '@warden/audit';
import { isExternal, type Identities, type ItemDecision } from '../delegation/identity-decision.js';
import type { EnrichedInputs } from '../enrichment/enriched-check.js';
import type { PlanResourcesRequest } from '../http/plan-resources.request.js';
import type { CheckRequest } from '../http/request-common.js';
import type { V1CheckRequest } from '../http/v1-check.request.js';
import type { DiscoveryRequest, DiscoveryResult } from '../plan/tool-discovery.js';

/** What a decided `/v1/check` holds that its entry needs (the route's `DecidedCheck`). */
export interface AuditedCheck {
  readonly req: V1CheckRequest;
  readonly decisionId: string;
  /** The version of the policy set that decided. */
  readonly policyVersion: string;
  readonly enriched: EnrichedInputs;
  readonly decisions: ItemDecision[];
  readonly ids: Identities;
  readonly stamps: { start: number; parsed: number; enriched: number; evaluated: number };
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/** The value at a dotted path of a document (undefined when absent). */
function valueAt(doc: JsonValue, path: readonly string[]): JsonValue | undefined {
  let v: JsonValue | undefined = doc;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, JsonValue>)[key];
  }
  return v;
}

/**
 * What the resolvers wrote into one item: attribute path → its value and provenance (resolver,
 * duration, cache). Values go through the same masks as the input, addressed by the attribute's
 * own path (`principal.attr.ssn`, `resource.attr.*`): the value is placed at its path in an
 * otherwise empty document, masked, and read back.
 */
function enrichedAttributes(doc: JsonValue, provenance: Readonly<Record<string, object>>, mask: InputMask): JsonValue | undefined {
  let out: Record<string, JsonValue> | undefined;
  for (const [path, p] of Object.entries(provenance)) {
    const keys = path.split('.');
    const value = valueAt(doc, keys);
    let wrapped: JsonValue = value ?? null;
    for (let k = keys.length - 1; k >= 0; k--) wrapped = { [keys[k] as string]: wrapped };
    const masked = valueAt(maskInput(wrapped as Record<string, JsonValue>, mask), keys) ?? null;
    (out ??= {})[path] = { ...(p as Record<string, JsonValue>), value: masked };
  }
  return out;
}

/** The entry of a `/v1/check` decision (and of the adapters deciding through it). */
export function v1CheckAuditEntry(d: AuditedCheck, mask: InputMask, source: string, at: number): AuditEntry {
  const { req, enriched, decisions, ids } = d;
  const input: Record<string, JsonValue> = { actions: req.actions, resources: req.resources.map((r) => ({ kind: r.kind, id: r.id })), context: req.context as Record<string, JsonValue> };
  if (req.requestId !== undefined) input['requestId'] = req.requestId;
  // SECURITY: token values never reach the log (masked again by `maskInput` whatever the input).
  // As sent: enrichment wrote into the request's own subject and agent afterwards.
  const sentSubject = req.sent !== undefined ? req.sent.subject : req.subject;
  const sentAgent = req.sent !== undefined ? req.sent.agent : req.agent;
  if (req.token !== undefined) input['subject'] = { token: MASKED };
  else if (sentSubject !== undefined) input['subject'] = sentSubject as unknown as JsonValue;
  if (sentAgent !== undefined) input['agent'] = sentAgent as unknown as JsonValue;
  if (req.delegation !== undefined) input['delegation'] = MASKED;
  const results: AuditResult[] = [];
  const reasons: JsonValue[] = [];
  const attributes: Record<string, JsonValue> = {};
  let all = true;
  const items = enriched.items;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as EnrichedInputs['items'][number];
    const dec = decisions[i] as ItemDecision;
    const resource = { kind: item.input.resource.kind, id: item.input.resource.id };
    const actions: Record<string, AuditActionEffect> = {};
    let allowed = true;
    for (const a of req.actions) {
      const effect = dec.effects[a] === 'ALLOW' ? 'ALLOW' : 'DENY';
      if (effect !== 'ALLOW') allowed = false;
      const detail = dec.details?.[a];
      const e: AuditActionEffect = { effect };
      if (detail !== undefined) {
        e.policy = detail.subject.policy;
        if (detail.subject.rule !== undefined) e.rule = detail.subject.rule;
        if (detail.subject.scope !== undefined) e.scope = detail.subject.scope;
        const g = detail.agent;
        if (g !== undefined) {
          const effect = g.effect === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY';
          e.agent = { effect, policy: g.policy, ...(g.rule !== undefined ? { rule: g.rule } : {}), ...(g.scope !== undefined ? { scope: g.scope } : {}) };
        }
        if (detail.delegation !== undefined) e.delegation = detail.delegation;
      }
      actions[a] = e;
    }
    all &&= allowed;
    const r: AuditResult = { resource, decision: allowed ? 'ALLOW' : 'DENY', actions };
    if (dec.outputs.length > 0) r.outputs = dec.outputs as unknown as JsonValue[];
    results.push(r);
    for (const reason of dec.reasons) reasons.push(reason as unknown as JsonValue);
    const done = enriched.outcome?.items[i];
    if (done !== undefined) {
      const written = enrichedAttributes(done.input as unknown as JsonValue, done.provenance, mask);
      if (written !== undefined) attributes[`${resource.kind}/${resource.id}`] = written;
    }
  }
  const chain = ids.delegation !== undefined && !('code' in ids.delegation) && !isExternal(ids.delegation) ? ids.delegation : undefined;
  const agent = ids.agent !== undefined && !('code' in ids.agent) ? ids.agent.id : req.agent?.id;
  const subject = items.find((it) => it.denied === undefined)?.input.principal.id ?? req.subject?.id ?? chain?.subject;
  const entry: AuditEntry = {
    decisionId: d.decisionId,
    time: new Date(at).toISOString(),
    kind: 'check',
    policyVersion: d.policyVersion,
    source,
    decision: all ? 'ALLOW' : 'DENY',
    identities: {
      ...(subject !== undefined && subject !== '' ? { subject } : {}),
      ...(agent !== undefined ? { agent } : {}),
      ...(chain !== undefined ? { delegationChain: chain.hops.map((h) => h.id) } : {}),
      ...(req.gateway !== undefined ? { gateway: req.gateway } : {}),
    },
    input: maskInput(input, mask),
    results,
    reasons,
  };
  if (Object.keys(attributes).length > 0) entry.attributes = attributes;
  if (req.requestId !== undefined) entry.requestId = req.requestId;
  if (d.stamps.evaluated > 0) {
    const t = d.stamps;
    entry.timings = { parseMs: round(t.parsed - t.start), enrichMs: round(t.enriched - t.parsed), evaluateMs: round(t.evaluated - t.enriched), totalMs: round(t.evaluated - t.start) };
  }
  return entry;
}

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
