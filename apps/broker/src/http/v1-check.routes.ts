/**
 * `POST /v1/check`: the native sparse check (DESIGN.md section 3). Parse, enrich through the
 * resolvers, decide with the engine, answer with a decision id, per-action effects, reasons safe
 * to show to an agent, outputs and the policy version; `explain: true` adds every attribute's
 * provenance and per-stage timings. Plain Fastify routes (no Nest pipes on the hot path); errors
 * leave in Warden's `{"error": {"code", "message"}}` shape.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WardenError, type CheckInput, type JsonValue } from '@warden/core';
import { isDelegationError, type DelegationChain, type ExternalActors } from '@warden/delegation';
import { cloneJson, type JsonObject } from '@warden/resolvers';
import type { BudgetAnswer, BudgetRuntime } from '../budget/budget-runtime.js';
import type { GatewayConfig, RequestLimitsConfig } from '../config/broker-config.js';
import { withoutCredentials, type EnrichedInputs, type EnrichExtra, type Reason } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import type { DelegationRuntime } from '../delegation/delegation-runtime.js';
import { logResolverFailures } from '../logging/resolver-failure.log.js';
import type { WardenLogger } from '../logging/warden-logger.js';
import type { BrokerMetrics } from '../metrics/broker-metrics.js';
import { agentPrincipal, decideForIdentities, isExternal, type ActionDetail, type Identities, type ItemDecision } from '../delegation/identity-decision.js';
import { V1CheckEntry } from '../audit/v1-check-entry.js';
import { recordDecision, type DecisionLog } from '../audit/decision-log.js';
import type { PolicySnapshots } from '../policy-source/policy-holder.js';
import { fromHeaders, type BrokerTracing } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';
import { enrichTraced } from '../tracing/traced-enrichment.js';
import { toWardenError } from './broker-error.filter.js';
import { newDecisionId } from './decision-id.js';
import { useJsonBodies, type WithRawBody } from './json-body.parser.js';
import { parseV1CheckRequest, type V1CheckRequest, type V1Resource } from './v1-check.request.js';

/** What the route needs, built at boot. */
export interface V1CheckDeps {
  /** The policy set in force: each check reads `current` once and decides and reports with that snapshot. */
  policies: PolicySnapshots;
  runtime: ResolverRuntime;
  delegation: DelegationRuntime;
  limits: RequestLimitsConfig;
  matchGateway: GatewayMatcher;
  bodyLimit: number;
  /** Token budgets; undefined when none are configured (then a check does no budget work). */
  budgets?: BudgetRuntime | undefined;
  /** Where decisions and enrichment are counted (absent: nothing is). */
  metrics?: BrokerMetrics | undefined;
  /** Where resolver failures are logged (absent: they are not). */
  log?: WardenLogger | undefined;
  /** The decision log; undefined when `audit.enabled` is false. */
  audit?: DecisionLog | undefined;
  /** The surface named in decision-log entries (default `/v1/check`). */
  auditSource?: string;
  /** OpenTelemetry tracing; undefined when `tracing.enabled` is false (then a check makes no span). */
  tracing?: BrokerTracing | undefined;
}

/** Header carrying a trusted gateway's API key. */
export const GATEWAY_KEY_HEADER = 'x-warden-api-key';

type Verdict = 'ALLOW' | 'DENY';

const digest = (s: string): Buffer => hash('sha256', s, 'buffer');

/** Finds the trusted gateway of a presented API key. */
export type GatewayMatcher = (presented: string | undefined) => GatewayConfig | undefined;

/**
 * Matches presented keys against `gateways` in constant time (on SHA-256 digests, computed once
 * for the configured keys), checking every gateway whatever matched.
 */
export function createGatewayMatcher(gateways: readonly GatewayConfig[]): GatewayMatcher {
  const known = gateways.map((g) => ({ gateway: g, digest: digest(g.apiKey) }));
  return (presented) => {
    if (presented === undefined || presented === '' || known.length === 0) return undefined;
    const d = digest(presented);
    let found: GatewayConfig | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, d)) found = k.gateway;
    return found;
  };
}

function toInputs(req: V1CheckRequest, requestId: string): CheckInput[] {
  // Placeholder principal: the enriched one replaces it, or the item is denied as unresolved.
  const principal = { id: '', roles: [], attr: {} };
  // The parsed resources are this request's own (enrichment writes into them, see `owned`).
  const resources = req.resources;
  const inputs = new Array<CheckInput>(resources.length);
  for (let i = 0; i < resources.length; i++) inputs[i] = { requestId, principal, resource: resources[i] as V1Resource, actions: req.actions };
  return inputs;
}

/** When each stage of a check ended (performance.now()). */
export type Stamps = { start: number; parsed: number; enriched: number; evaluated: number };

/**
 * The answer. Compact by default (its size is most of a warm check's cost once it is several
 * kilobytes): per resource the effect of each action and the outputs; the reasons of every denial
 * (one per resource and cause). `explain: true` adds who decided each action (the subject's and
 * the agent's matched policy and scope, the delegation's verdict), the identities and the chain,
 * the provenance of every attribute and the stage timings.
 */
function respond(req: V1CheckRequest, decisionId: string, policyVersion: string, enriched: EnrichedInputs, decisions: ItemDecision[], ids: Identities, t: Stamps, budget: BudgetAnswer | undefined): unknown {
  const reasons: Reason[] = [];
  let allAllowed = true;
  const items = enriched.items;
  const results = new Array<unknown>(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as EnrichedInputs['items'][number];
    const d = decisions[i] as ItemDecision;
    const resource = { kind: item.input.resource.kind, id: item.input.resource.id };
    let allowed = true;
    for (const a of req.actions) if (d.effects[a] !== 'ALLOW') allowed = false;
    allAllowed &&= allowed;
    for (const r of d.reasons) reasons.push(r);
    results[i] = d.outputs.length > 0 ? { resource, decision: allowed ? 'ALLOW' : 'DENY', actions: d.effects, outputs: d.outputs } : { resource, decision: allowed ? 'ALLOW' : 'DENY', actions: d.effects };
  }
  const decision = allAllowed ? 'ALLOW' : 'DENY';
  const body: Record<string, unknown> =
    req.requestId !== undefined
      ? { requestId: req.requestId, decisionId, decision, results, reasons, policyVersion }
      : { decisionId, decision, results, reasons, policyVersion };
  if (budget !== undefined) body['budget'] = budget;
  if (req.explain) body['explain'] = explain(req, enriched, decisions, ids, t);
  return body;
}

function shownEffect(e: ActionDetail['subject']): { effect: Verdict; policy: string; scope?: string } {
  const effect: Verdict = e.effect === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY';
  return e.scope !== undefined ? { effect, policy: e.policy, scope: e.scope } : { effect, policy: e.policy };
}

function explain(req: V1CheckRequest, enriched: EnrichedInputs, decisions: ItemDecision[], ids: Identities, t: Stamps): unknown {
  const o = enriched.outcome;
  const chain = ids.delegation !== undefined && !('code' in ids.delegation) && !isExternal(ids.delegation) ? ids.delegation : undefined;
  const external = isExternal(ids.delegation) ? ids.delegation : undefined;
  const agent = ids.agent !== undefined && !('code' in ids.agent) ? ids.agent : undefined;
  return {
    identities: {
      subject: enriched.items.find((it) => it.denied === undefined)?.input.principal.id ?? null,
      ...(agent !== undefined ? { agent: { id: agent.id, roles: agent.roles } } : {}),
      ...(external !== undefined ? { delegation: { subject: external.subject, issuer: external.issuer, actors: external.actors, grants: 'none (an external actor token names who acts; scope comes only from Warden delegations)' } } : {}),
      ...(chain !== undefined ? { delegation: { subject: chain.subject, chain: chain.hops.map((h) => ({ id: h.id, from: h.from, to: h.to, canSubDelegate: h.canSubDelegate, maxDepth: h.maxDepth, grants: h.grants, expiresAt: new Date(h.exp * 1000).toISOString(), ...(h.task !== undefined ? { task: h.task } : {}) })) } } : {}),
    },
    items: enriched.items.map((item, i) => {
      const e = o?.items[i];
      const input = withoutCredentials(e?.input ?? {});
      const details = (decisions[i] as ItemDecision).details ?? {};
      const actions: Record<string, unknown> = {};
      for (const a of req.actions) {
        const d = details[a] as ActionDetail;
        const subject = shownEffect(d.subject);
        actions[a] =
          d.agent === undefined && d.delegation === undefined
            ? { policy: subject.policy, ...(subject.scope !== undefined ? { scope: subject.scope } : {}) }
            : { subject, ...(d.agent !== undefined ? { agent: shownEffect(d.agent) } : {}), ...(d.delegation !== undefined ? { delegation: d.delegation } : {}) };
      }
      return { resource: { kind: item.input.resource.kind, id: item.input.resource.id }, actions, input, attributes: e?.provenance ?? {}, failures: e?.failures ?? [] };
    }),
    resolvers: o?.runs ?? [],
    timings: {
      parseMs: round(t.parsed - t.start),
      enrichMs: round(t.enriched - t.parsed),
      evaluateMs: round(t.evaluated - t.enriched),
      totalMs: round(t.evaluated - t.start),
    },
  };
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

function delegationReason(err: unknown): Reason {
  if (isDelegationError(err)) return { code: err.reason, message: err.message };
  throw err;
}

/** What a decided check is, for whoever answers it (the JSON of `/v1/check`, an adapter's status and headers). */
export interface DecidedCheck {
  readonly req: V1CheckRequest;
  readonly decisionId: string;
  readonly deps: V1CheckDeps;
  /** The version of the policy set that decided (the same snapshot as the engine that did). */
  readonly policyVersion: string;
  readonly enriched: EnrichedInputs;
  readonly decisions: ItemDecision[];
  readonly ids: Identities;
  readonly stamps: Stamps;
  /** The token reservation this check made (settle it with `POST /v1/usage`), if any. */
  readonly budget?: BudgetAnswer;
}

/** Writes the answer of a decided check to `sink` (a Fastify reply, or a gRPC adapter's holder). */
export type CheckAnswer<R = FastifyReply> = (sink: R, decided: DecidedCheck) => R;

const answerJson: CheckAnswer = (reply, d) =>
  reply.header('content-type', 'application/json').send(JSON.stringify(respond(d.req, d.decisionId, d.policyVersion, d.enriched, d.decisions, d.ids, d.stamps, d.budget)));

/** The root span's attributes of `POST /v1/check` (made once). */
const V1_SPAN_ATTRIBUTES = { 'http.request.method': 'POST', 'http.route': '/v1/check' } as const;

function check(deps: V1CheckDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> | undefined {
  const start = performance.now();
  const trace = deps.tracing?.start('warden.check', 'v1', fromHeaders(request.headers), V1_SPAN_ATTRIBUTES);
  return trace === undefined ? checkParsed(deps, request, reply, start, undefined) : trace.run(() => checkParsed(deps, request, reply, start, trace));
}

function checkParsed(deps: V1CheckDeps, request: FastifyRequest, reply: FastifyReply, start: number, trace: DecisionTrace | undefined): Promise<FastifyReply> | undefined {
  const req = parseV1CheckRequest(request.body, deps.limits);
  if (trace !== undefined) req.trace = trace;
  // The decision log may capture the entry from the body's bytes (best-effort only, see `useJsonBodies`).
  const raw = (request as WithRawBody<FastifyRequest>).rawBody;
  if (raw !== undefined && raw !== null) req.raw = raw;
  const header = request.headers[GATEWAY_KEY_HEADER];
  const gateway = deps.matchGateway(typeof header === 'string' ? header : undefined);
  if (req.needsTrust && gateway === undefined) {
    throw new WardenError('ERR_UNAUTHENTICATED', `a subject or agent stated directly (id, roles, attr) needs a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  }
  // Budgets `per: key` count the trusted gateway's tokens (no budgets: the request is left as parsed).
  if (gateway !== undefined && deps.budgets !== undefined) req.gateway = gateway.name;
  return checkWith(deps, req, reply, answerJson, start);
}

/**
 * Decides a parsed check (verifying its delegation first) and answers it with `answer`: the one
 * decision path of `/v1/check` and of the gateway adapters.
 */
export function checkWith<R>(deps: V1CheckDeps, req: V1CheckRequest, reply: R, answer: CheckAnswer<R>, start = performance.now()): Promise<R> | undefined {
  // SECURITY: only Warden states budgets; a caller's own `context.budget` never reaches a policy.
  if (deps.budgets !== undefined && req.context['budget'] !== undefined) {
    throw new WardenError('ERR_REQUEST_INVALID', '`context.budget`: is reserved for the token budgets Warden reads');
  }
  if (req.delegation === undefined) return decide(deps, req, reply, start, undefined, answer);
  // A delegation verified before answers at once; a new one is verified (signature) first. An
  // RFC 8693 token of a configured external issuer names who acts (and grants nothing).
  let verified: DelegationChain | ExternalActors | Promise<DelegationChain | ExternalActors>;
  try {
    verified = deps.delegation.isExternal(req.delegation) ? deps.delegation.external.verify(req.delegation, Date.now()) : deps.delegation.verifier.verify(req.delegation, Date.now());
  } catch (err) {
    return decide(deps, req, reply, start, delegationReason(err), answer);
  }
  if (verified instanceof Promise) return verified.then((c) => c, delegationReason).then((c) => decide(deps, req, reply, start, c, answer) ?? reply);
  return decide(deps, req, reply, start, verified, answer);
}

function decide<R>(
  deps: V1CheckDeps,
  req: V1CheckRequest,
  reply: R,
  start: number,
  delegation: DelegationChain | ExternalActors | Reason | undefined,
  out: CheckAnswer<R>,
): Promise<R> | undefined {
  const decisionId = newDecisionId();
  const requestId = req.requestId ?? decisionId;
  const parsed = performance.now();
  const inputs = toInputs(req, requestId);
  const delegatedFor = delegation !== undefined && !('code' in delegation) ? delegation.subject : undefined;
  // The subject: stated by a trusted gateway, resolved from its token, or the delegation's.
  const principal: JsonObject =
    req.subject !== undefined ? { id: req.subject.id, roles: req.subject.roles, attr: req.subject.attr } : req.token === undefined && delegatedFor !== undefined ? { id: delegatedFor } : {};
  const agent: JsonObject | undefined = req.agent === undefined ? undefined : (req.agent as unknown as JsonObject);
  // Enrichment writes the resolved attributes into the request's own objects: the decision log
  // keeps the sparse input as it was sent (no copy without resolvers: nothing writes then).
  if (deps.audit !== undefined && (deps.runtime.current().registry?.resolvers.length ?? 0) > 0) {
    req.sent = {
      subject: cloneJson(req.subject as JsonObject | undefined) as V1CheckRequest['subject'],
      agent: cloneJson(req.agent as JsonObject | undefined) as V1CheckRequest['agent'],
      resources: cloneJson(req.resources as unknown as JsonObject[]) as unknown as V1Resource[],
    };
  }
  // No per-request AbortSignal: every resolver call is bounded by its own timeout, and creating
  // a signal per request cost about a tenth of a warm check's CPU (measured, bench/README.md).
  // Every object of this request was made by its parser for it alone (`owned`).
  const extra: EnrichExtra = { requestId, owned: true, principal, context: req.context };
  if (req.token !== undefined) extra.subject = { token: req.token };
  if (agent !== undefined) extra.agent = agent;
  if (req.delegation !== undefined) extra.delegation = { token: req.delegation };
  const enriched = enrichTraced(req.trace, deps.runtime, inputs, extra);
  // Answered synchronously when every attribute came from the in-process cache. (The promise's
  // callback lives in its own function so the synchronous path allocates no closure.)
  if (enriched instanceof Promise) return answerLater(deps, req, reply, enriched, decisionId, start, parsed, agent, delegation, out);
  const done = finishCheck(deps, req, reply, enriched, decisionId, start, parsed, agent, delegation, out);
  return done instanceof Promise ? done : undefined;
}

function answerLater<R>(
  deps: V1CheckDeps,
  req: V1CheckRequest,
  reply: R,
  enriched: Promise<EnrichedInputs>,
  decisionId: string,
  start: number,
  parsed: number,
  agent: JsonObject | undefined,
  delegation: DelegationChain | ExternalActors | Reason | undefined,
  out: CheckAnswer<R>,
): Promise<R> {
  return enriched.then((e) => finishCheck(deps, req, reply, e, decisionId, start, parsed, agent, delegation, out));
}

type MutableIdentities = { agent?: Identities['agent']; delegation?: Identities['delegation']; context: Record<string, JsonValue> };

/** Who a check is decided for: the (enriched) agent, the delegation, the request's context. */
function identitiesOf(req: V1CheckRequest, e: EnrichedInputs, agent: JsonObject | undefined, delegation: DelegationChain | ExternalActors | Reason | undefined): MutableIdentities {
  const ids: MutableIdentities = { context: req.context as Record<string, JsonValue> };
  if (agent !== undefined) ids.agent = agentPrincipal((e.outcome?.items[0]?.input.agent as JsonObject | undefined) ?? agent);
  if (delegation !== undefined) ids.delegation = delegation;
  return ids;
}

function finishCheck<R>(
  deps: V1CheckDeps,
  req: V1CheckRequest,
  reply: R,
  e: EnrichedInputs,
  decisionId: string,
  start: number,
  parsed: number,
  agent: JsonObject | undefined,
  delegation: DelegationChain | ExternalActors | Reason | undefined,
  out: CheckAnswer<R>,
): R | Promise<R> {
  // A check no budget applies to does no budget work (no promise, no allocation).
  if (deps.budgets !== undefined && deps.budgets.applies(e.items, req.actions)) return finishBudgeted(deps, deps.budgets, req, reply, e, decisionId, start, parsed, agent, delegation, out);
  const t1 = performance.now();
  const ids = identitiesOf(req, e, agent, delegation);
  // One read of the set in force: this engine decides and its version is reported, whatever reload happens meanwhile.
  const policies = deps.policies.current;
  // The decision log names each action's matched policy: the engine's details are kept while it is on.
  const decisions = decideForIdentities(policies.engine, e.items, req.actions, ids, deps.delegation, new Date(), req.explain || deps.audit !== undefined);
  const t2 = performance.now();
  if (req.trace !== undefined) req.trace.evaluate(t1, t2, evaluateAttributes(req, e));
  return answerDecided(reply, { req, decisionId, deps, policyVersion: policies.version, enriched: e, decisions, ids, stamps: { start, parsed, enriched: t1, evaluated: t2 } }, out);
}

/** The `warden.evaluate` span's attributes: how many resources and actions were decided. */
function evaluateAttributes(req: V1CheckRequest, e: EnrichedInputs): { 'warden.resources': number; 'warden.actions': number } {
  return { 'warden.resources': e.items.length, 'warden.actions': req.actions.length };
}

/** The decision of a check as its trace shows it: ALLOW when every action of every resource is, and the denials' codes. */
function traceDecided(trace: DecisionTrace, d: DecidedCheck): void {
  let allowed = true;
  const codes = new Set<string>();
  for (const item of d.decisions) {
    for (const a of d.req.actions) if (item.effects[a] !== 'ALLOW') allowed = false;
    for (const r of item.reasons) codes.add(r.code);
  }
  trace.decided({ decisionId: d.decisionId, requestId: d.req.requestId, decision: allowed ? 'ALLOW' : 'DENY', policyVersion: d.policyVersion, reasons: [...codes] });
}

/** Counts and logs a decided check, then answers it (through the decision log when it is on). */
function answerDecided<R>(reply: R, decided: DecidedCheck, out: CheckAnswer<R>): R | Promise<R> {
  const { deps, req, enriched: e, decisionId } = decided;
  if (deps.metrics !== undefined) {
    countDecisions(deps.metrics, req, e, decided.decisions);
    deps.metrics.checkStages(decided.stamps);
  }
  if (req.trace !== undefined) traceDecided(req.trace, decided);
  if (deps.log !== undefined && e.outcome !== undefined) logResolverFailures(deps.log, e.outcome, req.requestId ?? decisionId, decisionId, req.trace);
  return deps.audit === undefined ? out(reply, decided) : answerAudited(deps.audit, reply, decided, out);
}

const AUDIT_UNAVAILABLE: Reason = { code: 'audit_unavailable', message: 'the decision could not be recorded, and this deployment denies what it cannot record' };

/** `decided` with every action of every resource denied for `reason` (no outputs, no budget reservation handed out). */
function deniedFor(decided: DecidedCheck, reason: Reason): DecidedCheck {
  const decisions = decided.decisions.map((d): ItemDecision => {
    const effects: Record<string, Verdict> = {};
    for (const a of Object.keys(d.effects)) effects[a] = 'DENY';
    return { effects, reasons: [{ ...reason, actions: Object.keys(effects) }], outputs: [] };
  });
  return { req: decided.req, decisionId: decided.decisionId, deps: decided.deps, policyVersion: decided.policyVersion, enriched: decided.enriched, decisions, ids: decided.ids, stamps: decided.stamps };
}

/**
 * Answers and hands the entry to the decision log. Best-effort: after the answer (the writer
 * builds and serialises the entry then). Strict (`audit.mode: strict`): the answer waits until the
 * entry is durable; when it cannot be, the check is answered DENY for every action with reason
 * `audit_unavailable`.
 */
function answerAudited<R>(log: DecisionLog, reply: R, decided: DecidedCheck, out: CheckAnswer<R>): R | Promise<R> {
  const at = Date.now();
  const source = decided.deps.auditSource ?? '/v1/check';
  const entry = new V1CheckEntry(decided, log.mask, source, at);
  const trace = decided.req.trace;
  if (log.strict) {
    return (recordDecision(log, entry, trace) ?? Promise.resolve()).then(
      () => out(reply, decided),
      // SECURITY: what cannot be recorded is not allowed.
      () => {
        trace?.decided({ decision: 'DENY', reasons: [AUDIT_UNAVAILABLE.code] });
        return out(reply, deniedFor(decided, AUDIT_UNAVAILABLE));
      },
    );
  }
  const answered = out(reply, decided);
  recordDecision(log, entry, trace);
  return answered;
}

/** Counts a decided check: each resource's actions by effect, and what its enrichment did. */
function countDecisions(metrics: BrokerMetrics, req: V1CheckRequest, e: EnrichedInputs, decisions: ItemDecision[]): void {
  if (e.outcome !== undefined) metrics.enrichment('v1', e.outcome);
  const items = e.items;
  const actions = req.actions;
  for (let i = 0; i < items.length; i++) {
    const kind = (items[i] as EnrichedInputs['items'][number]).input.resource.kind;
    const effects = (decisions[i] as ItemDecision).effects;
    for (let j = 0; j < actions.length; j++) {
      const a = actions[j] as string;
      metrics.decision(kind, a, effects[a] === 'ALLOW');
    }
  }
}

/**
 * {@link finishCheck} for a check some budget applies to: the budgets' state is read first and
 * shown to policies as `request.context.budget.<name>`; after evaluation the allowed items'
 * estimates are reserved, and an item that cannot be reserved for is denied (`budget_exhausted`,
 * `budget_unavailable`, ...).
 */
async function finishBudgeted<R>(
  deps: V1CheckDeps,
  budgets: BudgetRuntime,
  req: V1CheckRequest,
  reply: R,
  e: EnrichedInputs,
  decisionId: string,
  start: number,
  parsed: number,
  agent: JsonObject | undefined,
  delegation: DelegationChain | ExternalActors | Reason | undefined,
  out: CheckAnswer<R>,
): Promise<R> {
  const t1 = performance.now();
  const ids = identitiesOf(req, e, agent, delegation);
  const session = await budgets.open(e.items, req.actions, { agent: ids.agent === undefined || 'code' in ids.agent ? undefined : ids.agent, gateway: req.gateway, context: req.context });
  if (session.view !== undefined) ids.context = { ...(req.context as Record<string, JsonValue>), budget: session.view };
  const policies = deps.policies.current;
  const e0 = req.trace !== undefined ? performance.now() : 0;
  const decisions = decideForIdentities(policies.engine, e.items, req.actions, ids, deps.delegation, new Date(), req.explain || deps.audit !== undefined);
  if (req.trace !== undefined) req.trace.evaluate(e0, performance.now(), evaluateAttributes(req, e));
  const budget = await session.reserve(e.items, decisions);
  const t2 = performance.now();
  const decided: DecidedCheck = { req, decisionId, deps, policyVersion: policies.version, enriched: e, decisions, ids, stamps: { start, parsed, enriched: t1, evaluated: t2 } };
  return answerDecided(reply, budget !== undefined ? { ...decided, budget } : decided, out);
}

/** Registers `/v1/check` on `app`. */
export async function registerV1Check(app: FastifyInstance, deps: V1CheckDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toWardenError, deps.audit !== undefined && !deps.audit.strict);
    api.post('/v1/check', { bodyLimit: deps.bodyLimit }, (request, reply) => check(deps, request, reply));
  });
}
