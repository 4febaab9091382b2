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
import type { CheckOutput } from '@warden/core';
import { cerbosCheckAuditEntry } from '../audit/check-audit-entry.js';
import { recordDecision } from '../audit/decision-log.js';
import { decideCheck, decidePlan } from '../decide/cerbos-decide.js';
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
  private async logged(method: string, policyVersion: string, req: CheckRequest, outputs: CheckOutput[]): Promise<string> {
    const callId = newCallId();
    const log = this.deps.audit;
    if (log === undefined) return callId;
    const at = Date.now();
    await recordDecision(log, () => cerbosCheckAuditEntry(callId, `${GRPC_SOURCE}/${method}`, req, outputs, policyVersion, log.mask, at));
    return callId;
  }

  @GrpcMethod('CerbosService', 'CheckResources')
  checkResources(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parseCheckResourcesRequest(checkResourcesBody(message), this.deps.limits);
      const policies = this.deps.policies.current;
      const outputs = await decideCheck(this.deps, req, policies);
      const callId = await this.logged('CheckResources', policies.version, req, outputs);
      return checkResourcesMessage(toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, callId));
    });
  }

  @GrpcMethod('CerbosService', 'PlanResources')
  planResources(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parsePlanResourcesRequest(planResourcesBody(message));
      const policies = this.deps.policies.current;
      const output = await decidePlan(this.deps, req, policies);
      const callId = newCallId();
      const log = this.deps.audit;
      if (log !== undefined) await recordDecision(log, planEntry(policies.version, log, `${GRPC_SOURCE}/PlanResources`, callId, req, output));
      return planResourcesMessage(toPlanResourcesResponse(req, output, callId));
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
      const policies = this.deps.policies.current;
      const outputs = await decideCheck(this.deps, req, policies);
      await this.logged('CheckResourceSet', policies.version, req, outputs);
      return { ...toCheckResourceSetResponse(req.requestId, req.inputs, outputs, req.includeMeta) };
    });
  }

  /** Deprecated in Cerbos, still served by it. */
  @GrpcMethod('CerbosService', 'CheckResourceBatch')
  checkResourceBatch(message: Msg): Promise<Msg> {
    return answer(async () => {
      const req = parseCheckResourceBatchRequest(checkResourceBatchBody(message), this.deps.limits);
      const policies = this.deps.policies.current;
      const outputs = await decideCheck(this.deps, req, policies);
      await this.logged('CheckResourceBatch', policies.version, req, outputs);
      return { ...toCheckResourceBatchResponse(req.requestId, req.inputs, outputs) };
    });
  }
}
