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
import type { AuxData, JsonValue, Principal, ValidationError } from '@warden/core';
import { CelEvaluationError, createCelContextFor, prepareCelRequest } from '../cel/index.js';
import { nowHolder } from '../cel/cel-environment.js';
import type { CompiledCondition, CompiledPolicySet, Params, Row, ScopeRows } from '../compile/compiled.types.js';
import { resourcePolicyFqn, sanitize, scopeParents } from '../compile/namer.js';
import type { EngineConfig } from '../engine.types.js';
import { validatePlanResourcesInput } from '../schema/index.js';
import { normalizeFilter, PLANNER_NOT, simplifyOperand, type PlanFilter, type PlanOperand } from './plan-filter.js';
import { contextEvaluator, PlanUnsupported, residual, residualValue, type Residual, type ResidualScope } from './residual.js';

/** What a plan is asked for. */
export interface PlanInput {
  readonly principal: Principal;
  readonly resource: { readonly kind: string; readonly id?: string; readonly policyVersion?: string; readonly scope?: string; readonly attr?: Readonly<Record<string, JsonValue>> };
  readonly actions: readonly string[];
  readonly auxData?: AuxData;
  /**
   * Plan `has()` of an unknown field as a condition (`has(x)`) instead of taking the field as
   * present, as Cerbos's planner does. Tool discovery sets it: its list must never disagree with
   * the check.
   */
  readonly exactPresence?: boolean;
  /**
   * Where Cerbos's planner and its check disagree and Warden's plan follows the planner, follow the
   * check instead: a role whose ALLOW or DENY comes out unconditional overrides the other roles'
   * DENYs, or is left out, however its walk built it. Tool discovery sets it, for the same reason
   * as {@link exactPresence}.
   */
  readonly asCheck?: boolean;
}

const TRUE: PlanOperand = { value: true };
const FALSE: PlanOperand = { value: false };
const join = (operator: 'and' | 'or', unit: PlanOperand) => (all: PlanOperand[]): PlanOperand => {
  const xs = dedupe(all);
  return xs.length === 0 ? unit : xs.length === 1 ? (xs[0] as PlanOperand) : { expression: { operator, operands: xs } };
};
const and = join('and', { value: true });
const or = join('or', { value: false });
/**
 * The planner's own negation (of a DENY, of a `none` condition): negating one of its own NOTs
 * unwraps it, as Cerbos's planner does; a CEL `!` in a condition is kept (`not (not x)`).
 */
const not = (x: PlanOperand): PlanOperand =>
  'expression' in x && x.expression.operator === PLANNER_NOT ? (x.expression.operands[0] as PlanOperand) : { expression: { operator: PLANNER_NOT, operands: [x] } };

const isTrue = (o: PlanOperand): boolean => 'value' in o && o.value === true;
/** Whether every node OR-ed into `o` (ALLOW rows, as a role's walk joins them) is the constant true. */
const everyRowTrue = (o: PlanOperand): boolean => isTrue(o) || ('expression' in o && o.expression.operator === 'or' && o.expression.operands.every(everyRowTrue));
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

/** A node being built, or none yet (Cerbos's nil node). */
type Node = PlanOperand | undefined;
const addNode = (curr: Node, next: Node, operator: 'and' | 'or'): Node =>
  next === undefined ? curr : curr === undefined ? next : { expression: { operator, operands: [curr, next] } };

/** `deny` where `allow` does not hold, or none when that is never. */
function shielded(deny: Node, allow: PlanOperand): Node {
  if (deny === undefined) return undefined;
  const d = normalizeOperand({ expression: { operator: 'and', operands: [deny, not(allow)] } });
  return isFalse(d) ? undefined : d;
}

/** The role plus its ancestors declared by role policies in `scope` (Cerbos adds them from the resource's scope). */
function withParentRoles(set: CompiledPolicySet, scope: string, roles: readonly string[]): string[] {
  const byRole = set.scopeParentRoles.get(scope);
  if (byRole === undefined) return [...roles];
  const out = new Set(roles);
  const visit = (r: string, seen: Set<string>): void => {
    if (seen.has(r)) return;
    seen.add(r);
    for (const p of byRole.get(r) ?? []) {
      out.add(p);
      visit(p, seen);
    }
  };
  for (const r of roles) visit(r, new Set());
  return [...out];
}

/** The scopes searched from `scope` up, most specific first (strict unless lenient: the scope itself must exist). */
function scopeChain(existing: ReadonlySet<string>, scope: string, lenient: boolean): string[] {
  const scopes: string[] = [];
  if (existing.has(scope)) scopes.push(scope);
  else if (!lenient) return scopes;
  for (const s of scopeParents(scope)) if (existing.has(s)) scopes.push(s);
  return scopes;
}

interface Binding {
  readonly effect: 'EFFECT_ALLOW' | 'EFFECT_DENY';
  readonly fromRolePolicy: boolean;
  readonly node: () => PlanOperand;
}

/**
 * The plan filter for `input`, normalised. Throws {@link PlanUnsupported} for what this planner
 * does not cover yet.
 *
 * Follows Cerbos's planner: per action, resource policies then principal policies; per role (its
 * parent roles from role policies included), scopes from the most specific up: a scope's ALLOW
 * conditions OR-ed (none under REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS, whose ALLOWs only let the
 * walk go on to the parents; its conditional ones were compiled into DENYs), its DENY conditions
 * OR-ed into the role's; a role policy denies the actions none of its rules allows and the ones
 * whose rule condition fails, and only narrows what the same role allows; an unconditional DENY
 * silences its role, an unconditional ALLOW with no DENY allows outright. A policy type's DENY
 * bounds everything before it; the actions' filters are AND-ed.
 * @example planResources(policySet, config, { principal, resource: { kind: 'leave_request' }, actions: ['view'] }, new Date())
 */
export function planResources(set: CompiledPolicySet, config: EngineConfig, input: PlanInput, now: Date): PlanFilter {
  return planResourcesOutput(set, config, input, now).filter;
}

/** A plan with what Cerbos's PlanResources reports besides the filter. */
export interface PlanOutput {
  readonly filter: PlanFilter;
  /** Per action, the scope Cerbos reports as matched (the last OVERRIDE_PARENT scope walked that has a rule for it). */
  readonly matchedScopes: Readonly<Record<string, string>>;
  /** False when no rule of any policy applied to any action (Cerbos's `NO_MATCH`). */
  readonly policyMatch: boolean;
  readonly validationErrors: readonly ValidationError[];
}

/** As {@link planResources}, with the matched scopes, whether any rule applied, and schema validation errors. */
export function planResourcesOutput(set: CompiledPolicySet, config: EngineConfig, input: PlanInput, now: Date): PlanOutput {
  const version = input.resource.policyVersion || config.defaultPolicyVersion;
  const resourceScope = input.resource.scope ?? config.defaultScope;
  const principalScope = input.principal.scope ?? config.defaultScope;
  const resourceScopes = scopeChain(set.resourceScopes, resourceScope, config.lenientScopeSearch);
  const principalScopes = scopeChain(set.principalScopes, principalScope, config.lenientScopeSearch);
  const matchedScopes: Record<string, string> = Object.create(null) as Record<string, string>;
  if (resourceScopes.length === 0 && principalScopes.length === 0) return { filter: { kind: 'KIND_ALWAYS_DENIED' }, matchedScopes, policyMatch: false, validationErrors: [] };

  // Schemas of the nearest resource policy that declares them; partial attributes, so `required` is not enforced.
  let validationErrors: readonly ValidationError[] = [];
  if (config.schemaEnforcement !== 'none') {
    const schemas = resourceScopes.map((sc) => set.schemas.get(resourcePolicyFqn(input.resource.kind, version, sc))).find((x) => x !== undefined);
    if (schemas !== undefined) {
      const vr = validatePlanResourcesInput(set.schemaRegistry, schemas, { principal: { attr: input.principal.attr ?? {} }, resource: { attr: { ...(input.resource.attr ?? {}) } }, actions: [...input.actions] }, config.schemaEnforcement);
      validationErrors = vr.errors;
      if (vr.reject) return { filter: { kind: 'KIND_ALWAYS_DENIED' }, matchedScopes, policyMatch: true, validationErrors };
    }
  }

  const kind = input.resource.kind;
  const knownResource = { kind, ...(input.resource.id !== undefined ? { id: input.resource.id } : {}), policyVersion: version, scope: resourceScope, attr: input.resource.attr ?? {} };
  const prepared = prepareCelRequest({
    principal: input.principal,
    resource: { kind, id: input.resource.id ?? '', attr: { ...(input.resource.attr ?? {}) }, policyVersion: version, scope: resourceScope },
    ...(input.auxData !== undefined ? { auxData: input.auxData } : {}),
  });
  nowHolder.now = now;
  const EMPTY_EDR = (): Residual => ({ known: true, value: [] });
  const residualScopes = new Map<Params, Map<() => Residual, ResidualScope>>();
  const scopeOf = (params: Params, edr: () => Residual): ResidualScope => {
    let byEdr = residualScopes.get(params);
    if (byEdr === undefined) residualScopes.set(params, (byEdr = new Map()));
    let s = byEdr.get(edr);
    if (s !== undefined) return s;
    const knownVars: Record<string, unknown> = {};
    const residuals = new Map<string, Residual>();
    const ctx = createCelContextFor(prepared, params.constants, knownVars, config.globals, [], now);
    const evaluate = contextEvaluator(ctx);
    const sources = new Map(params.variables.map((v) => [v.name, v.program.source]));
    const created: ResidualScope = {
      evaluate,
      knownResource,
      ...(input.exactPresence === true ? { exactPresence: true } : {}),
      effectiveDerivedRoles: edr,
      variable(name) {
        const known = residuals.get(name);
        if (known !== undefined) return known;
        const source = sources.get(name);
        if (source === undefined) throw new PlanUnsupported(`unknown variable ${name}`);
        const r = residualValue(source, created);
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
    byEdr.set(edr, created);
    return created;
  };
  const conditionOf = (c: CompiledCondition | undefined, params: Params, edr: () => Residual): PlanOperand => {
    if (c === undefined) return TRUE;
    const s = scopeOf(params, edr);
    if (c.op === 'expr') {
      try {
        return operand(residual(c.expr.program.source, s));
      } catch (err) {
        // A known part failed to evaluate: the condition is not met, as in a check.
        if (err instanceof CelEvaluationError) return FALSE;
        throw err;
      }
    }
    // As Cerbos's planner builds `all`, `any` and `none`: a constant part decides the whole or is
    // left out, one part left is the node itself, and each part of a `none` is negated on its own
    // (so a `none` of one `none` unwraps to the inner part, not `not (not x)`).
    const parts: PlanOperand[] = [];
    for (const x of c.of) {
      const part = conditionOf(x, params, edr);
      if (isTrue(part) || isFalse(part)) {
        if (c.op === 'any' && isTrue(part)) return TRUE;
        if (c.op === 'all' && isFalse(part)) return FALSE;
        if (c.op === 'none' && isTrue(part)) return FALSE;
        continue;
      }
      parts.push(c.op === 'none' ? not(part) : part);
    }
    return c.op === 'any' ? or(parts) : and(parts);
  };

  const rowKind = sanitize(kind);
  const allRoles = new Set(withParentRoles(set, resourceScope, input.principal.roles));

  // runtime.effectiveDerivedRoles of a scope: each derived role of the scope's resource policy
  // whose parent roles meet the principal's, in name order, as `if(condition, [name], [])` joined
  // with `add` (folded where known). Derived roles' own conditions see an empty list.
  const edrByScope = new Map<string, Residual>();
  const edrFns = new Map<string, () => Residual>();
  const edrFn = (scope: string): (() => Residual) => {
    let f = edrFns.get(scope);
    if (f === undefined) edrFns.set(scope, (f = () => edrOf(scope)));
    return f;
  };
  const edrOf = (scope: string): Residual => {
    let r = edrByScope.get(scope);
    if (r !== undefined) return r;
    const drs = [...(set.derivedRoles.get(resourcePolicyFqn(kind, version, scope)) ?? [])]
      .filter((dr) => [...dr.parentRoles].some((p) => p === '*' || allRoles.has(p)))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const parts: Residual[] = drs.map((dr) => {
      const c = normalizeOperand(conditionOf(dr.condition, dr.params, EMPTY_EDR));
      if (isTrue(c)) return { known: true, value: [dr.name] };
      if (isFalse(c)) return { known: true, value: [] };
      return { known: false, operand: { expression: { operator: 'if', operands: [c, { value: [dr.name] }, { value: [] }] } } };
    });
    r = EMPTY_EDR();
    for (let i = parts.length - 1; i >= 0; i--) {
      const p = parts[i] as Residual;
      if (i === parts.length - 1) r = p;
      else if (p.known && r.known) r = { known: true, value: [...(p.value as unknown[]), ...(r.value as unknown[])] };
      else r = { known: false, operand: { expression: { operator: 'add', operands: [p.known ? { value: p.value as JsonValue } : p.operand, r.known ? { value: r.value as JsonValue } : r.operand] } } };
    }
    edrByScope.set(scope, r);
    return r;
  };

  const rowNode = (row: Row, edr: () => Residual): PlanOperand => {
    const cond = conditionOf(row.condition, row.params, edr);
    if (row.derivedRoleDef === undefined) return cond;
    // A rule's derived-role condition sees the scope's effective derived roles (only building that
    // list itself sees an empty one).
    const dr = conditionOf(row.derivedRoleCondition, row.derivedRoleParams ?? row.params, edr);
    return row.condition === undefined ? dr : { expression: { operator: 'and', operands: [cond, dr] } };
  };

  const bindsKind = (sr: ScopeRows, roles: readonly string[]): boolean => {
    for (const row of sr.resourceRows) if ((row.role === '*' || roles.includes(row.role)) && row.resourceMatches(rowKind)) return true;
    for (const role of roles) for (const rr of sr.roleRows.get(role) ?? []) if (rr.resourceMatches(rowKind)) return true;
    return false;
  };

  /** The rows of one scope that bind `action` for `roles` (resource policies and role policies), or for the principal. */
  const bindings = (principalKind: boolean, scope: string, action: string, roles: readonly string[]): Binding[] => {
    const sr = set.rows.get(version)?.get(scope);
    if (sr === undefined) return [];
    const out: Binding[] = [];
    if (principalKind) {
      for (const row of sr.principalRows.get(input.principal.id) ?? []) {
        if (!row.resourceMatches(rowKind) || !row.actionMatches(action)) continue;
        out.push({ effect: row.effect, fromRolePolicy: false, node: () => rowNode(row, EMPTY_EDR) });
      }
      return out;
    }
    const edr = edrFn(scope);
    // Role policies take part where the scope binds this kind for these roles at all (a resource
    // rule or a role rule for it), as in the check: a role with a role policy here is denied the
    // actions none of its rules for this kind allows, and an allowed one where its condition fails.
    if (sr.roleRows.size > 0 && bindsKind(sr, roles)) {
      for (const role of roles) {
        if (!sr.rolePolicyKeys.has(role)) continue;
        const matched = (sr.roleRows.get(role) ?? []).filter((rr) => rr.resourceMatches(rowKind) && rr.allowActions.some((m) => m(action)));
        if (matched.length === 0) out.push({ effect: 'EFFECT_DENY', fromRolePolicy: true, node: () => TRUE });
        for (const rr of matched) {
          if (rr.condition !== undefined) out.push({ effect: 'EFFECT_DENY', fromRolePolicy: true, node: () => not(conditionOf(rr.condition, rr.params, EMPTY_EDR)) });
        }
      }
    }
    for (const row of sr.resourceRows) {
      if (!row.resourceMatches(rowKind) || !row.actionMatches(action) || (row.role !== '*' && !roles.includes(row.role))) continue;
      out.push({ effect: row.effect, fromRolePolicy: false, node: () => rowNode(row, edr) });
    }
    return out;
  };

  const filters: PlanOperand[] = [];
  let policyMatch = false;
  for (const action of input.actions) {
    let root: Node;
    let hasAllow = false;
    let matched: string | undefined;
    for (const principalKind of [false, true]) {
      const scopes = principalKind ? principalScopes : resourceScopes;
      let typeAllow: Node;
      let typeDeny: Node;
      const roleCount = principalKind ? Math.min(1, input.principal.roles.length) : input.principal.roles.length;
      for (let ri = 0; ri < roleCount; ri++) {
        const roles = withParentRoles(set, resourceScope, [input.principal.roles[ri] as string]);
        let roleAllow: Node;
        let roleDeny: Node;
        let roleDenyRp: Node;
        let roleMatched: string | undefined;
        // The rows Cerbos's planner weighs for the override and the silencing below: those of the
        // scopes up to the first OVERRIDE_PARENT scope with an unconditional ALLOW, where its walk
        // ends (a conditional ALLOW does not end it; the parents' ALLOWs still join).
        /** Whether no resource-policy DENY row of those scopes is conditional. */
        let denyRowsAllTrue = true;
        /** Whether they hold ALLOW rows, and whether every one of those is unconditional. */
        let walkedAllow = false;
        let walkedAllowAllTrue = true;
        let walkEnded = false;
        for (const scope of scopes) {
          let scopeAllow: Node;
          let scopeDeny: Node;
          let scopeDenyRp: Node;
          for (const b of bindings(principalKind, scope, action, roles)) {
            const node = normalizeOperand(b.node());
            if (b.effect === 'EFFECT_ALLOW') {
              scopeAllow = addNode(scopeAllow, node, 'or');
              continue;
            }
            if (isFalse(node)) continue;
            if (b.fromRolePolicy) scopeDenyRp = addNode(scopeDenyRp, node, 'or');
            else {
              if (!walkEnded && !isTrue(node)) denyRowsAllTrue = false;
              scopeDeny = addNode(scopeDeny, node, 'or');
            }
          }
          // What a more specific scope allows (under OVERRIDE_PARENT) this scope cannot deny.
          if (roleAllow !== undefined) {
            scopeDeny = shielded(scopeDeny, roleAllow);
            scopeDenyRp = shielded(scopeDenyRp, roleAllow);
          }
          if ((scopeAllow !== undefined || scopeDeny !== undefined || scopeDenyRp !== undefined) && (set.scopePermissions.get(scope) ?? 'SCOPE_PERMISSIONS_OVERRIDE_PARENT') === 'SCOPE_PERMISSIONS_OVERRIDE_PARENT') roleMatched = scope;
          roleDeny = addNode(roleDeny, scopeDeny, 'or');
          roleDenyRp = addNode(roleDenyRp, scopeDenyRp, 'or');
          // Under REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS an ALLOW decides nothing and the walk goes on
          // to the parent scopes, as in the check (a conditional ALLOW there was compiled into a DENY
          // when its condition fails, which is what gates the parents' ALLOWs). It never takes back
          // what a more specific OVERRIDE_PARENT scope already allowed.
          if (scopeAllow !== undefined && set.scopePermissions.get(scope) !== 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS') {
            roleAllow = roleAllow === undefined ? scopeAllow : addNode(roleAllow, scopeAllow, 'or');
            if (!walkEnded) {
              walkEnded = everyRowTrue(scopeAllow);
              walkedAllow = true;
              walkedAllowAllTrue &&= walkEnded;
            }
          }
        }
        if (roleMatched !== undefined) matched = roleMatched;
        // Simplified, so an unconditional DENY or ALLOW anywhere in the walk is seen as one.
        if (roleDeny !== undefined) roleDeny = normalizeOperand(roleDeny);
        if (roleDenyRp !== undefined) roleDenyRp = normalizeOperand(roleDenyRp);
        // Cerbos's planner lets a role's ALLOW override every DENY only when every ALLOW row of its
        // walk was unconditional (`or(true, true)` counts, as one `true`); one OR-ed with a row whose
        // condition is known false, or with a conditional one, does not, though it simplifies to
        // true (probed on the 0.55 binary: plan-resources.spec.ts).
        const allowIsOneTrue = walkedAllow && walkedAllowAllTrue;
        if (roleAllow !== undefined) roleAllow = normalizeOperand(roleAllow);
        const overrides = input.asCheck === true ? roleAllow !== undefined && isTrue(roleAllow) : allowIsOneTrue;
        // Cerbos's planner silences a role with an unconditional DENY only when none of the role's
        // resource-policy DENY rows is conditional (known-false ones do not count); a conditional
        // one (a `"*"` row reaching this role's walk, say) leaves the DENY in the plan, though it
        // simplifies to true (probed on the 0.55 binary: plan-resources.spec.ts).
        const denySilences = roleDeny !== undefined && isTrue(roleDeny) && (input.asCheck === true || denyRowsAllTrue);
        if (!principalKind && (denySilences || (roleDenyRp !== undefined && isTrue(roleDenyRp)))) {
          // An unconditional DENY silences this role without overriding the others' ALLOWs (a
          // principal policy's DENY, which is not per role, denies).
          roleAllow = FALSE;
          roleDeny = undefined;
          roleDenyRp = undefined;
        } else if (roleAllow !== undefined && roleDeny === undefined && roleDenyRp === undefined && overrides) {
          typeAllow = roleAllow;
          typeDeny = undefined;
          break;
        }
        // A role policy narrows only what its own role allows.
        if (roleDenyRp !== undefined && roleAllow !== undefined) roleAllow = addNode(roleAllow, not(roleDenyRp), 'and');
        typeAllow = addNode(typeAllow, roleAllow, 'or');
        typeDeny = addNode(typeDeny, roleDeny, 'or');
      }
      if (typeAllow !== undefined) {
        hasAllow = true;
        root = root === undefined ? typeAllow : addNode(typeAllow, root, 'or');
      }
      if (typeDeny !== undefined) root = root === undefined ? not(typeDeny) : addNode(not(typeDeny), root, 'and');
    }
    if (root !== undefined) policyMatch = true;
    if (!(action in matchedScopes)) matchedScopes[action] = matched ?? '';
    filters.push(root === undefined || !hasAllow ? FALSE : root);
  }
  return { filter: normalizeFilter({ kind: 'KIND_CONDITIONAL', condition: and(dedupe(filters)) }), matchedScopes, policyMatch, validationErrors };
}
