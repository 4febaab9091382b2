/**
 * Maps engine outputs to Cerbos's `CheckResourcesResponse` JSON: empty fields are omitted, the
 * resource echo is the request's (id, kind, policyVersion and scope as sent), `meta` only with
 * `includeMeta`. The per-action parts (`actions`, `meta.actions`) are shared with the deprecated
 * CheckResourceSet and CheckResourceBatch responses.
 */
import type { CheckInput, CheckOutput, Effect, OutputEntry, ValidationError } from '@warden/core';

/** `meta.actions[action]`. */
export interface CerbosActionMeta {
  matchedPolicy: string;
  matchedScope?: string;
}

/** One entry of `results`. */
export interface CerbosCheckResult {
  resource: { id: string; kind: string; policyVersion?: string; scope?: string };
  actions: Record<string, Effect>;
  validationErrors?: ValidationError[];
  meta?: {
    actions: Record<string, CerbosActionMeta>;
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

/**
 * `obj[key] = value` that also works for a request-supplied key `__proto__` (an action or an
 * instance id), which plain assignment would drop (Cerbos prints it like any other key).
 */
export function putKey<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** What one resource's `actions` and (with `includeMeta`) `meta.actions` say. */
export interface ActionAnswers {
  actions: Record<string, Effect>;
  meta: Record<string, CerbosActionMeta> | undefined;
}

/** The effect (and with `includeMeta` the matched policy and scope) of each requested action. */
export function answerActions(input: CheckInput, output: CheckOutput | undefined, includeMeta: boolean): ActionAnswers {
  const actions: Record<string, Effect> = {};
  const meta: Record<string, CerbosActionMeta> | undefined = includeMeta ? {} : undefined;
  for (const action of input.actions) {
    const ae = output?.actions[action];
    // SECURITY: an action the engine did not answer is denied, never omitted or allowed.
    putKey(actions, action, ae?.effect ?? 'EFFECT_DENY');
    if (meta !== undefined) {
      const m: CerbosActionMeta = { matchedPolicy: ae?.policy ?? 'NO_MATCH' };
      if (ae?.scope !== undefined && ae.scope !== '') m.matchedScope = ae.scope;
      putKey(meta, action, m);
    }
  }
  return { actions, meta };
}

function resultFor(input: CheckInput, output: CheckOutput | undefined, includeMeta: boolean): CerbosCheckResult {
  const r = input.resource;
  const echo: CerbosCheckResult['resource'] = { id: r.id, kind: r.kind };
  if (r.policyVersion !== undefined) echo.policyVersion = r.policyVersion;
  if (r.scope !== undefined) echo.scope = r.scope;
  const { actions, meta } = answerActions(input, output, includeMeta);
  const result: CerbosCheckResult = { resource: echo, actions };
  if (output !== undefined && output.validationErrors.length > 0) result.validationErrors = output.validationErrors;
  if (meta !== undefined) {
    result.meta = { actions: meta };
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
