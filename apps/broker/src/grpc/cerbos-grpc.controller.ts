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
import { decideCheck, decidePlan } from '../decide/cerbos-decide.js';
import type { CerbosApiDeps } from '../http/cerbos-api.routes.js';
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

  /** Runs one decision call, under a root span continuing a `traceparent` in `metadata` when tracing is on. */
  private traced(name: DecisionSpanName, method: string, metadata: Metadata | undefined, call: (trace: DecisionTrace | undefined) => Promise<Msg>): Promise<Msg> {
    const trace = this.deps.tracing?.start(name, 'cerbos-grpc', metadata === undefined ? undefined : fromMetadata(metadata), { 'rpc.system': 'grpc', 'rpc.service': 'cerbos.svc.v1.CerbosService', 'rpc.method': method });
    return answer(() => (trace === undefined ? call(undefined) : trace.run(() => call(trace))));
  }

  @GrpcMethod('CerbosService', 'CheckResources')
  checkResources(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.check', 'CheckResources', metadata, async (trace) => {
      const req = parseCheckResourcesRequest(checkResourcesBody(message), this.deps.limits);
      const callId = newCallId();
      if (trace !== undefined) {
        req.trace = trace;
        trace.decided({ decisionId: callId, policyVersion: this.deps.policyVersion });
      }
      const outputs = await decideCheck(this.deps, req);
      return checkResourcesMessage(toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, callId));
    });
  }

  @GrpcMethod('CerbosService', 'PlanResources')
  planResources(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.plan', 'PlanResources', metadata, async (trace) => {
      const req = parsePlanResourcesRequest(planResourcesBody(message));
      const output = await decidePlan(this.deps, req, trace);
      return planResourcesMessage(toPlanResourcesResponse(req, output, newCallId()));
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
      if (trace !== undefined) req.trace = trace;
      const outputs = await decideCheck(this.deps, req);
      return { ...toCheckResourceSetResponse(req.requestId, req.inputs, outputs, req.includeMeta) };
    });
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceBatch')
  checkResourceBatch(message: Msg, metadata?: Metadata): Promise<Msg> {
    return this.traced('warden.check', 'CheckResourceBatch', metadata, async (trace) => {
      const req = parseCheckResourceBatchRequest(checkResourceBatchBody(message), this.deps.limits);
      if (trace !== undefined) req.trace = trace;
      const outputs = await decideCheck(this.deps, req);
      return { ...toCheckResourceBatchResponse(req.requestId, req.inputs, outputs) };
    });
  }
}
