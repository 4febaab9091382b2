/**
 * Enrichment in front of the engine, shared by `/v1/check` and the Cerbos-compatible routes:
 * the check inputs' principal and resources go through the resolvers, the enriched values replace
 * them, and the engine decides. An item a resolver failure denies (or whose principal the
 * resolvers left unusable) is not evaluated: every action is DENY with the reason.
 *
 * SECURITY: no path here turns a failure into an ALLOW; an item is only ever evaluated with what
 * the resolvers produced, or denied.
 */
import type { ActionEffect, CheckInput, CheckOutput, JsonValue, Principal, Resource } from '@warden/core';
import { enrich, type EnrichmentOutcome, type EnrichmentRequest, type InputDocument, type JsonObject, type ResolverRunReport } from '@warden/resolvers';
import type { ResolverRuntime } from './resolver-runtime.js';

/** A deny reason: a stable code and a message safe to show to an agent. */
export interface Reason {
  code: string;
  message: string;
  resolver?: string;
  resource?: { kind: string; id: string };
  /** The denied actions, for `policy_denied` and the delegation reasons. */
  actions?: string[];
  /** Which identity's policies denied, when the request names an agent. */
  identity?: 'subject' | 'agent';
  /** The delegation whose scope or depth denied. */
  delegation?: string;
}

/**
 * An enriched input as it may be shown (explain, dry runs). SECURITY: credentials are never
 * echoed: the subject and delegation roots carry tokens, and so may the agent (`agent.token`).
 */
export function withoutCredentials(doc: InputDocument): InputDocument {
  const { subject: _subject, delegation: _delegation, ...shown } = doc;
  if (shown.agent !== undefined && 'token' in shown.agent) {
    const { token: _token, ...agent } = shown.agent;
    shown.agent = agent;
  }
  return shown;
}

/** Policy name reported for actions denied before evaluation. */
export const DENIED_BEFORE_EVALUATION = 'NO_MATCH';

/** The result of {@link enrichInputs}. */
export interface EnrichedInputs {
  /** One per input: the enriched input, or the reasons it is denied without evaluation. */
  items: Array<{ input: CheckInput; denied?: undefined } | { input: CheckInput; denied: Reason[] }>;
  outcome: EnrichmentOutcome | undefined;
  enrichMs: number;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '');
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The enriched principal as the engine takes it, or why it cannot be one. */
export function toPrincipal(p: JsonObject | undefined): Principal | Reason {
  if (p === undefined || typeof p['id'] !== 'string' || p['id'] === '') {
    return { code: 'subject_unresolved', message: 'the subject could not be identified' };
  }
  const roles = p['roles'];
  if (!isStringArray(roles) || roles.length === 0) return { code: 'subject_unresolved', message: 'the subject has no roles' };
  const attr = p['attr'];
  if (attr !== undefined && !isObject(attr)) return { code: 'subject_unresolved', message: 'the subject attributes are malformed' };
  const out: Principal = { id: p['id'], roles, attr: (attr ?? {}) as Record<string, JsonValue> };
  if (typeof p['policyVersion'] === 'string') out.policyVersion = p['policyVersion'];
  if (typeof p['scope'] === 'string') out.scope = p['scope'];
  return out;
}

function toResource(r: JsonObject | undefined, original: Resource): Resource | Reason {
  if (r === undefined) return original;
  const attr = r['attr'];
  if (typeof r['kind'] !== 'string' || typeof r['id'] !== 'string' || (attr !== undefined && !isObject(attr))) {
    return { code: 'resource_unresolved', message: `the attributes of ${original.kind} \`${original.id}\` are malformed` };
  }
  const pv = r['policyVersion'];
  const scope = r['scope'];
  // Already a well-formed resource (the usual case): used as it is.
  if (attr !== undefined && (pv === undefined || typeof pv === 'string') && (scope === undefined || typeof scope === 'string')) return r as unknown as Resource;
  const out: Resource = { kind: r['kind'], id: r['id'], attr: (attr ?? {}) as Record<string, JsonValue> };
  if (typeof pv === 'string') out.policyVersion = pv;
  if (typeof scope === 'string') out.scope = scope;
  return out;
}

/**
 * What {@link enrichInputs} takes besides the inputs: the roots only `/v1/check` has (subject,
 * agent, context), and an observer of each resolver's run (tracing).
 */
export type EnrichExtra = {
  -readonly [K in keyof Omit<EnrichmentRequest, 'resources' | 'principal' | 'requestId'>]?: EnrichmentRequest[K];
} & { requestId: string; principal?: JsonObject; onResolverRun?: ((report: ResolverRunReport) => void) | undefined };

/**
 * Enriches `inputs` (one per resource, sharing one principal) with the runtime's resolvers.
 * `extra` carries the roots only `/v1/check` has (subject, agent, context). With no resolvers
 * and nothing extra the inputs pass through untouched (the Cerbos fast path). Returns the result
 * itself when the resolvers answered synchronously (every key from the in-process cache), else a
 * promise of it. With `extra.owned` the inputs are the caller's to give away: the enriched
 * principal and resource are written into them instead of into copies.
 */
export function enrichInputs(runtime: ResolverRuntime, inputs: readonly CheckInput[], extra: EnrichExtra): EnrichedInputs | Promise<EnrichedInputs> {
  const state = runtime.current();
  if (state.registry === undefined) {
    const denied: Reason[] = [{ code: 'resolvers_unavailable', message: 'context resolvers are misconfigured; an administrator must fix them' }];
    return { items: inputs.map((input) => ({ input, denied })), outcome: undefined, enrichMs: 0 };
  }
  if (state.registry.resolvers.length === 0) {
    if (extra.principal === undefined) return { items: inputs.map((input) => ({ input })), outcome: undefined, enrichMs: 0 };
    // Nothing to resolve: the stated principal is used (or the items are denied as unresolved).
    const p = toPrincipal(extra.principal);
    if ('code' in p) return { items: inputs.map((input) => ({ input, denied: [p] })), outcome: undefined, enrichMs: 0 };
    return { items: inputs.map((input) => ({ input: { ...input, principal: p } })), outcome: undefined, enrichMs: 0 };
  }
  const first = inputs[0];
  const resources = new Array<JsonObject>(inputs.length);
  for (let i = 0; i < inputs.length; i++) resources[i] = (inputs[i] as CheckInput).resource as unknown as JsonObject;
  const request: { -readonly [K in keyof EnrichmentRequest]: EnrichmentRequest[K] } = {
    requestId: extra.requestId,
    principal: extra.principal ?? (first === undefined ? {} : (first.principal as unknown as JsonObject)),
    resources,
  };
  if (extra.agent !== undefined) request.agent = extra.agent;
  if (extra.context !== undefined) request.context = extra.context;
  if (extra.delegation !== undefined) request.delegation = extra.delegation;
  if (extra.subject !== undefined) request.subject = extra.subject;
  if (extra.signal !== undefined) request.signal = extra.signal;
  if (extra.owned !== undefined) request.owned = extra.owned;
  const owned = extra.owned === true;
  const outcome = extra.onResolverRun === undefined ? enrich(state.registry, request) : enrich(state.registry, request, { onResolverRun: extra.onResolverRun });
  return outcome instanceof Promise ? outcome.then((o) => toEnrichedInputs(inputs, o, owned)) : toEnrichedInputs(inputs, outcome, owned);
}

function toEnrichedInputs(inputs: readonly CheckInput[], outcome: EnrichmentOutcome, owned: boolean): EnrichedInputs {
  // Items sharing one principal object (written by request-level resolvers) share one engine
  // principal too, so the engine prepares it once for the whole batch.
  let lastRaw: JsonObject | undefined;
  let lastPrincipal: Principal | Reason | undefined;
  const items = new Array<EnrichedInputs['items'][number]>(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as CheckInput;
    const item = outcome.items[i];
    if (item === undefined) {
      items[i] = { input, denied: [{ code: 'internal', message: 'enrichment lost an item' }] };
      continue;
    }
    if (item.denials.length > 0) {
      items[i] = {
        input,
        denied: item.denials.map((d) => ({ code: d.code, message: d.message, resolver: d.resolver, resource: { kind: input.resource.kind, id: input.resource.id } })),
      };
      continue;
    }
    const raw = item.input.principal;
    const p = raw !== undefined && raw === lastRaw ? (lastPrincipal as Principal | Reason) : toPrincipal(raw);
    lastRaw = raw;
    lastPrincipal = p;
    const r = toResource(item.input.resource, input.resource);
    if ('code' in p || 'code' in r) {
      items[i] = { input, denied: [p, r].filter((x): x is Reason => 'code' in x) };
      continue;
    }
    if (owned) {
      // The caller gave its inputs away: no copy.
      input.principal = p;
      input.resource = r;
      items[i] = { input };
    } else {
      items[i] = { input: { ...input, principal: p, resource: r } };
    }
  }
  // The enrichment's own duration (the scheduler measures it; no second clock read here).
  return { items, outcome, enrichMs: outcome.durationMs };
}

/** The engine's outputs for `items`, with denied items answered DENY for every action. */
export function evaluateEnriched(
  items: EnrichedInputs['items'],
  check: (inputs: CheckInput[]) => CheckOutput[],
): CheckOutput[] {
  const toEvaluate: CheckInput[] = [];
  for (const it of items) if (it.denied === undefined) toEvaluate.push(it.input);
  const evaluated = toEvaluate.length > 0 ? check(toEvaluate) : [];
  let k = 0;
  return items.map((it) => {
    if (it.denied === undefined) return evaluated[k++] as CheckOutput;
    const actions: Record<string, ActionEffect> = {};
    for (const a of it.input.actions) actions[a] = { effect: 'EFFECT_DENY', policy: DENIED_BEFORE_EVALUATION };
    const out: CheckOutput = { resourceId: it.input.resource.id, actions, effectiveDerivedRoles: [], validationErrors: [], outputs: [] };
    if (it.input.requestId !== undefined) out.requestId = it.input.requestId;
    return out;
  });
}
