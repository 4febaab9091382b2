/**
 * `POST /v1/plan`: tool discovery (DESIGN.md section 8). The same identities as `/v1/check`
 * (a token, or a subject stated by a trusted gateway; an agent; a delegation), a resource kind and
 * its candidates (ids or a catalog); the answer lists the allowed ids, the conditional ones with
 * their residual condition, a count of denied ones by reason, and the page's `truncated` flag and
 * `cursor`. Plain Fastify route; errors in Warden's `{"error": {"code", "message"}}` shape.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WardenError } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { planAuditEntry } from '../audit/check-audit-entry.js';
import { recordDecision, type DecisionLog } from '../audit/decision-log.js';
import { discoverTools, type ToolDiscoveryDeps } from '../plan/tool-discovery.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';
import { GATEWAY_KEY_HEADER, type GatewayMatcher } from './v1-check.routes.js';
import { parseV1PlanRequest } from './v1-plan.request.js';
import { fromHeaders, type BrokerTracing } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** What the route needs, built at boot. */
export interface V1PlanDeps {
  readonly discovery: ToolDiscoveryDeps;
  readonly limits: RequestLimitsConfig;
  readonly matchGateway: GatewayMatcher;
  readonly bodyLimit: number;
  /** The decision log; undefined when off. */
  readonly audit?: DecisionLog | undefined;
  /** OpenTelemetry tracing; undefined when `tracing.enabled` is false. */
  readonly tracing?: BrokerTracing | undefined;
}

const SPAN_ATTRIBUTES = { 'http.request.method': 'POST', 'http.route': '/v1/plan' } as const;

/** Answers one `/v1/plan` request. */
async function plan(deps: V1PlanDeps, request: FastifyRequest, reply: FastifyReply, trace: DecisionTrace | undefined): Promise<FastifyReply> {
  const { request: req, needsTrust, explain } = parseV1PlanRequest(request.body, deps.limits);
  const header = request.headers[GATEWAY_KEY_HEADER];
  if (needsTrust && deps.matchGateway(typeof header === 'string' ? header : undefined) === undefined) {
    throw new WardenError('ERR_UNAUTHENTICATED', `a subject or agent stated directly (id, roles, attr) needs a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  }
  const discovered = await discoverTools(deps.discovery, req, trace);
  trace?.decided({ policyVersion: discovered.policyVersion });
  const log = deps.audit;
  if (log !== undefined) {
    const at = Date.now();
    await recordDecision(log, () => planAuditEntry(req, discovered, discovered.policyVersion, log.mask, at), trace);
  }
  const { entries: _entries, explain: details, policyVersion, ...result } = discovered;
  return reply.header('content-type', 'application/json').send(JSON.stringify({ ...result, policyVersion, ...(explain ? { explain: details } : {}) }));
}

/** Registers `/v1/plan` on `app`. */
export async function registerV1Plan(app: FastifyInstance, deps: V1PlanDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toWardenError);
    api.post('/v1/plan', { bodyLimit: deps.bodyLimit }, (request, reply) => {
      const trace = deps.tracing?.start('warden.plan', 'plan', fromHeaders(request.headers), SPAN_ATTRIBUTES);
      return trace === undefined ? plan(deps, request, reply, undefined) : trace.run(() => plan(deps, request, reply, trace));
    });
  });
}
