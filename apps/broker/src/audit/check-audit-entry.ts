/**
 * Decision-log entries of the check routes. The route hands the writer a record over what it
 * already holds (a closure, or for `/v1/check`, the busiest, a {@link V1CheckEntry}); the writer
 * builds it once, in the event loop's check phase after the route has answered (best-effort) or at
 * once (strict), and keeps only the serialised entry (`/v1/check`'s composes itself, into the
 * writer's ring where it can; the others build an {@link AuditEntry}). INVARIANT: the objects
 * captured are not modified between the answer and that call (the request's inputs belong to it
 * alone).
 */
import type { CheckOutput, JsonValue } from '@warden/core';
import { filterDebug, type PlanOutput } from '@warden/decision';
import { maskChild, maskElement, maskInput, MASKED, MASKED_JSON, type AuditActionEffect, type AuditEntry, type AuditResult, type ComposedEntry, type InputMask, type JsonOut, type MaskNode } from '@warden/audit';
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
/** '000' to '999'. */
const MILLIS = Array.from({ length: 1000 }, (_, k) => String(k).padStart(3, '0'));
/**
 * `new Date(at).toISOString()`, with the text up to the second kept from the last call: the
 * entries of one second share it, and the full conversion cost as much as a tenth of an entry.
 */
export function writeTime(out: JsonOut, at: number): void {
  if (!Number.isInteger(at)) return out.raw(new Date(at).toISOString());
  const second = Math.floor(at / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    isoSecond = second;
  }
  out.raw(isoPrefix);
  out.raw(MILLIS[at - second * 1000] as string);
  out.raw('Z');
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
export function writeMs(out: JsonOut, ms: number): void {
  const us = Math.round(ms * 1000);
  if (us >= 0 && us < 1_000_000) {
    const whole = Math.floor(us / 1000);
    out.raw(WHOLE[whole] as string);
    out.raw(FRACTION[us - whole * 1000] as string);
  } else out.raw(Number.isFinite(us) ? String(us / 1000) : 'null');
}

/** `prefix` and `value` as a JSON string (`prefix`: `,"key":`), when `value` is set. */
function optText(out: JsonOut, prefix: string, value: string | undefined): void {
  if (value === undefined) return;
  out.raw(prefix);
  out.str(value);
}

/** What the input shows for a subject identified by a token: the token masked. */
const TOKEN_MASKED = Object.freeze({ token: MASKED });

/** The sparse input as the caller sent it: `{ actions, resources: [{ kind, id }], context, ... }`, masked. */
function writeInput(out: JsonOut, req: V1CheckRequest, root: MaskNode): void {
  out.raw('{');
  out.member('"actions":', req.actions, maskChild(root, 'actions'));
  const rs = maskChild(root, 'resources');
  if (rs?.masked === true) out.raw(`,"resources":${MASKED_JSON}`);
  else {
    out.raw(',"resources":[');
    for (let i = 0; i < req.resources.length; i++) {
      const r = req.resources[i] as V1CheckRequest['resources'][number];
      const el = rs === undefined ? undefined : maskElement(rs, i);
      if (i > 0) out.raw(',');
      if (el?.masked === true) out.raw(MASKED_JSON);
      else if (el === undefined) {
        out.raw('{"kind":');
        out.str(r.kind);
        out.raw(',"id":');
        out.str(r.id);
        out.raw('}');
      } else {
        out.raw('{');
        out.member('"kind":', r.kind, maskChild(el, 'kind'));
        out.member(',"id":', r.id, maskChild(el, 'id'));
        out.raw('}');
      }
    }
    out.raw(']');
  }
  out.member(',"context":', req.context, maskChild(root, 'context'));
  if (req.requestId !== undefined) out.member(',"requestId":', req.requestId, maskChild(root, 'requestId'));
  // SECURITY: token values never reach the log (masked again whatever the input).
  // As sent: enrichment wrote into the request's own subject and agent afterwards.
  const sentSubject = req.sent !== undefined ? req.sent.subject : req.subject;
  const sentAgent = req.sent !== undefined ? req.sent.agent : req.agent;
  if (req.token !== undefined) out.member(',"subject":', TOKEN_MASKED, maskChild(root, 'subject'));
  else if (sentSubject !== undefined) out.member(',"subject":', sentSubject, maskChild(root, 'subject'));
  if (sentAgent !== undefined) out.member(',"agent":', sentAgent, maskChild(root, 'agent'));
  if (req.delegation !== undefined) out.member(',"delegation":', MASKED, maskChild(root, 'delegation'));
  out.raw('}');
}

/** An attribute path's keys (`principal.attr.ssn`: three), split once per path. */
const pathKeys = new Map<string, readonly string[]>();
function keysOf(path: string): readonly string[] {
  let keys = pathKeys.get(path);
  if (keys === undefined) {
    if (pathKeys.size >= 4096) pathKeys.clear();
    keys = path.split('.');
    pathKeys.set(path, keys);
  }
  return keys;
}

/**
 * The value of one enriched attribute as the log shows it: masked by the same paths as the
 * input, addressed by the attribute's own path (`principal.attr.ssn`, `resource.attr.*`). A path
 * that masks the attribute itself gives {@link MASKED}; one that masks a document above it gives
 * `null` (the attribute is not shown, not even as masked).
 */
function writeAttribute(out: JsonOut, doc: JsonValue, keys: readonly string[], root: MaskNode): void {
  let node: MaskNode | undefined = root;
  for (let k = 0; k < keys.length && node !== undefined; k++) {
    node = maskChild(node, keys[k] as string);
    if (node?.masked === true) return out.raw(k === keys.length - 1 ? MASKED_JSON : 'null');
  }
  out.value(valueAt(doc, keys) ?? null, node);
}

/** `"path":{...provenance,"value":...}` for every attribute the resolvers wrote into one item. */
function writeAttributes(out: JsonOut, doc: JsonValue, provenance: Readonly<Record<string, object>>, root: MaskNode): void {
  let first = true;
  for (const path in provenance) {
    if (!first) out.raw(',');
    first = false;
    out.str(path);
    out.raw(':{');
    if (out.members(provenance[path] as object)) out.raw(',');
    out.raw('"value":');
    writeAttribute(out, doc, keysOf(path), root);
    out.raw('}');
  }
}

/** Whether the resolvers wrote any attribute into an item (what {@link writeAttributes} would write something for). */
function wroteAny(provenance: Readonly<Record<string, object>> | undefined): boolean {
  if (provenance !== undefined) for (const _ in provenance) return true;
  return false;
}

/** Whether every action of one resource was allowed. */
function allAllowed(dec: ItemDecision, actions: readonly string[]): boolean {
  for (let j = 0; j < actions.length; j++) if (dec.effects[actions[j] as string] !== 'ALLOW') return false;
  return true;
}

/** A resource's `kind/id` key, as inside a JSON string. */
function writeResourceKey(out: JsonOut, r: { kind: string; id: string }): void {
  out.strBody(r.kind);
  out.raw('/');
  out.strBody(r.id);
}

/** Whether two resources have the same `kind/id` key. */
function sameKey(a: { kind: string; id: string }, b: { kind: string; id: string }): boolean {
  if (a.kind === b.kind && a.id === b.id) return true;
  return a.kind.length + a.id.length === b.kind.length + b.id.length && `${a.kind}/${a.id}` === `${b.kind}/${b.id}`;
}

/** `"<action>":{effect, policy, rule, scope, agent, delegation}` of one action of one resource. */
function writeAction(out: JsonOut, action: string, allowed: boolean, detail: ActionDetail | undefined): void {
  out.str(action);
  out.raw(allowed ? ':{"effect":"ALLOW"' : ':{"effect":"DENY"');
  if (detail !== undefined) {
    const { subject, agent } = detail;
    optText(out, ',"policy":', subject.policy);
    optText(out, ',"rule":', subject.rule);
    optText(out, ',"scope":', subject.scope);
    if (agent !== undefined) {
      out.raw(agent.effect === 'EFFECT_ALLOW' ? ',"agent":{"effect":"ALLOW"' : ',"agent":{"effect":"DENY"');
      optText(out, ',"policy":', agent.policy);
      optText(out, ',"rule":', agent.rule);
      optText(out, ',"scope":', agent.scope);
      out.raw('}');
    }
    optText(out, ',"delegation":', detail.delegation);
  }
  out.raw('}');
}

/**
 * The entry of a `/v1/check` decision (and of the adapters deciding through it). It composes
 * itself: the threaded writer has it write straight into its ring's bytes (no string, and no
 * object of the entry, made on the answering thread); elsewhere it is written as text. The
 * fields of an {@link AuditEntry} in its order, and the request's own values as `JSON.stringify`
 * writes them, masked as {@link maskedJson} does. Building objects per check had doubled the rate
 * of the answering thread's full garbage collections, which set the check path's p99, and
 * composing text left several KB of strings per check for its young-generation collections
 * (bench/README.md).
 */
export class V1CheckEntry implements ComposedEntry {
  constructor(
    private readonly d: AuditedCheck,
    private readonly mask: InputMask,
    private readonly source: string,
    private readonly at: number,
  ) {}

  compose(out: JsonOut): void {
    const { d, source, at } = this;
    const { req, enriched, decisions, ids } = d;
    const root = this.mask.root;
    const items = enriched.items;
    const actions = req.actions;
    let all = true;
    for (let i = 0; i < items.length && all; i++) all = allAllowed(decisions[i] as ItemDecision, actions);
    const chain = ids.delegation !== undefined && !('code' in ids.delegation) && !isExternal(ids.delegation) ? ids.delegation : undefined;
    const agent = ids.agent !== undefined && !('code' in ids.agent) ? ids.agent.id : req.agent?.id;
    let first: EnrichedInputs['items'][number] | undefined;
    for (let i = 0; i < items.length && first === undefined; i++) if ((items[i] as EnrichedInputs['items'][number]).denied === undefined) first = items[i];
    const found = first?.input.principal.id ?? req.subject?.id ?? chain?.subject;
    const subject = found !== undefined && found !== '' ? found : undefined;

    // The fields line (packEntry's), then the entry.
    out.raw('[');
    out.str(d.decisionId);
    out.raw(',"');
    writeTime(out, at);
    out.raw('","check",');
    out.str(d.policyVersion);
    out.raw(',');
    out.str(source);
    out.raw(all ? ',"ALLOW",' : ',"DENY",');
    if (subject === undefined) out.raw('null');
    else out.str(subject);
    out.raw(',');
    if (agent === undefined) out.raw('null');
    else out.str(agent);
    out.raw(',[');
    for (let i = 0; i < items.length; i++) {
      out.raw(i === 0 ? '"' : ',"');
      writeResourceKey(out, (items[i] as EnrichedInputs['items'][number]).input.resource);
      out.raw('"');
    }
    out.raw(']]\n{"decisionId":');
    out.str(d.decisionId);
    out.raw(',"time":"');
    writeTime(out, at);
    out.raw('","kind":"check","policyVersion":');
    out.str(d.policyVersion);
    out.raw(',"source":');
    out.str(source);
    out.raw(all ? ',"decision":"ALLOW","identities":{' : ',"decision":"DENY","identities":{');
    let any = false;
    if (subject !== undefined) {
      out.raw('"subject":');
      out.str(subject);
      any = true;
    }
    if (agent !== undefined) {
      out.raw(any ? ',"agent":' : '"agent":');
      out.str(agent);
      any = true;
    }
    if (chain !== undefined) {
      out.raw(any ? ',"delegationChain":[' : '"delegationChain":[');
      for (let h = 0; h < chain.hops.length; h++) {
        if (h > 0) out.raw(',');
        out.value((chain.hops[h] as { id: unknown }).id, undefined);
      }
      out.raw(']');
      any = true;
    }
    if (req.gateway !== undefined) {
      out.raw(any ? ',"gateway":' : '"gateway":');
      out.str(req.gateway);
    }
    out.raw('},"input":');
    writeInput(out, req, root);

    out.raw(',"results":[');
    for (let i = 0; i < items.length; i++) {
      const { kind, id } = (items[i] as EnrichedInputs['items'][number]).input.resource;
      const dec = decisions[i] as ItemDecision;
      const allowed = allAllowed(dec, actions);
      out.raw(i === 0 ? '{"resource":{"kind":' : ',{"resource":{"kind":');
      out.str(kind);
      out.raw(',"id":');
      out.str(id);
      out.raw(allowed ? '},"decision":"ALLOW","actions":{' : '},"decision":"DENY","actions":{');
      for (let j = 0; j < actions.length; j++) {
        const a = actions[j] as string;
        if (j > 0) out.raw(',');
        writeAction(out, a, dec.effects[a] === 'ALLOW', dec.details?.[a]);
      }
      if (dec.outputs.length > 0) {
        out.raw('},"outputs":');
        out.value(dec.outputs, undefined);
        out.raw('}');
      } else out.raw('}}');
    }
    out.raw('],"reasons":[');
    let firstReason = true;
    for (let i = 0; i < items.length; i++) {
      for (const reason of (decisions[i] as ItemDecision).reasons) {
        if (!firstReason) out.raw(',');
        firstReason = false;
        out.value(reason, undefined);
      }
    }
    out.raw(']');

    // Attributes, one per resource: a resource named twice keeps its first place and its last attributes.
    const done = enriched.outcome?.items;
    if (done !== undefined) {
      let opened = false;
      for (let i = 0; i < items.length; i++) {
        if (!wroteAny(done[i]?.provenance)) continue;
        const resource = (items[i] as EnrichedInputs['items'][number]).input.resource;
        let earlier = false;
        for (let j = 0; j < i && !earlier; j++) earlier = wroteAny(done[j]?.provenance) && sameKey((items[j] as EnrichedInputs['items'][number]).input.resource, resource);
        if (earlier) continue;
        let last = i;
        for (let k = i + 1; k < items.length; k++) if (wroteAny(done[k]?.provenance) && sameKey((items[k] as EnrichedInputs['items'][number]).input.resource, resource)) last = k;
        out.raw(opened ? ',"' : ',"attributes":{"');
        opened = true;
        writeResourceKey(out, resource);
        out.raw('":{');
        const item = done[last] as NonNullable<typeof done>[number];
        writeAttributes(out, item.input as unknown as JsonValue, item.provenance, root);
        out.raw('}');
      }
      if (opened) out.raw('}');
    }
    optText(out, ',"requestId":', req.requestId);
    const t = d.stamps;
    if (t.evaluated > 0) {
      out.raw(',"timings":{"parseMs":');
      writeMs(out, t.parsed - t.start);
      out.raw(',"enrichMs":');
      writeMs(out, t.enriched - t.parsed);
      out.raw(',"evaluateMs":');
      writeMs(out, t.evaluated - t.enriched);
      out.raw(',"totalMs":');
      writeMs(out, t.evaluated - t.start);
      out.raw('}');
    }
    out.raw('}');
  }
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
