/**
 * Tool discovery's decision (issue 5): for every enriched candidate, the filter under which the
 * action is allowed for the human, for the agent and within the delegation, AND-ed. Each identity
 * is planned with {@link planResources} over the candidate's enriched attributes, with only the
 * call's `arguments` (`R.attr.arguments`) unknown: every other attribute is what enrichment made
 * of it, and an attribute enrichment did not produce is absent, exactly as the check of a call
 * will see it. The delegation's grants are known (kind, action, id), and their caps become
 * conditions on the arguments.
 *
 * Parity with `/v1/check` is the contract: ALLOWED means a check of the call allows it whatever
 * its arguments; CONDITIONAL means it allows exactly when the condition holds on them; anything
 * else is denied. SECURITY: a candidate the planner cannot plan (PlanUnsupported, or a policy set
 * reading `request.context` / `request.delegation`, which the planner does not see) is denied with
 * a reason, never listed; nothing here can turn a failure into an ALLOW.
 */
import type { JsonValue, Principal } from '@warden/core';
import { lastHop, type DelegationChain, type Grant } from '@warden/delegation';
import { evaluatePlanFilter, normalizeFilter, planResources, PlanUnsupported, type Engine, type PlanFilter, type PlanOperand } from '@warden/decision';
import { stableKey } from '@warden/resolvers';
import type { EnrichedInputs, Reason } from '../enrichment/enriched-check.js';
import { decideForIdentities, denialBeforeEvaluation, isExternal, type Identities } from '../delegation/identity-decision.js';
import type { DelegationRuntime } from '../delegation/delegation-runtime.js';

/** The attribute of a resource that holds a call's arguments: unknown when planning. */
export const ARGUMENTS_ATTR = 'arguments';

/** The plan of one candidate. */
export type CandidatePlan =
  | { readonly id: string; readonly outcome: 'allowed' }
  | { readonly id: string; readonly outcome: 'conditional'; readonly condition: PlanOperand }
  | { readonly id: string; readonly outcome: 'denied'; readonly reason: Reason };

/** What {@link planCandidates} needs besides the candidates. */
export interface PlanCandidatesOptions {
  readonly engine: Engine;
  readonly delegation: DelegationRuntime;
  readonly action: string;
  readonly identities: Identities;
  /** True when a policy reads `request.context` or `request.delegation` (see the module comment). */
  readonly policiesReadRequestExtras: boolean;
  readonly now: Date;
}

const TRUE: PlanOperand = { value: true };
const FALSE: PlanOperand = { value: false };

function and(xs: PlanOperand[]): PlanOperand {
  return xs.length === 1 ? (xs[0] as PlanOperand) : { expression: { operator: 'and', operands: xs } };
}

function or(xs: PlanOperand[]): PlanOperand {
  return xs.length === 1 ? (xs[0] as PlanOperand) : { expression: { operator: 'or', operands: xs } };
}

/**
 * The attributes of a candidate as the planner must see them: every attribute but `arguments` is
 * known, and one enrichment did not produce is known to be absent (a read of it is "no such key",
 * as in the check), while `arguments` stays unknown.
 *
 * INVARIANT: the planner treats a field of `R.attr` as known when `Object.hasOwn(attr, name)` is
 * true and then reads its value; it builds its CEL view of the resource by spreading `attr` (own
 * enumerable keys only). The proxy answers "own" for every name but `arguments` and lists only
 * the real keys, so absent attributes are known-absent in both places. `plan-candidates.spec.ts`
 * pins this behaviour (a plan reading an absent attribute is decided, not conditional).
 */
export function closedAttributes(attr: Readonly<Record<string, JsonValue>>): Readonly<Record<string, JsonValue>> {
  const real = { ...attr };
  delete real[ARGUMENTS_ATTR];
  return new Proxy(real, {
    getOwnPropertyDescriptor(target, key) {
      if (typeof key === 'string' && key !== ARGUMENTS_ATTR && !Object.hasOwn(target, key)) return { value: undefined, writable: true, enumerable: false, configurable: true };
      return Reflect.getOwnPropertyDescriptor(target, key);
    },
  });
}

/**
 * The delegation's scope for `kind`/`id`/`action` as a condition: some grant covering the
 * candidate, with each of its caps a bound on the argument of that name.
 */
export function scopeCondition(grants: readonly Grant[], kind: string, id: string, action: string): PlanOperand {
  const covering: PlanOperand[] = [];
  for (const g of grants) {
    if (g.kind !== kind) continue;
    if (!g.actions.includes('*') && !g.actions.includes(action)) continue;
    if (g.ids !== undefined && !g.ids.includes(id)) continue;
    const caps = Object.entries(g.caps ?? {});
    if (caps.length === 0) return TRUE;
    covering.push(and(caps.map(([name, cap]) => ({ expression: { operator: 'le', operands: [{ variable: `request.resource.attr.${ARGUMENTS_ATTR}.${name}` }, { value: cap }] } }))));
  }
  return covering.length === 0 ? FALSE : or(covering);
}

/**
 * One plan per identity for a group of candidates that differ only in their id: planned with the
 * id unknown, then specialised per candidate. `undefined`: the group cannot be planned that way
 * (the planner needs the id), so each candidate is planned with its id.
 */
type GroupPlan = Array<{ principal: Principal; filter: PlanFilter }> | undefined;

const ID = 'request.resource.id';

function isValue(o: PlanOperand): o is { readonly value: JsonValue } {
  return 'value' in o;
}

/** `a == b` for JSON values as CEL compares them (numbers by value, lists and maps deeply). */
function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return stableKey(a) === stableKey(b);
}

/** A comparison of two known values, or undefined when CEL would not answer a plain true/false. */
function foldComparison(operator: string, a: JsonValue, b: JsonValue): boolean | undefined {
  const scalar = (v: JsonValue): boolean => v === null || typeof v !== 'object';
  switch (operator) {
    case 'eq':
    case 'ne':
      if (!scalar(a) || !scalar(b) || typeof a !== typeof b) return undefined;
      return operator === 'eq' ? a === b : a !== b;
    case 'lt':
    case 'le':
    case 'gt':
    case 'ge':
      if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string'))) return undefined;
      return operator === 'lt' ? a < b : operator === 'le' ? a <= b : operator === 'gt' ? a > b : a >= b;
    case 'in':
      if (Array.isArray(b)) return b.some((x) => jsonEqual(a, x));
      if (typeof b === 'object' && b !== null && typeof a === 'string') return Object.hasOwn(b, a);
      return undefined;
    default:
      return undefined;
  }
}

/**
 * `o` with the resource id known: `request.resource.id` replaced by `id`, comparisons of known
 * values folded. Undefined when the id remains somewhere it cannot be folded away (then the
 * candidate is planned with its id instead).
 */
export function withKnownId(o: PlanOperand, id: string): PlanOperand | undefined {
  if ('variable' in o) return o.variable === ID ? { value: id } : o.variable.startsWith(`${ID}.`) ? undefined : o;
  if (isValue(o)) return o;
  const operands: PlanOperand[] = [];
  let changed = false;
  for (const x of o.expression.operands) {
    const y = withKnownId(x, id);
    if (y === undefined) return undefined;
    if (y !== x) changed = true;
    operands.push(y);
  }
  if (!changed) return o;
  const [a, b] = operands;
  if (operands.length === 2 && a !== undefined && b !== undefined && isValue(a) && isValue(b)) {
    const folded = foldComparison(o.expression.operator, a.value, b.value);
    if (folded !== undefined) return { value: folded };
  }
  // Only and/or/not may keep the id's value, folded by normalisation; anything else keeps the id.
  if (!['and', 'or', 'not'].includes(o.expression.operator)) return undefined;
  return { expression: { operator: o.expression.operator, operands } };
}

/** The plan of each identity (the subject, then the agent) for one enriched candidate. */
function identityPlans(input: EnrichedInputs['items'][number]['input'], agent: Principal | undefined, groups: Map<string, GroupPlan>, options: PlanCandidatesOptions): Array<{ principal: Principal; filter: PlanFilter }> {
  const r = input.resource;
  const principals = agent !== undefined ? [input.principal, agent] : [input.principal];
  const base = {
    kind: r.kind,
    attr: closedAttributes(r.attr),
    ...(r.policyVersion !== undefined ? { policyVersion: r.policyVersion } : {}),
    ...(r.scope !== undefined ? { scope: r.scope } : {}),
  };
  const plan = (principal: Principal, withId: boolean): PlanFilter =>
    // Exact presence: a policy's `has(R.attr.arguments.x)` stays a condition on the call (Cerbos's
    // planner would take the argument as present, and the list could disagree with the check);
    // likewise where Cerbos's planner and check disagree, the list follows the check.
    planResources(options.engine.policySet, options.engine.config, { principal, resource: withId ? { ...base, id: r.id } : base, actions: [options.action], exactPresence: true, asCheck: true }, options.now);
  // Candidates sharing every known attribute share one plan per identity (1,000 tools are a few groups).
  const key = stableKey([r.kind, r.policyVersion ?? null, r.scope ?? null, r.attr]);
  let group = groups.get(key);
  if (!groups.has(key)) {
    try {
      group = principals.map((principal) => ({ principal, filter: plan(principal, false) }));
    } catch (err) {
      if (!(err instanceof PlanUnsupported)) throw err;
      group = undefined;
    }
    groups.set(key, group);
  }
  if (group !== undefined) {
    const out: Array<{ principal: Principal; filter: PlanFilter }> = [];
    for (const g of group) {
      if (g.filter.kind !== 'KIND_CONDITIONAL' || g.filter.condition === undefined) {
        out.push(g);
        continue;
      }
      const c = withKnownId(g.filter.condition, r.id);
      if (c === undefined) break;
      out.push({ principal: g.principal, filter: normalizeFilter({ kind: 'KIND_CONDITIONAL', condition: c }) });
    }
    if (out.length === group.length) return out;
  }
  return principals.map((principal) => ({ principal, filter: plan(principal, true) }));
}

const isReason = (v: unknown): v is Reason => typeof v === 'object' && v !== null && 'code' in v;

function unsupported(id: string, why: string): CandidatePlan {
  return { id, outcome: 'denied', reason: { code: 'plan_unsupported', message: `the policies for this tool cannot be planned (${why}); it is left out rather than listed` } };
}

/**
 * Plans every enriched item (one per candidate, in order).
 * @example planCandidates(enriched.items, { engine, delegation, action: 'invoke', identities, policiesReadRequestExtras: false, now: new Date() })
 */
export function planCandidates(items: EnrichedInputs['items'], options: PlanCandidatesOptions): CandidatePlan[] {
  const { action, identities: ids } = options;
  const firstOk = items.find((it) => it.denied === undefined);
  const denial = denialBeforeEvaluation(firstOk?.input.principal, ids, options.delegation);
  const agent: Principal | undefined = isReason(ids.agent) ? undefined : ids.agent;
  const chain: DelegationChain | undefined = isReason(ids.delegation) || isExternal(ids.delegation) ? undefined : ids.delegation;
  // What the check adds to the engine's request and the planner cannot see.
  const extras = Object.keys(ids.context).length > 0 || agent !== undefined || ids.delegation !== undefined;
  const blind = options.policiesReadRequestExtras && extras;
  const stale = !options.delegation.isFresh() && options.delegation.isHighCapability(action);
  const tooDeep = chain !== undefined && chain.hops.length > options.delegation.depthLimit(action);
  const groups = new Map<string, GroupPlan>();
  const plans = items.map((item): CandidatePlan => {
    const { kind, id } = item.input.resource;
    if (denial !== undefined) return { id, outcome: 'denied', reason: denial };
    if (item.denied !== undefined) return { id, outcome: 'denied', reason: item.denied[0] as Reason };
    if (blind) return unsupported(id, 'a policy reads request.context or request.delegation');
    if (stale) return { id, outcome: 'denied', reason: { code: 'revocation_state_stale', message: `\`${action}\` is high-capability and this instance cannot confirm its revocation state is current` } };
    if (tooDeep && chain !== undefined) return { id, outcome: 'denied', reason: { code: 'delegation_depth_exceeded', message: `\`${action}\` allows at most ${options.delegation.depthLimit(action)} delegations; this chain has ${chain.hops.length}`, delegation: lastHop(chain).id } };
    const parts: PlanOperand[] = [];
    let filters: Array<{ principal: Principal; filter: PlanFilter }>;
    try {
      filters = identityPlans(item.input, agent, groups, options);
    } catch (err) {
      if (err instanceof PlanUnsupported) return unsupported(id, err.message);
      throw err;
    }
    for (const { principal, filter: f } of filters) {
      if (f.kind === 'KIND_ALWAYS_DENIED') {
        const who = principal === agent ? `agent \`${principal.id}\`` : `\`${principal.id}\``;
        return { id, outcome: 'denied', reason: { code: 'policy_denied', message: `\`${action}\` on ${kind} \`${id}\` is not allowed for ${who}`, identity: principal === agent ? 'agent' : 'subject' } };
      }
      if (f.kind === 'KIND_CONDITIONAL' && f.condition !== undefined) parts.push(f.condition);
    }
    if (chain !== undefined) parts.push(scopeCondition(lastHop(chain).grants, kind, id, action));
    const f = normalizeFilter({ kind: 'KIND_CONDITIONAL', condition: parts.length === 0 ? TRUE : and(parts) });
    if (f.kind === 'KIND_ALWAYS_ALLOWED') return { id, outcome: 'allowed' };
    if (f.kind === 'KIND_ALWAYS_DENIED' || f.condition === undefined) {
      return chain !== undefined && scopeCondition(lastHop(chain).grants, kind, id, action) === FALSE
        ? { id, outcome: 'denied', reason: { code: 'delegation_out_of_scope', message: `\`${action}\` on ${kind} \`${id}\` is outside delegation \`${lastHop(chain).id}\``, delegation: lastHop(chain).id } }
        : { id, outcome: 'denied', reason: { code: 'policy_denied', message: `\`${action}\` on ${kind} \`${id}\` is not allowed by policy` } };
    }
    return { id, outcome: 'conditional', condition: f.condition };
  });
  return probe(items, plans, options);
}

/** Sets `path` (dot-separated, under the arguments) in `into`. */
function setPath(into: Record<string, JsonValue>, path: string[], value: JsonValue): void {
  let cur = into;
  for (const seg of path.slice(0, -1)) {
    const next = cur[seg];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[seg] = {};
    cur = cur[seg] as Record<string, JsonValue>;
  }
  cur[path[path.length - 1] as string] = value;
}

const PREFIX = `request.resource.attr.${ARGUMENTS_ATTR}.`;
const FLIP: Readonly<Record<string, string>> = { lt: 'gt', le: 'ge', gt: 'lt', ge: 'le', eq: 'eq', ne: 'ne' };

/**
 * Arguments under which `c` plausibly holds, for the common shapes (comparisons of an argument
 * with a constant, joined by `and`/`or`); undefined for anything else. The caller verifies it.
 */
export function witnessArguments(c: PlanOperand, into: Record<string, JsonValue> = {}): Record<string, JsonValue> | undefined {
  if ('value' in c) return c.value === true ? into : undefined;
  if ('variable' in c) return undefined;
  const { operator, operands } = c.expression;
  if (operator === 'and') {
    for (const o of operands) if (witnessArguments(o, into) === undefined) return undefined;
    return into;
  }
  if (operator === 'or') {
    for (const o of operands) {
      const w = witnessArguments(o, structuredClone(into));
      if (w !== undefined) return Object.assign(into, w);
    }
    return undefined;
  }
  const [a, b] = operands;
  if (operands.length !== 2 || a === undefined || b === undefined) return undefined;
  const [v, k, op] = 'variable' in a && 'value' in b ? [a.variable, b.value, operator] : 'variable' in b && 'value' in a ? [b.variable, a.value, FLIP[operator]] : [undefined, undefined, undefined];
  if (v === undefined || op === undefined || !v.startsWith(PREFIX) || k === undefined) return undefined;
  const path = v.slice(PREFIX.length).split('.');
  let value: JsonValue | undefined;
  if (op === 'eq' || op === 'le' || op === 'ge') value = k;
  else if (op === 'lt' || op === 'gt') value = typeof k === 'number' ? k + (op === 'lt' ? -1 : 1) : undefined;
  else if (op === 'ne') value = typeof k === 'number' ? k + 1 : typeof k === 'string' ? `${k}-` : undefined;
  else if (op === 'in' && Array.isArray(k) && k.length > 0) value = k[0] as JsonValue;
  if (value === undefined) return undefined;
  setPath(into, path, value);
  return into;
}

/**
 * SECURITY (defence in depth): every listed plan is held to real checks, made exactly as
 * `/v1/check` makes them: of a call without arguments (`arguments: {}`), where an allowed
 * candidate must be allowed and a conditional one allowed exactly when its condition holds; and,
 * for a conditional one whose condition a witness satisfies (see {@link witnessArguments}), of a
 * call with those arguments, which must be allowed. A plan a check contradicts is wrong somewhere
 * (a planner gap), so the candidate is denied (`plan_check_mismatch`) rather than listed. This
 * cannot prove a plan right for every argument; it does catch a planner that misses a rule the
 * arguments do not touch.
 */
function probe(items: EnrichedInputs['items'], plans: CandidatePlan[], options: PlanCandidatesOptions): CandidatePlan[] {
  type Probe = { index: number; expected: boolean; input: EnrichedInputs['items'][number]['input'] };
  const probes: Probe[] = [];
  const at = (i: number, args: Record<string, JsonValue>): EnrichedInputs['items'][number]['input'] => {
    const input = (items[i] as EnrichedInputs['items'][number]).input;
    return { ...input, resource: { ...input.resource, attr: { ...input.resource.attr, [ARGUMENTS_ATTR]: args } } };
  };
  plans.forEach((p, i) => {
    if (p.outcome === 'denied') return;
    const none = at(i, {});
    probes.push({ index: i, input: none, expected: p.outcome === 'allowed' || evaluatePlanFilter({ kind: 'KIND_CONDITIONAL', condition: p.condition }, none.resource, options.now) });
    if (p.outcome !== 'conditional') return;
    const w = witnessArguments(p.condition);
    if (w === undefined) return;
    const some = at(i, w);
    if (evaluatePlanFilter({ kind: 'KIND_CONDITIONAL', condition: p.condition }, some.resource, options.now)) probes.push({ index: i, input: some, expected: true });
  });
  if (probes.length === 0) return plans;
  const decided = decideForIdentities(options.engine, probes.map((p) => ({ input: p.input })), [options.action], options.identities, options.delegation, options.now);
  const out = [...plans];
  probes.forEach((p, k) => {
    const allowed = (decided[k] as (typeof decided)[number]).effects[options.action] === 'ALLOW';
    if (allowed !== p.expected) out[p.index] = { id: (plans[p.index] as CandidatePlan).id, outcome: 'denied', reason: { code: 'plan_check_mismatch', message: 'the plan of this tool disagrees with a check of it; it is left out rather than listed' } };
  });
  return out;
}
