/**
 * Decision-log entries of the check routes. The route hands the writer a closure over what it
 * already holds; the writer calls it once, in the event loop's check phase after the route has
 * answered (best-effort) or at once (strict), and keeps only the serialised entry (`/v1/check`,
 * the busiest, composes it as text at once; the others build an {@link AuditEntry}). INVARIANT: the
 * objects captured are not modified between the answer and that call (the request's inputs
 * belong to it alone).
 */
import type { CheckOutput, JsonValue } from '@warden/core';
import { filterDebug, type PlanOutput } from '@warden/decision';
import { jsonString as q, maskChild, maskedJson, maskInput, MASKED, MASKED_JSON, type AuditActionEffect, type AuditEntry, type AuditResult, type InputMask, type MaskNode, type SerializedEntry } from '@warden/audit';
import { isExternal, type ActionDetail, type Identities, type ItemDecision } from '../delegation/identity-decision.js';
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

/** The value at a dotted path of a document (undefined when absent). */
export function valueAt(doc: JsonValue, path: readonly string[]): JsonValue | undefined {
  let v: JsonValue | undefined = doc;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, JsonValue>)[key];
  }
  return v;
}

let isoSecond = Number.NaN;
let isoPrefix = '';
/**
 * `new Date(at).toISOString()`, with the text up to the second kept from the last call: the
 * entries of one second share it, and the full conversion cost as much as a tenth of an entry.
 */
export function isoTime(at: number): string {
  if (!Number.isInteger(at)) return new Date(at).toISOString();
  const second = Math.floor(at / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    isoSecond = second;
  }
  const ms = at - second * 1000;
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
}
/** The text of `k` (0-999), and after the point of `k / 1000`: '' for 0, '.5' for 500, '.012' for 12. */
const WHOLE = Array.from({ length: 1000 }, (_, k) => String(k));
const FRACTION = Array.from({ length: 1000 }, (_, k) => (k === 0 ? '' : String(k / 1000).slice(1)));

/**
 * `ms` rounded to the µs, as JSON writes it (`String(Math.round(ms * 1000) / 1000)`; non-finite:
 * `null`), put together from texts made once. Converting each fresh double itself keeps its text in
 * V8's number-string cache, which outlives young-generation collections: under load that was
 * half of what the log's entries left for the old generation's collections (bench/README.md).
 */
export function msJson(ms: number): string {
  const us = Math.round(ms * 1000);
  if (us >= 0 && us < 1_000_000) {
    const whole = Math.floor(us / 1000);
    return (WHOLE[whole] as string) + (FRACTION[us - whole * 1000] as string);
  }
  return Number.isFinite(us) ? String(us / 1000) : 'null';
}
/** `,"key":"value"` when `value` is set. */
const optText = (key: string, value: string | undefined): string => (value === undefined ? '' : `,"${key}":${q(value)}`);

/** `,"key":<value masked under node>` (`key` a plain name), or '' when JSON would drop it. */
function member(node: MaskNode, key: string, value: unknown): string {
  const v = maskedJson(value, maskChild(node, key));
  return v === undefined ? '' : `,"${key}":${v}`;
}

/** The sparse input as the caller sent it: `{ actions, resources: [{ kind, id }], context, ... }`, masked. */
function inputJson(req: V1CheckRequest, root: MaskNode): string {
  let s = '{' + member(root, 'actions', req.actions).slice(1);
  const rs = maskChild(root, 'resources');
  if (rs?.masked === true) s += `,"resources":${MASKED_JSON}`;
  else {
    s += ',"resources":[';
    for (let i = 0; i < req.resources.length; i++) {
      const r = req.resources[i] as V1CheckRequest['resources'][number];
      const el = maskChild(rs, String(i));
      if (i > 0) s += ',';
      if (el === undefined) s += `{"kind":${q(r.kind)},"id":${q(r.id)}}`;
      else s += el.masked ? MASKED_JSON : '{' + member(el, 'kind', r.kind).slice(1) + member(el, 'id', r.id) + '}';
    }
    s += ']';
  }
  s += member(root, 'context', req.context);
  if (req.requestId !== undefined) s += member(root, 'requestId', req.requestId);
  // SECURITY: token values never reach the log (masked again whatever the input).
  // As sent: enrichment wrote into the request's own subject and agent afterwards.
  const sentSubject = req.sent !== undefined ? req.sent.subject : req.subject;
  const sentAgent = req.sent !== undefined ? req.sent.agent : req.agent;
  if (req.token !== undefined) s += member(root, 'subject', { token: MASKED });
  else if (sentSubject !== undefined) s += member(root, 'subject', sentSubject);
  if (sentAgent !== undefined) s += member(root, 'agent', sentAgent);
  if (req.delegation !== undefined) s += member(root, 'delegation', MASKED);
  return s + '}';
}

/**
 * The value of one enriched attribute as the log shows it: masked by the same paths as the
 * input, addressed by the attribute's own path (`principal.attr.ssn`, `resource.attr.*`). A path
 * that masks the attribute itself gives {@link MASKED}; one that masks a document above it gives
 * `null` (the attribute is not shown, not even as masked).
 */
function attributeJson(doc: JsonValue, keys: readonly string[], root: MaskNode): string {
  let node: MaskNode | undefined = root;
  for (let k = 0; k < keys.length && node !== undefined; k++) {
    node = maskChild(node, keys[k] as string);
    if (node?.masked === true) return k === keys.length - 1 ? MASKED_JSON : 'null';
  }
  return maskedJson(valueAt(doc, keys) ?? null, node) as string;
}

/** `"path":{...provenance,"value":...}` for every attribute the resolvers wrote into one item. */
function attributesJson(doc: JsonValue, provenance: Readonly<Record<string, object>>, root: MaskNode): string {
  let s = '';
  for (const path in provenance) {
    const p = JSON.stringify(provenance[path]);
    s += `${s === '' ? '' : ','}${q(path)}:${p.slice(0, -1)}${p.length > 2 ? ',' : ''}"value":${attributeJson(doc, path.split('.'), root)}}`;
  }
  return s;
}

/** `"<action>":{effect, policy, rule, scope, agent, delegation}` of one action of one resource. */
function actionJson(action: string, effect: 'ALLOW' | 'DENY', detail: ActionDetail | undefined): string {
  let s = `${q(action)}:{"effect":"${effect}"`;
  if (detail !== undefined) {
    const { subject, agent } = detail;
    s += optText('policy', subject.policy) + optText('rule', subject.rule) + optText('scope', subject.scope);
    if (agent !== undefined) s += `,"agent":{"effect":"${agent.effect === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY'}"${optText('policy', agent.policy)}${optText('rule', agent.rule)}${optText('scope', agent.scope)}}`;
    s += optText('delegation', detail.delegation);
  }
  return s + '}';
}

/**
 * The entry of a `/v1/check` decision (and of the adapters deciding through it), composed
 * straight to its JSON text: the fields of an {@link AuditEntry} in its order, and the request's
 * own values through `JSON.stringify` (masked with {@link maskedJson}). No entry object is built:
 * under load, building one per check doubled the rate of the answering thread's full garbage
 * collections, which set the check path's p99 (bench/README.md).
 */
export function v1CheckAuditJson(d: AuditedCheck, mask: InputMask, source: string, at: number): SerializedEntry {
  const { req, enriched, decisions, ids } = d;
  const root = mask.root;
  const items = enriched.items;
  const actions = req.actions;
  const resources = new Array<string>(items.length);
  let results = '';
  let reasons = '';
  let attributes: Map<string, string> | undefined;
  let all = true;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as EnrichedInputs['items'][number];
    const dec = decisions[i] as ItemDecision;
    const { kind, id } = item.input.resource;
    const key = `${kind}/${id}`;
    resources[i] = key;
    let acts = '';
    let allowed = true;
    for (let j = 0; j < actions.length; j++) {
      const a = actions[j] as string;
      const effect = dec.effects[a] === 'ALLOW' ? 'ALLOW' : 'DENY';
      if (effect !== 'ALLOW') allowed = false;
      acts += (j === 0 ? '' : ',') + actionJson(a, effect, dec.details?.[a]);
    }
    all &&= allowed;
    results += `${i === 0 ? '' : ','}{"resource":{"kind":${q(kind)},"id":${q(id)}},"decision":"${allowed ? 'ALLOW' : 'DENY'}","actions":{${acts}}`;
    results += dec.outputs.length > 0 ? `,"outputs":${JSON.stringify(dec.outputs)}}` : '}';
    for (const reason of dec.reasons) reasons += (reasons === '' ? '' : ',') + JSON.stringify(reason);
    const done = enriched.outcome?.items[i];
    if (done !== undefined) {
      const written = attributesJson(done.input as unknown as JsonValue, done.provenance, root);
      // One per resource: a resource named twice keeps its first place and its last attributes.
      if (written !== '') (attributes ??= new Map()).set(key, written);
    }
  }
  const chain = ids.delegation !== undefined && !('code' in ids.delegation) && !isExternal(ids.delegation) ? ids.delegation : undefined;
  const agent = ids.agent !== undefined && !('code' in ids.agent) ? ids.agent.id : req.agent?.id;
  const found = items.find((it) => it.denied === undefined)?.input.principal.id ?? req.subject?.id ?? chain?.subject;
  const subject = found !== undefined && found !== '' ? found : undefined;
  let who = optText('subject', subject) + optText('agent', agent);
  if (chain !== undefined) who += `,"delegationChain":${JSON.stringify(chain.hops.map((h) => h.id))}`;
  who += optText('gateway', req.gateway);
  const time = isoTime(at);
  const decision = all ? 'ALLOW' : 'DENY';
  let json = `{"decisionId":${q(d.decisionId)},"time":"${time}","kind":"check","policyVersion":${q(d.policyVersion)},"source":${q(source)},"decision":"${decision}"`;
  json += `,"identities":{${who.slice(1)}},"input":${inputJson(req, root)},"results":[${results}],"reasons":[${reasons}]`;
  if (attributes !== undefined) {
    let s = '';
    for (const [key, written] of attributes) s += `${s === '' ? '' : ','}${q(key)}:{${written}}`;
    json += `,"attributes":{${s}}`;
  }
  json += optText('requestId', req.requestId);
  if (d.stamps.evaluated > 0) {
    const t = d.stamps;
    json += `,"timings":{"parseMs":${msJson(t.parsed - t.start)},"enrichMs":${msJson(t.enriched - t.parsed)},"evaluateMs":${msJson(t.evaluated - t.enriched)},"totalMs":${msJson(t.evaluated - t.start)}}`;
  }
  json += '}';
  return { decisionId: d.decisionId, time, kind: 'check', policyVersion: d.policyVersion, source, decision, subject, agent, resources, json };
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
