import { describe, expect, it } from 'vitest';
import { parseAuxDataFixtures, parsePrincipalFixtures, parseResourceFixtures, parseTestSuite } from './test-suite.parser.js';

const validSuite = `
name: Suite
principals:
  alice: { id: alice, roles: [user] }
resources:
  doc: { kind: doc, id: d1 }
tests:
  - name: alice views
    input: { principals: [alice], resources: [doc], actions: [view] }
    expected:
      - principal: alice
        resource: doc
        actions: { view: EFFECT_ALLOW }
`;

describe(parseTestSuite.name, () => {
  it('parses a valid suite', () => {
    const sut = parseTestSuite(validSuite);
    expect(sut.ok).toBe(true);
    if (sut.ok) expect(sut.value.tests[0]?.expected?.[0]?.actions).toEqual({ view: 'EFFECT_ALLOW' });
  });

  it('rejects text that is not a YAML or JSON mapping', () => {
    expect(parseTestSuite('x\n')).toEqual({ ok: false, error: '1:1 invalid document: contents are not valid YAML or JSON' });
  });

  it('names a missing required field', () => {
    expect(parseTestSuite('name: Suite\n')).toEqual({ ok: false, error: 'tests: value is required' });
  });

  it('points at an unknown field with its position', () => {
    expect(parseTestSuite(`${validSuite}bogus: 1\n`)).toEqual({ ok: false, error: '14:1 unknown field "bogus"' });
  });

  it('reports an invalid effect at the value', () => {
    const sut = parseTestSuite(validSuite.replace('view: EFFECT_ALLOW', 'view: EFFECT_NO_MATCH'));
    expect(sut).toEqual({ ok: false, error: '13:26 tests[0].expected[0].actions["view"]: must be one of [EFFECT_ALLOW, EFFECT_DENY]' });
  });

  it('reports a bad timestamp in options', () => {
    const sut = parseTestSuite(`options:\n  now: "soon"\n${validSuite}`);
    expect(sut.ok).toBe(false);
    if (!sut.ok) expect(sut.error).toMatch(/^2:8 invalid timestamp value "soon"/);
  });

  it('requires a principal and a resource in each expectation', () => {
    const sut = parseTestSuite(validSuite.replace('principal: alice\n        resource: doc', 'resource: doc'));
    expect(sut).toEqual({ ok: false, error: '11:17 tests[0].expected[0]: principal, principals, or principalGroups must be present' });
  });

  it('accepts JSON, snake_case names and merge keys', () => {
    const json = JSON.stringify({
      $schema: 'x',
      name: 'S',
      principals: { a: { id: 'a', roles: ['r'], policy_version: 'v1' } },
      tests: [{ name: 't', input: { principals: ['a'], resources: ['r'], actions: ['x'] } }],
    });
    const sut = parseTestSuite(json);
    expect(sut.ok && sut.value.principals?.['a']?.policyVersion).toBe('v1');
  });
});

describe('fixture parsers', () => {
  it('expands YAML merge keys in principals', () => {
    const sut = parsePrincipalFixtures('principals:\n  a: &a\n    id: a\n    roles: [r]\n  b:\n    <<: *a\n    id: b\n');
    expect(sut).toEqual({ ok: true, value: { principals: { a: { id: 'a', roles: ['r'] }, b: { id: 'b', roles: ['r'] } }, principalGroups: {} } });
  });

  it('names a resource without a kind', () => {
    expect(parseResourceFixtures('resources:\n  my_doc:\n    id: d\n')).toEqual({ ok: false, error: 'resources["myDoc"].kind: value is required' });
  });

  it('rejects an unknown aux data field', () => {
    expect(parseAuxDataFixtures('auxData:\n  t:\n    jot: {}\n')).toEqual({ ok: false, error: '3:5 unknown field "jot"' });
  });
});
