/**
 * The one place that decides Cerbos-API requests, whatever transport brought them: the HTTP
 * routes (`cerbos-api.routes.ts`) and the gRPC service (`cerbos-grpc.controller.ts`) only parse
 * their wire format into a validated request, call {@link decideCheck} or {@link decidePlan}, and
 * write the answer back in their wire format. The steps, in order: verify the aux-data tokens,
 * enrich the inputs through the resolvers, deny revoked principals, evaluate (or plan).
 *
 * With no tokens, no resolvers and no revocations the whole decision is synchronous (no promise
 * is allocated); otherwise a promise is returned. Errors are thrown (or rejected) as
 * `WardenError`s for the transport's single error mapping.
 *
 * SECURITY: every token is verified before evaluation and one bad token fails the request (as
 * Cerbos); a resolver failure or a revocation denies, never allows.
 */
import type { AuxData, CheckInput, CheckOutput } from '@warden/core';
import type { PlanOutput } from '@warden/decision';
import type { RevocationSet } from '@warden/delegation';
import { evaluateEnriched, type EnrichedInputs } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import { logResolverFailures } from '../logging/resolver-failure.log.js';
import type { WardenLogger } from '../logging/warden-logger.js';
import type { BrokerMetrics } from '../metrics/broker-metrics.js';
import type { AuxDataVerifier } from '../http/aux-data.verifier.js';
import { newCallId } from '../http/call-id.js';
import type { PlanResourcesRequest } from '../http/plan-resources.request.js';
import type { CheckRequest, JwtRef } from '../http/request-common.js';
import type { ActivePolicies, PolicySnapshots } from '../policy-source/policy-holder.js';
import type { BrokerTracing } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';
import { enrichTraced } from '../tracing/traced-enrichment.js';

/** What a decision needs, all built at boot. */
export interface CerbosDecideDeps {
  /** The policy set in force (a request reads `current` once; see {@link decideCheck}). */
  policies: PolicySnapshots;
  verifier: AuxDataVerifier;
  /** The resolvers requests are enriched with (absent: none). */
  runtime?: ResolverRuntime;
  /** Revoked subjects and agents (absent or empty: nothing revoked); a revoked principal is denied. */
  revocations?: RevocationSet;
  /** Where decisions and enrichment are counted (absent: nothing is). */
  metrics?: BrokerMetrics | undefined;
  /** Where resolver failures are logged (absent: they are not). */
  log?: WardenLogger | undefined;
  /** The decision log (present: the engine names each action's deciding rule for it). */
  audit?: unknown;
  /** OpenTelemetry tracing; undefined when `tracing.enabled` is false. */
  tracing?: BrokerTracing | undefined;
}

/** Outputs for items denied before evaluation name the reason, in Cerbos's `outputs` shape. */
function withDenialOutputs(items: EnrichedInputs['items'], outputs: CheckOutput[]): CheckOutput[] {
  items.forEach((it, i) => {
    const out = outputs[i];
    if (it.denied === undefined || out === undefined) return;
    const action = it.input.actions[0] ?? '';
    for (const r of it.denied) out.outputs.push({ src: `warden#${r.code}`, val: { code: r.code, message: r.message, ...(r.resolver !== undefined ? { resolver: r.resolver } : {}) }, action });
  });
  return outputs;
}

function needsEnrichment(deps: CerbosDecideDeps): boolean {
  const state = deps.runtime?.current();
  return state !== undefined && (state.registry === undefined || state.registry.resolvers.length > 0);
}

function hasRevocations(deps: CerbosDecideDeps): boolean {
  return deps.revocations !== undefined && deps.revocations.size > 0;
}

/** Items whose (enriched) principal is a revoked subject or agent are denied before evaluation. */
function withRevocations(deps: CerbosDecideDeps, enriched: EnrichedInputs): EnrichedInputs {
  const revocations = deps.revocations;
  if (revocations === undefined || revocations.size === 0) return enriched;
  const items = enriched.items.map((it): EnrichedInputs['items'][number] => {
    if (it.denied !== undefined) return it;
    const id = it.input.principal.id;
    const r = revocations.find({ subject: id, agent: id });
    return r === undefined ? it : { input: it.input, denied: [{ code: `${r.target}_revoked`, message: `the ${r.target} \`${r.id}\` has been revoked` }] };
  });
  return { ...enriched, items };
}

/** Counts each input's actions by effect (`inputs` and `outputs` are parallel). */
function countDecisions(metrics: BrokerMetrics, inputs: readonly CheckInput[], outputs: readonly CheckOutput[]): void {
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as CheckInput;
    const effects = (outputs[i] as CheckOutput).actions;
    const kind = input.resource.kind;
    for (let j = 0; j < input.actions.length; j++) {
      const a = input.actions[j] as string;
      metrics.decision(kind, a, effects[a]?.effect === 'EFFECT_ALLOW');
    }
  }
}

/** Sets the root span's decision: ALLOW when every action of every resource is allowed. */
function traceOutputs(trace: DecisionTrace, req: CheckRequest, outputs: readonly CheckOutput[]): void {
  let allowed = true;
  for (const out of outputs) for (const a of Object.values(out.actions)) if (a.effect !== 'EFFECT_ALLOW') allowed = false;
  trace.decided({ requestId: req.requestId, decision: allowed ? 'ALLOW' : 'DENY' });
}

/** The engine's outputs, with a `warden.evaluate` span when the request is traced. */
function evaluateTimed(req: CheckRequest, evaluate: () => CheckOutput[]): CheckOutput[] {
  const trace = req.trace;
  if (trace === undefined) return evaluate();
  const t0 = performance.now();
  const outputs = evaluate();
  trace.evaluate(t0, performance.now(), { 'warden.resources': req.inputs.length });
  traceOutputs(trace, req, outputs);
  return outputs;
}

function evaluateItems(deps: CerbosDecideDeps, policies: ActivePolicies, req: CheckRequest, enriched: EnrichedInputs, requestId: string): CheckOutput[] {
  const outputs = evaluateTimed(req, () => evaluateEnriched(enriched.items, (inputs) => policies.engine.check(inputs, { now: new Date(), includeEffectiveDerivedRoles: req.includeMeta, includeRules: deps.audit !== undefined })));
  req.inputs = enriched.items.map((it) => it.input);
  if (deps.metrics !== undefined) {
    if (enriched.outcome !== undefined) deps.metrics.enrichment('cerbos', enriched.outcome);
    countDecisions(deps.metrics, req.inputs, outputs);
  }
  if (deps.log !== undefined && enriched.outcome !== undefined) logResolverFailures(deps.log, enriched.outcome, requestId, undefined, req.trace);
  return withDenialOutputs(enriched.items, outputs);
}

function evaluateVerified(deps: CerbosDecideDeps, policies: ActivePolicies, req: CheckRequest): CheckOutput[] | Promise<CheckOutput[]> {
  const enrich = needsEnrichment(deps);
  if (!enrich && !hasRevocations(deps)) {
    // Effective derived roles are only reported with includeMeta; without it the engine can skip them.
    const options = { now: new Date(), includeEffectiveDerivedRoles: req.includeMeta, includeRules: deps.audit !== undefined };
    const outputs = req.trace === undefined ? policies.engine.check(req.inputs, options) : evaluateTimed(req, () => policies.engine.check(req.inputs, options));
    if (deps.metrics !== undefined) countDecisions(deps.metrics, req.inputs, outputs);
    return outputs;
  }
  const requestId = req.requestId ?? newCallId();
  const enriched = enrich
    ? enrichTraced(req.trace, deps.runtime as ResolverRuntime, req.inputs, { requestId })
    : { items: req.inputs.map((input) => ({ input })), outcome: undefined, enrichMs: 0 };
  return enriched instanceof Promise
    ? enriched.then((e) => evaluateItems(deps, policies, req, withRevocations(deps, e), requestId))
    : evaluateItems(deps, policies, req, withRevocations(deps, enriched), requestId);
}

/** Verifies `auxData.jwt` and `auxData.jwts`; one bad token rejects. */
async function verifyAuxData(deps: CerbosDecideDeps, jwt: JwtRef | undefined, jwts: (JwtRef & { name: string })[] | undefined): Promise<AuxData> {
  const auxData: AuxData = {};
  if (jwt !== undefined) auxData.jwt = await deps.verifier.verify(jwt.token, jwt.keySetId);
  if (jwts !== undefined) {
    const named: NonNullable<AuxData['jwts']> = {};
    for (const ref of jwts) named[ref.name] = { claims: await deps.verifier.verify(ref.token, ref.keySetId) };
    auxData.jwts = named;
  }
  return auxData;
}

/**
 * Decides a validated check request of any of the check APIs: one output per input, in order.
 * `req.inputs` is replaced by the inputs as evaluated (enriched, with the verified aux data), so
 * the response builders echo what was decided. `policies`: the snapshot that decides (read once
 * by the caller when it reports the version too; default the set in force now).
 *
 * @example
 * const req = parseCheckResourcesRequest(body, limits);
 * const outputs = await decideCheck(deps, req);
 * toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, newCallId());
 */
export function decideCheck(deps: CerbosDecideDeps, req: CheckRequest, policies: ActivePolicies = deps.policies.current): CheckOutput[] | Promise<CheckOutput[]> {
  if (req.jwt === undefined && req.jwts === undefined) return evaluateVerified(deps, policies, req);
  return verifyAuxData(deps, req.jwt, req.jwts).then((auxData) => {
    for (const input of req.inputs) input.auxData = auxData;
    return evaluateVerified(deps, policies, req);
  });
}

const REVOKED_PLAN: PlanOutput = { filter: { kind: 'KIND_ALWAYS_DENIED' }, matchedScopes: {}, policyMatch: false, validationErrors: [] };

function planVerified(deps: CerbosDecideDeps, policies: ActivePolicies, req: PlanResourcesRequest, trace: DecisionTrace | undefined): PlanOutput {
  const id = req.input.principal.id;
  const revoked = hasRevocations(deps) && deps.revocations?.find({ subject: id, agent: id }) !== undefined;
  if (revoked) return REVOKED_PLAN;
  if (trace === undefined) return policies.engine.plan(req.input, { now: new Date() });
  const t0 = performance.now();
  const plan = policies.engine.plan(req.input, { now: new Date() });
  trace.evaluate(t0, performance.now());
  trace.decided({ requestId: req.requestId });
  return plan;
}

/**
 * Plans a validated PlanResources request. A principal revoked through Warden's revocation API
 * gets an always-denied plan, as its checks are denied. Resolvers do not enrich plans yet (their
 * keys are resource ids, which a plan does not have).
 */
export function decidePlan(deps: CerbosDecideDeps, req: PlanResourcesRequest, policies: ActivePolicies = deps.policies.current, trace?: DecisionTrace): PlanOutput | Promise<PlanOutput> {
  if (req.jwt === undefined && req.jwts === undefined) return planVerified(deps, policies, req, trace);
  return verifyAuxData(deps, req.jwt, req.jwts).then((auxData) => {
    req.input = { ...req.input, auxData };
    return planVerified(deps, policies, req, trace);
  });
}
