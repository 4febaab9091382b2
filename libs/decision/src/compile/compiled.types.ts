/**
 * The compiled policy set: Cerbos's rule table, with CEL prepared once and rows indexed by
 * version, scope and resource kind. Immutable after compilation; evaluation reads it only.
 */
import type { CelProgram } from '../cel/index.js';
import type { PolicySchemas, SchemaRegistry } from '../schema/index.js';
import type { Matcher } from './glob.js';

/** A variable an expression needs, in the order variables must be evaluated. */
export interface VariableNeed {
  name: string;
  program: CelProgram;
}

/** A compiled expression with the variables (transitively) it reads, evaluated first on demand. */
export interface CompiledExpr {
  program: CelProgram;
  needs: VariableNeed[];
  /** Set when the expression is just `V.name` or `!V.name`: read the variable, skip CEL. */
  alias?: { name: string; negate: boolean };
  /**
   * True when the expression (and every variable it reads) depends on nothing but the principal,
   * globals, constants and `now`: its result holds for every resource of one check call.
   */
  principalOnly: boolean;
}

/** A compiled condition tree. */
export type CompiledCondition =
  | { op: 'expr'; expr: CompiledExpr }
  | { op: 'all' | 'any' | 'none'; of: CompiledCondition[] };

/** Variables and constants of one policy (or derived-roles set), evaluated lazily once per request. */
export interface Params {
  key: string;
  constants: Record<string, unknown>;
  variables: VariableNeed[];
  /** Derived-role variables keep a failed variable as null; policy variables leave it out. */
  nullOnError: boolean;
}

/** Rule outputs. */
export interface CompiledOutput {
  ruleActivated?: CompiledExpr;
  conditionNotMet?: CompiledExpr;
}

/** One row of the rule table: a principal-policy rule or a resource-policy rule for one role. */
export interface Row {
  kind: 'principal' | 'resource';
  principal: string;
  resourceMatches: Matcher;
  role: string;
  action: string;
  actionMatches: Matcher;
  condition: CompiledCondition | undefined;
  derivedRole: string;
  /** The derived role this row stands for (its condition and params), when it does. */
  derivedRoleDef: CompiledDerivedRole | undefined;
  derivedRoleCondition: CompiledCondition | undefined;
  derivedRoleParams: Params | undefined;
  effect: 'EFFECT_ALLOW' | 'EFFECT_DENY';
  scope: string;
  version: string;
  name: string;
  /** Output source, e.g. `resource.leave_request.vdefault#rule-001`. */
  src: string;
  output: CompiledOutput | undefined;
  params: Params;
  evaluationKey: string;
}

/** A role-policy rule: it narrows what a role may do in its scope. */
export interface RoleRow {
  role: string;
  resourceMatches: Matcher;
  allowActions: Matcher[];
  condition: CompiledCondition | undefined;
  output: CompiledOutput | undefined;
  params: Params;
  scope: string;
  version: string;
  policyKey: string;
  src: string;
  evaluationKey: string;
}

/** A derived role as imported by one resource policy. */
export interface CompiledDerivedRole {
  name: string;
  parentRoles: Set<string>;
  condition: CompiledCondition | undefined;
  params: Params;
}

/** All rows of one scope of one version. */
export interface ScopeRows {
  principalRows: Map<string, Row[]>;
  resourceRows: Row[];
  roleRows: Map<string, RoleRow[]>;
  /** Role policies' roles in this scope, for the "no role policy action matched" deny. */
  rolePolicyKeys: Map<string, string>;
  /** Resource kinds (literal) that have resource rows here, and whether a glob kind exists. */
  resourceKinds: Set<string>;
  /** Memo filled at evaluation time: kind → action → resource rows matching both, in order. */
  readonly candidates: Map<string, Map<string, Row[]>>;
}

/** The compiled policy set. */
export interface CompiledPolicySet {
  readonly formatVersion: 1;
  /** version → scope → rows */
  readonly rows: Map<string, Map<string, ScopeRows>>;
  readonly principalScopes: Set<string>;
  readonly resourceScopes: Set<string>;
  readonly scopePermissions: Map<string, 'SCOPE_PERMISSIONS_OVERRIDE_PARENT' | 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS'>;
  /** scope → role → parent roles (from role policies) */
  readonly scopeParentRoles: Map<string, Map<string, string[]>>;
  /** resource policy FQN → derived roles it imports */
  readonly derivedRoles: Map<string, CompiledDerivedRole[]>;
  /** resource policy FQN → schemas */
  readonly schemas: Map<string, PolicySchemas>;
  readonly schemaRegistry: SchemaRegistry;
  /** Whether any expression reads `runtime` (effective derived roles must then be computed). */
  readonly usesRuntime: boolean;
  /** Number of policies compiled, by kind. */
  readonly stats: { resource: number; principal: number; role: number; derivedRoles: number; exportVariables: number; exportConstants: number };
}
