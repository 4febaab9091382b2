/**
 * The result tree of a policy test run, shaped exactly like Cerbos's `cerbos.policy.v1.TestResults`
 * as `cerbos compile --output=json` prints it (proto JSON: zero values omitted, enum names as strings).
 * Objects are built with their keys in proto field order so `JSON.stringify` matches Cerbos's layout.
 */
import type { Effect, JsonValue } from '@warden/core';

/** Outcome of one action, one suite or the whole run. Ordered: the overall result is the maximum. */
export type TestResult = 'RESULT_UNSPECIFIED' | 'RESULT_SKIPPED' | 'RESULT_PASSED' | 'RESULT_FAILED' | 'RESULT_ERRORED';

/** Rank of each {@link TestResult} (Cerbos's enum numbers). */
export const TEST_RESULT_RANK: Readonly<Record<TestResult, number>> = Object.freeze({
  RESULT_UNSPECIFIED: 0,
  RESULT_SKIPPED: 1,
  RESULT_PASSED: 2,
  RESULT_FAILED: 3,
  RESULT_ERRORED: 4,
});

/** How many actions ended with one result. */
export interface TestResultTally {
  result: TestResult;
  count: number;
}

/** Counts of a suite or of the whole run. `testsCount` and `resultCounts` are omitted when zero/empty. */
export interface TestResultsSummary {
  overallResult?: TestResult;
  testsCount?: number;
  resultCounts?: TestResultTally[];
}

/** An output produced by the engine for an action (`error` set when its expression failed). */
export interface TestOutputEntry {
  src: string;
  val?: JsonValue;
  action: string;
  error?: string;
}

/** Why one expected output did not match. */
export type TestOutputFailure =
  | { src: string; mismatched: { expected: JsonValue; actual: JsonValue } }
  | { src: string; missing: { expected: JsonValue } }
  | { src: string; errored: { expected: JsonValue; error: string } };

/** The result of one action of one principal on one resource. */
export type TestDetails =
  | { result: 'RESULT_PASSED'; success: { effect: Effect; outputs?: TestOutputEntry[] } }
  | { result: 'RESULT_FAILED'; failure: { expected: Effect; actual: Effect; outputs?: TestOutputFailure[] } }
  | { result: 'RESULT_SKIPPED'; skipReason?: string }
  | { result: 'RESULT_ERRORED'; error: string };

/** One action node of the tree. */
export interface TestActionResult {
  name: string;
  details: TestDetails;
}

/** One resource node of the tree. */
export interface TestResourceResult {
  name: string;
  actions: TestActionResult[];
}

/** One principal node of the tree. */
export interface TestPrincipalResult {
  name: string;
  resources: TestResourceResult[];
}

/** One test (table) of a suite. */
export interface TestCaseResult {
  name: string;
  principals: TestPrincipalResult[];
}

/** One suite file. */
export interface TestSuiteResult {
  file: string;
  name: string;
  summary: TestResultsSummary;
  error?: string;
  testCases?: TestCaseResult[];
  description?: string;
  skipReason?: string;
}

/** The whole run. */
export interface TestResults {
  suites?: TestSuiteResult[];
  summary: TestResultsSummary;
}
