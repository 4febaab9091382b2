/**
 * `/v1/ext-authz/*`: forward authorization over HTTP, for Envoy's ext_authz HTTP mode (the
 * original method, and the original path after the prefix), nginx `auth_request` (the original
 * method and URI in `X-Original-Method` / `X-Original-URI`, set by its config) and Traefik
 * ForwardAuth (`X-Forwarded-Method` / `X-Forwarded-Uri` / `X-Forwarded-Host`). The forwarded
 * request becomes one check ({@link parseForwardedRequest}) decided exactly as `/v1/check`
 * decides, and the answer is what a gateway acts on:
 *
 * - allowed: 200, empty body, `x-warden-decision-id`, `x-warden-policy-version`, and one
 *   `x-warden-<key>` header per routing hint in the policy's outputs (an output value that is an
 *   object: each key with a string, number, boolean or list-of-strings value);
 * - no credential at all, or one nobody recognises: 401 with `WWW-Authenticate: Bearer`;
 * - denied by policy or delegation: 403; both with a small JSON body naming the reason;
 * - bad input: 400 with a stable code; a failure inside Warden: 5xx. A gateway treats anything but
 *   2xx as a refusal (fail closed).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonObject } from '@warden/resolvers';
import { parseForwardedRequest, type ForwardedCheck } from '@warden/gateway';
import { WardenError } from '@warden/core';
import type { Reason } from '../enrichment/enriched-check.js';
import { toWardenError } from './broker-error.filter.js';
import { checkWith, type CheckAnswer, type V1CheckDeps } from './v1-check.routes.js';
import type { V1CheckRequest } from './v1-check.request.js';

/** What the route needs besides `/v1/check`'s dependencies. */
export interface ExtAuthzDeps extends V1CheckDeps {
  /** Header naming the acting agent (default `x-warden-agent`). */
  agentHeader?: string;
  /** Header carrying a delegation token (default `x-warden-delegation`). */
  delegationHeader?: string;
}

const PREFIX = '/v1/ext-authz';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** Reasons that mean "who are you?" rather than "no". */
const UNAUTHENTICATED = /^(subject_unresolved|agent_unresolved|token_|delegation_(invalid|expired|signature|malformed|unverified))/;
const HINT_KEY = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** Header-safe hint values: printable ASCII without separators that could start a second header. */
const HINT_VALUE = /^[\x20-\x7e]{0,512}$/;

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

function toCheckRequest(c: ForwardedCheck): V1CheckRequest {
  return {
    requestId: undefined,
    token: c.token,
    subject: undefined,
    agent: c.agent !== undefined ? { id: c.agent } : undefined,
    delegation: c.delegation,
    actions: [c.action],
    resources: [{ kind: c.resource.kind, id: c.resource.id, attr: c.resource.attr as JsonObject }],
    context: { http: { ...c.context.http } } as JsonObject,
    explain: false,
    needsTrust: false,
  };
}

/** Routing hints from the outputs of the decided resource. */
function hints(outputs: readonly { val?: unknown }[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const o of outputs) {
    const v = o.val;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) continue;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (!HINT_KEY.test(k)) continue;
      const text = Array.isArray(x) ? (x.every((e) => typeof e === 'string') ? x.join(',') : undefined) : typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined;
      // SECURITY: a value that could end the header line is dropped, never sent.
      if (text !== undefined && HINT_VALUE.test(text)) out.push([`x-warden-${k.toLowerCase()}`, text]);
    }
  }
  return out;
}

const answer: CheckAnswer = (reply, d) => {
  const item = d.decisions[0];
  const allowed = item !== undefined && d.req.actions.every((a) => item.effects[a] === 'ALLOW');
  void reply.header('x-warden-decision-id', d.decisionId).header('x-warden-policy-version', d.deps.policyVersion);
  if (allowed) {
    for (const [k, v] of hints(item.outputs)) void reply.header(k, v);
    return reply.code(200).send();
  }
  const reasons: Reason[] = item?.reasons ?? [{ code: 'internal', message: 'no decision' }];
  const unauthenticated = reasons.some((r) => UNAUTHENTICATED.test(r.code));
  if (unauthenticated) void reply.header('www-authenticate', 'Bearer error="invalid_token"');
  return reply
    .code(unauthenticated ? 401 : 403)
    .header('content-type', 'application/json')
    .send(JSON.stringify({ decision: 'DENY', decisionId: d.decisionId, reasons: reasons.map((r) => ({ code: r.code, message: r.message })) }));
};

function handle(deps: ExtAuthzDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> | FastifyReply | undefined {
  const o = original(request);
  const headers: Record<string, string | undefined> = {};
  for (const name of ['authorization', deps.agentHeader ?? 'x-warden-agent', deps.delegationHeader ?? 'x-warden-delegation']) headers[name] = header(request, name);
  const body = typeof request.body === 'string' ? request.body : undefined;
  const c = parseForwardedRequest(
    { method: o.method, path: o.path, ...(o.host !== undefined ? { host: o.host } : {}), headers, ...(body !== undefined ? { body } : {}) },
    { ...(deps.agentHeader !== undefined ? { agentHeader: deps.agentHeader } : {}), ...(deps.delegationHeader !== undefined ? { delegationHeader: deps.delegationHeader } : {}) },
  );
  if (c.token === undefined && c.agent === undefined && c.delegation === undefined) {
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer')
      .header('content-type', 'application/json')
      .send(JSON.stringify({ decision: 'DENY', reasons: [{ code: 'credentials_missing', message: 'the request carries no bearer token, agent or delegation' }] }));
  }
  return checkWith(deps, toCheckRequest(c), reply, answer);
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
