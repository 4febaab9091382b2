/**
 * The Cerbos PDP's gRPC API (`cerbos.svc.v1.CerbosService`) on Warden's gRPC listener, so
 * `@cerbos/grpc` and other Cerbos gRPC clients work unchanged. Each method only converts: the
 * message becomes the JSON body the HTTP API validates (same validators, same messages), the
 * decision is `decide/cerbos-decide.ts` (aux data, enrichment, revocations, engine), and the HTTP
 * response builders' output becomes the response message. Errors become the gRPC status Cerbos
 * answers with (INVALID_ARGUMENT for validation errors and limits, etc.) through the one error
 * mapping (`toGrpcStatus`). Public like the Cerbos PDP's gRPC API: reached only from 127.0.0.1.
 */
import type { Metadata } from '@grpc/grpc-js';
import { Controller, Inject } from '@nestjs/common';
import { GrpcMethod, RpcException } from '@nestjs/microservices';
import type { CheckOutput } from '@warden/core';
import { cerbosCheckAuditEntry } from '../audit/check-audit-entry.js';
import { decideCheck, decidePlan } from '../decide/cerbos-decide.js';
import { recordDecision } from '../audit/decision-log.js';
import { planEntry, type CerbosApiDeps } from '../http/cerbos-api.routes.js';
import type { CheckRequest } from '../http/request-common.js';
import { toGrpcStatus } from '../http/broker-error.filter.js';
import { newCallId } from '../http/call-id.js';
import { toCheckResourceBatchResponse, toCheckResourceSetResponse } from '../http/check-deprecated.response.js';
import { parseCheckResourceSetRequest } from '../http/check-resource-set.request.js';
import { parseCheckResourceBatchRequest, parseCheckResourcesRequest } from '../http/check-resources.request.js';
import { toCheckResourcesResponse } from '../http/check-resources.response.js';
import { parsePlanResourcesRequest } from '../http/plan-resources.request.js';
import { toPlanResourcesResponse } from '../http/plan-resources.response.js';
import {
  checkResourceBatchBody,
  checkResourcesBody,
  checkResourceSetBody,
  checkResourcesMessage,
  planResourcesBody,
  planResourcesMessage,
} from './cerbos-grpc.convert.js';
import { fromMetadata, type DecisionSpanName } from '../tracing/broker-tracing.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** DI token of the service's dependencies (the same as the HTTP routes'). */
export const CERBOS_GRPC_DEPS = Symbol('CERBOS_GRPC_DEPS');

type Msg = Record<string, unknown>;

/** The decision log's `source` of this service's calls (`<service>/<method>`). */
const GRPC_SOURCE = 'cerbos.svc.v1.CerbosService';

/** Runs one call; any error becomes the gRPC status Cerbos would answer with. */
async function answer(call: () => Msg | Promise<Msg>): Promise<Msg> {
  try {
    return await call();
  } catch (err) {
    throw new RpcException(toGrpcStatus(err));
  }
}

@Controller()
export class CerbosGrpcController {
  constructor(@Inject(CERBOS_GRPC_DEPS) private readonly deps: CerbosApiDeps) {}

  /**
   * Hands a check's entry to the decision log (strict: waits until it is durable) and returns
   * the id it is logged under (the `cerbosCallId` of CheckResources; the deprecated APIs' answers
   * carry no id, so theirs is only in the log).
   */
  private async logged(method: string, policyVersion: string, req: CheckRequest, outputs: CheckOutput[], callId: string): Promise<void> {
    const log = this.deps.audit;
    if (log === undefined) return;
    const at = Date.now();
    await recordDecision(log, () => cerbosCheckAuditEntry(callId, `${GRPC_SOURCE}/${method}`, req, outputs, policyVersion, log.mask, at), req.trace);
  }

  /** Decides a check request with one policy snapshot (traced when `trace` is given) and logs it; resolves to its id. */
  private async decided(method: string, req: CheckRequest, trace: DecisionTrace | undefined): Promise<{ outputs: CheckOutput[]; callId: string }> {
    const policies = this.deps.policies.current;
    const callId = newCallId();
    if (trace !== undefined) {
      req.trace = trace;
      trace.decided({ decisionId: callId, policyVersion: policies.version });
    }
    const outputs = await decideCheck(this.deps, req, policies);
    await this.logged(method, policies.version, req, outputs, callId);
    return { outputs, callId };
  }

  /** Runs one decision call, under a root span continuing a `traceparent` in `metadata` when tracing is on. */
  private traced(name: DecisionSpanName, method: string, metadata: Metadata | undefined, call: (trace: DecisionTrace | undefined) => Promise<Msg>): Promise<Msg> {
    const trace = this.deps.tracing?.start(name, 'cerbos-grpc', metadata === undefined ? undefined : fromMetadata(metadata), { 'rpc.system': 'grpc', 'rpc.service': 'cerbos.svc.v1.CerbosService', 'rpc.method': method });
    return answer(() => (trace === undefined ? call(undefined) : trace.run(() => call(trace))));
  }

  @GrpcMethod('CerbosService', 'CheckResources')
  checkResources(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.check', 'CheckResources', metadata, async (trace) => {
      const req = parseCheckResourcesRequest(checkResourcesBody(message), this.deps.limits);
      const { outputs, callId } = await this.decided('CheckResources', req, trace);
      return checkResourcesMessage(toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, callId));
    });
  }

  @GrpcMethod('CerbosService', 'PlanResources')
  planResources(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.plan', 'PlanResources', metadata, async (trace) => {
      const req = parsePlanResourcesRequest(planResourcesBody(message));
      const policies = this.deps.policies.current;
      const output = await decidePlan(this.deps, req, policies, trace);
      const callId = newCallId();
      trace?.decided({ decisionId: callId, policyVersion: policies.version });
      const log = this.deps.audit;
      if (log !== undefined) await recordDecision(log, planEntry(policies.version, log, `${GRPC_SOURCE}/PlanResources`, callId, req, output), trace);
      return planResourcesMessage(toPlanResourcesResponse(req, output, callId));
    });
  }

  @GrpcMethod('CerbosService', 'ServerInfo')
  serverInfo(): Promise<Msg> {
    return answer(() => ({ ...this.deps.serverInfo }));
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceSet')
  checkResourceSet(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.check', 'CheckResourceSet', metadata, async (trace) => {
      const req = parseCheckResourceSetRequest(checkResourceSetBody(message), this.deps.limits);
      const { outputs } = await this.decided('CheckResourceSet', req, trace);
      return { ...toCheckResourceSetResponse(req.requestId, req.inputs, outputs, req.includeMeta) };
    });
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceBatch')
  checkResourceBatch(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.check', 'CheckResourceBatch', metadata, async (trace) => {
      const req = parseCheckResourceBatchRequest(checkResourceBatchBody(message), this.deps.limits);
      const { outputs } = await this.decided('CheckResourceBatch', req, trace);
      return { ...toCheckResourceBatchResponse(req.requestId, req.inputs, outputs) };
    });
  }
}
