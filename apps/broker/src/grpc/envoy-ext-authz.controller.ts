/**
 * Envoy's external authorization over gRPC (`envoy.service.auth.v3.Authorization/Check`) on
 * Warden's gRPC listener. The adapter only converts (`@warden/gateway`'s `envoy*` functions): the
 * `CheckRequest` becomes the forwarded request the HTTP mode (`/v1/ext-authz/*`) also builds,
 * `parseForwardedRequest` reads the check from it, the check is decided by `checkWith` (the one decision path of `/v1/check`), and the
 * verdict (`verdictOf`, shared with the HTTP mode) becomes the `CheckResponse`.
 *
 * - allowed: `status` OK, `ok_response` with the decision id, policy version and hint headers,
 *   `dynamic_metadata` `{decisionId, policyVersion, hints}`;
 * - denied: `status` UNAUTHENTICATED / RESOURCE_EXHAUSTED / PERMISSION_DENIED and a
 *   `denied_response` with 401 (and `WWW-Authenticate`) / 429 / 403 and the JSON reasons;
 * - a malformed request (bad header, method, path, body): INVALID_ARGUMENT and a 400
 *   `denied_response` with Warden's error body, as the HTTP mode answers;
 * - a message that is no HTTP check (no `attributes.request.http`): gRPC error INVALID_ARGUMENT;
 * - a failure inside Warden: gRPC error INTERNAL / UNAVAILABLE, which Envoy with
 *   `failure_mode_allow: false` turns into a denial (fail closed).
 */
import type { Metadata } from '@grpc/grpc-js';
import { Controller, Inject } from '@nestjs/common';
import { GrpcMethod, RpcException } from '@nestjs/microservices';
import { isWardenError, WardenError } from '@warden/core';
import {
  envoyBadRequest,
  envoyCheckResponse,
  envoyForwardedRequest,
  envoyHttpAttributesOrThrow,
  parseForwardedRequest,
  type EnvoyAnswerContext,
  type ForwardedCheck,
} from '@warden/gateway';
import { toGrpcStatus } from '../http/broker-error.filter.js';
import type { ExtAuthzDeps } from '../http/ext-authz.routes.js';
import { forwardedOptions, missingCredentials, toCheckRequest, verdictOf } from '../http/forwarded-check.js';
import { checkWith, GATEWAY_KEY_HEADER, type CheckAnswer } from '../http/v1-check.routes.js';
import { fromHeaders, fromMetadata, type TraceCarrier } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** DI token of the service's dependencies (those of the HTTP mode). */
export const ENVOY_EXT_AUTHZ_DEPS = Symbol('ENVOY_EXT_AUTHZ_DEPS');

type Msg = Record<string, unknown>;

/** Where `checkWith` leaves the answer of one call. */
interface Holder extends EnvoyAnswerContext {
  message: Msg | undefined;
}

const answer: CheckAnswer<Holder> = (h, d) => {
  h.message = envoyCheckResponse(verdictOf(d), h);
  return h;
};

const SPAN_ATTRIBUTES = { 'rpc.system': 'grpc', 'rpc.service': 'envoy.service.auth.v3.Authorization', 'rpc.method': 'Check' } as const;

/**
 * Where the caller's trace is read: the call's metadata (Envoy with tracing on injects its own
 * span there), else the checked request's headers (the client's `traceparent`).
 */
function traceCarrier(message: Msg, metadata: Metadata | undefined): TraceCarrier | undefined {
  if (metadata !== undefined && metadata.get('traceparent').length > 0) return fromMetadata(metadata);
  const http = ((message['attributes'] as Msg | undefined)?.['request'] as Msg | undefined)?.['http'] as Msg | undefined;
  const headers = http?.['headers'];
  return typeof headers === 'object' && headers !== null ? fromHeaders(headers as Record<string, string>) : undefined;
}

@Controller()
export class EnvoyExtAuthzController {
  private readonly identityHeaders: ReadonlySet<string>;

  constructor(@Inject(ENVOY_EXT_AUTHZ_DEPS) private readonly deps: ExtAuthzDeps) {
    this.identityHeaders = new Set([deps.agentHeader ?? 'x-warden-agent', deps.delegationHeader ?? 'x-warden-delegation']);
  }

  @GrpcMethod('Authorization', 'Check')
  async check(message: Msg, metadata?: Metadata): Promise<Msg> {
    try {
      const trace = this.deps.tracing?.start('warden.check', 'ext-authz-grpc', traceCarrier(message, metadata), SPAN_ATTRIBUTES);
      return await (trace === undefined ? this.decide(message, metadata, undefined) : trace.run(() => this.decide(message, metadata, trace)));
    } catch (err) {
      // SECURITY: fail closed: an error status, never an OK.
      throw new RpcException(toGrpcStatus(err));
    }
  }

  private async decide(message: Msg, metadata: Metadata | undefined, trace: DecisionTrace | undefined): Promise<Msg> {
    const attributes = envoyHttpAttributesOrThrow(message);
    let c: ForwardedCheck;
    let headerNames: readonly string[];
    try {
      const f = envoyForwardedRequest(attributes, this.deps.bodyLimit);
      headerNames = f.headerNames;
      c = parseForwardedRequest(f.request, forwardedOptions(this.deps));
    } catch (err) {
      // The client's request is malformed: a 400 the client sees, as over HTTP.
      if (isWardenError(err) && err.code === 'ERR_REQUEST_INVALID') return envoyBadRequest(err.code, err.message);
      throw err;
    }
    const holder: Holder = { message: undefined, requestHeaderNames: headerNames, identityHeaders: this.identityHeaders };
    const none = missingCredentials(c);
    if (none !== undefined) {
      trace?.decided({ decision: 'DENY', reasons: ['credentials_missing'] });
      return envoyCheckResponse(none, holder);
    }
    // The gateway's key, when Envoy sends it as call metadata (`initial_metadata`): budgets `per: key`.
    const key = this.deps.budgets !== undefined ? metadata?.get(GATEWAY_KEY_HEADER)[0] : undefined;
    const gateway = typeof key === 'string' ? this.deps.matchGateway(key)?.name : undefined;
    const req = toCheckRequest(c, gateway);
    if (trace !== undefined) req.trace = trace;
    const pending = checkWith(this.deps, req, holder, answer);
    const done = pending === undefined ? holder : await pending;
    if (done.message === undefined) throw new WardenError('ERR_INTERNAL', 'BUG: the check left no answer');
    return done.message;
  }
}
