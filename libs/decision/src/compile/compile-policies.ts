/**
 * Compiles a policy directory (as texts) into a {@link CompiledPolicySet}: parses every file,
 * resolves imports of derived roles, variables and constants, checks references and scope
 * ancestry, prepares every CEL expression once, and builds Cerbos's rule table indexed by
 * version and scope. Every problem is collected with file, line and column; a set with any
 * error is refused whole.
 */
import type { JsonValue } from '@warden/core';
import { CelCompileError, celNamespaceIndexing, celReferences, celUsesIdentifier, celVariableAlias, compileCelExpression, type CelProgram } from '../cel/index.js';
import type { CompileDiagnostic, PolicyFile, SchemaFile } from '../engine.types.js';
import type {
  ConstantsBlock,
  DerivedRolesDoc,
  ExportConstantsDoc,
  ExportVariablesDoc,
  MatchNode,
  ParsedPolicy,
  PathSegment,
  PrincipalPolicyDoc,
  ResourcePolicyDoc,
  RolePolicyDoc,
  RuleOutput,
  VariablesBlock,
} from '../policy/policy.types.js';
import { parsePolicyFile } from '../policy/parse-policy.js';
import { createSchemaRegistry, type PolicySchemas } from '../schema/index.js';
import type {
  VariableNeed,
  CompiledExpr,
  CompiledCondition,
  CompiledDerivedRole,
  CompiledOutput,
  CompiledPolicySet,
  Params,
  Row,
  ScopeRows,
} from './compiled.types.js';
import { compileGlob, isGlob } from './glob.js';
import {
  derivedRolesFqn,
  exportConstantsFqn,
  exportVariablesFqn,
  policyKeyFromFqn,
  principalPolicyFqn,
  resourcePolicyFqn,
  rolePolicyFqn,
  sanitize,
  scopeParents,
} from './namer.js';

/** Result of {@link compilePolicies}. */
export interface CompileResult {
  policySet: CompiledPolicySet | undefined;
  errors: CompileDiagnostic[];
}

interface Located<T> {
  policy: ParsedPolicy;
  body: T;
}

interface Diag {
  add(policy: ParsedPolicy, path: PathSegment[], message: string, code: string): void;
  addAt(file: string, line: number, column: number, message: string, code: string): void;
}

/**
 * Compiles policies.
 *
 * @example
 * const { policySet, errors } = compilePolicies([{ path: 'tool.yaml', text }], { schemas: [] });
 */
export function compilePolicies(files: PolicyFile[], options: { schemas?: SchemaFile[] } = {}): CompileResult {
  const errors: CompileDiagnostic[] = [];
  const diag: Diag = {
    add(policy, path, message, code) {
      const pos = policy.positionOf(path);
      errors.push({ file: policy.file, line: pos.line, column: pos.column, message, code });
    },
    addAt(file, line, column, message, code) {
      errors.push({ file, line, column, message, code });
    },
  };

  const parsed: ParsedPolicy[] = [];
  for (const f of files) {
    const r = parsePolicyFile(f.path, f.text);
    errors.push(...r.errors);
    for (const p of r.policies) if (!p.disabled) parsed.push(p);
  }

  const { registry, errors: schemaErrors } = createSchemaRegistry(options.schemas ?? []);
  // A broken schema file is an error only where a policy references it (as in Cerbos).
  const brokenSchemas = new Map(schemaErrors.map((e) => [`cerbos:///${e.path}`, e.message]));

  const resources: Located<ResourcePolicyDoc>[] = [];
  const principals: Located<PrincipalPolicyDoc>[] = [];
  const roles: Located<RolePolicyDoc>[] = [];
  const derivedRoleSets = new Map<string, Located<DerivedRolesDoc>>();
  const exportVars = new Map<string, Located<ExportVariablesDoc>>();
  const exportConsts = new Map<string, Located<ExportConstantsDoc>>();
  const seenFqn = new Map<string, ParsedPolicy>();

  const claim = (fqn: string, p: ParsedPolicy): boolean => {
    const prev = seenFqn.get(fqn);
    if (prev) {
      diag.add(p, [], `duplicate policy definition: policy \`${policyKeyFromFqn(fqn)}\` is already defined in \`${prev.file}\``, 'ERR_POLICY_COMPILE_DUPLICATE');
      return false;
    }
    seenFqn.set(fqn, p);
    return true;
  };

  for (const p of parsed) {
    const b = p.body;
    switch (b.kind) {
      case 'resource':
        if (claim(resourcePolicyFqn(b.resource, b.version, b.scope), p)) resources.push({ policy: p, body: b });
        break;
      case 'principal':
        if (claim(principalPolicyFqn(b.principal, b.version, b.scope), p)) principals.push({ policy: p, body: b });
        break;
      case 'role':
        if (claim(rolePolicyFqn(b.role, b.version, b.scope), p)) roles.push({ policy: p, body: b });
        break;
      case 'derivedRoles':
        if (claim(derivedRolesFqn(b.name), p)) derivedRoleSets.set(b.name, { policy: p, body: b });
        break;
      case 'exportVariables':
        if (claim(exportVariablesFqn(b.name), p)) exportVars.set(b.name, { policy: p, body: b });
        break;
      case 'exportConstants':
        if (claim(exportConstantsFqn(b.name), p)) exportConsts.set(b.name, { policy: p, body: b });
        break;
    }
  }

  const c = new Compiler(diag, exportVars, exportConsts);

  const set: Mutable<CompiledPolicySet> = {
    formatVersion: 1,
    rows: new Map(),
    principalScopes: new Set(),
    resourceScopes: new Set(),
    scopePermissions: new Map(),
    scopeParentRoles: new Map(),
    derivedRoles: new Map(),
    schemas: new Map(),
    schemaRegistry: registry,
    usesRuntime: false,
    stats: {
      resource: resources.length,
      principal: principals.length,
      role: roles.length,
      derivedRoles: derivedRoleSets.size,
      exportVariables: exportVars.size,
      exportConstants: exportConsts.size,
    },
  };

  const scopeRows = (version: string, scope: string): ScopeRows => {
    let byScope = set.rows.get(version);
    if (!byScope) {
      byScope = new Map();
      set.rows.set(version, byScope);
    }
    let sr = byScope.get(scope);
    if (!sr) {
      sr = { principalRows: new Map(), resourceRows: [], roleRows: new Map(), rolePolicyKeys: new Map(), resourceKinds: new Set(), candidates: new Map() };
      byScope.set(scope, sr);
    }
    return sr;
  };

  // Derived-role sets compile once and are shared by every importing policy.
  const compiledDerivedSets = new Map<string, CompiledDerivedRole[]>();
  for (const [name, d] of derivedRoleSets) {
    const params = c.params(d.policy, d.body.variables, d.body.constants, d.policy.topVariables, derivedRolesFqn(name), true);
    const defs: CompiledDerivedRole[] = [];
    const seen = new Set<string>();
    d.body.definitions.forEach((def, i) => {
      if (seen.has(def.name)) {
        diag.add(d.policy, [...def.path, 'name'], `duplicate derived role definition \`${def.name}\``, 'ERR_POLICY_COMPILE_DUPLICATE');
      }
      seen.add(def.name);
      const cond = def.condition ? c.condition(d.policy, def.condition, params) : undefined;
      defs.push({ name: def.name, parentRoles: new Set(def.parentRoles), condition: cond, params });
      void i;
    });
    compiledDerivedSets.set(name, defs);
  }

  for (const { policy, body } of resources) {
    const fqn = resourcePolicyFqn(body.resource, body.version, body.scope);
    const key = policyKeyFromFqn(fqn);
    const params = c.params(policy, body.variables, body.constants, policy.topVariables, fqn, false);
    // derived roles
    const available = new Map<string, { def: CompiledDerivedRole; from: string; at: PathSegment[] }[]>();
    for (const imp of body.importDerivedRoles) {
      const defs = compiledDerivedSets.get(imp.name);
      if (!defs) {
        diag.add(policy, imp.path, `import not found: Derived roles import '${imp.name}' cannot be found`, 'ERR_POLICY_COMPILE_IMPORT_NOT_FOUND');
        continue;
      }
      for (const def of defs) {
        const list = available.get(def.name) ?? [];
        list.push({ def, from: imp.name, at: imp.path });
        available.set(def.name, list);
      }
    }
    const used = new Map<string, CompiledDerivedRole>();
    const unknown = new Map<string, PathSegment[]>();
    for (const rule of body.rules) {
      for (const dr of rule.derivedRoles) {
        const found = available.get(dr.name);
        if (!found || found.length === 0) {
          unknown.set(dr.name, dr.path); // one error per name, at its last use (as Cerbos reports)
          continue;
        }
        if (found.length > 1) {
          const where = found
            .map((f) => {
              const src = derivedRoleSets.get(f.from);
              const pos = policy.positionOf(f.at);
              return `${src?.policy.file ?? f.from} (imported as "${f.from}" at ${pos.line}:${pos.column})`;
            })
            .join(', ');
          diag.add(policy, [], `ambiguous derived role: Derived role "${dr.name}" is defined in more than one import: ${where}`, 'ERR_POLICY_COMPILE_AMBIGUOUS_DERIVED_ROLE');
          continue;
        }
        used.set(dr.name, (found[0] as { def: CompiledDerivedRole }).def);
      }
    }
    for (const [name, at] of unknown) {
      diag.add(policy, at, `unknown derived role: Derived role "${name}" is not defined in any imports`, 'ERR_POLICY_COMPILE_UNKNOWN_DERIVED_ROLE');
    }
    // Only derived roles that some rule references count for effectiveDerivedRoles, as in Cerbos.
    if (used.size > 0) set.derivedRoles.set(fqn, [...used.values()]);

    // schemas
    const schemas: PolicySchemas = {};
    for (const which of ['principalSchema', 'resourceSchema'] as const) {
      const s = body.schemas[which];
      if (!s) continue;
      if (!registry.has(s.ref)) {
        const label = which === 'principalSchema' ? 'principal' : 'resource';
        const broken = brokenSchemas.get(s.ref);
        const why = broken !== undefined ? `jsonschema ${s.ref} compilation failed: ${broken}` : `schema ${schemaPathOf(s.ref)} doesn't exist`;
        diag.add(policy, s.path.slice(0, -1), `invalid schema: Failed to load ${label} schema "${s.ref}": ${why}`, 'ERR_SCHEMA_INVALID');
        continue;
      }
      schemas[which] = { ref: s.ref, ignoreWhenActions: s.ignoreWhenActions };
    }
    if (schemas.principalSchema || schemas.resourceSchema) set.schemas.set(fqn, schemas);

    const kind = sanitize(body.resource);
    const sr = scopeRows(body.version, body.scope);
    sr.resourceKinds.add(kind);
    set.resourceScopes.add(body.scope);
    mergeScopePermissions(set.scopePermissions, body.scope, body.scopePermissions);
    const requireConsent = body.scopePermissions === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS';
    const resourceMatches = compileGlob(kind);

    if (body.rules.length === 0) {
      // an empty policy still makes the scope "exist" for this kind
      sr.resourceRows.push(noopRow('resource', '', resourceMatches, body.scope, body.version, params));
    }
    for (const rule of body.rules) {
      let cond = rule.condition ? c.condition(policy, rule.condition, params) : undefined;
      const output = rule.output ? c.output(policy, rule.output, params) : undefined;
      const ruleFqn = `${key}#${rule.name}`;
      let effect = rule.effect;
      if (requireConsent && effect === 'EFFECT_ALLOW' && cond) {
        cond = { op: 'none', of: [cond] };
        effect = 'EFFECT_DENY';
      }
      for (const action of rule.actions) {
        const base = {
          kind: 'resource' as const,
          principal: '',
          resourceMatches,
          action,
          actionMatches: compileGlob(action),
          condition: cond,
          effect,
          scope: body.scope,
          version: body.version,
          name: rule.name,
          src: ruleFqn,
          output,
          params,
        };
        for (const role of rule.roles) {
          sr.resourceRows.push({ ...base, role, derivedRole: '', derivedRoleDef: undefined, derivedRoleCondition: undefined, derivedRoleParams: undefined, evaluationKey: `${fqn}#${ruleFqn}` });
        }
        for (const dr of rule.derivedRoles) {
          const def = used.get(dr.name);
          if (!def) continue;
          for (const parent of def.parentRoles) {
            sr.resourceRows.push({
              ...base,
              role: parent,
              derivedRole: dr.name,
              derivedRoleDef: def,
              derivedRoleCondition: def.condition,
              derivedRoleParams: def.params,
              evaluationKey: `${derivedRolesFqn(dr.name)}#${ruleFqn}`,
            });
          }
        }
      }
    }
  }

  for (const { policy, body } of principals) {
    const fqn = principalPolicyFqn(body.principal, body.version, body.scope);
    const key = policyKeyFromFqn(fqn);
    const params = c.params(policy, body.variables, body.constants, policy.topVariables, fqn, false);
    const sr = scopeRows(body.version, body.scope);
    set.principalScopes.add(body.scope);
    mergeScopePermissions(set.scopePermissions, body.scope, body.scopePermissions);
    const requireConsent = body.scopePermissions === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS';
    const rows = sr.principalRows.get(body.principal) ?? [];
    sr.principalRows.set(body.principal, rows);
    if (body.rules.length === 0) rows.push(noopRow('principal', body.principal, () => false, body.scope, body.version, params));
    for (const rr of body.rules) {
      const resourceMatches = compileGlob(sanitizeGlob(rr.resource));
      for (const a of rr.actions) {
        let cond = a.condition ? c.condition(policy, a.condition, params) : undefined;
        const output = a.output ? c.output(policy, a.output, params) : undefined;
        let effect = a.effect;
        if (requireConsent && effect === 'EFFECT_ALLOW' && cond) {
          cond = { op: 'none', of: [cond] };
          effect = 'EFFECT_DENY';
        }
        const ruleFqn = `${key}#${a.name}`;
        rows.push({
          kind: 'principal',
          principal: body.principal,
          resourceMatches,
          role: '*',
          action: a.action,
          actionMatches: compileGlob(a.action),
          condition: cond,
          derivedRole: '',
          derivedRoleDef: undefined,
          derivedRoleCondition: undefined,
          derivedRoleParams: undefined,
          effect,
          scope: body.scope,
          version: body.version,
          name: a.name,
          src: ruleFqn,
          output,
          params,
          evaluationKey: `${fqn}#${ruleFqn}`,
        });
      }
    }
  }

  for (const { policy, body } of roles) {
    const fqn = rolePolicyFqn(body.role, body.version, body.scope);
    const key = policyKeyFromFqn(fqn);
    const params = c.params(policy, body.variables, body.constants, policy.topVariables, fqn, false);
    const sr = scopeRows(body.version, body.scope);
    set.resourceScopes.add(body.scope);
    sr.rolePolicyKeys.set(body.role, key);
    const list = sr.roleRows.get(body.role) ?? [];
    sr.roleRows.set(body.role, list);
    // Cerbos numbers role rules within each resource group; rules of different groups can share an
    // evaluation key, and with it a cached condition result. Reproduced on purpose.
    const groupIndex = new Map<string, number>();
    body.rules.forEach((rule) => {
      const idx = groupIndex.get(rule.resource) ?? 0;
      groupIndex.set(rule.resource, idx + 1);
      list.push({
        role: body.role,
        resourceMatches: compileGlob(sanitizeGlob(rule.resource)),
        allowActions: rule.allowActions.map(compileGlob),
        condition: rule.condition ? c.condition(policy, rule.condition, params) : undefined,
        output: rule.output ? c.output(policy, rule.output, params) : undefined,
        params,
        scope: body.scope,
        version: body.version,
        policyKey: key,
        src: `${key}#${rule.name}`,
        evaluationKey: `${key}#${body.role}_rule-${String(idx).padStart(3, '0')}`,
      });
    });
    let parents = set.scopeParentRoles.get(body.scope);
    if (!parents) {
      parents = new Map();
      set.scopeParentRoles.set(body.scope, parents);
    }
    parents.set(body.role, body.parentRoles);
  }

  // Scope ancestry, checked once everything else compiles: every scoped resource or principal
  // policy needs its ancestors. Reported on the most specific policy of a chain only.
  if (errors.length === 0) {
    checkAncestors(
      resources.map((r) => ({ policy: r.policy, scope: r.body.scope, fqnAt: (s: string) => resourcePolicyFqn(r.body.resource, r.body.version, s) })),
      diag,
    );
    checkAncestors(
      principals.map((r) => ({ policy: r.policy, scope: r.body.scope, fqnAt: (s: string) => principalPolicyFqn(r.body.principal, r.body.version, s) })),
      diag,
    );
  }

  checkScopePermissionConflicts(resources, principals, diag);

  set.usesRuntime = c.usesRuntime;

  if (errors.length > 0) {
    errors.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
    return { policySet: undefined, errors };
  }
  return { policySet: set as CompiledPolicySet, errors };
}

/**
 * Cerbos 0.55 refuses to build its index ("policies sharing scope X have conflicting
 * scopePermissions") in a scope that holds a principal policy when the resource policies of that
 * scope disagree (unset counting as OVERRIDE_PARENT). Probed case by case against the 0.55
 * binary. The binary also refuses some scopes that mix role, resource and principal policies by a
 * rule we could not pin down; we accept those rather than risk refusing a set Cerbos accepts.
 */
function checkScopePermissionConflicts(resources: Located<ResourcePolicyDoc>[], principals: Located<PrincipalPolicyDoc>[], diag: Diag): void {
  const resourceSettings = new Map<string, Set<string>>();
  for (const r of resources) {
    const set = resourceSettings.get(r.body.scope) ?? new Set<string>();
    set.add(r.body.scopePermissions === 'SCOPE_PERMISSIONS_UNSPECIFIED' ? 'SCOPE_PERMISSIONS_OVERRIDE_PARENT' : r.body.scopePermissions);
    resourceSettings.set(r.body.scope, set);
  }
  const reported = new Set<string>();
  for (const p of principals) {
    const scope = p.body.scope;
    if (reported.has(scope)) continue;
    const settings = resourceSettings.get(scope);
    if (!settings) continue;
    if (settings.size < 2) continue;
    reported.add(scope);
    diag.add(p.policy, [], `scope permission conflict: policies sharing scope ${scope === '' ? '""' : scope} have conflicting scopePermissions`, 'ERR_POLICY_COMPILE_SCOPE_PERMISSIONS_CONFLICT');
  }
}

function checkAncestors(items: { policy: ParsedPolicy; scope: string; fqnAt: (scope: string) => string }[], diag: Diag): void {
  const present = new Set(items.map((i) => i.fqnAt(i.scope)));
  const isAncestorOfAnother = new Set<string>();
  for (const i of items) for (const s of scopeParents(i.scope)) isAncestorOfAnother.add(i.fqnAt(s));
  for (const i of items) {
    if (isAncestorOfAnother.has(i.fqnAt(i.scope))) continue;
    for (const parent of scopeParents(i.scope)) {
      const fqn = i.fqnAt(parent);
      if (!present.has(fqn)) {
        diag.add(i.policy, [], `missing policy definition: Missing ancestor policy "${policyKeyFromFqn(fqn)}"`, 'ERR_POLICY_COMPILE_MISSING_ANCESTOR');
      }
    }
  }
}

/**
 * Records a policy's scopePermissions for its scope. Where the policies of one scope disagree,
 * Cerbos 0.55 keeps whichever it indexes last (Go map order, so it varies between starts);
 * SECURITY: Warden settles such a scope on REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS, the stricter one.
 */
function mergeScopePermissions(
  map: Map<string, 'SCOPE_PERMISSIONS_OVERRIDE_PARENT' | 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS'>,
  scope: string,
  value: string,
): void {
  if (value === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS') map.set(scope, value);
  else if (!map.has(scope)) map.set(scope, 'SCOPE_PERMISSIONS_OVERRIDE_PARENT');
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function schemaPathOf(ref: string): string {
  const rel = ref.replace(/^cerbos:\/\/\//, '');
  return `_schemas/${rel}`;
}

function sanitizeGlob(resource: string): string {
  // A glob never fits the legacy name pattern, so it is kept as written; names are sanitised as
  // Cerbos does, matching the request's kind after the same treatment.
  return isGlob(resource) ? resource : sanitize(resource);
}

function noopRow(kind: 'principal' | 'resource', principal: string, resourceMatches: (v: string) => boolean, scope: string, version: string, params: Params): Row {
  return {
    kind,
    principal,
    resourceMatches,
    role: '\u0000none',
    action: '\u0000none',
    actionMatches: () => false,
    condition: undefined,
    derivedRole: '',
    derivedRoleDef: undefined,
    derivedRoleCondition: undefined,
    derivedRoleParams: undefined,
    effect: 'EFFECT_DENY',
    scope,
    version,
    name: '',
    src: '',
    output: undefined,
    params,
    evaluationKey: '',
  };
}

/** Per-policy compilation helpers: params, conditions and outputs with reference checks. */
class Compiler {
  constructor(
    private readonly diag: Diag,
    private readonly exportVars: Map<string, Located<ExportVariablesDoc>>,
    private readonly exportConsts: Map<string, Located<ExportConstantsDoc>>,
  ) {}

  /** The variables and constants in force for a policy, compiled and ordered. */
  private current: { vars: Set<string>; consts: Set<string> } = { vars: new Set(), consts: new Set() };
  /** params key → variable → the variables it references directly */
  private readonly deps = new Map<string, Map<string, string[]>>();

  /** The variables `program` reads, transitively, in evaluation order. */
  private needsOf(program: CelProgram, params: Params): VariableNeed[] {
    const deps = this.deps.get(params.key);
    const want = new Set<string>();
    const visit = (name: string) => {
      if (want.has(name)) return;
      want.add(name);
      for (const d of deps?.get(name) ?? []) visit(d);
    };
    for (const v of celReferences(program).variables) if (deps?.has(v)) visit(v);
    return params.variables.filter((v) => want.has(v.name));
  }

  params(policy: ParsedPolicy, variables: VariablesBlock, constants: ConstantsBlock, topVariables: ParsedPolicy['topVariables'], key: string, nullOnError: boolean): Params {
    // constants
    const constDefs = new Map<string, { value: JsonValue; where: string }[]>();
    const addConst = (name: string, value: JsonValue, where: string) => {
      const l = constDefs.get(name) ?? [];
      l.push({ value, where });
      constDefs.set(name, l);
    };
    for (const imp of constants.import) {
      const ex = this.exportConsts.get(imp.name);
      if (!ex) {
        this.diag.add(policy, imp.path, `import not found: Constants import '${imp.name}' cannot be found`, 'ERR_POLICY_COMPILE_IMPORT_NOT_FOUND');
        continue;
      }
      for (const d of ex.body.definitions) {
        const pos = ex.policy.positionOf(d.path);
        addConst(d.name, d.value, `import '${imp.name}' (${ex.policy.file}:${pos.line}:${pos.column})`);
      }
    }
    for (const d of constants.local) {
      const pos = policy.positionOf(d.path);
      addConst(d.name, d.value, `policy local constants (${policy.file}:${pos.line}:${pos.column})`);
    }
    const constValues: Record<string, unknown> = {};
    for (const [name, defs] of constDefs) {
      if (defs.length > 1) {
        this.diag.add(policy, [], `constant redefined: Constant '${name}' has multiple definitions in ${joinWhere(defs.map((d) => d.where))}`, 'ERR_POLICY_COMPILE_CONSTANT_REDEFINED');
      }
      constValues[name] = (defs[0] as { value: JsonValue }).value;
    }

    // variables
    const varDefs = new Map<string, { expr: string; where: string; policy: ParsedPolicy; path: PathSegment[] }[]>();
    const addVar = (name: string, expr: string, where: string, p: ParsedPolicy, path: PathSegment[]) => {
      const l = varDefs.get(name) ?? [];
      l.push({ expr, where, policy: p, path });
      varDefs.set(name, l);
    };
    for (const imp of variables.import) {
      const ex = this.exportVars.get(imp.name);
      if (!ex) {
        this.diag.add(policy, imp.path, `import not found: Variables import '${imp.name}' cannot be found`, 'ERR_POLICY_COMPILE_IMPORT_NOT_FOUND');
        continue;
      }
      for (const d of ex.body.definitions) {
        const pos = ex.policy.positionOf(d.path);
        addVar(d.name, d.expr, `import '${imp.name}' (${ex.policy.file}:${pos.line}:${pos.column})`, ex.policy, d.path);
      }
    }
    for (const d of variables.local) {
      const pos = policy.positionOf(d.path);
      addVar(d.name, d.expr, `policy local variables (${policy.file}:${pos.line}:${pos.column})`, policy, d.path);
    }
    for (const d of topVariables) {
      const pos = policy.positionOf(d.path);
      addVar(d.name, d.expr, `deprecated top-level policy variables (${policy.file}:${pos.line}:${pos.column})`, policy, d.path);
    }

    const compiled = new Map<string, { program: CelProgram; deps: string[]; policy: ParsedPolicy; path: PathSegment[] }>();
    for (const [name, defs] of varDefs) {
      if (defs.length > 1) {
        this.diag.add(policy, [], `variable redefined: Variable '${name}' has multiple definitions in ${joinWhere(defs.map((d) => d.where))}`, 'ERR_POLICY_COMPILE_VARIABLE_REDEFINED');
      }
      const d = defs[0] as { expr: string; policy: ParsedPolicy; path: PathSegment[] };
      const program = this.compileExpr(d.policy, d.path, d.expr);
      if (!program) continue;
      const refs = celReferences(program);
      for (const cn of refs.constants) {
        if (!(cn in constValues)) {
          this.diag.add(d.policy, d.path, `undefined constant: Undefined constant '${cn}' referenced in variable '${name}'`, 'ERR_POLICY_COMPILE_UNDEFINED_CONSTANT');
        }
      }
      const deps: string[] = [];
      for (const vn of refs.variables) {
        if (!varDefs.has(vn)) {
          this.diag.add(d.policy, d.path, `undefined variable: Undefined variable '${vn}' referenced in variable '${name}'`, 'ERR_POLICY_COMPILE_UNDEFINED_VARIABLE');
        } else {
          deps.push(vn);
        }
      }
      compiled.set(name, { program, deps, policy: d.policy, path: d.path });
    }

    // order by dependencies (Kahn), reporting cycles
    const ordered: { name: string; program: CelProgram }[] = [];
    const state = new Map<string, 0 | 1 | 2>();
    const visit = (name: string, stack: string[]): void => {
      const st = state.get(name) ?? 0;
      if (st === 2) return;
      const v = compiled.get(name);
      if (!v) return;
      if (st === 1) {
        const cycle = [...stack.slice(stack.indexOf(name)), name].join(' -> ');
        this.diag.add(v.policy, v.path, `cyclical variable definitions: Variables form a cycle: ${cycle}`, 'ERR_POLICY_COMPILE_CYCLICAL_VARIABLES');
        return;
      }
      state.set(name, 1);
      for (const dep of v.deps) visit(dep, [...stack, name]);
      state.set(name, 2);
      ordered.push({ name, program: v.program });
    };
    for (const name of [...compiled.keys()].sort()) visit(name, []);

    this.current = { vars: new Set(varDefs.keys()), consts: new Set(Object.keys(constValues)) };
    this.deps.set(key, new Map([...compiled].map(([n, v]) => [n, v.deps])));
    return { key, constants: constValues, variables: ordered, nullOnError };
  }

  condition(policy: ParsedPolicy, node: MatchNode, params: Params): CompiledCondition | undefined {
    this.current = { vars: new Set(params.variables.map((v) => v.name)), consts: new Set(Object.keys(params.constants)) };
    return this.conditionNode(policy, node, params);
  }

  private conditionNode(policy: ParsedPolicy, node: MatchNode, params: Params): CompiledCondition | undefined {
    if (node.kind === 'expr') {
      const program = this.compileChecked(policy, node.path, node.expr);
      if (!program) return undefined;
      const needs = this.needsOf(program, params);
      const expr: CompiledExpr = { program, needs, principalOnly: principalOnly(program) && needs.every((n) => principalOnly(n.program)) };
      const alias = celVariableAlias(program);
      if (alias !== undefined && params.variables.some((v) => v.name === alias.name)) expr.alias = alias;
      return { op: 'expr', expr };
    }
    const of: CompiledCondition[] = [];
    for (const n of node.of) {
      const cc = this.conditionNode(policy, n, params);
      if (cc) of.push(cc);
    }
    return { op: node.kind, of };
  }

  output(policy: ParsedPolicy, out: RuleOutput, params: Params): CompiledOutput | undefined {
    this.current = { vars: new Set(params.variables.map((v) => v.name)), consts: new Set(Object.keys(params.constants)) };
    const res: CompiledOutput = {};
    if (out.ruleActivated) {
      const p = this.compileChecked(policy, out.ruleActivated.path, out.ruleActivated.expr);
      if (p) res.ruleActivated = { program: p, needs: this.needsOf(p, params), principalOnly: false };
    }
    if (out.conditionNotMet) {
      const p = this.compileChecked(policy, out.conditionNotMet.path, out.conditionNotMet.expr);
      if (p) res.conditionNotMet = { program: p, needs: this.needsOf(p, params), principalOnly: false };
    }
    return res.ruleActivated || res.conditionNotMet ? res : undefined;
  }

  private compileChecked(policy: ParsedPolicy, path: PathSegment[], expr: string): CelProgram | undefined {
    const program = this.compileExpr(policy, path, expr);
    if (!program) return undefined;
    const refs = celReferences(program);
    for (const vn of refs.variables) {
      if (!this.current.vars.has(vn)) this.diag.add(policy, diagPath(path), `undefined variable: Undefined variable '${vn}'`, 'ERR_POLICY_COMPILE_UNDEFINED_VARIABLE');
    }
    for (const cn of refs.constants) {
      if (!this.current.consts.has(cn)) this.diag.add(policy, diagPath(path), `undefined constant: Undefined constant '${cn}'`, 'ERR_POLICY_COMPILE_UNDEFINED_CONSTANT');
    }
    return program;
  }

  /** Set when any compiled expression reads `runtime`. */
  usesRuntime = false;

  private compileExpr(policy: ParsedPolicy, path: PathSegment[], expr: string): CelProgram | undefined {
    try {
      const program = compileCelExpression(expr);
      if (!this.usesRuntime && celUsesIdentifier(program, 'runtime')) this.usesRuntime = true;
      const indexed = celNamespaceIndexing(program);
      if (indexed !== undefined) {
        this.diag.add(policy, diagPath(path), `invalid expression: Invalid expression \`${expr.trim()}\`: \`${indexed}\` supports field selection only (\`${indexed}.name\`), not indexing`, 'ERR_POLICY_COMPILE_INVALID_EXPRESSION');
        return undefined;
      }
      return program;
    } catch (err) {
      if (err instanceof CelCompileError) {
        this.diag.add(policy, diagPath(path), `invalid expression: Invalid expression \`${expr.trim()}\`: ${err.message}`, 'ERR_POLICY_COMPILE_INVALID_EXPRESSION');
        return undefined;
      }
      throw err;
    }
  }
}

/** Whether an expression reads nothing of the resource or the runtime (see {@link CompiledExpr}). */
function principalOnly(program: CelProgram): boolean {
  return !celUsesIdentifier(program, 'R') && !celUsesIdentifier(program, 'request') && !celUsesIdentifier(program, 'runtime');
}

/** Cerbos points at the `match` mapping of a condition expression, and at an output's mapping. */
function diagPath(path: PathSegment[]): PathSegment[] {
  const last = path[path.length - 1];
  if (last === 'expr') return path.slice(0, -1);
  if (last === 'ruleActivated' || last === 'conditionNotMet') return path.slice(0, path[path.length - 2] === 'when' ? -2 : -1);
  return path;
}

function joinWhere(items: string[]): string {
  if (items.length <= 1) return items.join('');
  if (items.length === 2) return `${items[0]} and ${items[1]}`;
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1]}`;
}
