import { describe, expect, it } from 'vitest';
import { checkResourcesBody, checkResourceSetBody, jsonToValue, planResourcesBody, planResourcesMessage, valueToJson } from './cerbos-grpc.convert.js';

describe('cerbos-grpc.convert', () => {
  it('turns JSON into google.protobuf.Value and back, nesting included', () => {
    const json = { s: 'x', n: 1.5, zero: 0, b: false, nil: null, list: [1, 'two', [true]], obj: { deep: { k: 'v' } } };
    const value = jsonToValue(json);
    expect(value.structValue?.fields?.['nil']).toEqual({ nullValue: 'NULL_VALUE' });
    expect(value.structValue?.fields?.['zero']).toEqual({ numberValue: 0 });
    // As proto-loader decodes it (oneofs: true names the member that is set).
    const decoded = JSON.parse(JSON.stringify(value), (_k, v: unknown) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
      const member = ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'].find((m) => m in v);
      return member === undefined ? v : { ...v, kind: member };
    });
    expect(valueToJson(decoded)).toEqual(json);
  });

  it('reads a Value with no member set as null', () => {
    expect(valueToJson({})).toBeNull();
    expect(valueToJson(undefined)).toBeNull();
  });

  it('keeps an attribute named __proto__ as an own property', () => {
    const body = checkResourcesBody({ principal: { id: 'a', roles: ['r'], attr: { ['__proto__']: { kind: 'stringValue', stringValue: 'x' } } } });
    const attr = (body['principal'] as { attr: Record<string, unknown> }).attr;
    expect(Object.getOwnPropertyNames(attr)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(attr)).toBe(Object.prototype);
  });

  it('treats empty strings and lists as absent, as proto3 does', () => {
    const body = checkResourcesBody({ requestId: '', principal: { id: '', roles: [], attr: {} }, resources: [] });
    expect(body['requestId']).toBeUndefined();
    expect(body['resources']).toBeUndefined();
    expect(body['principal']).toMatchObject({ id: undefined, roles: undefined });
    expect(checkResourcesBody({})['principal']).toBeUndefined();
  });

  it('sends `actions` in a plan body only when the request has some', () => {
    expect('actions' in planResourcesBody({ action: 'read', actions: [] })).toBe(false);
    expect(planResourcesBody({ actions: ['a', 'b'] })['actions']).toEqual(['a', 'b']);
  });

  it('maps a resource set with its instances', () => {
    const body = checkResourceSetBody({ actions: ['view'], resource: { kind: 'doc', instances: { d1: { attr: { owner: { kind: 'stringValue', stringValue: 'alice' } } } } } });
    expect(body['resource']).toEqual({ kind: 'doc', policyVersion: undefined, instances: { d1: { attr: { owner: 'alice' } } }, scope: undefined });
  });

  it('encodes the values of a plan filter', () => {
    const msg = planResourcesMessage({
      resourceKind: 'doc',
      cerbosCallId: 'c',
      filter: { kind: 'KIND_CONDITIONAL', condition: { expression: { operator: 'in', operands: [{ variable: 'request.resource.attr.tag' }, { value: ['a', 1] }] } } },
    });
    expect(msg['filter']).toEqual({
      kind: 'KIND_CONDITIONAL',
      condition: { expression: { operator: 'in', operands: [{ variable: 'request.resource.attr.tag' }, { value: { listValue: { values: [{ stringValue: 'a' }, { numberValue: 1 }] } } }] } },
    });
  });
});
