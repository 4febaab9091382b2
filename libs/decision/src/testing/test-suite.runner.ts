/**
 * Runs Cerbos-format policy test suites against a Warden engine and returns Cerbos's result tree
 * (see {@link TestResults}). Pure: the caller hands over file texts (suites and `testdata/`
 * fixtures, paths relative to the policy root) and a factory that builds an engine for an
 * {@link EngineConfig}; suite and test `options` become engine settings, so one engine is built per
 * distinct option set and reused.
 *
 * Semantics follow Cerbos's `internal/verify`: a test expands to principals x resources (groups
 * included), every action of the input is one result, an action without an expectation must be
 * DENY, a test's `options` replace the suite's, and a test that leaves `now` unset but whose
 * policies read the clock is ERRORED.
 *
 * @example
 * const results = runPolicyTests(files, { createChecker: (config) => createEngine(policySet, config) });
 * if (results.summary.overallResult !== 'RESULT_PASSED') process.exitCode = 4;
 */
import type { AuxData, CheckInput, CheckOutput, Effect, JsonValue } from '@warden/core';
import { WardenError } from '@warden/core';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from '../engine.types.js';
import {
  TEST_RESULT_RANK,
  type TestActionResult,
  type TestCaseResult,
  type TestDetails,
  type TestOutputEntry,
  type TestOutputFailure,
  type TestResult,
  type TestResults,
  type TestResultsSummary,
  type TestResultTally,
  type TestSuiteResult,
} from './test-results.types.js';
import {
  parseAuxDataFixtures,
  parsePrincipalFixtures,
  parseResourceFixtures,
  parseTestSuite,
  type ParseResult,
  type PrincipalFixtures,
  type ResourceFixtures,
  type TestAuxData,
  type TestOptions,
  type TestOutputExpectations,
  type TestPrincipal,
  type TestResource,
  type TestSuite,
  type TestTable,
} from './test-suite.parser.js';

/** A file of the policy tree as text; `path` is relative to the root and `/`-separated. */
export interface PolicyTestFile {
  path: string;
  text: string;
}

/** The part of the engine the runner uses. */
export interface PolicyTestChecker {
  check(inputs: CheckInput[], options?: { now?: Date }): CheckOutput[];
}

/** Options of {@link runPolicyTests}. */
export interface RunPolicyTestsOptions {
  /** Builds an engine for one configuration (called once per distinct suite/test options). */
  createChecker(config: EngineConfig): PolicyTestChecker;
  /** Settings applied under every suite's options (e.g. `strictEvaluation` from the command line). */
  baseConfig?: Partial<EngineConfig>;
  /** Only tests whose full name (`suite/test_table_name:"…" principal_key:"…" resource_key:"…"`) matches run. */
  includedTestNamesRegexp?: string;
  /** Tests whose resource would be decided by one of these policies are skipped. */
  excludedResourcePolicyFqns?: readonly string[];
  /** Tests whose principal would be decided by one of these policies are skipped. */
  excludedPrincipalPolicyFqns?: readonly string[];
}

const SUITE_FILE = /(^|\/)[^/]*_test\.(yaml|yml|json)$/;
const FIXTURE_DIR = 'testdata';
const FIXTURE_EXTENSIONS = ['.yaml', '.yml', '.json'];
const AUX_DATA_NAMES = ['auxdata', 'auxData', 'aux_data'];
const SKIP_REASON_NAME = 'Test name did not match the provided pattern';
const SKIP_REASON_RESOURCE = 'Resource matched a policy that was excluded from the bundle';
const SKIP_REASON_PRINCIPAL = 'Principal matched a policy that was excluded from the bundle';
const ERR_USED_DEFAULT_NOW = 'a policy used a time-based condition, but `now` was not provided in the test options';
/** Go's zero time, which Cerbos hands to policies when a test sets no `now`. */
const ZERO_TIME = new Date('0001-01-01T00:00:00Z');
/** A second clock used to detect whether a test depends on `now` (see {@link checkWithClock}). */
const PROBE_TIME = new Date('9999-12-31T23:59:59Z');

/** True for a test suite file name (`*_test.yaml|yml|json`) outside `testdata/` folders. */
export function isTestSuitePath(path: string): boolean {
  return SUITE_FILE.test(path) && !path.split('/').slice(0, -1).includes(FIXTURE_DIR);
}

/** True for a file that lives inside a `testdata/` fixtures folder. */
export function isTestFixturePath(path: string): boolean {
  return path.split('/').slice(0, -1).includes(FIXTURE_DIR);
}

/** Runs every suite found among `files`. Throws `ERR_TEST_SUITE_INVALID` for a bad name pattern. */
export function runPolicyTests(files: readonly PolicyTestFile[], options: RunPolicyTestsOptions): TestResults {
  const filter = createFilter(options);
  const byPath = new Map(files.map((f) => [f.path, f.text]));
  const fixtures = new Map<string, ParseResult<Fixture>>();
  const checkers = new Map<string, PolicyTestChecker>();
  const checkerFor = (config: EngineConfig): PolicyTestChecker => {
    const key = JSON.stringify(config);
    let checker = checkers.get(key);
    if (checker === undefined) {
      checker = options.createChecker(config);
      checkers.set(key, checker);
    }
    return checker;
  };
  const eager = new WeakMap<PolicyTestChecker, boolean>();
  const readsClockEagerly = (checker: PolicyTestChecker): boolean => {
    let known = eager.get(checker);
    if (known === undefined) {
      known = probeEagerClock(checker);
      eager.set(checker, known);
    }
    return known;
  };
  const ctx: SuiteContext = { filter, checkerFor, readsClockEagerly, baseConfig: options.baseConfig ?? {} };

  const suitePaths = files.map((f) => f.path).filter(isTestSuitePath).sort(compareStrings);
  const suites: TestSuiteResult[] = [];
  for (const file of suitePaths) {
    suites.push(runSuiteFile(file, byPath.get(file) ?? '', byPath, fixtures, ctx));
  }

  const summary: MutableSummary = { overall: 'RESULT_UNSPECIFIED', count: 0, tallies: new Map() };
  for (const suite of suites) {
    summary.count += suite.summary.testsCount ?? 0;
    for (const tally of suite.summary.resultCounts ?? []) addTally(summary, tally.result, tally.count);
    raise(summary, suite.summary.overallResult ?? 'RESULT_UNSPECIFIED');
  }
  const results: TestResults = { summary: toSummary(summary) };
  if (suites.length > 0) return { suites, ...results };
  return results;
}

interface Fixture {
  principals?: PrincipalFixtures;
  resources?: ResourceFixtures;
  auxData?: Record<string, TestAuxData>;
}

interface SuiteContext {
  filter: TestFilter;
  readsClockEagerly(checker: PolicyTestChecker): boolean;
  checkerFor(config: EngineConfig): PolicyTestChecker;
  baseConfig: Partial<EngineConfig>;
}

function runSuiteFile(
  file: string,
  text: string,
  byPath: ReadonlyMap<string, string>,
  fixtures: Map<string, ParseResult<Fixture>>,
  ctx: SuiteContext,
): TestSuiteResult {
  const parsed = parseTestSuite(text);
  if (!parsed.ok) {
    return { file, name: 'Unknown', summary: { overallResult: 'RESULT_ERRORED' }, error: `failed to load test suite:\n${parsed.error}` };
  }
  const suite = parsed.value;
  const dir = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '';
  const fixtureDir = dir === '' ? FIXTURE_DIR : `${dir}/${FIXTURE_DIR}`;
  let fixture = fixtures.get(fixtureDir);
  if (fixture === undefined) {
    fixture = loadFixture(fixtureDir, byPath);
    fixtures.set(fixtureDir, fixture);
  }
  if (!fixture.ok) {
    return withDescription(
      { file, name: suite.name, summary: { overallResult: 'RESULT_ERRORED' }, error: `failed to load test fixtures from ${fixtureDir}: ${fixture.error}` },
      suite,
    );
  }
  return runSuite(file, suite, new SuiteRun(suite, fixture.value), ctx);
}

function withDescription(result: TestSuiteResult, suite: TestSuite): TestSuiteResult {
  if (suite.description) result.description = suite.description;
  return result;
}

function loadFixture(dir: string, byPath: ReadonlyMap<string, string>): ParseResult<Fixture> {
  const find = (base: string): string | undefined => {
    for (const ext of FIXTURE_EXTENSIONS) {
      const path = `${dir}/${base}${ext}`;
      if (byPath.has(path)) return path;
    }
    return undefined;
  };
  const fixture: Fixture = {};
  const principalsPath = find('principals');
  if (principalsPath !== undefined) {
    const parsed = parsePrincipalFixtures(byPath.get(principalsPath) ?? '');
    if (!parsed.ok) return { ok: false, error: `failed to load principals:\n${parsed.error}` };
    const bad = checkGroups(parsed.value.principalGroups, (g) => g.principals, (n) => n in parsed.value.principals);
    if (bad !== undefined) return { ok: false, error: `failed to load principals: ${bad}` };
    fixture.principals = parsed.value;
  }
  const resourcesPath = find('resources');
  if (resourcesPath !== undefined) {
    const parsed = parseResourceFixtures(byPath.get(resourcesPath) ?? '');
    if (!parsed.ok) return { ok: false, error: `failed to load resources:\n${parsed.error}` };
    const bad = checkGroups(parsed.value.resourceGroups, (g) => g.resources, (n) => n in parsed.value.resources);
    if (bad !== undefined) return { ok: false, error: `failed to load resources: ${bad}` };
    fixture.resources = parsed.value;
  }
  for (const name of AUX_DATA_NAMES) {
    const auxPath = find(name);
    if (auxPath === undefined) continue;
    const parsed = parseAuxDataFixtures(byPath.get(auxPath) ?? '');
    if (!parsed.ok) return { ok: false, error: `failed to load aux data:\n${parsed.error}` };
    fixture.auxData = parsed.value;
    break;
  }
  return { ok: true, value: fixture };
}

function checkGroups<G>(groups: Record<string, G> | undefined, members: (g: G) => string[] | undefined, exists: (name: string) => boolean): string | undefined {
  for (const [groupName, group] of Object.entries(groups ?? {})) {
    for (const member of members(group) ?? []) {
      if (!exists(member)) return `missing fixture ${JSON.stringify(member)} referenced in group ${JSON.stringify(groupName)}`;
    }
  }
  return undefined;
}

/** Lookups of one suite: the suite's own definitions first, then the shared fixtures. */
class SuiteRun {
  constructor(
    readonly suite: TestSuite,
    private readonly fixture: Fixture,
  ) {}

  principal(name: string): TestPrincipal {
    const found = own(this.suite.principals, name) ?? own(this.fixture.principals?.principals, name);
    if (found === undefined) throw new LookupError(`principal ${JSON.stringify(name)} not found`);
    return found;
  }

  resource(name: string): TestResource {
    const found = own(this.suite.resources, name) ?? own(this.fixture.resources?.resources, name);
    if (found === undefined) throw new LookupError(`resource ${JSON.stringify(name)} not found`);
    return found;
  }

  principalGroup(name: string): string[] {
    const found = own(this.suite.principalGroups, name)?.principals ?? own(this.fixture.principals?.principalGroups, name)?.principals;
    if (found === undefined) throw new LookupError(`principal group ${JSON.stringify(name)} not found`);
    return found;
  }

  resourceGroup(name: string): string[] {
    const found = own(this.suite.resourceGroups, name)?.resources ?? own(this.fixture.resources?.resourceGroups, name)?.resources;
    // Cerbos words this error as a principal group too; kept identical for output compatibility.
    if (found === undefined) throw new LookupError(`principal group ${JSON.stringify(name)} not found`);
    return found;
  }

  auxData(name: string | undefined): TestAuxData | undefined {
    if (name === undefined || name === '') return undefined;
    const found = own(this.suite.auxData, name) ?? own(this.fixture.auxData, name);
    if (found === undefined) throw new LookupError(`auxData ${JSON.stringify(name)} not found`);
    return found;
  }

  has(lookup: (name: string) => unknown, name: string): boolean {
    try {
      lookup(name);
      return true;
    } catch {
      return false;
    }
  }
}

class LookupError extends Error {}

function own<T>(record: Record<string, T> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** One principal x resource cell of a test, with everything needed to run it. */
interface BuiltTest {
  tableName: string;
  principalKey: string;
  resourceKey: string;
  principal: TestPrincipal;
  resource: TestResource;
  auxData: TestAuxData | undefined;
  actions: string[];
  skip: boolean;
  skipReason: string | undefined;
  options: TestOptions | undefined;
  expected: Map<string, string>;
  expectedOutputs: Map<string, Map<string, JsonValue>>;
}

function runSuite(file: string, suite: TestSuite, run: SuiteRun, ctx: SuiteContext): TestSuiteResult {
  const summary: MutableSummary = { overall: 'RESULT_UNSPECIFIED', count: 0, tallies: new Map() };
  const errored = (error: string): TestSuiteResult =>
    withDescription({ file, name: suite.name, summary: { overallResult: 'RESULT_ERRORED' }, error }, suite);

  const principalGroupError = checkGroups(suite.principalGroups, (g) => g.principals, (n) => run.has((x) => run.principal(x), n));
  if (principalGroupError !== undefined) return errored(`Invalid principal groups in test suite: ${principalGroupError}`);
  const resourceGroupError = checkGroups(suite.resourceGroups, (g) => g.resources, (n) => run.has((x) => run.resource(x), n));
  if (resourceGroupError !== undefined) return errored(`Invalid resource groups in test suite: ${resourceGroupError}`);

  if (suite.skip === true) {
    const result: TestSuiteResult = { file, name: suite.name, summary: { overallResult: 'RESULT_SKIPPED' } };
    withDescription(result, suite);
    if (suite.skipReason) result.skipReason = suite.skipReason;
    return result;
  }

  const seen = new Set<string>();
  const dupes: string[] = [];
  for (const t of suite.tests) {
    if (seen.has(t.name)) dupes.push(`another test named ${t.name} already exists`);
    seen.add(t.name);
  }
  if (dupes.length > 0) return errored(`Invalid test suite: ${dupes.join('; ')}`);

  let tests: BuiltTest[];
  try {
    tests = suite.tests.flatMap((table) => {
      try {
        return buildTests(table, run);
      } catch (err) {
        if (err instanceof LookupError) throw new LookupError(`invalid test ${JSON.stringify(table.name)}: ${err.message}`);
        throw err;
      }
    });
  } catch (err) {
    if (err instanceof LookupError) return errored(`Failed to load the test suite: ${err.message}`);
    throw err;
  }

  const testCases: TestCaseResult[] = [];
  const add = (test: BuiltTest, action: string, details: TestDetails): void => {
    addAction(testCases, test, action, details);
    summary.count += 1;
    addTally(summary, details.result, 1);
    raise(summary, details.result);
  };

  for (const test of tests) {
    const skipped = ctx.filter(test, suite);
    if (skipped !== undefined) {
      for (const action of test.actions) add(test, action, skipped);
      continue;
    }
    const results = runTest(test, ctx);
    for (const action of test.actions) {
      add(test, action, results.get(action) ?? { result: 'RESULT_ERRORED', error: `no result for action ${JSON.stringify(action)}` });
    }
  }

  const result: TestSuiteResult = { file, name: suite.name, summary: toSummary(summary) };
  if (testCases.length > 0) result.testCases = testCases;
  return withDescription(result, suite);
}

function addAction(testCases: TestCaseResult[], test: BuiltTest, action: string, details: TestDetails): void {
  const tc = findOrAdd(testCases, test.tableName, () => ({ name: test.tableName, principals: [] }));
  const p = findOrAdd(tc.principals, test.principalKey, () => ({ name: test.principalKey, resources: [] }));
  const r = findOrAdd(p.resources, test.resourceKey, () => ({ name: test.resourceKey, actions: [] }));
  const a: TestActionResult = findOrAdd(r.actions, action, () => ({ name: action, details }));
  a.details = details;
}

function findOrAdd<T extends { name: string }>(list: T[], name: string, create: () => T): T {
  const existing = list.find((x) => x.name === name);
  if (existing !== undefined) return existing;
  const created = create();
  list.push(created);
  return created;
}

interface Expectations {
  actions: Map<string, string>;
  outputs: Map<string, Map<string, JsonValue>>;
}

function buildTests(table: TestTable, run: SuiteRun): BuiltTest[] {
  const inputActions = new Set(table.input.actions);
  const lookup = new Map<string, Expectations>();
  const keyOf = (p: string, r: string): string => JSON.stringify([p, r]);

  for (const expectation of table.expected ?? []) {
    const outputs = new Map<string, Map<string, JsonValue>>();
    for (const oe of expectation.outputs ?? []) outputs.set(oe.action, outputEntries(oe));
    const unreachable = [...outputs.keys()].filter((a) => !inputActions.has(a));
    if (unreachable.length > 0) {
      throw new LookupError(`found output expectations for actions that are not in the input actions list: [${unreachable.join(',')}]`);
    }
    const principals = collect(expectation.principal, expectation.principals, expectation.principalGroups, (g) => run.principalGroup(g));
    const resources = collect(expectation.resource, expectation.resources, expectation.resourceGroups, (g) => run.resourceGroup(g));
    for (const p of principals) {
      for (const r of resources) {
        const extra = Object.keys(expectation.actions ?? {}).filter((a) => !inputActions.has(a)).sort(compareStrings);
        if (extra.length > 0) {
          throw new LookupError(`found expectations for actions that do not exist in the input actions list: [${extra.join(',')}]`);
        }
        const key = keyOf(p, r);
        const target = lookup.get(key) ?? { actions: new Map(), outputs: new Map() };
        lookup.set(key, target);
        for (const [action, effect] of Object.entries(expectation.actions ?? {})) {
          const old = target.actions.get(action);
          if (old !== undefined && old !== effect) {
            throw new LookupError(`found inconsistent expectations for principal ${JSON.stringify(p)} performing action ${JSON.stringify(action)} on resource ${JSON.stringify(r)}`);
          }
          target.actions.set(action, effect);
        }
        for (const [action, entries] of outputs) {
          const targetEntries = target.outputs.get(action) ?? new Map<string, JsonValue>();
          target.outputs.set(action, targetEntries);
          for (const [src, val] of entries) {
            if (targetEntries.has(src) && !jsonEqual(targetEntries.get(src) ?? null, val)) {
              throw new LookupError(
                `found inconsistent expectations for output ${JSON.stringify(src)} from principal ${JSON.stringify(p)} performing action ${JSON.stringify(action)} on resource ${JSON.stringify(r)}`,
              );
            }
            targetEntries.set(src, val);
          }
        }
      }
    }
  }

  const principals = collect(undefined, table.input.principals, table.input.principalGroups, (g) => run.principalGroup(g));
  const resources = collect(undefined, table.input.resources, table.input.resourceGroups, (g) => run.resourceGroup(g));
  const matrix: Array<{ p: string; r: string; expected: Expectations }> = [];
  for (const p of principals) {
    for (const r of resources) {
      const key = keyOf(p, r);
      const expected = lookup.get(key) ?? { actions: new Map(table.input.actions.map((a) => [a, 'EFFECT_DENY'])), outputs: new Map() };
      lookup.delete(key);
      matrix.push({ p, r, expected });
    }
  }
  for (const key of lookup.keys()) {
    const [p, r] = JSON.parse(key) as [string, string];
    throw new LookupError(`found an expectation for principal ${JSON.stringify(p)} and resource ${JSON.stringify(r)}, but at least one of these is not present in input`);
  }

  return matrix.map(({ p, r, expected }) => ({
    tableName: table.name,
    principalKey: p,
    resourceKey: r,
    principal: run.principal(p),
    resource: run.resource(r),
    auxData: run.auxData(table.input.auxData),
    actions: table.input.actions,
    skip: table.skip === true,
    skipReason: table.skipReason,
    options: table.options ?? run.suite.options,
    expected: expected.actions,
    expectedOutputs: expected.outputs,
  }));
}

function outputEntries(oe: TestOutputExpectations): Map<string, JsonValue> {
  return new Map((oe.expected ?? []).map((e) => [e.src, e.val ?? null]));
}

function collect(single: string | undefined, list: string[] | undefined, groups: string[] | undefined, lookupGroup: (name: string) => string[]): string[] {
  const fixtures = single !== undefined && single !== '' ? [single] : [...(list ?? [])];
  const seen = new Set(fixtures);
  for (const group of groups ?? []) {
    for (const member of lookupGroup(group)) {
      if (!seen.has(member)) {
        fixtures.push(member);
        seen.add(member);
      }
    }
  }
  return fixtures;
}

type TestFilter = (test: BuiltTest, suite: TestSuite) => TestDetails | undefined;

function createFilter(options: RunPolicyTestsOptions): TestFilter {
  let nameRegexp: RegExp | undefined;
  if (options.includedTestNamesRegexp !== undefined && options.includedTestNamesRegexp !== '') {
    try {
      nameRegexp = new RegExp(options.includedTestNamesRegexp);
    } catch (err) {
      throw new WardenError('ERR_TEST_SUITE_INVALID', `invalid run specification: ${(err as Error).message}`, { cause: err });
    }
  }
  const excludedResources = new Set(options.excludedResourcePolicyFqns ?? []);
  const excludedPrincipals = new Set(options.excludedPrincipalPolicyFqns ?? []);
  return (test, suite) => {
    const fullName = `${suite.name}/test_table_name:${JSON.stringify(test.tableName)} principal_key:${JSON.stringify(test.principalKey)} resource_key:${JSON.stringify(test.resourceKey)}`;
    if (nameRegexp !== undefined && !nameRegexp.test(fullName)) return { result: 'RESULT_SKIPPED', skipReason: SKIP_REASON_NAME };
    if (excludedResources.size > 0) {
      const fqn = policyFqn('resource', test.resource.kind, test.resource, test.options);
      if (excludedResources.has(fqn)) return { result: 'RESULT_SKIPPED', skipReason: SKIP_REASON_RESOURCE };
    }
    if (excludedPrincipals.size > 0) {
      const fqn = policyFqn('principal', test.principal.id, test.principal, test.options);
      if (excludedPrincipals.has(fqn)) return { result: 'RESULT_SKIPPED', skipReason: SKIP_REASON_PRINCIPAL };
    }
    if (test.skip) {
      return test.skipReason ? { result: 'RESULT_SKIPPED', skipReason: test.skipReason } : { result: 'RESULT_SKIPPED' };
    }
    return undefined;
  };
}

function policyFqn(kind: 'resource' | 'principal', name: string, fixture: { policyVersion?: string; scope?: string }, options: TestOptions | undefined): string {
  const version = fixture.policyVersion || options?.defaultPolicyVersion || 'default';
  const fixtureScope = fixture.scope === '.' ? '' : (fixture.scope ?? '');
  const scope = fixtureScope || options?.defaultScope || '';
  return `cerbos.${kind}.${name}.v${version}${scope === '' ? '' : `/${scope}`}`;
}

function engineConfig(options: TestOptions | undefined, base: Partial<EngineConfig>): EngineConfig {
  return {
    ...DEFAULT_ENGINE_CONFIG,
    ...base,
    globals: options?.globals !== undefined && Object.keys(options.globals).length > 0 ? options.globals : (base.globals ?? {}),
    defaultPolicyVersion: options?.defaultPolicyVersion || base.defaultPolicyVersion || DEFAULT_ENGINE_CONFIG.defaultPolicyVersion,
    defaultScope: options?.defaultScope || base.defaultScope || DEFAULT_ENGINE_CONFIG.defaultScope,
    lenientScopeSearch: options?.lenientScopeSearch === true || base.lenientScopeSearch === true,
    strictEvaluation: options?.strictEvaluation === true || base.strictEvaluation === true,
  };
}

function runTest(test: BuiltTest, ctx: SuiteContext): Map<string, TestDetails> {
  const results = new Map<string, TestDetails>();
  const erroredAll = (error: string): Map<string, TestDetails> => {
    for (const action of test.actions) results.set(action, { result: 'RESULT_ERRORED', error });
    return results;
  };
  const input: CheckInput = {
    principal: {
      id: test.principal.id,
      roles: test.principal.roles,
      attr: test.principal.attr ?? {},
      ...(test.principal.policyVersion !== undefined ? { policyVersion: test.principal.policyVersion } : {}),
      ...(test.principal.scope !== undefined ? { scope: test.principal.scope } : {}),
    },
    resource: {
      kind: test.resource.kind,
      id: test.resource.id,
      attr: test.resource.attr ?? {},
      ...(test.resource.policyVersion !== undefined ? { policyVersion: test.resource.policyVersion } : {}),
      ...(test.resource.scope !== undefined ? { scope: test.resource.scope } : {}),
    },
    actions: test.actions,
    ...(test.auxData !== undefined ? { auxData: toAuxData(test.auxData) } : {}),
  };

  let outputs: CheckOutput[];
  try {
    const checker = ctx.checkerFor(engineConfig(test.options, ctx.baseConfig));
    outputs = checkWithClock(checker, input, test.options?.now, ctx.readsClockEagerly);
  } catch (err) {
    return erroredAll(err instanceof Error ? err.message : String(err));
  }
  const actual = outputs[0];
  if (actual === undefined) return erroredAll('Empty response from server');

  for (const action of test.actions) {
    const actionOutputs: TestOutputEntry[] = actual.outputs.filter((o) => o.action === action).map(toTestOutput);
    const actualBySrc = new Map(actionOutputs.map((o) => [o.src, o]));
    const expectedEffect = (test.expected.get(action) ?? 'EFFECT_DENY') as Effect;
    const effect = actual.actions[action]?.effect;
    if (effect === undefined) {
      results.set(action, { result: 'RESULT_ERRORED', error: `no result for action ${JSON.stringify(action)}` });
      continue;
    }
    if (effect !== expectedEffect) {
      results.set(action, { result: 'RESULT_FAILED', failure: { expected: expectedEffect, actual: effect } });
      continue;
    }
    const wanted = test.expectedOutputs.get(action);
    if (wanted !== undefined) {
      const failures: TestOutputFailure[] = [];
      for (const [src, expected] of wanted) {
        const have = actualBySrc.get(src);
        if (have === undefined) failures.push({ src, missing: { expected } });
        else if (have.error !== undefined) failures.push({ src, errored: { expected, error: have.error } });
        else if (!jsonEqual(expected, have.val ?? null)) failures.push({ src, mismatched: { expected, actual: have.val ?? null } });
      }
      if (failures.length > 0) {
        results.set(action, { result: 'RESULT_FAILED', failure: { expected: expectedEffect, actual: effect, outputs: failures } });
        continue;
      }
    }
    results.set(action, { result: 'RESULT_PASSED', success: actionOutputs.length > 0 ? { effect, outputs: actionOutputs } : { effect } });
  }
  return results;
}

/**
 * Runs the check at the test's `now`. Without one, Cerbos gives policies Go's zero time and fails
 * the test if any policy read the clock. Warden's engine reads the `now` it is given lazily (only
 * when a CEL expression asks for the time), so the runner hands it a {@link TrackedDate} and looks
 * whether it was touched. Should an engine read the clock up front (detected once per engine by
 * {@link probeEagerClock}), the runner falls back to checking at two far-apart instants and
 * erroring when the answers differ.
 */
function checkWithClock(
  checker: PolicyTestChecker,
  input: CheckInput,
  now: string | undefined,
  readsClockEagerly: (checker: PolicyTestChecker) => boolean,
): CheckOutput[] {
  if (now !== undefined) return checker.check([input], { now: new Date(now) });
  if (!readsClockEagerly(checker)) {
    const clock = new TrackedDate(ZERO_TIME.getTime());
    const outputs = checker.check([input], { now: clock });
    if (clockReads.has(clock)) throw new Error(ERR_USED_DEFAULT_NOW);
    return outputs;
  }
  const atZero = checker.check([input], { now: ZERO_TIME });
  const atProbe = checker.check([input], { now: PROBE_TIME });
  if (JSON.stringify(atZero) !== JSON.stringify(atProbe)) throw new Error(ERR_USED_DEFAULT_NOW);
  return atZero;
}

/** Dates whose value has been read. */
const clockReads = new WeakSet<Date>();

/** A `Date` that records any read of its value (every `Date.prototype` method is wrapped). */
class TrackedDate extends Date {}
for (const key of [...Object.getOwnPropertyNames(Date.prototype), Symbol.toPrimitive] as Array<string | symbol>) {
  if (key === 'constructor') continue;
  const original: unknown = (Date.prototype as unknown as Record<string | symbol, unknown>)[key];
  if (typeof original !== 'function') continue;
  Object.defineProperty(TrackedDate.prototype, key, {
    configurable: true,
    writable: true,
    value: function (this: Date, ...args: unknown[]): unknown {
      clockReads.add(this);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    },
  });
}

/** True when the engine touches the clock even for a check with no actions (so it reads it eagerly). */
function probeEagerClock(checker: PolicyTestChecker): boolean {
  const clock = new TrackedDate(ZERO_TIME.getTime());
  try {
    checker.check([{ principal: { id: 'probe', roles: ['probe'], attr: {} }, resource: { kind: 'probe', id: 'probe', attr: {} }, actions: [] }], { now: clock });
  } catch {
    return false;
  }
  return clockReads.has(clock);
}

function toAuxData(aux: TestAuxData): AuxData {
  // `jwts` (several named tokens) has no slot in the core type yet; it is passed through for
  // engines that expose `request.auxData.jwts`.
  return { ...(aux.jwt !== undefined ? { jwt: aux.jwt } : {}), ...(aux.jwts !== undefined ? { jwts: aux.jwts } : {}) } as AuxData;
}

function toTestOutput(o: CheckOutput['outputs'][number]): TestOutputEntry {
  // The engine reports a failed output expression in an optional `error` field next to `val`.
  const error = (o as { error?: unknown }).error;
  if (typeof error === 'string') return { src: o.src, action: o.action, error };
  return o.val === undefined ? { src: o.src, action: o.action } : { src: o.src, val: o.val, action: o.action };
}

/** Structural equality of JSON values (object key order ignored), as Cerbos compares outputs. */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i] ?? null) && b[i] !== undefined);
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] ?? null, b[k] ?? null));
}

interface MutableSummary {
  overall: TestResult;
  count: number;
  tallies: Map<TestResult, number>;
}

function addTally(summary: MutableSummary, result: TestResult, delta: number): void {
  summary.tallies.set(result, (summary.tallies.get(result) ?? 0) + delta);
}

function raise(summary: MutableSummary, result: TestResult): void {
  if (TEST_RESULT_RANK[result] > TEST_RESULT_RANK[summary.overall]) summary.overall = result;
}

function toSummary(summary: MutableSummary): TestResultsSummary {
  const out: TestResultsSummary = {};
  if (summary.overall !== 'RESULT_UNSPECIFIED') out.overallResult = summary.overall;
  if (summary.count > 0) out.testsCount = summary.count;
  const tallies: TestResultTally[] = [...summary.tallies.entries()]
    .sort(([a], [b]) => TEST_RESULT_RANK[a] - TEST_RESULT_RANK[b])
    .map(([result, count]) => ({ result, count }));
  if (tallies.length > 0) out.resultCounts = tallies;
  return out;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
