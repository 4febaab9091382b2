/**
 * The policy documents in Cerbos's YAML format, as plain typed objects after parsing.
 * Field names follow Cerbos's `cerbos.policy.v1` messages (JSON names).
 */
import type { JsonValue } from '@warden/core';

/** A condition tree as written in a policy (`condition.match`). */
export type MatchNode =
  | { kind: 'expr'; expr: string; path: PathSegment[] }
  | { kind: 'all' | 'any' | 'none'; of: MatchNode[]; path: PathSegment[] };

/** A path into the YAML document, used to point diagnostics at the source. */
export type PathSegment = string | number;

/** `output` of a rule: the older `expr` or `when.ruleActivated` / `when.conditionNotMet`. */
export interface RuleOutput {
  ruleActivated?: { expr: string; path: PathSegment[] };
  conditionNotMet?: { expr: string; path: PathSegment[] };
}

/** `variables` / `constants` blocks. */
export interface VariablesBlock {
  import: { name: string; path: PathSegment[] }[];
  local: { name: string; expr: string; path: PathSegment[] }[];
}
export interface ConstantsBlock {
  import: { name: string; path: PathSegment[] }[];
  local: { name: string; value: JsonValue; path: PathSegment[] }[];
}

export type ScopePermissions =
  | 'SCOPE_PERMISSIONS_UNSPECIFIED'
  | 'SCOPE_PERMISSIONS_OVERRIDE_PARENT'
  | 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS';

export interface ResourceRule {
  name: string;
  actions: string[];
  roles: string[];
  derivedRoles: { name: string; path: PathSegment[] }[];
  condition?: MatchNode;
  effect: 'EFFECT_ALLOW' | 'EFFECT_DENY';
  output?: RuleOutput;
  path: PathSegment[];
}

export interface SchemaRef {
  ref: string;
  ignoreWhenActions: string[];
  path: PathSegment[];
}

export interface ResourcePolicyDoc {
  kind: 'resource';
  resource: string;
  version: string;
  scope: string;
  scopePermissions: ScopePermissions;
  importDerivedRoles: { name: string; path: PathSegment[] }[];
  rules: ResourceRule[];
  schemas: { principalSchema?: SchemaRef; resourceSchema?: SchemaRef };
  variables: VariablesBlock;
  constants: ConstantsBlock;
}

export interface PrincipalActionRule {
  name: string;
  action: string;
  effect: 'EFFECT_ALLOW' | 'EFFECT_DENY';
  condition?: MatchNode;
  output?: RuleOutput;
  path: PathSegment[];
}

export interface PrincipalPolicyDoc {
  kind: 'principal';
  principal: string;
  version: string;
  scope: string;
  scopePermissions: ScopePermissions;
  rules: { resource: string; actions: PrincipalActionRule[] }[];
  variables: VariablesBlock;
  constants: ConstantsBlock;
}

export interface DerivedRoleDefinition {
  name: string;
  parentRoles: string[];
  condition?: MatchNode;
  path: PathSegment[];
}

export interface DerivedRolesDoc {
  kind: 'derivedRoles';
  name: string;
  definitions: DerivedRoleDefinition[];
  variables: VariablesBlock;
  constants: ConstantsBlock;
}

export interface RoleRule {
  name: string;
  resource: string;
  allowActions: string[];
  condition?: MatchNode;
  output?: RuleOutput;
  path: PathSegment[];
}

export interface RolePolicyDoc {
  kind: 'role';
  role: string;
  version: string;
  scope: string;
  parentRoles: string[];
  rules: RoleRule[];
  variables: VariablesBlock;
  constants: ConstantsBlock;
}

export interface ExportVariablesDoc {
  kind: 'exportVariables';
  name: string;
  definitions: { name: string; expr: string; path: PathSegment[] }[];
}

export interface ExportConstantsDoc {
  kind: 'exportConstants';
  name: string;
  definitions: { name: string; value: JsonValue; path: PathSegment[] }[];
}

export type PolicyBody =
  | ResourcePolicyDoc
  | PrincipalPolicyDoc
  | DerivedRolesDoc
  | RolePolicyDoc
  | ExportVariablesDoc
  | ExportConstantsDoc;

/** One parsed policy with its origin. */
export interface ParsedPolicy {
  file: string;
  disabled: boolean;
  /** Deprecated top-level `variables` map. */
  topVariables: { name: string; expr: string; path: PathSegment[] }[];
  annotations: Record<string, string>;
  body: PolicyBody;
  /** Resolves a document path to a 1-based source position. */
  positionOf(path: PathSegment[]): { line: number; column: number };
}
