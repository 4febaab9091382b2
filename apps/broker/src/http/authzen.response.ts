/**
 * AuthZEN access evaluation responses as the Cerbos PDP gives them: `{decision}` per evaluation,
 * and with `context["cerbos.includeMeta"]` a `context["cerbos.response"]` holding the
 * CheckResources answer (without its call id) for the evaluation's subject. A batch answers its
 * evaluations in order, stopping after the first denial (`deny_on_first_deny`) or the first
 * permit (`permit_on_first_permit`).
 */
import type { CheckInput, CheckOutput } from '@warden/core';
import type { AuthzenRequest } from './authzen.request.js';
import { toCheckResourcesResponse } from './check-resources.response.js';

/** One evaluation's answer. */
export interface AuthzenDecision {
  decision: boolean;
  context?: { 'cerbos.response': unknown };
}

/**
 * The response body for `req`: one decision, or `{evaluations}`.
 * @example toAuthzenResponse(req, engine.check(req.inputs)) // { decision: true }
 */
export function toAuthzenResponse(req: AuthzenRequest, outputs: readonly CheckOutput[]): AuthzenDecision | { evaluations: AuthzenDecision[] } {
  const { evaluations, groups, semantic, single } = req.authzen;
  const responses = new Map<number, unknown>();
  const responseOf = (group: number): unknown => {
    let r = responses.get(group);
    if (r === undefined) {
      const idx = groups[group] ?? [];
      const { cerbosCallId: _omit, ...body } = toCheckResourcesResponse(
        req.requestId,
        idx.map((i) => req.inputs[i] as CheckInput),
        idx.map((i) => outputs[i] as CheckOutput),
        true,
        '',
      );
      r = body;
      responses.set(group, r);
    }
    return r;
  };
  const answers: AuthzenDecision[] = [];
  for (const e of evaluations) {
    // SECURITY: an action the engine did not answer is a denial.
    const decision = outputs[e.input]?.actions[e.action]?.effect === 'EFFECT_ALLOW';
    answers.push(req.includeMeta ? { decision, context: { 'cerbos.response': responseOf(e.group) } } : { decision });
    if ((semantic === 'deny_on_first_deny' && !decision) || (semantic === 'permit_on_first_permit' && decision)) break;
  }
  return single ? (answers[0] as AuthzenDecision) : { evaluations: answers };
}
