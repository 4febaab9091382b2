/**
 * Parses Cerbos-format policy test suites (`*_test.yaml|yml|json`) and the shared fixtures of a
 * `testdata/` folder (`principals.*`, `resources.*`, `auxdata.*`). Pure: takes file text, returns
 * typed data or an error message worded and positioned as Cerbos words it (`line:col path: message`),
 * so a bad suite points straight at the problem.
 */
import type { Effect, JsonValue } from '@warden/core';
import { formatProblems, readShaped, type Shape, type ShapeProblem, type ShapedDocument } from './yaml-shape.js';

/** A principal fixture. */
export interface TestPrincipal {
  id: string;
  roles: string[];
  attr?: Record<string, JsonValue>;
  policyVersion?: string;
  scope?: string;
}

/** A resource fixture. */
export interface TestResource {
  kind: string;
  id: string;
  attr?: Record<string, JsonValue>;
  policyVersion?: string;
  scope?: string;
}

/** An aux data fixture: one JWT's claims, and/or several named JWTs. */
export interface TestAuxData {
  jwt?: Record<string, JsonValue>;
  jwts?: Record<string, { claims?: Record<string, JsonValue> }>;
}

/** `options` of a suite or a test. A test's options replace the suite's as a whole. */
export interface TestOptions {
  now?: string;
  defaultPolicyVersion?: string;
  defaultScope?: string;
  lenientScopeSearch?: boolean;
  globals?: Record<string, JsonValue>;
  strictEvaluation?: boolean;
}

/** Expected outputs of one action. */
export interface TestOutputExpectations {
  action: string;
  expected: Array<{ src: string; val?: JsonValue }>;
}

/** One entry of a test's `expected` list. */
export interface TestExpectation {
  principal?: string;
  principals?: string[];
  principalGroups?: string[];
  resource?: string;
  resources?: string[];
  resourceGroups?: string[];
  actions?: Record<string, string>;
  outputs?: TestOutputExpectations[];
}

/** One test (a table of principals x resources x actions). */
export interface TestTable {
  name: string;
  description?: string;
  skip?: boolean;
  skipReason?: string;
  options?: TestOptions;
  input: {
    principals?: string[];
    principalGroups?: string[];
    resources?: string[];
    resourceGroups?: string[];
    actions: string[];
    auxData?: string;
  };
  expected?: TestExpectation[];
}

/** A parsed suite file. */
export interface TestSuite {
  name: string;
  description?: string;
  skip?: boolean;
  skipReason?: string;
  options?: TestOptions;
  principals?: Record<string, TestPrincipal>;
  resources?: Record<string, TestResource>;
  auxData?: Record<string, TestAuxData>;
  principalGroups?: Record<string, { principals: string[] }>;
  resourceGroups?: Record<string, { resources: string[] }>;
  tests: TestTable[];
}

/** Either the parsed value or the Cerbos-style error text (problems, one per line). */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Effects a test may expect. */
export const TEST_EFFECTS: readonly Effect[] = ['EFFECT_ALLOW', 'EFFECT_DENY'];

const str: Shape = { kind: 'string' };
const bool: Shape = { kind: 'bool' };
const any: Shape = { kind: 'any' };
const strList: Shape = { kind: 'array', items: str };
const anyMap: Shape = { kind: 'map', values: any };
const obj = (fields: Record<string, Shape>): Shape => ({ kind: 'object', fields });

const principalShape = obj({ id: str, policyVersion: str, roles: strList, attr: anyMap, scope: str });
const resourceShape = obj({ kind: str, id: str, policyVersion: str, attr: anyMap, scope: str });
const auxDataShape = obj({ jwt: anyMap, jwts: { kind: 'map', values: obj({ claims: anyMap }) } });
const optionsShape = obj({
  now: { kind: 'timestamp' },
  defaultPolicyVersion: str,
  defaultScope: str,
  lenientScopeSearch: bool,
  globals: anyMap,
  strictEvaluation: bool,
});
const effectShape: Shape = {
  kind: 'enum',
  values: ['EFFECT_UNSPECIFIED', 'EFFECT_ALLOW', 'EFFECT_DENY', 'EFFECT_NO_MATCH'],
};
const expectationShape = obj({
  principal: str,
  principals: strList,
  principalGroups: strList,
  resource: str,
  resources: strList,
  resourceGroups: strList,
  actions: { kind: 'map', values: effectShape },
  outputs: { kind: 'array', items: obj({ action: str, expected: { kind: 'array', items: obj({ src: str, val: any }) } }) },
});
const testTableShape = obj({
  name: str,
  description: str,
  skip: bool,
  skipReason: str,
  options: optionsShape,
  input: obj({
    principals: strList,
    principalGroups: strList,
    resources: strList,
    resourceGroups: strList,
    actions: strList,
    auxData: str,
  }),
  expected: { kind: 'array', items: expectationShape },
});
const principalGroupsShape: Shape = { kind: 'map', values: obj({ principals: strList }) };
const resourceGroupsShape: Shape = { kind: 'map', values: obj({ resources: strList }) };
const suiteShape = obj({
  name: str,
  description: str,
  skip: bool,
  skipReason: str,
  options: optionsShape,
  principals: { kind: 'map', values: principalShape },
  resources: { kind: 'map', values: resourceShape },
  auxData: { kind: 'map', values: auxDataShape },
  principalGroups: principalGroupsShape,
  resourceGroups: resourceGroupsShape,
  tests: { kind: 'array', items: testTableShape },
});

/** Parses one suite file. */
export function parseTestSuite(text: string): ParseResult<TestSuite> {
  const doc = readShaped(text, suiteShape);
  if (doc.problems.length > 0) return { ok: false, error: formatProblems(doc.problems) };
  const suite = doc.value as TestSuite;
  const problems: ShapeProblem[] = [];
  if (!nonEmpty(suite.name)) problems.push(required('name'));
  checkPrincipals(suite.principals, 'principals', problems);
  checkResources(suite.resources, 'resources', problems);
  if (!Array.isArray(suite.tests) || suite.tests.length === 0) problems.push(required('tests'));
  (suite.tests ?? []).forEach((test, i) => checkTestTable(test, `tests[${i}]`, doc, problems));
  if (problems.length > 0) return { ok: false, error: formatProblems(problems) };
  return { ok: true, value: suite };
}

/** Parsed `testdata/principals.*`. */
export interface PrincipalFixtures {
  principals: Record<string, TestPrincipal>;
  principalGroups: Record<string, { principals: string[] }>;
}

/** Parsed `testdata/resources.*`. */
export interface ResourceFixtures {
  resources: Record<string, TestResource>;
  resourceGroups: Record<string, { resources: string[] }>;
}

/** Parses a principals fixture file. */
export function parsePrincipalFixtures(text: string): ParseResult<PrincipalFixtures> {
  const doc = readShaped(text, obj({ principals: { kind: 'map', values: principalShape }, principalGroups: principalGroupsShape }));
  if (doc.problems.length > 0) return { ok: false, error: formatProblems(doc.problems) };
  const value = doc.value as Partial<PrincipalFixtures>;
  const problems: ShapeProblem[] = [];
  checkPrincipals(value.principals, 'principals', problems);
  if (problems.length > 0) return { ok: false, error: formatProblems(problems) };
  return { ok: true, value: { principals: value.principals ?? {}, principalGroups: value.principalGroups ?? {} } };
}

/** Parses a resources fixture file. */
export function parseResourceFixtures(text: string): ParseResult<ResourceFixtures> {
  const doc = readShaped(text, obj({ resources: { kind: 'map', values: resourceShape }, resourceGroups: resourceGroupsShape }));
  if (doc.problems.length > 0) return { ok: false, error: formatProblems(doc.problems) };
  const value = doc.value as Partial<ResourceFixtures>;
  const problems: ShapeProblem[] = [];
  checkResources(value.resources, 'resources', problems);
  if (problems.length > 0) return { ok: false, error: formatProblems(problems) };
  return { ok: true, value: { resources: value.resources ?? {}, resourceGroups: value.resourceGroups ?? {} } };
}

/** Parses an aux data fixture file. */
export function parseAuxDataFixtures(text: string): ParseResult<Record<string, TestAuxData>> {
  const doc = readShaped(text, obj({ auxData: { kind: 'map', values: auxDataShape } }));
  if (doc.problems.length > 0) return { ok: false, error: formatProblems(doc.problems) };
  return { ok: true, value: (doc.value as { auxData?: Record<string, TestAuxData> }).auxData ?? {} };
}

function checkPrincipals(principals: Record<string, TestPrincipal> | undefined, path: string, problems: ShapeProblem[]): void {
  for (const [key, p] of Object.entries(principals ?? {})) {
    const at = `${path}[${JSON.stringify(camelCase(key))}]`;
    if (!nonEmpty(p.id)) problems.push(required(`${at}.id`));
    if (!Array.isArray(p.roles) || p.roles.length === 0) problems.push(required(`${at}.roles`));
  }
}

function checkResources(resources: Record<string, TestResource> | undefined, path: string, problems: ShapeProblem[]): void {
  for (const [key, r] of Object.entries(resources ?? {})) {
    const at = `${path}[${JSON.stringify(camelCase(key))}]`;
    if (!nonEmpty(r.kind)) problems.push(required(`${at}.kind`));
    if (!nonEmpty(r.id)) problems.push(required(`${at}.id`));
  }
}

function checkTestTable(test: TestTable, path: string, doc: ShapedDocument, problems: ShapeProblem[]): void {
  if (!nonEmpty(test.name)) problems.push(required(`${path}.name`));
  if (test.input === undefined) {
    problems.push(required(`${path}.input`));
  } else if (!Array.isArray(test.input.actions) || test.input.actions.length === 0) {
    problems.push(required(`${path}.input.actions`));
  }
  (test.expected ?? []).forEach((exp, j) => {
    const at = `${path}.expected[${j}]`;
    const position = doc.positionOf(at);
    const oneOf = (single: string | undefined, list: string[] | undefined, groups: string[] | undefined, names: [string, string, string]): void => {
      const [one, many, grouped] = names;
      if (nonEmpty(single) && (list ?? []).length > 0) {
        problems.push({ position, path: at, message: `${one} and ${many} may not both be present` });
      } else if (!nonEmpty(single) && (list ?? []).length === 0 && (groups ?? []).length === 0) {
        problems.push({ position, path: at, message: `${one}, ${many}, or ${grouped} must be present` });
      }
    };
    oneOf(exp.principal, exp.principals, exp.principalGroups, ['principal', 'principals', 'principalGroups']);
    oneOf(exp.resource, exp.resources, exp.resourceGroups, ['resource', 'resources', 'resourceGroups']);
    for (const [action, effect] of Object.entries(exp.actions ?? {})) {
      if (!(TEST_EFFECTS as readonly string[]).includes(effect)) {
        const actionPath = `${at}.actions[${JSON.stringify(action)}]`;
        problems.push({ position: doc.positionOf(actionPath), path: actionPath, message: 'must be one of [EFFECT_ALLOW, EFFECT_DENY]' });
      }
    }
  });
}

/** Cerbos reports fixture map keys in camelCase (`john_leave_request` → `johnLeaveRequest`). */
function camelCase(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function required(path: string): ShapeProblem {
  return { path, message: 'value is required' };
}

function nonEmpty(value: string | undefined): value is string {
  return typeof value === 'string' && value !== '';
}
