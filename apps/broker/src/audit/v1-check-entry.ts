/**
 * The decision-log entry of `/v1/check` (and of the adapters deciding through it), its own
 * module so that the writer's thread, which composes the captured ones
 * ({@link decodeCapturedCheck}), loads only this, the request's parsers and `@warden/audit` (with
 * the engine and the resolvers as well, its start took 250 ms more on the slow host of
 * 2026-11-30, and a strict check waits for it). INVARIANT: the objects captured are not modified
 * between the answer and the call that builds the entry (the request's inputs belong to it alone).
 */
import type { ActionEffect, JsonValue, OutputEntry } from '@warden/core';
import { BytesJsonOut, CAPTURED, CAPTURE_NO_ROOM, CAPTURE_NONE, createInputMask, isPlainObject, maskChild, maskElement, MASKED, MASKED_JSON, type CaptureDecoder, type ComposedEntry, type InputMask, type JsonOut, type MaskNode } from '@warden/audit';
import type { ActionDetail, Identities, ItemDecision } from '../delegation/identity-decision.js';
import type { EnrichedInputs, Reason } from '../enrichment/enriched-check.js';
import { parseJsonBody } from '../http/json-body.parser.js';
import { parseV1CheckRequest, type V1CheckRequest, type V1Resource } from '../http/v1-check.request.js';

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

/** What a resource of the input holds after its kind and id (its attributes, policy version and scope as sent), masked by `el`. */
function writeResourceRest(out: JsonOut, r: V1Resource, el: MaskNode | undefined): void {
  out.member(',"attr":', r.attr, el === undefined ? undefined : maskChild(el, 'attr'));
  if (r.policyVersion !== undefined) out.member(',"policyVersion":', r.policyVersion, el === undefined ? undefined : maskChild(el, 'policyVersion'));
  if (r.scope !== undefined) out.member(',"scope":', r.scope, el === undefined ? undefined : maskChild(el, 'scope'));
}

/**
 * The sparse input as the caller sent it: `{ actions, resources: [{ kind, id, attr, policyVersion?,
 * scope? }], context, ... }`, masked. The resources as sent (`req.sent`): enrichment writes the
 * resolved attributes into the request's own.
 */
function writeInput(out: JsonOut, req: V1CheckRequest, root: MaskNode): void {
  out.raw('{');
  out.member('"actions":', req.actions, maskChild(root, 'actions'));
  const rs = maskChild(root, 'resources');
  if (rs?.masked === true) out.raw(`,"resources":${MASKED_JSON}`);
  else {
    const resources = req.sent !== undefined ? req.sent.resources : req.resources;
    out.raw(',"resources":[');
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i] as V1Resource;
      const el = rs === undefined ? undefined : maskElement(rs, i);
      if (i > 0) out.raw(',');
      if (el?.masked === true) out.raw(MASKED_JSON);
      else if (el === undefined) {
        out.raw('{"kind":');
        out.str(r.kind);
        out.raw(',"id":');
        out.str(r.id);
        writeResourceRest(out, r, undefined);
        out.raw('}');
      } else {
        out.raw('{');
        out.member('"kind":', r.kind, maskChild(el, 'kind'));
        out.member(',"id":', r.id, maskChild(el, 'id'));
        writeResourceRest(out, r, el);
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
 * What an entry shows of who acted, derived from the decision: the subject and agent ids of its
 * fields line and identities, and the delegation chain.
 */
interface EntryIdentities {
  readonly subject: string | undefined;
  readonly agent: string | undefined;
  readonly chain: { readonly hops: readonly { readonly id: unknown }[] } | undefined;
}

function identitiesOf(d: AuditedCheck): EntryIdentities {
  const { req, ids } = d;
  const items = d.enriched.items;
  // A chain: neither a reason nor an external actor token (`isExternal` of identity-decision.ts, which this module does not load).
  const chain = ids.delegation !== undefined && !('code' in ids.delegation) && !('actors' in ids.delegation) ? ids.delegation : undefined;
  const agent = ids.agent !== undefined && !('code' in ids.agent) ? ids.agent.id : req.agent?.id;
  let first: EnrichedInputs['items'][number] | undefined;
  for (let i = 0; i < items.length && first === undefined; i++) if ((items[i] as EnrichedInputs['items'][number]).denied === undefined) first = items[i];
  const found = first?.input.principal.id ?? req.subject?.id ?? chain?.subject;
  return { subject: found !== undefined && found !== '' ? found : undefined, agent, chain };
}

/**
 * Writes the entry (the fields line, packEntry's, then the JSON) of the decision `d`, whose
 * identities are `who`. Reads of `d`: the request's input as sent, each item's resource, the
 * decisions, the enrichment's outcome (attributes) and the stamps.
 */
function writeEntry(out: JsonOut, d: AuditedCheck, who: EntryIdentities, root: MaskNode, source: string, at: number): void {
  const { req, enriched, decisions } = d;
  const { subject, agent, chain } = who;
  const items = enriched.items;
  const actions = req.actions;
  let all = true;
  for (let i = 0; i < items.length && all; i++) all = allAllowed(decisions[i] as ItemDecision, actions);

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

/** Whether the resolvers wrote any attribute into any item of `e` (the entry then has `attributes`). */
function wroteAnyItem(e: EnrichedInputs): boolean {
  const done = e.outcome?.items;
  if (done !== undefined) for (let i = 0; i < done.length; i++) if (wroteAny(done[i]?.provenance)) return true;
  return false;
}

/**
 * The largest body captured (bytes). The entry holds only part of a body (not the resources'
 * attributes, say): a larger one, copied into the ring and parsed again by the writer's thread,
 * would cost both more than composing its entry.
 */
export const CAPTURE_MAX_BODY = 16 * 1024;

/**
 * The entry of a `/v1/check` decision (and of the adapters deciding through it). It composes
 * itself: the threaded writer has it write straight into its ring's bytes (no string, and no
 * object of the entry, made on the answering thread); elsewhere it is written as text. The
 * fields of an {@link AuditEntry} in its order, and the request's own values as `JSON.stringify`
 * writes them, masked as {@link maskedJson} does. Building objects per check had doubled the rate
 * of the answering thread's full garbage collections, which set the check path's p99, and
 * composing text left several KB of strings per check for its young-generation collections
 * (bench/README.md).
 *
 * Where the ring's reader composes captured records (`decodeCapturedCheck`), an entry whose
 * request came as a body (`req.raw`) and that has no resolved attributes is captured instead:
 * the body's bytes and the decision as codes ({@link captureCheck}), for a third of composing's
 * cost (bench/README.md, `bench:audit-compose`); the writer's thread parses the body again and
 * composes the same bytes. The threaded writer asks for that only while its thread keeps up
 * (`CAPTURE_QUEUED`, audit-thread.ts).
 */
export class V1CheckEntry implements ComposedEntry {
  constructor(
    private readonly d: AuditedCheck,
    private readonly mask: InputMask,
    private readonly source: string,
    private readonly at: number,
  ) {}

  compose(out: JsonOut): void {
    writeEntry(out, this.d, identitiesOf(this.d), this.mask.root, this.source, this.at);
  }

  capture(buf: Buffer, start: number, end: number): number {
    const { d } = this;
    // The writer's thread takes the resources (and the items, one each) from the body parsed again.
    const raw = d.req.raw;
    if (raw === undefined || raw.length > CAPTURE_MAX_BODY || d.enriched.items.length !== d.req.resources.length || wroteAnyItem(d.enriched)) return CAPTURE_NONE;
    return captureCheck(capturing, buf, start, end, d, raw, identitiesOf(d), this.source, this.at);
  }
}

/**
 * Writes a captured record into a byte range: numbers little-endian, texts as their UTF-8 after a
 * Uint32 length, JSON values as `JSON.stringify` writes them ({@link BytesJsonOut}). Past the
 * range's end it writes nothing more and sets {@link over}; a text whose UTF-8 would not give it
 * back (a lone surrogate) sets {@link refused}.
 */
class CaptureWriter {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;
  over = false;
  refused = false;
  private readonly json = new BytesJsonOut();

  reset(buf: Buffer, start: number, end: number): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.over = false;
    this.refused = false;
  }

  private room(n: number): boolean {
    if (this.pos + n <= this.end) return true;
    this.over = true;
    return false;
  }

  u8(v: number): void {
    if (this.room(1)) this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    if (!this.room(4)) return;
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  f64(v: number): void {
    if (!this.room(8)) return;
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  str(s: string): void {
    const n = s.length;
    if (!this.room(4 + n)) return;
    const { buf } = this;
    const at = this.pos + 4;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[at + i] = c;
    }
    let len = n;
    if (i < n) {
      if (!s.isWellFormed()) {
        this.refused = true;
        return;
      }
      len = Buffer.byteLength(s, 'utf8');
      if (!this.room(4 + len)) return;
      buf.write(s, at, len, 'utf8');
    }
    buf.writeUInt32LE(len, this.pos);
    this.pos = at + len;
  }
  bytes(b: Buffer): void {
    if (!this.room(4 + b.length)) return;
    this.buf.writeUInt32LE(b.length, this.pos);
    b.copy(this.buf, this.pos + 4);
    this.pos += 4 + b.length;
  }
  /** Opens a JSON text (its length written by {@link endJson}); the writer to write it with. */
  startJson(): JsonOut {
    const out = this.json;
    out.reset(this.buf, this.pos + 4, this.end);
    if (!this.room(4)) out.over = true;
    return out;
  }
  endJson(): void {
    const out = this.json;
    if (out.over) {
      this.over = true;
      return;
    }
    this.buf.writeUInt32LE(out.pos - this.pos - 4, this.pos);
    this.pos = out.pos;
  }
}

/** What `capture` writes through, reused (the answering thread's, one record at a time). */
const capturing = new CaptureWriter();

// A captured record's flags (its second byte).
const HAS_SUBJECT = 1;
const HAS_AGENT = 2;
const HAS_CHAIN = 4;
const HAS_GATEWAY = 8;
// An action's flags.
const ACT_ALLOW = 1;
const ACT_DETAIL = 2;
const ACT_POLICY = 4;
const ACT_RULE = 8;
const ACT_SCOPE = 16;
const ACT_AGENT = 32;
const ACT_AGENT_ALLOW = 64;
const ACT_AGENT_POLICY = 128;
const ACT_AGENT_RULE = 256;
const ACT_AGENT_SCOPE = 512;
const ACT_DELEGATION = 1024;

function actionFlags(allowed: boolean, detail: ActionDetail | undefined): number {
  let f = allowed ? ACT_ALLOW : 0;
  if (detail === undefined) return f;
  const { subject, agent } = detail;
  f |= ACT_DETAIL;
  if (subject.policy !== undefined) f |= ACT_POLICY;
  if (subject.rule !== undefined) f |= ACT_RULE;
  if (subject.scope !== undefined) f |= ACT_SCOPE;
  if (agent !== undefined) {
    f |= ACT_AGENT;
    if (agent.effect === 'EFFECT_ALLOW') f |= ACT_AGENT_ALLOW;
    if (agent.policy !== undefined) f |= ACT_AGENT_POLICY;
    if (agent.rule !== undefined) f |= ACT_AGENT_RULE;
    if (agent.scope !== undefined) f |= ACT_AGENT_SCOPE;
  }
  if (detail.delegation !== undefined) f |= ACT_DELEGATION;
  return f;
}

/**
 * The captured record of `d` (whose request's body is `raw`) into `buf` from `start` to `end`:
 * the offset after it, or {@link CAPTURE_NO_ROOM}, or {@link CAPTURE_NONE} for a text only
 * composing keeps as it is. Layout: {@link CAPTURED}, the flags, two bytes of padding; the time
 * and the four stamps (Float64); the decision id, the policy version, the source, then the
 * subject, the agent, the gateway and the chain's ids (JSON) where flagged; the body; the counts
 * of items and actions; per item, per action its flags and texts, then the item's outputs
 * (JSON, or a zero length for none); last, every item's reasons, counted, each as {@link captureReason} writes it.
 */
function captureCheck(w: CaptureWriter, buf: Buffer, start: number, end: number, d: AuditedCheck, raw: Buffer, who: EntryIdentities, source: string, at: number): number {
  const { req, decisions } = d;
  const { subject, agent, chain } = who;
  const gateway = req.gateway;
  const actions = req.actions;
  const n = d.enriched.items.length;
  w.reset(buf, start, end);
  w.u8(CAPTURED);
  w.u8((subject !== undefined ? HAS_SUBJECT : 0) | (agent !== undefined ? HAS_AGENT : 0) | (chain !== undefined ? HAS_CHAIN : 0) | (gateway !== undefined ? HAS_GATEWAY : 0));
  w.u8(0);
  w.u8(0);
  const t = d.stamps;
  w.f64(at);
  w.f64(t.start);
  w.f64(t.parsed);
  w.f64(t.enriched);
  w.f64(t.evaluated);
  w.str(d.decisionId);
  w.str(d.policyVersion);
  w.str(source);
  if (subject !== undefined) w.str(subject);
  if (agent !== undefined) w.str(agent);
  if (gateway !== undefined) w.str(gateway);
  if (chain !== undefined) {
    const out = w.startJson();
    out.raw('[');
    for (let h = 0; h < chain.hops.length; h++) {
      if (h > 0) out.raw(',');
      out.value((chain.hops[h] as { id: unknown }).id, undefined);
    }
    out.raw(']');
    w.endJson();
  }
  w.bytes(raw);
  w.u32(n);
  w.u32(actions.length);
  for (let i = 0; i < n; i++) {
    const dec = decisions[i] as ItemDecision;
    for (let j = 0; j < actions.length; j++) {
      const a = actions[j] as string;
      const detail = dec.details?.[a];
      const f = actionFlags(dec.effects[a] === 'ALLOW', detail);
      w.u32(f);
      if (detail === undefined) continue;
      const { subject: s, agent: ag } = detail;
      if ((f & ACT_POLICY) !== 0) w.str(s.policy);
      if ((f & ACT_RULE) !== 0) w.str(s.rule as string);
      if ((f & ACT_SCOPE) !== 0) w.str(s.scope as string);
      if (ag !== undefined) {
        if ((f & ACT_AGENT_POLICY) !== 0) w.str(ag.policy);
        if ((f & ACT_AGENT_RULE) !== 0) w.str(ag.rule as string);
        if ((f & ACT_AGENT_SCOPE) !== 0) w.str(ag.scope as string);
      }
      if ((f & ACT_DELEGATION) !== 0) w.str(detail.delegation as string);
    }
    if (dec.outputs.length === 0) w.u32(0);
    else {
      w.startJson().value(dec.outputs, undefined);
      w.endJson();
    }
  }
  let reasons = 0;
  for (let i = 0; i < n; i++) reasons += (decisions[i] as ItemDecision).reasons.length;
  w.u32(reasons);
  for (let i = 0; i < n; i++) for (const reason of (decisions[i] as ItemDecision).reasons) if (!captureReason(w, reason)) w.refused = true;
  if (w.refused) return CAPTURE_NONE;
  return w.over ? CAPTURE_NO_ROOM : w.pos;
}

/**
 * The members of a {@link Reason} a captured record holds by number (its index here), in the
 * reason's own order: not as JSON, which cost the event loop more than the rest of the capture
 * (bench/README.md, the session of 2026-12-01).
 */
const REASON_MEMBERS = ['code', 'message', 'resolver', 'resource', 'actions', 'identity', 'delegation'] as const;
const REASON_MEMBER = new Map<string, number>(REASON_MEMBERS.map((k, i) => [k, i]));
const RESOURCE_MEMBER = REASON_MEMBER.get('resource') as number;
const ACTIONS_MEMBER = REASON_MEMBER.get('actions') as number;

/**
 * Writes `reason` as its members' numbers and values: a count, then per member its number and
 * its text (`resource`: its kind and its id; `actions`: a count and each action). A member left
 * undefined is left out, as JSON leaves it out. False for anything else (another member, a value
 * of another type, a resource whose members are not `kind` then `id`): the capture is refused and
 * the entry composed.
 */
function captureReason(w: CaptureWriter, reason: Reason): boolean {
  if (typeof reason !== 'object' || reason === null || !isPlainObject(reason)) return false;
  const countAt = w.pos;
  w.u8(0);
  let count = 0;
  for (const key in reason) {
    const v = (reason as unknown as Record<string, unknown>)[key];
    if (v === undefined) continue;
    const member = REASON_MEMBER.get(key);
    if (member === undefined) return false;
    w.u8(member);
    count += 1;
    if (member === RESOURCE_MEMBER) {
      if (!captureResource(w, v)) return false;
    } else if (member === ACTIONS_MEMBER) {
      if (!Array.isArray(v)) return false;
      w.u32(v.length);
      for (let k = 0; k < v.length; k++) {
        const a: unknown = v[k];
        if (typeof a !== 'string') return false;
        w.str(a);
      }
    } else if (typeof v === 'string') w.str(v);
    else return false;
  }
  if (!w.over) w.buf[countAt] = count;
  return true;
}

/** A reason's `resource`, `{ kind, id }` in that order with text values: its kind and id; false for any other. */
function captureResource(w: CaptureWriter, v: unknown): boolean {
  if (typeof v !== 'object' || v === null || !isPlainObject(v)) return false;
  let k = 0;
  let ordered = true;
  for (const key in v) {
    if (k > 1 || key !== (k === 0 ? 'kind' : 'id')) ordered = false;
    k += 1;
  }
  const { kind, id } = v as { kind?: unknown; id?: unknown };
  if (!ordered || k !== 2 || typeof kind !== 'string' || typeof id !== 'string') return false;
  w.str(kind);
  w.str(id);
  return true;
}

/** The reasons {@link captureReason} wrote. */
function readReasons(r: CaptureReader): Reason[] {
  const reasons = new Array<Reason>(r.u32());
  for (let i = 0; i < reasons.length; i++) {
    const reason: Record<string, unknown> = {};
    for (let m = r.u8(); m > 0; m--) {
      const member = r.u8();
      const key = REASON_MEMBERS[member];
      if (key === undefined) throw new Error('a captured reason with a member it cannot hold');
      if (member === RESOURCE_MEMBER) reason.resource = { kind: r.str(), id: r.str() };
      else if (member === ACTIONS_MEMBER) {
        const actions = new Array<string>(r.u32());
        for (let k = 0; k < actions.length; k++) actions[k] = r.str();
        reason.actions = actions;
      } else reason[key] = r.str();
    }
    reasons[i] = reason as unknown as Reason;
  }
  return reasons;
}

/** Reads what {@link CaptureWriter} wrote; throws past the record's end. */
class CaptureReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  private take(n: number): number {
    const at = this.pos;
    if (at + n > this.buf.length) throw new Error('a captured record ends early');
    this.pos = at + n;
    return at;
  }
  u8(): number {
    return this.buf[this.take(1)] as number;
  }
  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  f64(): number {
    return this.buf.readDoubleLE(this.take(8));
  }
  bytes(): Buffer {
    const n = this.u32();
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }
  /** The next `n` bytes' text. */
  text(n: number): string {
    const at = this.take(n);
    return this.buf.toString('utf8', at, at + n);
  }
  str(): string {
    return this.text(this.u32());
  }
  json(): unknown {
    return JSON.parse(this.str()) as unknown;
  }
  done(): boolean {
    return this.pos === this.buf.length;
  }
}

/**
 * The decoder of {@link decodeCapturedCheck} for a log masking `maskPaths`: what both ends of the
 * writer's ring are given (`openDecisionLog`, and the writer's thread, audit-worker.ts).
 */
export function checkDecoder(maskPaths: readonly string[]): CaptureDecoder {
  const mask = createInputMask(maskPaths);
  return (record) => decodeCapturedCheck(record, mask);
}

/** The request's limits as the body is parsed again: it passed the configured ones when it came. */
const UNLIMITED = { maxResourcesPerRequest: Number.MAX_SAFE_INTEGER, maxActionsPerResource: Number.MAX_SAFE_INTEGER };

/** Where {@link decodeCapturedCheck} composes, grown as needed (one thread decodes at a time). */
let composed = Buffer.allocUnsafeSlow(16 << 10);
const composer = new BytesJsonOut();

/**
 * The entry a captured record of {@link V1CheckEntry} stands for, composed exactly as `compose`
 * would have on the answering thread: the body parsed again with the route's own parsers, the
 * decision read back from its codes. The UTF-8 of packEntry's text, in a buffer of its own.
 * Throws on bytes `capture` did not write (a record cut short, a body that no longer parses).
 */
export function decodeCapturedCheck(record: Buffer, mask: InputMask): Buffer {
  const r = new CaptureReader(record);
  if (r.u8() !== CAPTURED) throw new Error('not a captured record');
  const flags = r.u8();
  r.u8();
  r.u8();
  const at = r.f64();
  const stamps = { start: r.f64(), parsed: r.f64(), enriched: r.f64(), evaluated: r.f64() };
  const decisionId = r.str();
  const policyVersion = r.str();
  const source = r.str();
  const subject = (flags & HAS_SUBJECT) !== 0 ? r.str() : undefined;
  const agent = (flags & HAS_AGENT) !== 0 ? r.str() : undefined;
  const gateway = (flags & HAS_GATEWAY) !== 0 ? r.str() : undefined;
  const chain = (flags & HAS_CHAIN) !== 0 ? { hops: (r.json() as unknown[]).map((id) => ({ id })) } : undefined;
  const req = parseV1CheckRequest(parseJsonBody(r.bytes()), UNLIMITED);
  if (gateway !== undefined) req.gateway = gateway;
  const n = r.u32();
  const actions = req.actions;
  if (n !== req.resources.length || r.u32() !== actions.length) throw new Error('a captured record whose body does not match its decision');
  const decisions = new Array<ItemDecision>(n);
  for (let i = 0; i < n; i++) {
    const effects: Record<string, 'ALLOW' | 'DENY'> = {};
    let details: Record<string, ActionDetail> | undefined;
    for (const a of actions) {
      const f = r.u32();
      effects[a] = (f & ACT_ALLOW) !== 0 ? 'ALLOW' : 'DENY';
      if ((f & ACT_DETAIL) === 0) continue;
      const s: Partial<ActionEffect> = {};
      if ((f & ACT_POLICY) !== 0) s.policy = r.str();
      if ((f & ACT_RULE) !== 0) s.rule = r.str();
      if ((f & ACT_SCOPE) !== 0) s.scope = r.str();
      const detail: { effect: 'ALLOW' | 'DENY'; subject: ActionEffect; agent?: ActionEffect; delegation?: 'ALLOW' | 'DENY' } = { effect: effects[a], subject: s as ActionEffect };
      if ((f & ACT_AGENT) !== 0) {
        const ag: Partial<ActionEffect> = { effect: (f & ACT_AGENT_ALLOW) !== 0 ? 'EFFECT_ALLOW' : 'EFFECT_DENY' };
        if ((f & ACT_AGENT_POLICY) !== 0) ag.policy = r.str();
        if ((f & ACT_AGENT_RULE) !== 0) ag.rule = r.str();
        if ((f & ACT_AGENT_SCOPE) !== 0) ag.scope = r.str();
        detail.agent = ag as ActionEffect;
      }
      if ((f & ACT_DELEGATION) !== 0) detail.delegation = r.str() as 'ALLOW' | 'DENY';
      (details ??= {})[a] = detail;
    }
    // A zero length is no outputs.
    const outputs = r.u32();
    const out = outputs === 0 ? [] : (JSON.parse(r.text(outputs)) as OutputEntry[]);
    decisions[i] = details === undefined ? { effects, reasons: [], outputs: out } : { effects, details, reasons: [], outputs: out };
  }
  const reasons = readReasons(r);
  if (!r.done()) throw new Error('a captured record longer than what it holds');
  if (n > 0) decisions[0] = { ...(decisions[0] as ItemDecision), reasons };
  const items = req.resources.map((resource) => ({ input: { resource } }));
  const d = { req, decisionId, policyVersion, enriched: { items }, decisions, ids: {}, stamps } as unknown as AuditedCheck;
  const who: EntryIdentities = { subject, agent, chain };
  for (;;) {
    composer.reset(composed, 0, composed.length);
    writeEntry(composer, d, who, mask.root, source, at);
    if (!composer.over) return Buffer.from(composed.subarray(0, composer.pos));
    composed = Buffer.allocUnsafeSlow(composed.length * 2);
  }
}
