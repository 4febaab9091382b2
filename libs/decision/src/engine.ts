/**
 * The engine facade: a compiled policy set plus its configuration, answering check and plan calls.
 * `now()` is fixed once per call; evaluation is synchronous and does no I/O.
 */
import type { CheckInput, CheckOutput } from '@warden/core';
import type { CompiledPolicySet } from './compile/compiled.types.js';
import { CheckEvaluator } from './evaluate/check.js';
import type { CheckOptions, EngineConfig } from './engine.types.js';
import { DEFAULT_ENGINE_CONFIG } from './engine.types.js';
import { planResourcesOutput, type PlanInput, type PlanOutput } from './plan/plan-resources.js';

/** Decides check inputs against one compiled policy set. */
export interface Engine {
  readonly policySet: CompiledPolicySet;
  readonly config: Readonly<EngineConfig>;
  /** Evaluates every input; the result array is parallel to `inputs`. */
  check(inputs: readonly CheckInput[], options?: CheckOptions): CheckOutput[];
  /** PlanResources: the filter of resources of one kind on which the principal may do the actions. */
  plan(input: PlanInput, options?: { now?: Date }): PlanOutput;
}

/**
 * Creates an engine.
 *
 * @example
 * const { policySet } = compilePolicies(files);
 * const engine = createEngine(policySet!, { ...DEFAULT_ENGINE_CONFIG, globals: { env: 'prod' } });
 * const [out] = engine.check([{ principal, resource, actions: ['invoke'] }]);
 */
export function createEngine(policySet: CompiledPolicySet, config: Partial<EngineConfig> = {}): Engine {
  const full: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, ...config };
  const evaluator = new CheckEvaluator(policySet, full);
  return {
    policySet,
    config: full,
    check(inputs, options) {
      return evaluator.check(inputs, options?.now ?? new Date(), options?.includeEffectiveDerivedRoles !== false, options?.includeRules === true);
    },
    plan(input, options) {
      return planResourcesOutput(policySet, full, input, options?.now ?? new Date());
    },
  };
}

/** What a file under a policy directory is, by Cerbos's layout rules. */
export type PolicyPathKind = 'policy' | 'test' | 'schema' | 'ignored';

/**
 * Classifies a path relative to the policy root: `_schemas/**` are schemas, `*_test.{yaml,yml,json}`
 * are test suites, other YAML/JSON files are policies; hidden files and folders and `testdata/`
 * folders are ignored.
 */
export function classifyPolicyPath(path: string): PolicyPathKind {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return 'ignored';
  if (parts.some((p) => p.startsWith('.'))) return 'ignored';
  const file = parts[parts.length - 1] as string;
  if (parts[0] === '_schemas') return /\.json$/i.test(file) ? 'schema' : 'ignored';
  if (parts.slice(0, -1).includes('testdata')) return 'ignored';
  if (!/\.(ya?ml|json)$/i.test(file)) return 'ignored';
  if (/_test\.(ya?ml|json)$/i.test(file)) return 'test';
  return 'policy';
}
