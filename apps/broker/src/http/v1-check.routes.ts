/**
 * `POST /v1/check`: the native sparse check (DESIGN.md section 3). Parse, enrich through the
 * resolvers, decide with the engine, answer with a decision id, per-action effects, reasons safe
 * to show to an agent, outputs and the policy version; `explain: true` adds every attribute's
 * provenance and per-stage timings. Plain Fastify routes (no Nest pipes on the hot path); errors
 * leave in Warden's `{"error": {"code", "message"}}` shape.
 */
import { hash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WardenError, type CheckInput, type CheckOutput } from '@warden/core';
import type { Engine } from '@warden/decision';
import type { JsonObject } from '@warden/resolvers';
import type { GatewayConfig, RequestLimitsConfig } from '../config/broker-config.js';
import { DENIED_BEFORE_EVALUATION, enrichInputs, evaluateEnriched, withoutCredentials, type EnrichedInputs, type Reason } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';
import { parseV1CheckRequest, type V1CheckRequest } from './v1-check.request.js';

/** What the route needs, built at boot. */
export interface V1CheckDeps {
  engine: Engine;
  runtime: ResolverRuntime;
  limits: RequestLimitsConfig;
  matchGateway: GatewayMatcher;
  /** Content hash of the policy set. */
  policyVersion: string;
  bodyLimit: number;
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
  return req.resources.map((r) => ({ requestId, principal, resource: { ...r }, actions: req.actions }));
}

type Stamps = { start: number; parsed: number; enriched: number; evaluated: number };

/** `` `a`, `b` and `c` `` */
function listed(actions: readonly string[]): string {
  const quoted = actions.map((a) => `\`${a}\``);
  return quoted.length === 1 ? (quoted[0] as string) : `${quoted.slice(0, -1).join(', ')} and ${quoted[quoted.length - 1] as string}`;
}

/**
 * The answer. Compact by default (its size is most of a warm check's cost once it is several
 * kilobytes): per resource the effect of each action and the outputs; one reason per denied
 * resource. `explain: true` adds the matched policy and scope of every action, the provenance of
 * every attribute and the stage timings.
 */
function respond(req: V1CheckRequest, decisionId: string, deps: V1CheckDeps, enriched: EnrichedInputs, outputs: CheckOutput[], t: Stamps): unknown {
  const reasons: Reason[] = [];
  let allAllowed = true;
  const results = enriched.items.map((item, i) => {
    const out = outputs[i] as CheckOutput;
    const resource = { kind: item.input.resource.kind, id: item.input.resource.id };
    const actions: Record<string, Verdict> = {};
    let denied: string[] | undefined;
    for (const a of req.actions) {
      const effect: Verdict = out.actions[a]?.effect === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY';
      actions[a] = effect;
      if (effect === 'DENY') (denied ??= []).push(a);
    }
    if (item.denied !== undefined) reasons.push(...item.denied);
    else if (denied !== undefined) {
      const verb = denied.length === 1 ? 'is' : 'are';
      reasons.push({ code: 'policy_denied', message: `${listed(denied)} on ${resource.kind} \`${resource.id}\` ${verb} not allowed by policy`, resource, actions: denied });
    }
    if (denied !== undefined) allAllowed = false;
    return out.outputs.length > 0 ? { resource, decision: denied === undefined ? 'ALLOW' : 'DENY', actions, outputs: out.outputs } : { resource, decision: denied === undefined ? 'ALLOW' : 'DENY', actions };
  });
  const body: Record<string, unknown> = {
    ...(req.requestId !== undefined ? { requestId: req.requestId } : {}),
    decisionId,
    decision: allAllowed ? 'ALLOW' : 'DENY',
    results,
    reasons,
    policyVersion: deps.policyVersion,
  };
  if (req.explain) body['explain'] = explain(req, enriched, outputs, t);
  return body;
}

function explain(req: V1CheckRequest, enriched: EnrichedInputs, outputs: CheckOutput[], t: Stamps): unknown {
  const o = enriched.outcome;
  return {
    items: enriched.items.map((item, i) => {
      const e = o?.items[i];
      const input = withoutCredentials(e?.input ?? {});
      const actions: Record<string, { policy: string; scope?: string }> = {};
      for (const a of req.actions) {
        const ae = (outputs[i] as CheckOutput).actions[a];
        actions[a] = ae?.scope !== undefined ? { policy: ae.policy, scope: ae.scope } : { policy: ae?.policy ?? DENIED_BEFORE_EVALUATION };
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

function check(deps: V1CheckDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> | undefined {
  const start = performance.now();
  const req = parseV1CheckRequest(request.body, deps.limits);
  const header = request.headers[GATEWAY_KEY_HEADER];
  const gateway = deps.matchGateway(typeof header === 'string' ? header : undefined);
  if (req.needsTrust && gateway === undefined) {
    throw new WardenError('ERR_UNAUTHENTICATED', `a subject or agent stated directly (id, roles, attr) needs a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  }
  const decisionId = randomUUID();
  const requestId = req.requestId ?? decisionId;
  const parsed = performance.now();
  const inputs = toInputs(req, requestId);
  const principal: JsonObject = req.subject !== undefined ? { id: req.subject.id, roles: req.subject.roles, attr: req.subject.attr } : {};
  const agent: JsonObject | undefined = req.agent === undefined ? undefined : (req.agent as unknown as JsonObject);
  // No per-request AbortSignal: every resolver call is bounded by its own timeout, and creating
  // a signal per request cost about a tenth of a warm check's CPU (measured, bench/README.md).
  const enriched = enrichInputs(deps.runtime, inputs, {
    requestId,
    // Every object of this request was made by its parser for it alone.
    owned: true,
    principal,
    ...(req.token !== undefined ? { subject: { token: req.token } } : {}),
    ...(agent !== undefined ? { agent } : {}),
    ...(req.delegation !== undefined ? { delegation: { token: req.delegation } } : {}),
    context: req.context,
  });
  const finish = (e: EnrichedInputs): FastifyReply => {
    const t1 = performance.now();
    const outputs = evaluateEnriched(e.items, (ins) => deps.engine.check(ins, { now: new Date(), includeEffectiveDerivedRoles: false }));
    const t2 = performance.now();
    const body = respond(req, decisionId, deps, e, outputs, { start, parsed, enriched: t1, evaluated: t2 });
    return reply.header('content-type', 'application/json').send(JSON.stringify(body));
  };
  // Answered synchronously when every attribute came from the in-process cache.
  if (enriched instanceof Promise) return enriched.then(finish);
  finish(enriched);
  return undefined;
}

/** Registers `/v1/check` on `app`. */
export async function registerV1Check(app: FastifyInstance, deps: V1CheckDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toWardenError);
    api.post('/v1/check', { bodyLimit: deps.bodyLimit }, (request, reply) => check(deps, request, reply));
  });
}
