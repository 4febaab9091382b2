/**
 * Cerbos's deprecated check responses, built from the same engine outputs as
 * `CheckResourcesResponse` (and the same per-action answers): `CheckResourceSetResponse`
 * (`resourceInstances` keyed by instance id, `meta.resourceInstances` with `includeMeta`) and
 * `CheckResourceBatchResponse` (`results` of `{resourceId, actions, validationErrors}`). As in
 * Cerbos 0.55 neither has `cerbosCallId` or `outputs`, and empty fields are omitted.
 */
import type { CheckInput, CheckOutput, Effect, ValidationError } from '@warden/core';
import { answerActions, putKey, type CerbosActionMeta } from './check-resources.response.js';

/** `resourceInstances[id]`. */
export interface CerbosInstanceResult {
  actions: Record<string, Effect>;
  validationErrors?: ValidationError[];
}

/** `meta.resourceInstances[id]`. */
export interface CerbosInstanceMeta {
  actions: Record<string, CerbosActionMeta>;
  effectiveDerivedRoles?: string[];
}

export interface CerbosCheckResourceSetResponse {
  requestId?: string;
  resourceInstances: Record<string, CerbosInstanceResult>;
  meta?: { resourceInstances: Record<string, CerbosInstanceMeta> };
}

/** One entry of `results`. */
export interface CerbosBatchResult {
  resourceId: string;
  actions: Record<string, Effect>;
  validationErrors?: ValidationError[];
}

export interface CerbosCheckResourceBatchResponse {
  requestId?: string;
  results: CerbosBatchResult[];
}

/** The set response: one instance per input (its resource id is the instance key). */
export function toCheckResourceSetResponse(
  requestId: string | undefined,
  inputs: readonly CheckInput[],
  outputs: readonly CheckOutput[],
  includeMeta: boolean,
): CerbosCheckResourceSetResponse {
  const resourceInstances: Record<string, CerbosInstanceResult> = {};
  const metaInstances: Record<string, CerbosInstanceMeta> | undefined = includeMeta ? {} : undefined;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as CheckInput;
    const output = outputs[i];
    const { actions, meta } = answerActions(input, output, includeMeta);
    const result: CerbosInstanceResult = { actions };
    if (output !== undefined && output.validationErrors.length > 0) result.validationErrors = output.validationErrors;
    putKey(resourceInstances, input.resource.id, result);
    if (metaInstances !== undefined && meta !== undefined) {
      const m: CerbosInstanceMeta = { actions: meta };
      if (output !== undefined && output.effectiveDerivedRoles.length > 0) m.effectiveDerivedRoles = output.effectiveDerivedRoles;
      putKey(metaInstances, input.resource.id, m);
    }
  }
  const body: CerbosCheckResourceSetResponse = requestId !== undefined ? { requestId, resourceInstances } : { resourceInstances };
  if (metaInstances !== undefined) body.meta = { resourceInstances: metaInstances };
  return body;
}

/** The batch response: one result per input, in request order. */
export function toCheckResourceBatchResponse(
  requestId: string | undefined,
  inputs: readonly CheckInput[],
  outputs: readonly CheckOutput[],
): CerbosCheckResourceBatchResponse {
  const results: CerbosBatchResult[] = new Array<CerbosBatchResult>(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as CheckInput;
    const output = outputs[i];
    const result: CerbosBatchResult = { resourceId: input.resource.id, actions: answerActions(input, output, false).actions };
    if (output !== undefined && output.validationErrors.length > 0) result.validationErrors = output.validationErrors;
    results[i] = result;
  }
  return requestId !== undefined ? { requestId, results } : { results };
}
