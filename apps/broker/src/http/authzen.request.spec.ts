import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parseAccessEvaluationRequest, parseAccessEvaluationsRequest } from './authzen.request.js';
import { toAuthzenResponse } from './authzen.response.js';

const limits = { maxResourcesPerRequest: 50, maxActionsPerResource: 50 };
const subject = { type: 'user', id: 'alice', properties: { 'cerbos.roles': ['user'], 'cerbos.policyVersion': 'v2', tenant: 'acme' } };
const resource = { type: 'tool', id: 'web_search', properties: { 'cerbos.scope': 'acme', risk: 'low' } };

/** Messages as the Cerbos 0.55 binary gives them (read off it). */
function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_REQUEST_INVALID');
    return (err as WardenError).message;
  }
  throw new Error('accepted');
}

describe('AuthZEN requests', () => {
  it('map subject and resource properties to Cerbos fields and attributes', () => {
    const req = parseAccessEvaluationRequest({ subject, resource, action: { name: 'invoke' }, context: { 'cerbos.requestId': 'r1', 'cerbos.includeMeta': true } }, limits);
    const [input] = req.inputs;
    expect(input?.principal).toEqual({ id: 'alice', roles: ['user'], attr: { tenant: 'acme' }, policyVersion: 'v2' });
    expect(input?.resource).toEqual({ kind: 'tool', id: 'web_search', attr: { risk: 'low' }, scope: 'acme' });
    expect(input?.actions).toEqual(['invoke']);
    expect(req.requestId).toBe('r1');
    expect(req.includeMeta).toBe(true);
  });

  it('group a batch into one input per (subject, resource), with defaults filled in', () => {
    const req = parseAccessEvaluationsRequest(
      { subject, resource, evaluations: [{ action: { name: 'invoke' } }, { action: { name: 'describe' } }, { resource: { type: 'tool', id: 'shell' }, action: { name: 'invoke' } }] },
      limits,
    );
    expect(req.inputs.map((i) => [i.resource.id, i.actions])).toEqual([
      ['web_search', ['invoke', 'describe']],
      ['shell', ['invoke']],
    ]);
    expect(req.authzen.evaluations.map((e) => e.input)).toEqual([0, 0, 1]);
  });

  it('answer in order and stop as the semantic says', () => {
    const body = { subject, resource, evaluations: [{ action: { name: 'a' } }, { action: { name: 'b' } }, { action: { name: 'c' } }] };
    const outputs = [{ resourceId: 'web_search', actions: { a: { effect: 'EFFECT_ALLOW' as const, policy: 'p' }, b: { effect: 'EFFECT_DENY' as const, policy: 'p' }, c: { effect: 'EFFECT_ALLOW' as const, policy: 'p' } }, effectiveDerivedRoles: [], validationErrors: [], outputs: [] }];
    const answer = (semantic?: string) => toAuthzenResponse(parseAccessEvaluationsRequest({ ...body, ...(semantic ? { options: { evaluations_semantic: semantic } } : {}) }, limits), outputs);
    expect(answer()).toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: true }] });
    expect(answer('deny_on_first_deny')).toEqual({ evaluations: [{ decision: true }, { decision: false }] });
    expect(answer('permit_on_first_permit')).toEqual({ evaluations: [{ decision: true }] });
  });

  it('refuse what the Cerbos PDP refuses, with its messages', () => {
    expect(rejection(() => parseAccessEvaluationRequest({ resource, action: { name: 'a' } }, limits))).toBe('validation error: subject: value is required');
    expect(rejection(() => parseAccessEvaluationRequest({ subject, resource: { type: 'tool' }, action: { name: 'a' } }, limits))).toBe('validation error: resource.id: value is required');
    expect(rejection(() => parseAccessEvaluationRequest({ subject, resource, action: {} }, limits))).toBe('validation error: action.name: value is required');
    expect(rejection(() => parseAccessEvaluationRequest({ subject, resource, action: { name: 'a' }, extra: 1 }, limits))).toContain('unknown field "extra"');
    expect(rejection(() => parseAccessEvaluationsRequest({ subject, resource, evaluations: [] }, limits))).toBe('validation error: evaluations: must contain at least 1 item(s)');
    expect(rejection(() => parseAccessEvaluationsRequest({ subject, evaluations: [{ action: { name: 'a' } }] }, limits))).toBe(
      'validation error: either the default resource must be set or all evaluations must have a resource',
    );
    expect(rejection(() => parseAccessEvaluationsRequest({ subject, resource, evaluations: [{ action: { name: 'a' } }], options: { evaluations_semantic: 'bogus' } }, limits))).toBe(
      'validation error: options.evaluations_semantic: must be in list [, execute_all, deny_on_first_deny, permit_on_first_permit]',
    );
  });
});
