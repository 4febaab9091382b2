/**
 * Public types of the decision engine: policy sources in, compiled policy set, engine
 * configuration (Cerbos's `engine.*` and `schema.enforcement` keys) and compile diagnostics.
 */
import type { JsonValue } from '@warden/core';

/** One file of a policy directory, as text. `path` is relative to the policy root, `/`-separated. */
export interface PolicyFile {
  path: string;
  text: string;
}

/** One JSON Schema under `_schemas/`. `path` is relative to `_schemas/` (e.g. `resources/leave.json`). */
export interface SchemaFile {
  path: string;
  text: string;
}

/** A problem found while parsing or compiling policies, with its source position (1-based). */
export interface CompileDiagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
  /** Stable machine code, e.g. `ERR_POLICY_COMPILE_UNDEFINED_VARIABLE`. */
  code: string;
}

/** `schema.enforcement` as in Cerbos. */
export type SchemaEnforcement = 'none' | 'warn' | 'reject';

/** Engine settings with Cerbos's names and defaults. */
export interface EngineConfig {
  /** `engine.globals`: exposed to CEL as `G` / `globals`. */
  globals: Record<string, JsonValue>;
  /** `engine.defaultPolicyVersion` (default `default`). */
  defaultPolicyVersion: string;
  /** `engine.defaultScope` (default empty: the root scope). */
  defaultScope: string;
  /** `engine.lenientScopeSearch` (default false). */
  lenientScopeSearch: boolean;
  /** Strict evaluation: a CEL error in a condition makes the whole action DENY instead of "not met". */
  strictEvaluation: boolean;
  /** `schema.enforcement` (default `none`). */
  schemaEnforcement: SchemaEnforcement;
}

/** The defaults the Cerbos PDP uses. */
export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = Object.freeze({
  globals: {},
  defaultPolicyVersion: 'default',
  defaultScope: '',
  lenientScopeSearch: false,
  strictEvaluation: false,
  schemaEnforcement: 'none',
});

/** Per-call evaluation options. */
export interface CheckOptions {
  /** The instant `now()` returns for the whole call (fixed once per request). Defaults to the call time. */
  now?: Date;
  /**
   * Whether outputs must list `effectiveDerivedRoles` (default true). The Cerbos API reports them
   * only with `includeMeta`; without it the engine skips derived roles that no rule needs.
   */
  includeEffectiveDerivedRoles?: boolean;
  /**
   * Name the rule that decided each action (`ActionEffect.rule`, `<policy key>#<rule name>`), for
   * Warden's decision log and `explain`. Not part of Cerbos's answers; off by default.
   */
  includeRules?: boolean;
}
