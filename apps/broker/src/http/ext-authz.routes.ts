/**
 * `/v1/ext-authz/*`: forward authorization over HTTP, for Envoy's ext_authz HTTP mode (the
 * original method, and the original path after the prefix), nginx `auth_request` (the original
 * method and URI in `X-Original-Method` / `X-Original-URI`, set by its config) and Traefik
 * ForwardAuth (`X-Forwarded-Method` / `X-Forwarded-Uri` / `X-Forwarded-Host`). The forwarded
 * request becomes one check ({@link parseForwardedRequest}) decided exactly as `/v1/check`
 * decides, and the answer is what a gateway acts on:
 *
 * - allowed: 200, empty body, `x-warden-decision-id`, `x-warden-policy-version`, and one header
 *   per routing hint in the policy's outputs (`gatewayHints`: `x-warden-allowed-regions`,
 *   `x-warden-max-tokens`, `x-warden-model`, `x-warden-content-restrictions`, else
 *   `x-warden-<key>`);
 * - no credential at all, or one nobody recognises: 401 with `WWW-Authenticate: Bearer`;
 * - a budget used up (reason `budget_exhausted`): 429; denied by policy or delegation: 403; all
 *   with a small JSON body naming the reasons (`denialStatus`, shared with Envoy's gRPC mode);
 * - bad input: 400 with a stable code; a failure inside Warden: 5xx. A gateway treats anything but
 *   2xx as a refusal (fail closed).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { denialJson, parseForwardedRequest, type GatewayVerdict } from '@warden/gateway';
import { WardenError } from '@warden/core';
import { toWardenError } from './broker-error.filter.js';
import { forwardedOptions, missingCredentials, toCheckRequest, verdictOf, type ForwardAuthHeaders } from './forwarded-check.js';
import { checkWith, GATEWAY_KEY_HEADER, type CheckAnswer, type V1CheckDeps } from './v1-check.routes.js';
import { fromHeaders } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** What the route needs besides `/v1/check`'s dependencies. */
export interface ExtAuthzDeps extends V1CheckDeps, ForwardAuthHeaders {}

const PREFIX = '/v1/ext-authz';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  if (Array.isArray(v)) throw new WardenError('ERR_REQUEST_INVALID', `header \`${name}\` is sent more than once`);
  return v;
}

/** The original request as the gateway describes it. */
function original(request: FastifyRequest): { method: string; path: string; host: string | undefined } {
  const url = request.url;
  const own = url.length > PREFIX.length ? url.slice(PREFIX.length) : '/';
  const method = header(request, 'x-original-method') ?? header(request, 'x-forwarded-method') ?? request.method;
  const path = header(request, 'x-original-uri') ?? header(request, 'x-forwarded-uri') ?? (own.startsWith('/') ? own : `/${own}`);
  const host = header(request, 'x-forwarded-host') ?? header(request, 'x-original-host') ?? header(request, 'host');
  return { method: method.toUpperCase(), path, host };
}

/** Sends a verdict as forward-auth over HTTP: 200 with hint headers, or 401/403/429 with a JSON body. */
function send(reply: FastifyReply, v: GatewayVerdict): FastifyReply {
  if (v.decisionId !== undefined) void reply.header('x-warden-decision-id', v.decisionId);
  if (v.policyVersion !== undefined) void reply.header('x-warden-policy-version', v.policyVersion);
  if (v.allowed) {
    for (const h of v.hints) void reply.header(h.header, h.value);
    // For the gateway to settle the tokens it reserved (nginx: `auth_request_set`; not passed upstream unless configured).
    if (v.reservationId !== undefined) void reply.header('x-warden-reservation-id', v.reservationId);
    return reply.code(200).send();
  }
  if (v.challenge !== undefined) void reply.header('www-authenticate', v.challenge);
  return reply.code(v.status.http).header('content-type', 'application/json').send(denialJson(v));
}

const answer: CheckAnswer = (reply, d) => send(reply, verdictOf(d));

function handle(deps: ExtAuthzDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> | FastifyReply | undefined {
  const trace = deps.tracing?.start('warden.check', 'ext-authz-http', fromHeaders(request.headers), { 'http.request.method': request.method, 'http.route': request.routeOptions.url ?? PREFIX });
  return trace === undefined ? decide(deps, request, reply, undefined) : trace.run(() => decide(deps, request, reply, trace));
}

function decide(deps: ExtAuthzDeps, request: FastifyRequest, reply: FastifyReply, trace: DecisionTrace | undefined): Promise<FastifyReply> | FastifyReply | undefined {
  const o = original(request);
  const headers: Record<string, string | undefined> = {};
  for (const name of ['authorization', deps.agentHeader ?? 'x-warden-agent', deps.delegationHeader ?? 'x-warden-delegation', 'content-type', 'x-envoy-auth-partial-body']) {
    headers[name] = header(request, name);
  }
  const body = typeof request.body === 'string' ? request.body : undefined;
  const c = parseForwardedRequest({ method: o.method, path: o.path, ...(o.host !== undefined ? { host: o.host } : {}), headers, ...(body !== undefined ? { body } : {}) }, forwardedOptions(deps));
  const none = missingCredentials(c);
  if (none !== undefined) {
    trace?.decided({ decision: 'DENY', reasons: ['credentials_missing'] });
    return send(reply, none);
  }
  const gateway = deps.budgets !== undefined ? deps.matchGateway(header(request, GATEWAY_KEY_HEADER))?.name : undefined;
  const req = toCheckRequest(c, gateway);
  if (trace !== undefined) req.trace = trace;
  return checkWith(deps, req, reply, answer);
}

/** Registers `/v1/ext-authz` and `/v1/ext-authz/*` (every method) on `app`. */
export async function registerExtAuthz(app: FastifyInstance, deps: ExtAuthzDeps): Promise<void> {
  await app.register(async (api) => {
    api.removeAllContentTypeParsers();
    // The original body (Envoy's HTTP mode can send it), kept as text; the adapter reads JSON from it.
    api.addContentTypeParser('*', { parseAs: 'string', bodyLimit: deps.bodyLimit }, (_req, body, done) => done(null, body));
    api.setErrorHandler((err, _req, reply) => {
      const { status, body } = toWardenError(err);
      void reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
    });
    const handler = (request: FastifyRequest, reply: FastifyReply) => handle(deps, request, reply);
    api.route({ method: [...METHODS], url: PREFIX, handler });
    api.route({ method: [...METHODS], url: `${PREFIX}/*`, handler });
  });
}
