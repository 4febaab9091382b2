/**
 * `@warden/decision`: the pure, Cerbos-compatible decision engine. Policies (Cerbos YAML) are
 * compiled once into an indexed rule table with CEL prepared; checks evaluate it synchronously
 * with an injected clock. No Nest, no I/O.
 */
export { compilePolicies } from './compile/compile-policies.js';
export type { CompileResult } from './compile/compile-policies.js';
export type { CompiledPolicySet } from './compile/compiled.types.js';
export { createEngine, classifyPolicyPath } from './engine.js';
export type { Engine, PolicyPathKind } from './engine.js';
export { DEFAULT_ENGINE_CONFIG } from './engine.types.js';
export type { PolicyFile, SchemaFile, CompileDiagnostic, EngineConfig, SchemaEnforcement, CheckOptions } from './engine.types.js';
export { runPolicyTests, isTestSuitePath, isTestFixturePath, jsonEqual } from './testing/test-suite.runner.js';
export type { PolicyTestFile, PolicyTestChecker, RunPolicyTestsOptions } from './testing/test-suite.runner.js';
export { parseTestSuite, parsePrincipalFixtures, parseResourceFixtures, parseAuxDataFixtures } from './testing/test-suite.parser.js';
export type { TestSuite, TestTable, TestOptions, ParseResult } from './testing/test-suite.parser.js';
export { renderJunit } from './testing/junit.format.js';
export { renderTestTree } from './testing/tree.format.js';
export type { TestResults, TestSuiteResult, TestCaseResult, TestDetails, TestResult, TestResultsSummary } from './testing/test-results.types.js';
export { parseTxtar } from './testing/txtar.js';
export type { TxtarFile } from './testing/txtar.js';
export { normalizeFilter, simplifyOperand, filterDebug } from './plan/plan-filter.js';
export { planResources, planResourcesOutput, type PlanInput, type PlanOutput } from './plan/plan-resources.js';
export { PlanUnsupported } from './plan/residual.js';
export { evaluatePlanFilter, celOfOperand, type FilterResource } from './plan/filter-eval.js';
export type { PlanFilter, PlanKind, PlanOperand, PlanExpression } from './plan/plan-filter.js';
