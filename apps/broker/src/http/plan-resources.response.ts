/**
 * Maps a plan to Cerbos's `PlanResourcesResponse` JSON: `action` or `actions` as the request sent
 * it, the resource kind and policy version, the filter, `meta` (filterDebug, and the matched scope
 * or scopes) only with `includeMeta`, validation errors when there are any. Empty strings are
 * omitted as protojson omits them, except as map values.
 */
import type { ValidationError } from '@warden/core';
import { filterDebug, type PlanFilter, type PlanOutput } from '@warden/decision';
import type { PlanResourcesRequest } from './plan-resources.request.js';

/** The response body. */
export interface CerbosPlanResponse {
  requestId?: string;
  action?: string;
  actions?: string[];
  resourceKind: string;
  policyVersion?: string;
  filter: PlanFilter;
  meta?: { filterDebug: string; matchedScope?: string; matchedScopes?: Record<string, string> };
  validationErrors?: readonly ValidationError[];
  cerbosCallId: string;
}

/**
 * The response for `req` planned as `output`.
 * @example toPlanResourcesResponse(req, engine.plan(req.input), newCallId()).filter.kind // 'KIND_CONDITIONAL'
 */
export function toPlanResourcesResponse(req: PlanResourcesRequest, output: PlanOutput, cerbosCallId: string): CerbosPlanResponse {
  const { input } = req;
  const res: CerbosPlanResponse = { resourceKind: input.resource.kind, filter: output.filter, cerbosCallId };
  if (req.requestId !== undefined) res.requestId = req.requestId;
  if (req.manyActions) res.actions = [...input.actions];
  else res.action = input.actions[0] as string;
  if (input.resource.policyVersion !== undefined && input.resource.policyVersion !== '') res.policyVersion = input.resource.policyVersion;
  if (req.includeMeta) {
    const meta: NonNullable<CerbosPlanResponse['meta']> = { filterDebug: output.policyMatch ? filterDebug(output.filter) : 'NO_MATCH' };
    if (req.manyActions) {
      const scopes: Record<string, string> = {};
      for (const a of input.actions) Object.defineProperty(scopes, a, { value: output.matchedScopes[a] ?? '', enumerable: true, writable: true, configurable: true });
      meta.matchedScopes = scopes;
    } else {
      const scope = output.matchedScopes[input.actions[0] as string];
      if (scope !== undefined && scope !== '') meta.matchedScope = scope;
    }
    res.meta = meta;
  }
  if (output.validationErrors.length > 0) res.validationErrors = output.validationErrors;
  return res;
}
