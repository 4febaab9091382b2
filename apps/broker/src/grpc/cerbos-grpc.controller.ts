/**
 * The Cerbos PDP's gRPC API (`cerbos.svc.v1.CerbosService`) on Warden's gRPC listener, so
 * `@cerbos/grpc` and other Cerbos gRPC clients work unchanged. Each method only converts: the
 * message becomes the JSON body the HTTP API validates (same validators, same messages), the
 * decision is `decide/cerbos-decide.ts` (aux data, enrichment, revocations, engine), and the HTTP
 * response builders' output becomes the response message. Errors become the gRPC status Cerbos
 * answers with (INVALID_ARGUMENT for validation errors and limits, etc.) through the one error
 * mapping (`toGrpcStatus`). Public like the Cerbos PDP's gRPC API: reached only from 127.0.0.1.
 */
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

  @GrpcMethod('CerbosService', 'CheckResources')
  checkResources(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parseCheckResourcesRequest(checkResourcesBody(message), this.deps.limits);
      const outputs = await decideCheck(this.deps, req);
      return checkResourcesMessage(toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, newCallId()));
    });
  }

  @GrpcMethod('CerbosService', 'PlanResources')
  planResources(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parsePlanResourcesRequest(planResourcesBody(message));
      const output = await decidePlan(this.deps, req);
      return planResourcesMessage(toPlanResourcesResponse(req, output, newCallId()));
    });
  }

  @GrpcMethod('CerbosService', 'ServerInfo')
  serverInfo(): Promise<Msg> {
    return answer(() => ({ ...this.deps.serverInfo }));
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceSet')
  checkResourceSet(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parseCheckResourceSetRequest(checkResourceSetBody(message), this.deps.limits);
      const outputs = await decideCheck(this.deps, req);
      return { ...toCheckResourceSetResponse(req.requestId, req.inputs, outputs, req.includeMeta) };
    });
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceBatch')
  checkResourceBatch(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parseCheckResourceBatchRequest(checkResourceBatchBody(message), this.deps.limits);
      const outputs = await decideCheck(this.deps, req);
      return { ...toCheckResourceBatchResponse(req.requestId, req.inputs, outputs) };
    });
  }
}
