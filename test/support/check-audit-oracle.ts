/**
 * The `/v1/check` decision-log entry built as objects: the code that composed it until the
 * entry was composed as text (now `V1CheckEntry`), kept as the reference that text is
 * checked against. `JSON.parse` of the text must equal `JSON.stringify` of this, for any request.
 */
import type { JsonValue } from '@warden/core';
import { maskInput, MASKED, type AuditActionEffect, type AuditEntry, type AuditResult, type InputMask } from '@warden/audit';
import { valueAt, type AuditedCheck } from '../../apps/broker/src/audit/v1-check-entry.js';
import { isExternal, type ItemDecision } from '../../apps/broker/src/delegation/identity-decision.js';
import type { EnrichedInputs } from '../../apps/broker/src/enrichment/enriched-check.js';

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

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
export function v1CheckAuditObject(d: AuditedCheck, mask: InputMask, source: string, at: number): AuditEntry {
  const { req, enriched, decisions, ids } = d;
  // As sent: enrichment wrote into the request's own resources afterwards.
  const sentResources = req.sent !== undefined ? req.sent.resources : req.resources;
  const resources = sentResources.map((r) => ({ kind: r.kind, id: r.id, attr: r.attr, ...(r.policyVersion !== undefined ? { policyVersion: r.policyVersion } : {}), ...(r.scope !== undefined ? { scope: r.scope } : {}) }));
  const input: Record<string, JsonValue> = { actions: req.actions, resources: resources as unknown as JsonValue, context: req.context as Record<string, JsonValue> };
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
