import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parsePlanResourcesRequest } from './plan-resources.request.js';

const base = { requestId: 'r1', action: 'view', principal: { id: 'alice', roles: ['user'] }, resource: { kind: 'doc', attr: { owner: 'alice' } } };

function rejection(body: unknown): string {
  try {
    parsePlanResourcesRequest(body);
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_REQUEST_INVALID');
    return (err as WardenError).message;
  }
  throw new Error('accepted');
}

describe('parsePlanResourcesRequest', () => {
  it('reads a single action, the known attributes and the request id', () => {
    const req = parsePlanResourcesRequest(base);
    expect(req.manyActions).toBe(false);
    expect(req.input.actions).toEqual(['view']);
    expect(req.input.resource).toEqual({ kind: 'doc', attr: { owner: 'alice' } });
    expect(req.requestId).toBe('r1');
  });

  it('reads several actions and remembers that the caller sent a list', () => {
    const { action: _a, ...rest } = base;
    const req = parsePlanResourcesRequest({ ...rest, actions: ['view', 'edit'], includeMeta: true });
    expect(req.manyActions).toBe(true);
    expect(req.input.actions).toEqual(['view', 'edit']);
    expect(req.includeMeta).toBe(true);
  });

  it('refuses a request without an action, or with both forms, with Cerbos\'s message-level rule first', () => {
    const { action: _a, ...rest } = base;
    const rule = "Exactly one of 'action' or 'actions' field must be set";
    expect(rejection(rest)).toBe(`validation error: ${rule}`);
    expect(rejection({ ...rest, action: '', actions: [] })).toBe(`validation error: ${rule}`);
    expect(rejection({ ...base, actions: ['edit'] })).toBe(`validation error: ${rule}`);
    expect(rejection({ ...base, actions: ['edit', 'edit'], resource: {} })).toBe(
      `validation errors:\n - ${rule}\n - actions: repeated value must contain unique items\n - resource.kind: value is required`,
    );
    const { principal: _p, ...noPrincipal } = rest;
    expect(rejection(noPrincipal)).toBe(`validation errors:\n - ${rule}\n - principal: value is required`);
  });

  it('treats an empty actions list as unset (as protobuf does)', () => {
    const req = parsePlanResourcesRequest({ ...base, actions: [] });
    expect(req.manyActions).toBe(false);
    expect(req.input.actions).toEqual(['view']);
  });

  it('refuses a resource without a kind, an id (plans have none) and unknown fields', () => {
    expect(rejection({ ...base, resource: {} })).toBe('validation error: resource.kind: value is required');
    expect(rejection({ ...base, resource: { kind: 'doc', id: 'x' } })).toBe('proto: unknown field "id"');
    expect(rejection({ ...base, extra: 1 })).toBe('proto: unknown field "extra"');
  });

  it('refuses values of the wrong type and a body that is not an object', () => {
    expect(rejection({ ...base, action: 3 })).toContain('invalid value for string field action');
    expect(rejection([])).toContain('unexpected token [');
  });
});
