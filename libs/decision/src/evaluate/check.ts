/**
 * The check evaluator: Cerbos's rule-table algorithm over a {@link CompiledPolicySet}.
 *
 * For each action: principal policies first, then resource (and role) policies; within a policy
 * kind, each of the principal's roles walks the scopes from the most specific to the root. A DENY
 * ends the walk; an ALLOW ends it unless the scope requires parental consent; across roles the
 * first ALLOW wins. Pure and synchronous: the clock comes in as `now`, and nothing here does I/O.
 */
import type { ActionEffect, CheckInput, CheckOutput, OutputEntry } from '@warden/core';
import { celValueToJson, createCelContextFor, prepareCelRequest, type CelContext, type PreparedCelRequest } from '../cel/index.js';
import type { CompiledCondition, CompiledDerivedRole, CompiledExpr, CompiledPolicySet, Params, RoleRow, Row, ScopeRows, VariableNeed } from '../compile/compiled.types.js';
import { policyKeyFromFqn, principalPolicyFqn, resourcePolicyFqn, sanitize, scopeParents } from '../compile/namer.js';
import type { EngineConfig } from '../engine.types.js';
import { validateCheckInput, type PolicySchemas } from '../schema/index.js';
import { BoundedMemo } from './bounded-memo.js';

const NO_MATCH = 'NO_MATCH';
type EffectState = 'EFFECT_ALLOW' | 'EFFECT_DENY' | 'NO_MATCH';

interface EffectInfo {
  effect: EffectState;
  policy: string;
  scope: string;
  /** The deciding rule's source (`<policy key>#<rule name>`), '' when no single rule decided. */
  src: string;
}

/** The evaluation scope of one policy's params within one request: its CEL context and variables. */
interface ParamScope {
  /** Results of principal-only expressions, shared by the inputs of one check call with one principal. */
  readonly shared: Map<CompiledExpr, boolean | undefined>;
  readonly ctx: CelContext;
  readonly vars: Record<string, unknown>;
  readonly done: Set<string> | undefined;
  readonly nullOnError: boolean;
  failed: boolean;
}

/**
 * Evaluates the variables an expression needs that are not evaluated yet, in dependency order.
 * A variable whose expression fails stays absent (Cerbos's "no such key"), or null for derived
 * roles.
 */
function ensureVariables(scope: ParamScope, needs: readonly VariableNeed[]): void {
  for (let i = 0; i < needs.length; i++) {
    const need = needs[i] as VariableNeed;
    if (scope.done!.has(need.name)) continue;
    scope.done!.add(need.name);
    try {
      scope.vars[need.name] = need.program.evaluate(scope.ctx);
    } catch {
      if (scope.nullOnError) scope.vars[need.name] = null;
    }
  }
}

/** Per-input evaluation state: lazily evaluated params and condition results. */
class EvalState {
  // A request touches one to a few policies: a short list beats a Map here.
  private scopeKeys: Params[] = [];
  private scopeVals: ParamScope[] = [];
  readonly conditionCache = new Map<string, boolean>();
  effectiveDerivedRoles: string[] = EMPTY_ROLES;
  allEffectiveDerivedRoles: Set<string> | undefined;
  readonly outputs: OutputEntry[] = [];
  private derivedRoles: Map<CompiledDerivedRole, { ok: boolean; failed: boolean }> | undefined;

  constructor(
    private readonly request: PreparedCelRequest,
    private readonly globals: Record<string, unknown>,
    private readonly now: Date,
    private readonly shared: Map<CompiledExpr, boolean | undefined>,
  ) {}

  /** The CEL scope for a policy's params; variables evaluate when an expression needs them. */
  scope(params: Params): ParamScope {
    const i = this.scopeKeys.indexOf(params);
    if (i >= 0) return this.scopeVals[i] as ParamScope;
    const hasVars = params.variables.length > 0;
    const vars: Record<string, unknown> = hasVars ? {} : EMPTY_VARS;
    const ctx = createCelContextFor(this.request, params.constants, vars, this.globals, this.effectiveDerivedRoles, this.now);
    const scope: ParamScope = { shared: this.shared, ctx, vars, done: hasVars ? new Set() : undefined, nullOnError: params.nullOnError, failed: false };
    this.scopeKeys.push(params);
    this.scopeVals.push(scope);
    return scope;
  }

  /** A derived role's condition for this request, evaluated once. */
  derivedRole(def: CompiledDerivedRole): { ok: boolean; failed: boolean } {
    this.derivedRoles ??= new Map();
    let r = this.derivedRoles.get(def);
    if (r === undefined) {
      r = check(def.condition, this.scope(def.params));
      this.derivedRoles.set(def, r);
    }
    return r;
  }

  addEffectiveDerivedRole(name: string): void {
    (this.allEffectiveDerivedRoles ??= new Set()).add(name);
  }

  /** Effective derived roles changed: contexts must see the new `runtime`. */
  setEffectiveDerivedRoles(roles: string[]): void {
    if (roles.length === 0 && this.effectiveDerivedRoles.length === 0) return;
    this.effectiveDerivedRoles = roles;
    this.scopeKeys = [];
    this.scopeVals = [];
  }
}

const EMPTY_ROLES: string[] = [];

/** Fills the output's per-action effects (a missing effect is Cerbos's default DENY, NO_MATCH). */
function finishOutput(output: CheckOutput, actions: readonly string[], effects: readonly (EffectInfo | undefined)[], state: EvalState | undefined, rules: boolean): CheckOutput {
  for (let i = 0; i < actions.length; i++) {
    const action = actions[i] as string;
    if (i > 0 && actions.indexOf(action) < i) continue;
    const e = effects[i];
    let ae: ActionEffect;
    if (e === undefined) ae = { effect: 'EFFECT_DENY', policy: NO_MATCH };
    else {
      ae = { effect: e.effect === NO_MATCH ? 'EFFECT_DENY' : e.effect, policy: e.policy };
      if (e.scope !== '' && e.effect !== NO_MATCH) ae.scope = e.scope;
      if (rules && e.src !== '' && e.effect !== NO_MATCH) ae.rule = e.src;
    }
    output.actions[action] = ae;
  }
  if (state) {
    if (state.allEffectiveDerivedRoles) output.effectiveDerivedRoles = [...state.allEffectiveDerivedRoles];
    output.outputs = state.outputs;
  }
  return output;
}

/** A resource (kind, version, scope) resolved against the policy set. */
interface ResourcePlan {
  kind: string;
  scopes: string[];
  srs: (ScopeRows | undefined)[];
  policyKey: string;
  schemas: PolicySchemas | undefined;
  scopedResourceExists: boolean;
}

/** A principal (scope, version) resolved against the policy set for one resource version. */
interface PrincipalPlan {
  scopes: string[];
  srs: (ScopeRows | undefined)[];
  scopedPrincipalExists: boolean;
}

/** The last principal of a check call and its prepared CEL view. */
interface SharedPrincipal {
  principal: CheckInput['principal'] | undefined;
  view: Record<string, unknown> | undefined;
  /** Results of principal-only expressions for this principal in this call. */
  results: Map<CompiledExpr, boolean | undefined>;
}

/** Upper bound of the per-evaluator memo tables (kinds, FQNs, scope chains): request input must not grow them without limit. */
const CACHE_LIMIT = 10_000;
const EMPTY_VARS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/**
 * Evaluates a condition tree. A CEL error makes the expression "not met", as in Cerbos, and is
 * recorded on the scope (`failed`) for strict evaluation.
 */
function satisfies(cond: CompiledCondition | undefined, scope: ParamScope): boolean {
  if (cond === undefined) return true;
  switch (cond.op) {
    case 'expr': {
      const e = cond.expr;
      if (e.principalOnly) {
        // undefined in the map records a failed evaluation
        if (scope.shared.has(e)) {
          const r = scope.shared.get(e);
          if (r === undefined) scope.failed = true;
          return r === true;
        }
        const before = scope.failed;
        scope.failed = false;
        const r = evalExpr(e, scope);
        scope.shared.set(e, scope.failed ? undefined : r);
        scope.failed = scope.failed || before;
        return r;
      }
      return evalExpr(e, scope);
    }
    case 'all':
      for (const c of cond.of) if (!satisfies(c, scope)) return false;
      return true;
    case 'any':
      for (const c of cond.of) if (satisfies(c, scope)) return true;
      return false;
    case 'none':
      for (const c of cond.of) if (satisfies(c, scope)) return false;
      return true;
  }
}

/** One expression of a condition: true only when it evaluates to `true`; errors set `failed`. */
function evalExpr(e: CompiledExpr, scope: ParamScope): boolean {
  if (e.needs.length > 0) ensureVariables(scope, e.needs);
  const alias = e.alias;
  if (alias !== undefined) {
    // Same outcome as CEL on `V.x` / `!V.x`: an absent variable or a non-boolean under `!` is an error.
    const vars = scope.vars;
    if (!Object.hasOwn(vars, alias.name)) {
      scope.failed = true;
      return false;
    }
    const v = vars[alias.name];
    if (!alias.negate) return v === true;
    if (typeof v !== 'boolean') {
      scope.failed = true;
      return false;
    }
    return !v;
  }
  try {
    return e.program.evaluate(scope.ctx) === true;
  } catch {
    scope.failed = true;
    return false;
  }
}

/** Runs `cond` and reports whether any expression in it failed. */
function check(cond: CompiledCondition | undefined, scope: ParamScope): { ok: boolean; failed: boolean } {
  scope.failed = false;
  const ok = satisfies(cond, scope);
  return { ok, failed: scope.failed };
}

function pushOutput(state: EvalState, src: string, expr: CompiledExpr | undefined, scope: ParamScope, action: string): void {
  if (!expr) return;
  if (expr.needs.length > 0) ensureVariables(scope, expr.needs);
  let entry: OutputEntry;
  try {
    const v = expr.program.evaluate(scope.ctx);
    entry = v === undefined ? { src, action } : { src, val: celValueToJson(v), action };
  } catch (err) {
    // Cerbos 0.55 reports a failed output expression in `error` instead of a value.
    entry = { src, action, error: err instanceof Error ? err.message : String(err) };
  }
  state.outputs.push(entry);
}

/** `.` is an alias of the root scope; an empty scope takes the configured default. */
function normaliseScope(scope: string | undefined, defaultScope: string): string {
  if (scope === undefined || scope === '') return defaultScope === '.' ? '' : defaultScope;
  return scope === '.' ? '' : scope;
}

/** Evaluates check inputs against a compiled policy set. */
export class CheckEvaluator {
  constructor(
    private readonly set: CompiledPolicySet,
    private readonly config: EngineConfig,
  ) {}

  check(inputs: readonly CheckInput[], now: Date, includeEffectiveDerivedRoles = true, includeRules = false): CheckOutput[] {
    const out: CheckOutput[] = new Array(inputs.length);
    // runtime.effectiveDerivedRoles needs them computed scope by scope, as Cerbos does.
    const edr = includeEffectiveDerivedRoles || this.set.usesRuntime;
    const shared: SharedPrincipal = { principal: undefined, view: undefined, results: new Map() };
    for (let i = 0; i < inputs.length; i++) out[i] = this.checkOne(inputs[i] as CheckInput, now, edr, shared, includeRules);
    return out;
  }

  private readonly kindMemo = new BoundedMemo<string>(CACHE_LIMIT);
  private readonly scopeMemo = new BoundedMemo<string[]>(CACHE_LIMIT);
  private readonly principalKeyMemo = new BoundedMemo<string>(CACHE_LIMIT);
  private readonly fqnMemo = new BoundedMemo<string>(CACHE_LIMIT);
  private readonly singleRoleMemo = new BoundedMemo<string[]>(CACHE_LIMIT);
  private readonly parentRoleMemo = new BoundedMemo<string[]>(CACHE_LIMIT);

  /** Sanitised kind (memoised). */
  private sanitizedKind(kind: string): string {
    return this.kindMemo.get1(kind, () => sanitize(kind));
  }

  private principalKey(id: string, version: string, scope: string): string {
    return this.principalKeyMemo.get3(id, version, scope, () => policyKeyFromFqn(principalPolicyFqn(id, version, scope)));
  }

  private resourceFqn(kind: string, version: string, scope: string): string {
    return this.fqnMemo.get3(kind, version, scope, () => resourcePolicyFqn(kind, version, scope));
  }

  private scopesFor(kind: 'principal' | 'resource', scope: string): string[] {
    return this.scopeMemo.get2(kind, scope, () => this.computeScopes(kind, scope));
  }

  private computeScopes(kind: 'principal' | 'resource', scope: string): string[] {
    const map = kind === 'principal' ? this.set.principalScopes : this.set.resourceScopes;
    const scopes: string[] = [];
    if (map.has(scope)) scopes.push(scope);
    else if (!this.config.lenientScopeSearch) return scopes;
    for (const s of scopeParents(scope)) if (map.has(s)) scopes.push(s);
    return scopes;
  }

  /** `[role, ...its ancestors]` in `scope` (memoised). */
  private parentRolesOf(scope: string, role: string): string[] {
    return this.singleRoleMemo.get2(scope, role, () => this.withParentRoles(scope, [role]));
  }

  /** The role plus its ancestors declared by role policies in `scope`. */
  private withParentRoles(scope: string, roles: readonly string[]): string[] {
    const byRole = this.set.scopeParentRoles.get(scope);
    if (!byRole) return roles as string[];
    const out = new Set<string>(roles);
    for (const role of roles) {
      const parents = this.parentRoleMemo.get2(scope, role, () => {
        const acc = new Set<string>();
        const visit = (r: string, seen: Set<string>) => {
          if (seen.has(r)) return;
          seen.add(r);
          for (const p of byRole.get(r) ?? []) {
            acc.add(p);
            visit(p, seen);
          }
        };
        visit(role, new Set());
        return [...acc];
      });
      for (const p of parents) out.add(p);
    }
    return [...out];
  }

  private readonly resourcePlans = new BoundedMemo<ResourcePlan>(CACHE_LIMIT);
  private readonly principalPlans = new BoundedMemo<PrincipalPlan>(CACHE_LIMIT);

  /** What a resource (kind, version, scope) resolves to, whatever the request's other fields. */
  private resourcePlan(rawKind: string, version: string, scope: string): ResourcePlan {
    return this.resourcePlans.get3(rawKind, version, scope, () => {
      const kind = this.sanitizedKind(rawKind);
      const scopes = this.scopesFor('resource', scope);
      const fqn = scopes.length > 0 ? this.resourceFqn(rawKind, version, scopes[0] as string) : '';
      // INVARIANT: Cerbos selects candidate rows of both kinds by the resource's version.
      const srs = scopes.map((sc) => this.scopeRows(version, sc));
      return {
        kind,
        scopes,
        srs,
        policyKey: fqn !== '' ? policyKeyFromFqn(fqn) : '',
        schemas: fqn !== '' ? this.schemasFor(rawKind, version, scopes) : undefined,
        scopedResourceExists: srs.some((sr) => sr !== undefined && (sr.resourceKinds.has(kind) || hasRoleRowFor(sr, kind))),
      };
    });
  }

  /** What a principal (scope, version) resolves to against a resource version. */
  private principalPlan(scope: string, version: string, resourceVersion: string): PrincipalPlan {
    return this.principalPlans.get3(scope, version, resourceVersion, () => {
      const scopes = this.scopesFor('principal', scope);
      return {
        scopes,
        // candidate rows come from the resource's version (see resourcePlan)
        srs: scopes.map((sc) => this.scopeRows(resourceVersion, sc)),
        // As in Cerbos: any principal policy in the searched scopes at the principal's version counts.
        scopedPrincipalExists: scopes.some((sc) => (this.scopeRows(version, sc)?.principalRows.size ?? 0) > 0),
      };
    });
  }

  /** Schemas of the nearest policy in the scope chain that declares them. */
  private schemasFor(kind: string, version: string, scopes: readonly string[]): PolicySchemas | undefined {
    for (const s of scopes) {
      const found = this.set.schemas.get(this.resourceFqn(kind, version, s));
      if (found) return found;
    }
    return undefined;
  }

  /** Whether `sr` has any rule row or role rule for `kind` and one of `roles`. */
  private hasBindings(sr: ScopeRows, kind: string, roles: readonly string[]): boolean {
    for (const row of sr.resourceRows) {
      if ((row.role === '*' || roles.includes(row.role)) && row.resourceMatches(kind)) return true;
    }
    for (const role of roles) {
      const rules = sr.roleRows.get(role);
      if (rules) for (const rr of rules) if (rr.resourceMatches(kind)) return true;
    }
    return false;
  }

  private scopeRows(version: string, scope: string): ScopeRows | undefined {
    return this.set.rows.get(version)?.get(scope);
  }

  private checkOne(input: CheckInput, now: Date, computeEdr: boolean, shared: SharedPrincipal, rules: boolean): CheckOutput {
    const cfg = this.config;
    const principal = input.principal;
    const resource = input.resource;
    const principalScope = normaliseScope(principal.scope, cfg.defaultScope);
    const resourceScope = normaliseScope(resource.scope, cfg.defaultScope);
    const principalVersion = principal.policyVersion || cfg.defaultPolicyVersion;
    const resourceVersion = resource.policyVersion || cfg.defaultPolicyVersion;

    const output: CheckOutput = {
      resourceId: resource.id,
      actions: {},
      effectiveDerivedRoles: [],
      validationErrors: [],
      outputs: [],
    };
    if (input.requestId !== undefined) output.requestId = input.requestId;
    const actions = input.actions;
    const effects: (EffectInfo | undefined)[] = new Array(actions.length);
    const finish = (state?: EvalState): CheckOutput => finishOutput(output, actions, effects, state, rules);

    // Everything that depends only on (kind, version, scope) is worked out once and memoised.
    const rp = this.resourcePlan(resource.kind, resourceVersion, resourceScope);
    const pp = this.principalPlan(principalScope, principalVersion, resourceVersion);
    const kind = rp.kind;
    const principalScopes = pp.scopes;
    const resourceScopes = rp.scopes;
    if (principalScopes.length === 0 && resourceScopes.length === 0) return finish();

    const principalPolicyKey = principalScopes.length > 0 ? this.principalKey(principal.id, principalVersion, principalScopes[0] as string) : '';
    const resourcePolicyKey = rp.policyKey;

    // Schema validation
    if (cfg.schemaEnforcement !== 'none' && rp.schemas !== undefined) {
      const vr = validateCheckInput(this.set.schemaRegistry, rp.schemas, input, cfg.schemaEnforcement);
      if (vr.errors.length > 0) {
        output.validationErrors = vr.errors;
        if (vr.reject) {
          for (let i = 0; i < actions.length; i++) effects[i] = { effect: 'EFFECT_DENY', policy: resourcePolicyKey, scope: '', src: '' };
          return finish();
        }
      }
    }

    const scopedPrincipalExists = pp.scopedPrincipalExists;
    const scopedResourceExists = rp.scopedResourceExists;
    if (!scopedPrincipalExists && !scopedResourceExists) return finish();

    const roles = principal.roles;
    const allRoles = this.withParentRoles(resourceScope, roles);
    // Inputs of one call usually share their principal object: build its CEL view once.
    const samePrincipal = shared.principal === principal;
    const prepared = prepareCelRequest(input, samePrincipal ? shared.view : undefined);
    if (!samePrincipal) {
      shared.principal = principal;
      shared.results = new Map();
    }
    shared.view = prepared.P;
    const state = new EvalState(prepared, cfg.globals, now, shared.results);
    const processedScopes = computeEdr ? new Set<string>() : undefined;
    const allRolesSet = computeEdr ? new Set(allRoles) : undefined;

    const principalSrs = pp.srs;
    const resourceSrs = rp.srs;
    // Without a principal policy for this principal the principal phase can only yield NO_MATCH,
    // which the resource phase always replaces: skip it.
    const firstPhase = principalSrs.some((sr) => sr !== undefined && sr.principalRows.has(principal.id)) ? 0 : 1;

    for (let ai = 0; ai < actions.length; ai++) {
      const action = actions[ai] as string;
      if (ai > 0 && actions.indexOf(action) < ai) continue; // duplicate action: the first one decides
      let actionEffect: EffectInfo = { effect: NO_MATCH, policy: NO_MATCH, scope: '', src: '' };
      for (let pt = firstPhase; pt < 2; pt++) {
        const isPrincipal = pt === 0;
        const mainPolicyKey = isPrincipal ? principalPolicyKey : resourcePolicyKey;
        const scopes = isPrincipal ? principalScopes : resourceScopes;
        const srs = isPrincipal ? principalSrs : resourceSrs;
        actionEffect.effect = NO_MATCH;
        const roleCount = isPrincipal ? Math.min(roles.length, 1) : roles.length;
        for (let ri = 0; ri < roleCount; ri++) {
          const role = roles[ri] as string;
          let hasAllow = false;
          // The first rule that allowed while `hasAllow` holds (the rule an ALLOW is reported with).
          let allowSrc = '';
          const roleEffect: EffectInfo = { effect: NO_MATCH, policy: NO_MATCH, scope: '', src: '' };
          if ((isPrincipal && scopedPrincipalExists) || (!isPrincipal && scopedResourceExists)) roleEffect.policy = mainPolicyKey;
          const parentRoles = isPrincipal ? roles : this.parentRolesOf(resourceScope, role);

          scopesLoop: for (let si = 0; si < scopes.length; si++) {
            const scope = scopes[si] as string;
            if (processedScopes !== undefined && !isPrincipal && !processedScopes.has(scope)) {
              this.computeDerivedRoles(state, resource.kind, resourceVersion, scope, allRolesSet as Set<string>);
              processedScopes.add(scope);
            }
            if (roleEffect.effect !== NO_MATCH) break;
            const sr = srs[si];
            if (!sr) {
              continue;
            }
            if (isPrincipal) {
              const rows = sr.principalRows.get(principal.id);
              if (rows) {
                for (const row of rows) {
                  if (!row.resourceMatches(kind) || !row.actionMatches(action)) continue;
                  const r = this.evalRow(state, row, action, scope, roleEffect);
                  if (r === 'allow') {
                    if (!hasAllow) allowSrc = row.src;
                    hasAllow = true;
                  } else if (r === 'deny') break scopesLoop;
                }
              }
            } else {
              // Role policies narrowing this scope. As in Cerbos's index, they take part only when
              // the scope has some binding (rule row or role rule) for this kind and these roles.
              if (sr.roleRows.size > 0 && this.hasBindings(sr, kind, parentRoles)) {
                for (const pr of parentRoles) {
                  const policyKey = sr.rolePolicyKeys.get(pr);
                  if (policyKey === undefined) continue;
                  if (this.evalRoleRows(state, sr.roleRows.get(pr) ?? [], policyKey, kind, action, scope, roleEffect)) break scopesLoop;
                }
              }
              const candidates = candidateRows(sr, kind, action);
              for (let k = 0; k < candidates.length; k++) {
                const row = candidates[k] as Row;
                if (row.role !== '*' && !parentRoles.includes(row.role)) continue;
                const r = this.evalRow(state, row, action, scope, roleEffect);
                if (r === 'allow') {
                  if (!hasAllow) allowSrc = row.src;
                  hasAllow = true;
                } else if (r === 'deny') break scopesLoop;
              }
            }
            if (hasAllow) {
              const perm = this.set.scopePermissions.get(scope);
              if (perm === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS') {
                hasAllow = false;
              } else if (perm === 'SCOPE_PERMISSIONS_OVERRIDE_PARENT') {
                roleEffect.effect = 'EFFECT_ALLOW';
                roleEffect.scope = scope;
                roleEffect.src = allowSrc;
                break scopesLoop;
              }
            }
          }

          if (actionEffect.effect === NO_MATCH) actionEffect = { ...roleEffect };
          if (roleEffect.effect === 'EFFECT_ALLOW') {
            actionEffect = { ...roleEffect };
            break;
          }
        }
        if (actionEffect.effect === 'EFFECT_ALLOW' || actionEffect.effect === 'EFFECT_DENY') break;
      }
      if (actionEffect.effect === NO_MATCH) actionEffect.effect = 'EFFECT_DENY';
      effects[ai] = actionEffect;
    }
    return finish(state);
  }

  private computeDerivedRoles(state: EvalState, kind: string, version: string, scope: string, roles: Set<string>): void {
    const drs: CompiledDerivedRole[] | undefined = this.set.derivedRoles.get(this.resourceFqn(kind, version, scope));
    const effective: string[] = [];
    if (drs) {
      for (const dr of drs) {
        let intersects = false;
        for (const p of dr.parentRoles) {
          if (p === '*' || roles.has(p)) {
            intersects = true;
            break;
          }
        }
        if (!intersects) continue;
        if (state.derivedRole(dr).ok) {
          effective.push(dr.name);
          state.addEffectiveDerivedRole(dr.name);
        }
      }
    }
    effective.sort();
    state.setEffectiveDerivedRoles(effective);
  }

  /** Evaluates one row; returns what it contributed. */
  private evalRow(state: EvalState, row: Row, action: string, scope: string, roleEffect: EffectInfo): 'allow' | 'deny' | 'none' {
    const ps = state.scope(row.params);
    let ok = row.evaluationKey !== '' ? state.conditionCache.get(row.evaluationKey) : undefined;
    if (ok === undefined) {
      if (row.derivedRoleDef !== undefined && row.derivedRoleCondition !== undefined) {
        const dr = state.derivedRole(row.derivedRoleDef);
        if (dr.failed && this.config.strictEvaluation) return this.strictDeny(roleEffect, scope, row.src);
        if (!dr.ok) {
          state.conditionCache.set(row.evaluationKey, false);
          return 'none';
        }
      }
      const r = check(row.condition, ps);
      // SECURITY: under strict evaluation a failing expression denies instead of being "not met".
      if (r.failed && this.config.strictEvaluation) return this.strictDeny(roleEffect, scope, row.src);
      ok = r.ok;
      state.conditionCache.set(row.evaluationKey, ok);
    }
    if (ok) {
      if (row.output) pushOutput(state, row.src, row.output.ruleActivated, ps, action);
      if (row.effect === 'EFFECT_DENY') {
        roleEffect.effect = 'EFFECT_DENY';
        roleEffect.scope = scope;
        roleEffect.src = row.src;
        return 'deny';
      }
      return 'allow';
    }
    if (row.output) pushOutput(state, row.src, row.output.conditionNotMet, ps, action);
    return 'none';
  }

  private strictDeny(roleEffect: EffectInfo, scope: string, src: string): 'deny' {
    roleEffect.effect = 'EFFECT_DENY';
    roleEffect.scope = scope;
    roleEffect.src = src;
    return 'deny';
  }

  /**
   * Role-policy narrowing for one role in one scope. Returns true when it denies: an action that no
   * rule for this kind allows is denied, and a rule with a condition denies when the condition is
   * not met. As in Cerbos, the (inverted) condition result is cached under the rule's evaluation
   * key for the whole request.
   */
  private evalRoleRows(state: EvalState, rows: RoleRow[], policyKey: string, kind: string, action: string, scope: string, roleEffect: EffectInfo): boolean {
    let matched = false;
    let denied = false;
    let deniedSrc = '';
    for (const rr of rows) {
      if (!rr.resourceMatches(kind)) continue;
      let covers = false;
      for (const m of rr.allowActions) {
        if (m(action)) {
          covers = true;
          break;
        }
      }
      if (!covers) continue;
      matched = true;
      const ps = state.scope(rr.params);
      // Cerbos turns each rule into a row keyed by the rule's evaluation key: a rule with a
      // condition into a DENY row on none(condition), a rule without one into a row that only
      // emits outputs. The row's satisfaction is cached under the key for the whole request.
      let satisfied = state.conditionCache.get(rr.evaluationKey);
      if (satisfied === undefined) {
        if (rr.condition === undefined) {
          satisfied = true;
        } else {
          const r = check(rr.condition, ps);
          satisfied = !r.ok || (r.failed && this.config.strictEvaluation);
        }
        state.conditionCache.set(rr.evaluationKey, satisfied);
      }
      if (rr.condition === undefined) {
        if (rr.output) pushOutput(state, rr.src, satisfied ? rr.output.ruleActivated : rr.output.conditionNotMet, ps, action);
        continue;
      }
      if (rr.output) pushOutput(state, rr.src, satisfied ? rr.output.conditionNotMet : rr.output.ruleActivated, ps, action);
      if (satisfied) {
        // The first denying rule ends the scope, as in Cerbos: later rules (and their outputs) are not reached.
        denied = true;
        deniedSrc = rr.src;
        break;
      }
    }
    if (!matched || denied) {
      roleEffect.effect = 'EFFECT_DENY';
      roleEffect.scope = scope;
      roleEffect.policy = policyKey;
      roleEffect.src = deniedSrc;
      return true;
    }
    return false;
  }
}

/**
 * The resource rows of a scope that match a kind and an action, in rule order. Memoised on the
 * scope for kinds that have policies here (a bounded set); other kinds are filtered each time.
 */
function candidateRows(sr: ScopeRows, kind: string, action: string): Row[] {
  let byAction = sr.candidates.get(kind);
  if (byAction === undefined) {
    if (!sr.resourceKinds.has(kind)) return filterRows(sr.resourceRows, kind, action);
    byAction = new Map();
    sr.candidates.set(kind, byAction);
  }
  let rows = byAction.get(action);
  if (rows === undefined) {
    rows = filterRows(sr.resourceRows, kind, action);
    if (byAction.size < CACHE_LIMIT) byAction.set(action, rows);
  }
  return rows;
}

function filterRows(rows: readonly Row[], kind: string, action: string): Row[] {
  const out: Row[] = [];
  for (const row of rows) if (row.actionMatches(action) && row.resourceMatches(kind)) out.push(row);
  return out;
}

function hasRoleRowFor(sr: ScopeRows, kind: string): boolean {
  for (const rows of sr.roleRows.values()) for (const r of rows) if (r.resourceMatches(kind)) return true;
  for (const row of sr.resourceRows) if (row.resourceMatches(kind)) return true;
  return false;
}
