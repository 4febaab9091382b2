/**
 * The check evaluator: Cerbos's rule-table algorithm over a {@link CompiledPolicySet}.
 *
 * For each action: principal policies first, then resource (and role) policies; within a policy
 * kind, each of the principal's roles walks the scopes from the most specific to the root. A DENY
 * ends the walk; an ALLOW ends it unless the scope requires parental consent; across roles the
 * first ALLOW wins. Pure and synchronous: the clock comes in as `now`, and nothing here does I/O.
 */
import type { ActionEffect, CheckInput, CheckOutput, OutputEntry } from '@warden/core';
import { celValueToJson, createCelContext, type CelContext, type CelProgram, type CelScope } from '../cel/index.js';
import type { CompiledCondition, CompiledDerivedRole, CompiledOutput, CompiledPolicySet, Params, RoleRow, Row, ScopeRows } from '../compile/compiled.types.js';
import { policyKeyFromFqn, principalPolicyFqn, resourcePolicyFqn, sanitize, scopeParents } from '../compile/namer.js';
import type { EngineConfig } from '../engine.types.js';
import { validateCheckInput, type PolicySchemas } from '../schema/index.js';

const NO_MATCH = 'NO_MATCH';
type EffectState = 'EFFECT_ALLOW' | 'EFFECT_DENY' | 'NO_MATCH';

interface EffectInfo {
  effect: EffectState;
  policy: string;
  scope: string;
}

/** Per-input evaluation state: lazily evaluated params and condition results. */
class EvalState {
  private readonly paramCtx = new Map<string, CelContext>();
  readonly conditionCache = new Map<string, boolean>();
  effectiveDerivedRoles: string[] = [];
  readonly allEffectiveDerivedRoles = new Set<string>();
  readonly outputs: OutputEntry[] = [];

  constructor(
    private readonly request: CelScope['request'],
    private readonly globals: Record<string, unknown>,
    private readonly now: Date,
  ) {}

  /** The CEL context for a policy's params, evaluating its variables on first use. */
  context(params: Params): CelContext {
    const cacheKey = params.key;
    let ctx = this.paramCtx.get(cacheKey);
    if (ctx !== undefined) return ctx;
    const variables: Record<string, unknown> = {};
    ctx = createCelContext({
      request: this.request,
      constants: params.constants,
      variables,
      globals: this.globals,
      effectiveDerivedRoles: this.effectiveDerivedRoles,
      now: this.now,
    });
    for (const v of params.variables) {
      try {
        variables[v.name] = v.program.evaluate(ctx);
      } catch {
        if (params.nullOnError) variables[v.name] = null;
      }
    }
    this.paramCtx.set(cacheKey, ctx);
    return ctx;
  }

  /** Effective derived roles changed: contexts must see the new `runtime`. */
  setEffectiveDerivedRoles(roles: string[]): void {
    this.effectiveDerivedRoles = roles;
    this.paramCtx.clear();
  }
}

/** Records whether a CEL expression failed while evaluating a condition. */
interface ErrorSink {
  failed: boolean;
}

function satisfies(cond: CompiledCondition | undefined, ctx: CelContext, sink: ErrorSink): boolean {
  if (cond === undefined) return true;
  switch (cond.op) {
    case 'expr':
      try {
        return cond.program.evaluate(ctx) === true;
      } catch {
        // A CEL error makes the expression "not met", as in Cerbos; strict evaluation reads the sink.
        sink.failed = true;
        return false;
      }
    case 'all':
      for (const c of cond.of) if (!satisfies(c, ctx, sink)) return false;
      return true;
    case 'any':
      for (const c of cond.of) if (satisfies(c, ctx, sink)) return true;
      return false;
    case 'none':
      for (const c of cond.of) if (satisfies(c, ctx, sink)) return false;
      return true;
  }
}

function pushOutput(state: EvalState, src: string, program: CelProgram | undefined, ctx: CelContext, action: string): void {
  if (!program) return;
  let entry: OutputEntry;
  try {
    const v = program.evaluate(ctx);
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
  private readonly parentRoleCache = new Map<string, string[]>();

  constructor(
    private readonly set: CompiledPolicySet,
    private readonly config: EngineConfig,
  ) {}

  check(inputs: readonly CheckInput[], now: Date): CheckOutput[] {
    const out: CheckOutput[] = new Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) out[i] = this.checkOne(inputs[i] as CheckInput, now);
    return out;
  }

  private scopesFor(kind: 'principal' | 'resource', scope: string): string[] {
    const map = kind === 'principal' ? this.set.principalScopes : this.set.resourceScopes;
    const scopes: string[] = [];
    if (map.has(scope)) scopes.push(scope);
    else if (!this.config.lenientScopeSearch) return scopes;
    for (const s of scopeParents(scope)) if (map.has(s)) scopes.push(s);
    return scopes;
  }

  /** The role plus its ancestors declared by role policies in `scope`. */
  private withParentRoles(scope: string, roles: readonly string[]): string[] {
    const byRole = this.set.scopeParentRoles.get(scope);
    if (!byRole) return roles as string[];
    const out = new Set<string>(roles);
    for (const role of roles) {
      const key = `${scope}\u0000${role}`;
      let parents = this.parentRoleCache.get(key);
      if (!parents) {
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
        parents = [...acc];
        this.parentRoleCache.set(key, parents);
      }
      for (const p of parents) out.add(p);
    }
    return [...out];
  }

  /** Schemas of the nearest policy in the scope chain that declares them. */
  private schemasFor(kind: string, version: string, scopes: readonly string[]): PolicySchemas | undefined {
    for (const s of scopes) {
      const found = this.set.schemas.get(resourcePolicyFqn(kind, version, s));
      if (found) return found;
    }
    return undefined;
  }

  private scopeRows(version: string, scope: string): ScopeRows | undefined {
    return this.set.rows.get(version)?.get(scope);
  }

  private checkOne(input: CheckInput, now: Date): CheckOutput {
    const cfg = this.config;
    const principal = input.principal;
    const resource = input.resource;
    const principalScope = normaliseScope(principal.scope, cfg.defaultScope);
    const resourceScope = normaliseScope(resource.scope, cfg.defaultScope);
    const principalVersion = principal.policyVersion || cfg.defaultPolicyVersion;
    const resourceVersion = resource.policyVersion || cfg.defaultPolicyVersion;
    const kind = sanitize(resource.kind);

    const output: CheckOutput = {
      resourceId: resource.id,
      actions: {},
      effectiveDerivedRoles: [],
      validationErrors: [],
      outputs: [],
    };
    if (input.requestId !== undefined) output.requestId = input.requestId;
    const effects = new Map<string, EffectInfo>();
    const finish = (state?: EvalState): CheckOutput => {
      for (const action of input.actions) {
        const e = effects.get(action);
        const ae: ActionEffect = e && e.effect !== NO_MATCH
          ? { effect: e.effect as ActionEffect['effect'], policy: e.policy }
          : { effect: 'EFFECT_DENY', policy: e ? e.policy : NO_MATCH };
        if (e && e.scope !== '' && e.effect !== NO_MATCH) ae.scope = e.scope;
        else if (e && e.effect === 'EFFECT_DENY' && e.scope !== '') ae.scope = e.scope;
        output.actions[action] = ae;
      }
      if (state) {
        output.effectiveDerivedRoles = [...state.allEffectiveDerivedRoles];
        output.outputs = state.outputs;
      }
      return output;
    };

    const principalScopes = this.scopesFor('principal', principalScope);
    const resourceScopes = this.scopesFor('resource', resourceScope);
    if (principalScopes.length === 0 && resourceScopes.length === 0) return finish();

    const principalPolicyKey = principalScopes.length > 0 ? policyKeyFromFqn(principalPolicyFqn(principal.id, principalVersion, principalScopes[0] as string)) : '';
    const resourceFqn = resourceScopes.length > 0 ? resourcePolicyFqn(resource.kind, resourceVersion, resourceScopes[0] as string) : '';
    const resourcePolicyKey = resourceFqn !== '' ? policyKeyFromFqn(resourceFqn) : '';

    // Schema validation
    if (cfg.schemaEnforcement !== 'none' && resourceFqn !== '') {
      const schemas = this.schemasFor(resource.kind, resourceVersion, resourceScopes);
      if (schemas) {
        const vr = validateCheckInput(this.set.schemaRegistry, schemas, input, cfg.schemaEnforcement);
        if (vr.errors.length > 0) {
          output.validationErrors = vr.errors;
          if (vr.reject) {
            for (const action of input.actions) effects.set(action, { effect: 'EFFECT_DENY', policy: resourcePolicyKey, scope: '' });
            return finish();
          }
        }
      }
    }

    // Does any policy of each kind exist in the searched scopes?
    let scopedPrincipalExists = false;
    for (const s of principalScopes) {
      const sr = this.scopeRows(principalVersion, s);
      if (sr && sr.principalRows.has(principal.id)) {
        scopedPrincipalExists = true;
        break;
      }
    }
    let scopedResourceExists = false;
    for (const s of resourceScopes) {
      const sr = this.scopeRows(resourceVersion, s);
      if (!sr) continue;
      if (sr.resourceKinds.has(kind) || hasRoleRowFor(sr, kind)) {
        scopedResourceExists = true;
        break;
      }
    }
    if (!scopedPrincipalExists && !scopedResourceExists) return finish();

    const roles = principal.roles;
    const allRoles = this.withParentRoles(resourceScope, roles);
    const request: CelScope['request'] = {
      principal: { id: principal.id, roles: principal.roles, attr: principal.attr, policyVersion: principal.policyVersion ?? '', scope: principal.scope ?? '' },
      resource: { kind: resource.kind, id: resource.id, attr: resource.attr, policyVersion: resource.policyVersion ?? '', scope: resource.scope ?? '' },
      ...(input.auxData ? { auxData: input.auxData } : {}),
    };
    const state = new EvalState(request, cfg.globals, now);
    const processedScopes = new Set<string>();
    const allRolesSet = new Set(allRoles);

    for (const action of input.actions) {
      if (effects.has(action)) continue; // duplicate action
      let actionEffect: EffectInfo = { effect: NO_MATCH, policy: NO_MATCH, scope: '' };
      for (let pt = 0; pt < 2; pt++) {
        const isPrincipal = pt === 0;
        const mainPolicyKey = isPrincipal ? principalPolicyKey : resourcePolicyKey;
        const scopes = isPrincipal ? principalScopes : resourceScopes;
        const version = isPrincipal ? principalVersion : resourceVersion;
        actionEffect.effect = NO_MATCH;
        const roleCount = isPrincipal ? Math.min(roles.length, 1) : roles.length;
        for (let ri = 0; ri < roleCount; ri++) {
          const role = roles[ri] as string;
          let hasAllow = false;
          const roleEffect: EffectInfo = { effect: NO_MATCH, policy: NO_MATCH, scope: '' };
          if ((isPrincipal && scopedPrincipalExists) || (!isPrincipal && scopedResourceExists)) roleEffect.policy = mainPolicyKey;
          const parentRoles = isPrincipal ? roles : this.withParentRoles(resourceScope, [role]);

          scopesLoop: for (const scope of scopes) {
            if (!isPrincipal && !processedScopes.has(scope)) {
              this.computeDerivedRoles(state, resource.kind, resourceVersion, scope, allRolesSet);
              processedScopes.add(scope);
            }
            if (roleEffect.effect !== NO_MATCH) break;
            const sr = this.scopeRows(version, scope);
            if (!sr) {
              continue;
            }
            if (isPrincipal) {
              const rows = sr.principalRows.get(principal.id);
              if (rows) {
                for (const row of rows) {
                  if (!row.resourceMatches(kind) || !row.actionMatches(action)) continue;
                  const r = this.evalRow(state, row, action, scope, roleEffect);
                  if (r === 'allow') hasAllow = true;
                  else if (r === 'deny') break scopesLoop;
                }
              }
            } else {
              // role policies narrowing this scope
              if (sr.roleRows.size > 0) {
                for (const pr of parentRoles) {
                  const policyKey = sr.rolePolicyKeys.get(pr);
                  if (policyKey === undefined) continue;
                  if (this.evalRoleRows(state, sr.roleRows.get(pr) ?? [], policyKey, kind, action, scope, roleEffect)) break scopesLoop;
                }
              }
              for (const row of sr.resourceRows) {
                if (!row.actionMatches(action) || !row.resourceMatches(kind)) continue;
                if (row.role !== '*' && !parentRoles.includes(row.role)) continue;
                const r = this.evalRow(state, row, action, scope, roleEffect);
                if (r === 'allow') hasAllow = true;
                else if (r === 'deny') break scopesLoop;
              }
            }
            if (hasAllow) {
              const perm = this.set.scopePermissions.get(scope);
              if (perm === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS') {
                hasAllow = false;
              } else if (perm === 'SCOPE_PERMISSIONS_OVERRIDE_PARENT') {
                roleEffect.effect = 'EFFECT_ALLOW';
                roleEffect.scope = scope;
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
      effects.set(action, actionEffect);
    }
    return finish(state);
  }

  private computeDerivedRoles(state: EvalState, kind: string, version: string, scope: string, roles: Set<string>): void {
    const drs: CompiledDerivedRole[] | undefined = this.set.derivedRoles.get(resourcePolicyFqn(kind, version, scope));
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
        const ctx = state.context(dr.params);
        if (satisfies(dr.condition, ctx, { failed: false })) {
          effective.push(dr.name);
          state.allEffectiveDerivedRoles.add(dr.name);
        }
      }
    }
    effective.sort();
    state.setEffectiveDerivedRoles(effective);
  }

  /** Evaluates one row; returns what it contributed. */
  private evalRow(state: EvalState, row: Row, action: string, scope: string, roleEffect: EffectInfo): 'allow' | 'deny' | 'none' {
    const ctx = state.context(row.params);
    let ok = row.evaluationKey !== '' ? state.conditionCache.get(row.evaluationKey) : undefined;
    if (ok === undefined) {
      const sink: ErrorSink = { failed: false };
      if (row.derivedRoleCondition !== undefined || row.derivedRole !== '') {
        const drCtx = row.derivedRoleParams ? state.context(row.derivedRoleParams) : ctx;
        if (!satisfies(row.derivedRoleCondition, drCtx, sink)) {
          if (sink.failed && this.config.strictEvaluation) return this.strictDeny(roleEffect, scope);
          state.conditionCache.set(row.evaluationKey, false);
          return 'none';
        }
      }
      ok = satisfies(row.condition, ctx, sink);
      // SECURITY: under strict evaluation a failing expression denies instead of being "not met".
      if (sink.failed && this.config.strictEvaluation) return this.strictDeny(roleEffect, scope);
      state.conditionCache.set(row.evaluationKey, ok);
    }
    if (ok) {
      if (row.output) pushOutput(state, row.src, row.output.ruleActivated, ctx, action);
      if (row.effect === 'EFFECT_DENY') {
        roleEffect.effect = 'EFFECT_DENY';
        roleEffect.scope = scope;
        return 'deny';
      }
      return 'allow';
    }
    if (row.output) pushOutput(state, row.src, row.output.conditionNotMet, ctx, action);
    return 'none';
  }

  private strictDeny(roleEffect: EffectInfo, scope: string): 'deny' {
    roleEffect.effect = 'EFFECT_DENY';
    roleEffect.scope = scope;
    return 'deny';
  }

  /** Role-policy narrowing for one role in one scope. Returns true when it denies. */
  private evalRoleRows(state: EvalState, rows: RoleRow[], policyKey: string, kind: string, action: string, scope: string, roleEffect: EffectInfo): boolean {
    let matched = false;
    let denied = false;
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
      const ctx = state.context(rr.params);
      const sink: ErrorSink = { failed: false };
      const ok = satisfies(rr.condition, ctx, sink) && !(sink.failed && this.config.strictEvaluation);
      emitRoleOutput(state, rr.src, rr.output, ok, ctx, action);
      if (!ok) denied = true;
    }
    if (!matched || denied) {
      roleEffect.effect = 'EFFECT_DENY';
      roleEffect.scope = scope;
      roleEffect.policy = policyKey;
      return true;
    }
    return false;
  }
}

function emitRoleOutput(state: EvalState, src: string, output: CompiledOutput | undefined, ok: boolean, ctx: CelContext, action: string): void {
  if (!output) return;
  pushOutput(state, src, ok ? output.ruleActivated : output.conditionNotMet, ctx, action);
}

function hasRoleRowFor(sr: ScopeRows, kind: string): boolean {
  for (const rows of sr.roleRows.values()) for (const r of rows) if (r.resourceMatches(kind)) return true;
  for (const row of sr.resourceRows) if (row.resourceMatches(kind)) return true;
  return false;
}
