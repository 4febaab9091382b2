/**
 * Maps engine outputs to Cerbos's `CheckResourcesResponse` JSON: empty fields are omitted, the
 * resource echo is the request's (id, kind, policyVersion and scope as sent), `meta` only with
 * `includeMeta`.
 */
import type { CheckInput, CheckOutput, Effect, OutputEntry, ValidationError } from '@warden/core';

/** One entry of `results`. */
export interface CerbosCheckResult {
  resource: { id: string; kind: string; policyVersion?: string; scope?: string };
  actions: Record<string, Effect>;
  validationErrors?: ValidationError[];
  meta?: {
    actions: Record<string, { matchedPolicy: string; matchedScope?: string }>;
    effectiveDerivedRoles?: string[];
  };
  outputs?: OutputEntry[];
}

/** The response body. */
export interface CerbosCheckResponse {
  requestId?: string;
  results: CerbosCheckResult[];
  cerbosCallId: string;
}

function resultFor(input: CheckInput, output: CheckOutput | undefined, includeMeta: boolean): CerbosCheckResult {
  const r = input.resource;
  const echo: CerbosCheckResult['resource'] = { id: r.id, kind: r.kind };
  if (r.policyVersion !== undefined) echo.policyVersion = r.policyVersion;
  if (r.scope !== undefined) echo.scope = r.scope;
  const actions: Record<string, Effect> = {};
  const result: CerbosCheckResult = { resource: echo, actions };
  const metaActions: Record<string, { matchedPolicy: string; matchedScope?: string }> | undefined = includeMeta
    ? {}
    : undefined;
  for (const action of input.actions) {
    const ae = output?.actions[action];
    // SECURITY: an action the engine did not answer is denied, never omitted or allowed.
    actions[action] = ae?.effect ?? 'EFFECT_DENY';
    if (metaActions !== undefined) {
      const m: { matchedPolicy: string; matchedScope?: string } = { matchedPolicy: ae?.policy ?? 'NO_MATCH' };
      if (ae?.scope !== undefined && ae.scope !== '') m.matchedScope = ae.scope;
      metaActions[action] = m;
    }
  }
  if (output !== undefined && output.validationErrors.length > 0) result.validationErrors = output.validationErrors;
  if (metaActions !== undefined) {
    result.meta = { actions: metaActions };
    if (output !== undefined && output.effectiveDerivedRoles.length > 0) {
      result.meta.effectiveDerivedRoles = output.effectiveDerivedRoles;
    }
  }
  if (output !== undefined && output.outputs.length > 0) result.outputs = output.outputs;
  return result;
}

/** Builds the Cerbos response for `inputs` and the engine's `outputs` (same order). */
export function toCheckResourcesResponse(
  requestId: string | undefined,
  inputs: readonly CheckInput[],
  outputs: readonly CheckOutput[],
  includeMeta: boolean,
  cerbosCallId: string,
): CerbosCheckResponse {
  const results: CerbosCheckResult[] = new Array<CerbosCheckResult>(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    results[i] = resultFor(inputs[i] as CheckInput, outputs[i], includeMeta);
  }
  const body: CerbosCheckResponse = requestId !== undefined ? { requestId, results, cerbosCallId } : { results, cerbosCallId };
  return body;
}

