/**
 * PlanResources (first cut): the filter of resources of one kind on which a principal may do the
 * given actions, in Cerbos's format. Each action's filter is, per role, "some ALLOW row's
 * condition holds and no DENY row's does" (DENY beats ALLOW within a role), any role's filter
 * sufficing, and the actions are AND-ed; conditions are partially evaluated by {@link residual}
 * (derived-role conditions included, policy variables inlined), then normalised.
 *
 * Supported: resource and principal policies of the root scope with derived roles, variables,
 * constants and globals (a principal policy's DENY conditions bound the plan, its ALLOW conditions
 * add to what the resource policies allow). Scoped resources or principals and role policies
 * throw {@link PlanUnsupported}: no plan is better than a wrong one.
 */
import type { AuxData, JsonValue, Principal } from '@warden/core';
import { CelEvaluationError, createCelContextFor, prepareCelRequest } from '../cel/index.js';
import { nowHolder } from '../cel/cel-environment.js';
import type { CompiledCondition, CompiledPolicySet, Params, Row } from '../compile/compiled.types.js';
import { sanitize, scopeParents } from '../compile/namer.js';
import type { EngineConfig } from '../engine.types.js';
import { normalizeFilter, simplifyOperand, type PlanFilter, type PlanOperand } from './plan-filter.js';
import { contextEvaluator, PlanUnsupported, residual, type Residual, type ResidualScope } from './residual.js';

/** What a plan is asked for. */
export interface PlanInput {
  readonly principal: Principal;
  readonly resource: { readonly kind: string; readonly id?: string; readonly policyVersion?: string; readonly scope?: string; readonly attr?: Readonly<Record<string, JsonValue>> };
  readonly actions: readonly string[];
  readonly auxData?: AuxData;
}

const TRUE: PlanOperand = { value: true };
const FALSE: PlanOperand = { value: false };
const join = (operator: 'and' | 'or', unit: PlanOperand) => (all: PlanOperand[]): PlanOperand => {
  const xs = dedupe(all);
  return xs.length === 0 ? unit : xs.length === 1 ? (xs[0] as PlanOperand) : { expression: { operator, operands: xs } };
};
const and = join('and', { value: true });
const or = join('or', { value: false });
const not = (x: PlanOperand): PlanOperand => ({ expression: { operator: 'not', operands: [x] } });

const isTrue = (o: PlanOperand): boolean => 'value' in o && o.value === true;
const isFalse = (o: PlanOperand): boolean => 'value' in o && o.value === false;
const normalizeOperand = (o: PlanOperand): PlanOperand => simplifyOperand(o);

/** Equal operands once (a derived role expanded over several parent roles, the same condition for several actions). */
function dedupe(xs: PlanOperand[]): PlanOperand[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = JSON.stringify(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function operand(r: Residual): PlanOperand {
  // A known condition result: true only when the value is exactly true (as a check decides).
  return r.known ? { value: r.value === true } : r.operand;
}

/**
 * The plan filter for `input`, normalised. Throws {@link PlanUnsupported} for what this planner
 * does not cover yet.
 * @example planResources(policySet, config, { principal, resource: { kind: 'leave_request' }, actions: ['view'] }, new Date())
 */
export function planResources(set: CompiledPolicySet, config: EngineConfig, input: PlanInput, now: Date): PlanFilter {
  const version = input.resource.policyVersion || config.defaultPolicyVersion;
  const scope = input.resource.scope ?? config.defaultScope;
  if ((input.principal.scope ?? config.defaultScope) !== '') throw new PlanUnsupported('scoped principals');
  // The resource scopes walked, most specific first (strict search: the requested scope must exist).
  const scopes = [scope, ...scopeParents(scope)].filter((sc) => set.resourceScopes.has(sc));
  if (scopes[0] !== scope) {
    if (!config.lenientScopeSearch || scopes.length === 0) return { kind: 'KIND_ALWAYS_DENIED' };
  }
  const sr = set.rows.get(version)?.get('');
  if (sr === undefined && scopes.length === 0) return { kind: 'KIND_ALWAYS_DENIED' };
  for (const sc of scopes) if ((set.rows.get(version)?.get(sc)?.roleRows.size ?? 0) > 0) throw new PlanUnsupported('role policies');

  const kind = input.resource.kind;
  const knownResource = { kind, ...(input.resource.id !== undefined ? { id: input.resource.id } : {}), policyVersion: version, scope, attr: input.resource.attr ?? {} };
  const prepared = prepareCelRequest({
    principal: input.principal,
    resource: { kind, id: input.resource.id ?? '', attr: { ...(input.resource.attr ?? {}) }, policyVersion: version, scope },
    ...(input.auxData !== undefined ? { auxData: input.auxData } : {}),
  });
  nowHolder.now = now;
  const residualScopes = new Map<Params, ResidualScope>();
  const scopeOf = (params: Params): ResidualScope => {
    let s = residualScopes.get(params);
    if (s !== undefined) return s;
    const knownVars: Record<string, unknown> = {};
    const residuals = new Map<string, Residual>();
    const ctx = createCelContextFor(prepared, params.constants, knownVars, config.globals, [], now);
    const evaluate = contextEvaluator(ctx);
    const sources = new Map(params.variables.map((v) => [v.name, v.program.source]));
    const created: ResidualScope = {
      evaluate,
      knownResource,
      variable(name) {
        const known = residuals.get(name);
        if (known !== undefined) return known;
        const source = sources.get(name);
        if (source === undefined) throw new PlanUnsupported(`unknown variable ${name}`);
        const r = residual(source, created);
        residuals.set(name, r);
        if (r.known) knownVars[name] = r.value;
        return r;
      },
    };
    // Variables in dependency order, so known ones are in the context before they are read.
    for (const v of params.variables) {
      try {
        created.variable(v.name);
      } catch (err) {
        // A variable that fails to evaluate stays absent, as in a check.
        if (!(err instanceof CelEvaluationError)) throw err;
      }
    }
    s = created;
    residualScopes.set(params, s);
    return s;
  };
  const conditionOf = (c: CompiledCondition | undefined, params: Params): PlanOperand => {
    if (c === undefined) return TRUE;
    const s = scopeOf(params);
    if (c.op === 'expr') {
      try {
        return operand(residual(c.expr.program.source, s));
      } catch (err) {
        // A known part failed to evaluate: the condition is not met, as in a check.
        if (err instanceof CelEvaluationError) return FALSE;
        throw err;
      }
    }
    const parts = c.of.map((x) => conditionOf(x, params));
    return c.op === 'all' ? and(parts) : c.op === 'any' ? or(parts) : and(parts.map(not));
  };
  const rowCondition = (row: Row): PlanOperand => {
    const parts: PlanOperand[] = [];
    if (row.derivedRoleDef !== undefined) parts.push(conditionOf(row.derivedRoleCondition, row.derivedRoleParams ?? row.params));
    parts.push(conditionOf(row.condition, row.params));
    return and(parts);
  };

  // As Cerbos 0.55 plans (read off its planner suites): a role with an unconditional DENY takes
  // no part; a role with an unconditional ALLOW and no DENY allows everything; otherwise the
  // action is allowed where some ALLOW condition holds and no conditional DENY of any role does.
  const perAction: PlanOperand[] = [];
  // Rows are indexed by the sanitised kind, as the check looks them up.
  const rowKind = sanitize(kind);
  const rowsAt = scopes.map((sc) => (set.rows.get(version)?.get(sc)?.resourceRows ?? []).filter((r) => r.resourceMatches(rowKind)));
  const principalRows = sr?.principalRows.get(input.principal.id) ?? [];

  /**
   * The filter of `action` from scope `i` up: a DENY there denies; an ALLOW there allows (under
   * REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS only where the parent allows too); otherwise the parent
   * decides; past the root nothing allows.
   */
  const scopeFilter = (action: string, i: number): PlanOperand => {
    if (i >= scopes.length) return FALSE;
    const allows: PlanOperand[] = [];
    const denies: PlanOperand[] = [];
    let always = false;
    let matched = false;
    for (const role of input.principal.roles) {
      const roleAllows: PlanOperand[] = [];
      const roleDenies: PlanOperand[] = [];
      for (const row of rowsAt[i] as Row[]) {
        if (!row.actionMatches(action) || (row.role !== '*' && row.role !== role)) continue;
        matched = true;
        (row.effect === 'EFFECT_DENY' ? roleDenies : roleAllows).push(normalizeOperand(rowCondition(row)));
      }
      if (roleDenies.some(isTrue)) continue;
      if (roleAllows.some(isTrue) && roleDenies.every(isFalse)) always = true;
      allows.push(...roleAllows);
      denies.push(...roleDenies);
    }
    if (!matched) return scopeFilter(action, i + 1);
    const consent = set.scopePermissions.get(scopes[i] as string) === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS';
    const last = i === scopes.length - 1;
    const parent = last ? FALSE : scopeFilter(action, i + 1);
    if (consent) return and([not(or(denies)), allows.length === 0 ? parent : and([or(allows), parent])]);
    if (always) return TRUE;
    return and([not(or(denies)), or([...allows, parent])]);
  };

  for (const action of input.actions) {
    const resourceFilter = scopes.length === 0 ? FALSE : scopeFilter(action, 0);
    // A principal policy's rules come first: its DENY conditions bound everything, its ALLOW
    // conditions allow besides what the resource policies allow.
    const pAllows: PlanOperand[] = [];
    const pDenies: PlanOperand[] = [];
    for (const row of principalRows) {
      if (!row.resourceMatches(rowKind) || !row.actionMatches(action)) continue;
      (row.effect === 'EFFECT_DENY' ? pDenies : pAllows).push(normalizeOperand(rowCondition(row)));
    }
    perAction.push(pAllows.length === 0 && pDenies.length === 0 ? resourceFilter : and([not(or(pDenies)), or([...pAllows, resourceFilter])]));
  }
  return normalizeFilter({ kind: 'KIND_CONDITIONAL', condition: and(dedupe(perAction)) });
}
