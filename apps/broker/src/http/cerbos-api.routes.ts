/**
 * The Cerbos-compatible HTTP API (`POST /api/check/resources`, the deprecated `POST /api/check`
 * (CheckResourceSet) and `POST /api/check_resource_batch`, `POST /api/plan/resources`, OpenID
 * AuthZEN's `POST /access/v1/evaluation(s)` and `GET /.well-known/authzen-configuration`, `GET /api/server_info`,
 * `GET /_cerbos/health`) as plain Fastify routes in an encapsulated plugin: no Nest pipes,
 * interceptors or guards on the hot path, its own body parser and error handler. The three check
 * routes share one pipeline (validate, verify aux data, enrich through the resolvers, one engine
 * call) and differ only in their request parser and response builder. With no resolvers
 * registered the enrichment step is skipped entirely and the request is decided synchronously. These routes are public like the Cerbos PDP's: the PDP is
 * reached only from the gateway on 127.0.0.1.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuxData, CheckOutput } from '@warden/core';
import type { Engine, PlanOutput } from '@warden/decision';
import type { RevocationSet } from '@warden/delegation';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { enrichInputs, evaluateEnriched, type EnrichedInputs } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import type { AuxDataVerifier } from './aux-data.verifier.js';
import { toCerbosError } from './broker-error.filter.js';
import { newCallId } from './call-id.js';
import { toCheckResourceBatchResponse, toCheckResourceSetResponse } from './check-deprecated.response.js';
import { parseCheckResourceSetRequest } from './check-resource-set.request.js';
import { parseCheckResourceBatchRequest, parseCheckResourcesRequest } from './check-resources.request.js';
import { toCheckResourcesResponse } from './check-resources.response.js';
import { useJsonBodies } from './json-body.parser.js';
import { parsePlanResourcesRequest, type PlanResourcesRequest } from './plan-resources.request.js';
import { parseAccessEvaluationRequest, parseAccessEvaluationsRequest, type AuthzenRequest } from './authzen.request.js';
import { toAuthzenResponse } from './authzen.response.js';
import { toPlanResourcesResponse } from './plan-resources.response.js';
import type { CheckRequest } from './request-common.js';

/** `GET /api/server_info`, as Cerbos prints it. */
export interface ServerInfo {
  version: string;
  commit: string;
  buildDate: string;
}

/** What the routes need, all built at boot. */
export interface CerbosApiDeps {
  engine: Engine;
  limits: RequestLimitsConfig;
  verifier: AuxDataVerifier;
  serverInfo: ServerInfo;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** The resolvers requests are enriched with (absent: none). */
  runtime?: ResolverRuntime;
  /** Revoked subjects and agents (absent or empty: nothing revoked); a revoked principal is denied here too. */
  revocations?: RevocationSet;
}

/** Default body limit: far above 50 resources × 50 actions with generous attributes. */
export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

const HEALTH_BODY = JSON.stringify({ status: 'SERVING' });
const METHOD_NOT_ALLOWED_BODY = JSON.stringify({ code: 12, message: 'Method Not Allowed' });

/** One check API: how its body becomes engine inputs and how the outputs become its response. */
interface CheckApi {
  parse(body: unknown, limits: RequestLimitsConfig): CheckRequest;
  respond(req: CheckRequest, outputs: readonly CheckOutput[]): unknown;
}

const CHECK_RESOURCES: CheckApi = {
  parse: parseCheckResourcesRequest,
  respond: (req, outputs) => toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, newCallId()),
};

const CHECK_RESOURCE_SET: CheckApi = {
  parse: parseCheckResourceSetRequest,
  respond: (req, outputs) => toCheckResourceSetResponse(req.requestId, req.inputs, outputs, req.includeMeta),
};

const ACCESS_EVALUATION: CheckApi = {
  parse: parseAccessEvaluationRequest,
  respond: (req, outputs) => toAuthzenResponse(req as AuthzenRequest, outputs),
};

const ACCESS_EVALUATIONS: CheckApi = {
  parse: parseAccessEvaluationsRequest,
  respond: (req, outputs) => toAuthzenResponse(req as AuthzenRequest, outputs),
};

const CHECK_RESOURCE_BATCH: CheckApi = {
  parse: parseCheckResourceBatchRequest,
  respond: (req, outputs) => toCheckResourceBatchResponse(req.requestId, req.inputs, outputs),
};

function evaluate(deps: CerbosApiDeps, api: CheckApi, req: CheckRequest, reply: FastifyReply): void {
  // Effective derived roles are only reported with includeMeta; without it the engine can skip them.
  const outputs = deps.engine.check(req.inputs, { now: new Date(), includeEffectiveDerivedRoles: req.includeMeta });
  void reply.header('content-type', 'application/json').send(JSON.stringify(api.respond(req, outputs)));
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

function needsEnrichment(deps: CerbosApiDeps): boolean {
  const state = deps.runtime?.current();
  return state !== undefined && (state.registry === undefined || state.registry.resolvers.length > 0);
}

function evaluateEnrichedRequest(deps: CerbosApiDeps, api: CheckApi, req: CheckRequest, reply: FastifyReply, enriched: EnrichedInputs): FastifyReply {
  const outputs = evaluateEnriched(enriched.items, (inputs) => deps.engine.check(inputs, { now: new Date(), includeEffectiveDerivedRoles: req.includeMeta }));
  req.inputs = enriched.items.map((it) => it.input);
  return reply.header('content-type', 'application/json').send(JSON.stringify(api.respond(req, withDenialOutputs(enriched.items, outputs))));
}

/** Items whose (enriched) principal is a revoked subject or agent are denied before evaluation. */
function withRevocations(deps: CerbosApiDeps, enriched: EnrichedInputs): EnrichedInputs {
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

function decide(deps: CerbosApiDeps, api: CheckApi, req: CheckRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
  const revoked = deps.revocations !== undefined && deps.revocations.size > 0;
  if (!needsEnrichment(deps) && !revoked) {
    evaluate(deps, api, req, reply);
    return reply;
  }
  const enriched = needsEnrichment(deps) ? enrichInputs(deps.runtime as ResolverRuntime, req.inputs, { requestId: req.requestId ?? newCallId() }) : { items: req.inputs.map((input) => ({ input })), outcome: undefined, enrichMs: 0 };
  return enriched instanceof Promise
    ? enriched.then((e) => evaluateEnrichedRequest(deps, api, req, reply, withRevocations(deps, e)))
    : evaluateEnrichedRequest(deps, api, req, reply, withRevocations(deps, enriched));
}

async function verifyAuxData(deps: CerbosApiDeps, req: CheckRequest): Promise<void> {
  // SECURITY: every token is verified before evaluation; one bad token fails the request (as Cerbos).
  const auxData: AuxData = {};
  if (req.jwt !== undefined) auxData.jwt = await deps.verifier.verify(req.jwt.token, req.jwt.keySetId);
  if (req.jwts !== undefined) {
    const named: NonNullable<AuxData['jwts']> = {};
    for (const ref of req.jwts) named[ref.name] = { claims: await deps.verifier.verify(ref.token, ref.keySetId) };
    auxData.jwts = named;
  }
  for (const input of req.inputs) input.auxData = auxData;
}

async function verifyPlanAuxData(deps: CerbosApiDeps, req: PlanResourcesRequest): Promise<void> {
  // SECURITY: as for checks, every token is verified before planning.
  const auxData: AuxData = {};
  if (req.jwt !== undefined) auxData.jwt = await deps.verifier.verify(req.jwt.token, req.jwt.keySetId);
  if (req.jwts !== undefined) {
    const named: NonNullable<AuxData['jwts']> = {};
    for (const ref of req.jwts) named[ref.name] = { claims: await deps.verifier.verify(ref.token, ref.keySetId) };
    auxData.jwts = named;
  }
  req.input = { ...req.input, auxData };
}

/**
 * Plans and answers. A principal revoked through Warden's revocation API gets an always-denied
 * plan, as its checks are denied. Resolvers do not enrich plans yet (their keys are resource ids,
 * which a plan does not have).
 */
function sendPlan(deps: CerbosApiDeps, req: PlanResourcesRequest, reply: FastifyReply): FastifyReply {
  const id = req.input.principal.id;
  const revoked = deps.revocations !== undefined && deps.revocations.size > 0 && deps.revocations.find({ subject: id, agent: id }) !== undefined;
  const output = revoked ? REVOKED_PLAN : deps.engine.plan(req.input, { now: new Date() });
  return reply.header('content-type', 'application/json').send(JSON.stringify(toPlanResourcesResponse(req, output, newCallId())));
}

const REVOKED_PLAN: PlanOutput = { filter: { kind: 'KIND_ALWAYS_DENIED' }, matchedScopes: {}, policyMatch: false, validationErrors: [] };

/** Registers the Cerbos routes on `app` (call before the server is ready). */
export async function registerCerbosApi(app: FastifyInstance, deps: CerbosApiDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toCerbosError);

    const route = (path: string, check: CheckApi): void => {
      api.post(path, { bodyLimit: deps.bodyLimit }, (request: FastifyRequest, reply: FastifyReply) => {
        const req = check.parse(request.body === undefined ? {} : request.body, deps.limits);
        if (req.jwt === undefined && req.jwts === undefined) return decide(deps, check, req, reply);
        return verifyAuxData(deps, req).then(() => decide(deps, check, req, reply));
      });
    };
    api.post('/api/plan/resources', { bodyLimit: deps.bodyLimit }, (request: FastifyRequest, reply: FastifyReply) => {
      const req = parsePlanResourcesRequest(request.body === undefined ? {} : request.body);
      if (req.jwt === undefined && req.jwts === undefined) return sendPlan(deps, req, reply);
      return verifyPlanAuxData(deps, req).then(() => sendPlan(deps, req, reply));
    });
    route('/api/check/resources', CHECK_RESOURCES);
    route('/api/check', CHECK_RESOURCE_SET);
    route('/api/check_resource_batch', CHECK_RESOURCE_BATCH);
    // OpenID AuthZEN 1.0 access evaluation, as the Cerbos PDP serves it, through the same pipeline.
    route('/access/v1/evaluation', ACCESS_EVALUATION);
    route('/access/v1/evaluations', ACCESS_EVALUATIONS);
    api.get('/.well-known/authzen-configuration', (request, reply) => {
      const base = `${request.protocol}://${request.headers.host ?? request.hostname}`;
      void reply
        .header('content-type', 'application/json')
        .send(JSON.stringify({ policy_decision_point: base, access_evaluation_endpoint: `${base}/access/v1/evaluation`, access_evaluations_endpoint: `${base}/access/v1/evaluations` }));
    });

    const info = JSON.stringify(deps.serverInfo);
    api.get('/api/server_info', (_request, reply) => {
      void reply.header('content-type', 'application/json').send(info);
    });
    api.get('/_cerbos/health', (_request, reply) => {
      void reply.header('content-type', 'application/json').send(HEALTH_BODY);
    });

    // A known route with another method: 501 Method Not Allowed, as the Cerbos PDP answers.
    const notAllowed = (_request: FastifyRequest, reply: FastifyReply): void => {
      void reply.code(501).header('content-type', 'application/json').send(METHOD_NOT_ALLOWED_BODY);
    };
    const OTHER_THAN_POST = ['GET', 'PUT', 'DELETE', 'PATCH'] as const;
    const OTHER_THAN_GET = ['POST', 'PUT', 'DELETE', 'PATCH'] as const;
    for (const url of ['/api/check/resources', '/api/check', '/api/check_resource_batch', '/api/plan/resources', '/access/v1/evaluation', '/access/v1/evaluations']) {
      api.route({ method: [...OTHER_THAN_POST], url, handler: notAllowed });
    }
    for (const url of ['/api/server_info', '/_cerbos/health', '/.well-known/authzen-configuration']) {
      api.route({ method: [...OTHER_THAN_GET], url, handler: notAllowed });
    }
  });
}
