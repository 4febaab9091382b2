/**
 * The Cerbos-compatible HTTP API (`POST /api/check/resources`, the deprecated `POST /api/check`
 * (CheckResourceSet) and `POST /api/check_resource_batch`, `POST /api/plan/resources`, OpenID
 * AuthZEN's `POST /access/v1/evaluation(s)` and `GET /.well-known/authzen-configuration`, `GET /api/server_info`,
 * `GET /_cerbos/health`) as plain Fastify routes in an encapsulated plugin: no Nest pipes,
 * interceptors or guards on the hot path, its own body parser and error handler. The three check
 * routes differ only in their request parser and response builder; what is decided (verify aux
 * data, enrich through the resolvers, revocations, one engine call) is `decide/cerbos-decide.ts`,
 * shared with the gRPC service. With no tokens, resolvers or revocations the request is decided
 * synchronously. These routes are public like the Cerbos PDP's: the PDP is reached only from the
 * gateway on 127.0.0.1.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEntry } from '@warden/audit';
import type { CheckOutput } from '@warden/core';
import type { PlanOutput } from '@warden/decision';
import { cerbosCheckAuditEntry, cerbosPlanAuditEntry } from '../audit/check-audit-entry.js';
import { recordDecision, type DecisionLog } from '../audit/decision-log.js';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { decideCheck, decidePlan, type CerbosDecideDeps } from '../decide/cerbos-decide.js';
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
import { fromHeaders } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** `GET /api/server_info`, as Cerbos prints it. */
export interface ServerInfo {
  version: string;
  commit: string;
  buildDate: string;
}

/** What the routes need, all built at boot: the decision's dependencies plus the transport's. */
export interface CerbosApiDeps extends CerbosDecideDeps {
  limits: RequestLimitsConfig;
  serverInfo: ServerInfo;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** The decision log (`CheckResources` decisions, keyed by their `cerbosCallId`); undefined when off. */
  audit?: DecisionLog | undefined;
}

/** Default body limit: far above 50 resources × 50 actions with generous attributes. */
export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

const HEALTH_BODY = JSON.stringify({ status: 'SERVING' });
const METHOD_NOT_ALLOWED_BODY = JSON.stringify({ code: 12, message: 'Method Not Allowed' });

/** One check API: how its body becomes engine inputs and how the outputs become its response. */
interface CheckApi {
  parse(body: unknown, limits: RequestLimitsConfig): CheckRequest;
  /** `callId`: the id the answer carries (`cerbosCallId`), when the API has one. */
  respond(req: CheckRequest, outputs: readonly CheckOutput[], callId?: string): unknown;
  /** The answer's body carries the decision id (`cerbosCallId`); the others get a header. */
  idInBody?: boolean;
}

const CHECK_RESOURCES: CheckApi = {
  parse: parseCheckResourcesRequest,
  respond: (req, outputs, callId) => toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, callId ?? newCallId()),
  idInBody: true,
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

function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.header('content-type', 'application/json').send(JSON.stringify(body));
}

/** Answers a decided check; with the decision log on, its entry is logged under the id the caller gets. */
function answerDecided(deps: CerbosApiDeps, policyVersion: string, source: string, check: CheckApi, req: CheckRequest, outputs: CheckOutput[], reply: FastifyReply, callId: string | undefined): FastifyReply | Promise<FastifyReply> {
  const log = deps.audit;
  if (log === undefined || callId === undefined) return sendJson(reply, check.respond(req, outputs, callId));
  if (check.idInBody !== true) void reply.header('x-warden-decision-id', callId);
  const at = Date.now();
  const durable = recordDecision(log, () => cerbosCheckAuditEntry(callId, source, req, outputs, policyVersion, log.mask, at), req.trace);
  return durable === undefined ? sendJson(reply, check.respond(req, outputs, callId)) : durable.then(() => sendJson(reply, check.respond(req, outputs, callId)));
}

/** Decides one request of `check`'s API with one policy snapshot and answers it. */
function answerCheck(deps: CerbosApiDeps, source: string, check: CheckApi, body: unknown, reply: FastifyReply, trace: DecisionTrace | undefined): FastifyReply | Promise<FastifyReply> {
  const req = check.parse(body === undefined ? {} : body, deps.limits);
  // One snapshot decides and names the version in the entry and the trace.
  const policies = deps.policies.current;
  // The decision id (CheckResources' `cerbosCallId`, or the logged id), known before deciding so the trace can name it.
  const callId = check.idInBody === true || deps.audit !== undefined ? newCallId() : undefined;
  if (trace !== undefined) {
    req.trace = trace;
    trace.decided({ decisionId: callId, policyVersion: policies.version });
  }
  const outputs = decideCheck(deps, req, policies);
  return outputs instanceof Promise ? outputs.then((o) => answerDecided(deps, policies.version, source, check, req, o, reply, callId)) : answerDecided(deps, policies.version, source, check, req, outputs, reply, callId);
}

/** Answers a PlanResources call, logged like a check (kind `plan`, keyed by its `cerbosCallId`). */
function answerPlan(deps: CerbosApiDeps, policyVersion: string, req: PlanResourcesRequest, output: PlanOutput, reply: FastifyReply, trace: DecisionTrace | undefined): FastifyReply | Promise<FastifyReply> {
  const callId = newCallId();
  trace?.decided({ decisionId: callId, policyVersion });
  const log = deps.audit;
  const durable = log === undefined ? undefined : recordDecision(log, planEntry(policyVersion, log, '/api/plan/resources', callId, req, output), trace);
  return durable === undefined ? sendJson(reply, toPlanResourcesResponse(req, output, callId)) : durable.then(() => sendJson(reply, toPlanResourcesResponse(req, output, callId)));
}

/** The closure building a PlanResources entry (shared with the gRPC service). */
export function planEntry(policyVersion: string, log: DecisionLog, source: string, callId: string, req: PlanResourcesRequest, output: PlanOutput): () => AuditEntry {
  const at = Date.now();
  return () => cerbosPlanAuditEntry(callId, source, req, output, policyVersion, log.mask, at);
}

/** Registers the Cerbos routes on `app` (call before the server is ready). */
export async function registerCerbosApi(app: FastifyInstance, deps: CerbosApiDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toCerbosError);

    const route = (path: string, check: CheckApi): void => {
      const attributes = { 'http.request.method': 'POST', 'http.route': path };
      api.post(path, { bodyLimit: deps.bodyLimit }, (request: FastifyRequest, reply: FastifyReply) => {
        const trace = deps.tracing?.start('warden.check', 'cerbos-http', fromHeaders(request.headers), attributes);
        return trace === undefined ? answerCheck(deps, path, check, request.body, reply, undefined) : trace.run(() => answerCheck(deps, path, check, request.body, reply, trace));
      });
    };
    const plan = (request: FastifyRequest, reply: FastifyReply, trace: DecisionTrace | undefined): FastifyReply | Promise<FastifyReply> => {
      const req = parsePlanResourcesRequest(request.body === undefined ? {} : request.body);
      const policies = deps.policies.current;
      const output = decidePlan(deps, req, policies, trace);
      return output instanceof Promise ? output.then((o) => answerPlan(deps, policies.version, req, o, reply, trace)) : answerPlan(deps, policies.version, req, output, reply, trace);
    };
    const planAttributes = { 'http.request.method': 'POST', 'http.route': '/api/plan/resources' };
    api.post('/api/plan/resources', { bodyLimit: deps.bodyLimit }, (request: FastifyRequest, reply: FastifyReply) => {
      const trace = deps.tracing?.start('warden.plan', 'cerbos-http', fromHeaders(request.headers), planAttributes);
      return trace === undefined ? plan(request, reply, undefined) : trace.run(() => plan(request, reply, trace));
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
