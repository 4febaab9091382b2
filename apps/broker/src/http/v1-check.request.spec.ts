import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parseV1CheckRequest } from './v1-check.request.js';

const limits = { maxResourcesPerRequest: 3, maxActionsPerResource: 2 };
const base = { subject: { token: 'tok' }, action: 'invoke', resource: { kind: 'tool', id: 'search' } };

function refused(body: unknown): WardenError {
  try {
    parseV1CheckRequest(body, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    return err as WardenError;
  }
  throw new Error('expected a refusal');
}

describe(parseV1CheckRequest.name, () => {
  it('reads the sparse single form', () => {
    const req = parseV1CheckRequest({ ...base, requestId: 'r-1', context: { env: 'prod' }, explain: true, agent: { id: 'bot' }, delegation: 'd.t.k' }, limits);
    expect(req).toEqual({
      requestId: 'r-1',
      token: 'tok',
      subject: undefined,
      agent: { id: 'bot' },
      delegation: 'd.t.k',
      actions: ['invoke'],
      resources: [{ kind: 'tool', id: 'search', attr: {} }],
      context: { env: 'prod' },
      explain: true,
      needsTrust: false,
    });
  });

  it('reads batches and marks directly stated identities as needing a trusted gateway', () => {
    const req = parseV1CheckRequest(
      { subject: { id: 'alice', roles: ['user'], attr: { tenant: 'acme' } }, actions: ['a', 'b'], resources: [{ kind: 'tool', id: 'x', attr: { n: 1 }, scope: 'acme' }, { kind: 'tool', id: 'y' }] },
      limits,
    );
    expect(req.needsTrust).toBe(true);
    expect(req.subject).toEqual({ id: 'alice', roles: ['user'], attr: { tenant: 'acme' } });
    expect(req.resources[0]).toEqual({ kind: 'tool', id: 'x', attr: { n: 1 }, scope: 'acme' });
    expect(parseV1CheckRequest({ ...base, agent: { id: 'bot', roles: ['agent'] } }, limits).needsTrust).toBe(true);
  });

  const bad: Array<[string, unknown, string]> = [
    ['not an object', [1], '(body)'],
    ['unknown field', { ...base, principal: {} }, '`principal`: unknown field'],
    ['no subject', { action: 'invoke', resource: base.resource }, '`subject`: is required'],
    ['token and id', { ...base, subject: { token: 't', id: 'a' } }, 'not both'],
    ['empty token', { ...base, subject: { token: '' } }, '`subject.token`'],
    ['no roles', { ...base, subject: { id: 'a' } }, '`subject.roles`'],
    ['both action and actions', { ...base, actions: ['x'] }, 'exactly one of `action` or `actions`'],
    ['neither resource nor resources', { subject: base.subject, action: 'invoke' }, 'exactly one of `resource` or `resources`'],
    ['resource without id', { ...base, resource: { kind: 'tool' } }, '`resource.id`'],
    ['attr not an object', { ...base, resource: { kind: 'tool', id: 'x', attr: [1] } }, '`resource.attr`'],
    ['duplicate actions', { ...base, action: undefined, actions: ['a', 'a'] }, 'unique'],
    ['explain not boolean', { ...base, explain: 'yes' }, '`explain`'],
    ['agent without id', { ...base, agent: { token: 't' } }, '`agent.id`'],
  ];
  it.each(bad)('refuses %s with ERR_REQUEST_INVALID naming the field', (_label, body, fragment) => {
    const err = refused(body);
    expect(err.code).toBe('ERR_REQUEST_INVALID');
    expect(err.message).toContain(fragment);
  });

  it('enforces the request limits', () => {
    expect(refused({ ...base, resource: undefined, resources: [1, 2, 3, 4].map((i) => ({ kind: 'tool', id: `t${i}` })) }).code).toBe('ERR_REQUEST_LIMIT_EXCEEDED');
    expect(refused({ ...base, action: undefined, actions: ['a', 'b', 'c'] }).code).toBe('ERR_REQUEST_LIMIT_EXCEEDED');
  });

  it('never echoes a token in an error', () => {
    const err = refused({ ...base, subject: { token: 'eyJsecret', id: 'x' } });
    expect(err.message).not.toContain('eyJsecret');
  });
});
