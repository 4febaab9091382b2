import { describe, expect, it } from 'vitest';
import type { CheckInput } from '@warden/core';
import { createSchemaRegistry, validateCheckInput, validatePlanResourcesInput, actionMatches, type PolicySchemas } from './index.js';
import { goFloat } from './format.js';

const principalSchema = JSON.stringify({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: {
    department: { type: 'string', enum: ['marketing', 'engineering'] },
    team: { type: 'string', minLength: 3 },
    level: { type: 'integer', minimum: 1, maximum: 1000000 },
    start: { type: 'string', format: 'date-time' },
    address: { $ref: 'cerbos:///common/address.json' },
  },
  required: ['department', 'team'],
  additionalProperties: false,
});
const address = JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', required: ['city'], properties: { city: { type: 'string' } } });
const broken = JSON.stringify({ type: 'object', properties: { x: { $ref: 'cerbos:///nope.json' } } });

const { registry, errors: registryErrors } = createSchemaRegistry([
  { path: 'principal.json', text: principalSchema },
  { path: 'common/address.json', text: address },
  { path: 'broken.json', text: broken },
  { path: 'bad.json', text: '"this": "is not json"' },
  { path: 'ignored.yaml', text: 'a: b' },
]);

function input(pAttr: Record<string, unknown>, rAttr: Record<string, unknown>, actions = ['view']): CheckInput {
  return {
    principal: { id: 'p', roles: ['user'], attr: pAttr as never },
    resource: { kind: 'doc', id: 'r', attr: rAttr as never },
    actions,
  };
}

const schemas = (ignoreP: string[] = [], ignoreR: string[] = []): PolicySchemas => ({
  principalSchema: { ref: 'cerbos:///principal.json', ignoreWhenActions: ignoreP },
  resourceSchema: { ref: 'cerbos:///principal.json', ignoreWhenActions: ignoreR },
});

const bad = { department: 'accounting', team: 'design' };

describe('createSchemaRegistry', () => {
  it('reports unparsable files and ignores non-JSON files', () => {
    expect(registryErrors.map((e) => e.path)).toEqual(['bad.json']);
    expect(registry.has('cerbos:///principal.json')).toBe(true);
    expect(registry.has('cerbos:///common/address.json')).toBe(true);
    expect(registry.has('cerbos:///bad.json')).toBe(false);
    expect(registry.has('cerbos:///broken.json')).toBe(false);
    expect(registry.has('cerbos:///missing.json')).toBe(false);
    expect(registry.has('principal.json')).toBe(false);
  });
});

describe('validateCheckInput', () => {
  it('does nothing when enforcement is none', () => {
    expect(validateCheckInput(registry, schemas(), input(bad, bad), 'none')).toEqual({ errors: [], reject: false });
  });

  it('warn reports errors without rejecting; reject rejects', () => {
    const want = [
      { path: '/department', message: 'value must be one of "marketing", "engineering"', source: 'SOURCE_PRINCIPAL' },
      { path: '/department', message: 'value must be one of "marketing", "engineering"', source: 'SOURCE_RESOURCE' },
    ];
    expect(validateCheckInput(registry, schemas(), input(bad, bad), 'warn')).toEqual({ errors: want, reject: false });
    expect(validateCheckInput(registry, schemas(), input(bad, bad), 'reject')).toEqual({ errors: want, reject: true });
    const ok = { department: 'marketing', team: 'design' };
    expect(validateCheckInput(registry, schemas(), input(ok, ok), 'reject')).toEqual({ errors: [], reject: false });
    expect(validateCheckInput(registry, undefined, input(bad, bad), 'reject')).toEqual({ errors: [], reject: false });
  });

  it('skips a source only when every action matches ignoreWhen', () => {
    const s = schemas(['view:*'], ['view:public']);
    expect(validateCheckInput(registry, s, input(bad, bad, ['view:public']), 'warn').errors).toEqual([]);
    expect(validateCheckInput(registry, s, input(bad, bad, ['view:secret']), 'warn').errors.map((e) => e.source)).toEqual([
      'SOURCE_RESOURCE',
    ]);
    expect(validateCheckInput(registry, s, input(bad, bad, ['view:public', 'edit']), 'warn').errors).toHaveLength(2);
    expect(validateCheckInput(registry, schemas(['*']), input(bad, bad, ['a:b:c']), 'warn').errors).toHaveLength(1);
  });

  it('reports missing and broken schemas as Cerbos does', () => {
    const s: PolicySchemas = {
      principalSchema: { ref: 'cerbos:///missing.json', ignoreWhenActions: [] },
      resourceSchema: { ref: 'cerbos:///broken.json', ignoreWhenActions: [] },
    };
    const r = validateCheckInput(registry, s, input({}, {}), 'reject');
    expect(r.reject).toBe(true);
    expect(r.errors).toEqual([
      {
        path: '',
        message: 'Failed to load principal schema "cerbos:///missing.json": schema _schemas/missing.json doesn\'t exist',
        source: 'SOURCE_PRINCIPAL',
      },
      {
        path: '',
        message:
          'Failed to load resource schema "cerbos:///broken.json": schema _schemas/nope.json referenced by cerbos:///broken.json doesn\'t exist',
        source: 'SOURCE_RESOURCE',
      },
    ]);
  });

  it('words errors like jsonschema v5', () => {
    const attr = { department: 'marketing', team: 'ab', level: 2000000, start: 'yesterday', extra: 1, address: {} };
    const got = validateCheckInput(registry, { principalSchema: schemas().principalSchema }, input(attr, {}), 'warn').errors;
    expect(got.map((e) => `${e.path} ${e.message}`).sort()).toEqual(
      [
        '/ additionalProperties \'extra\' not allowed',
        '/team length must be >= 3, but got 2',
        '/level must be <= 1e+06 but found 2e+06',
        "/start 'yesterday' is not valid 'date-time'",
        "/address missing properties: 'city'",
      ].sort(),
    );
  });

  it('drops resource required errors for query plans', () => {
    const r = validatePlanResourcesInput(
      registry,
      schemas(),
      { principal: { attr: {} }, resource: { attr: { team: 1 } }, actions: ['view'] },
      'warn',
    );
    expect(r.errors.map((e) => `${e.source} ${e.path} ${e.message}`)).toEqual([
      "SOURCE_PRINCIPAL / missing properties: 'department', 'team'",
      'SOURCE_RESOURCE /team expected string, but got number',
    ]);
  });
});

describe('helpers', () => {
  it('matches action globs', () => {
    expect(actionMatches('*', 'a:b')).toBe(true);
    expect(actionMatches('view:*', 'view:public')).toBe(true);
    expect(actionMatches('view:*', 'view:a:b')).toBe(false);
    expect(actionMatches('view', 'view:public')).toBe(false);
  });
  it('formats floats like Go %v', () => {
    expect([20, 3.14, 1e6, 123456, 1234567, 0.0001, 0.00001, -2.5].map(goFloat)).toEqual([
      '20', '3.14', '1e+06', '123456', '1.234567e+06', '0.0001', '1e-05', '-2.5',
    ]);
  });
});

describe('tolerance', () => {
  it('compiles schemas with unknown formats and relative cross-file refs', () => {
    const { registry: r, errors } = createSchemaRegistry([
      { path: 'a.json', text: JSON.stringify({ type: 'object', properties: { x: { type: 'string', format: 'made-up' }, y: { $ref: '/sub/b.json' } } }) },
      { path: 'sub/b.json', text: JSON.stringify({ type: 'integer' }) },
    ]);
    expect(errors).toEqual([]);
    expect(r.has('cerbos:///a.json')).toBe(true);
    const got = validateCheckInput(r, { resourceSchema: { ref: 'cerbos:///a.json', ignoreWhenActions: [] } }, input({}, { x: 'q', y: 1.5 }), 'warn');
    expect(got.errors).toEqual([{ path: '/y', message: 'expected integer, but got number', source: 'SOURCE_RESOURCE' }]);
  });
});
