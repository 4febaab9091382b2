/**
 * Decisions with two identities (issue 4): a check that names an agent is decided for the human
 * (or service) on whose behalf it acts, for the agent itself, and within the delegation's scope;
 * an action is allowed only when all three allow it. This is structural: no policy can lift an
 * agent above its human, because the human's own evaluation is always required.
 *
 * Before anything is evaluated, a check is denied outright when its delegation does not verify,
 * names another subject or another agent than the request's, or when any identity or hop of it is
 * revoked. While this instance cannot be sure its revocation state is fresh, high-capability
 * actions are denied.
 *
 * SECURITY: every path here only removes ALLOWs; nothing turns a failure into an ALLOW.
 */
import type { ActionEffect, CheckInput, CheckOutput, DelegationView, JsonValue, OutputEntry, Principal } from '@warden/core';
import { actorOf, chainAllows, lastHop, type DelegationChain, type ExternalActors, type Revocation } from '@warden/delegation';
import type { Engine } from '@warden/decision';
import { DENIED_BEFORE_EVALUATION, type EnrichedInputs, type Reason } from '../enrichment/enriched-check.js';
import type { DelegationRuntime } from './delegation-runtime.js';

type Verdict = 'ALLOW' | 'DENY';

/** One action of one resource, per identity. */
export interface ActionDetail {
  readonly effect: Verdict;
  readonly subject: ActionEffect;
  readonly agent?: ActionEffect;
  /** The delegation's verdict: its scope, the depth limit of the action. */
  readonly delegation?: Verdict;
}

/** The decision of one resource. */
export interface ItemDecision {
  readonly effects: Record<string, Verdict>;
  /** Who decided each action (only when asked for: `explain`). */
  readonly details?: Record<string, ActionDetail>;
  readonly reasons: Reason[];
  readonly outputs: OutputEntry[];
}

/** What the request says about who acts, resolved. */
export interface Identities {
  /** The acting agent as a principal, or why it cannot be one. */
  readonly agent?: Principal | Reason;
  /**
   * The verified delegation (a Warden chain, or an external RFC 8693 token naming who acts, which
   * grants nothing), or why it does not verify.
   */
  readonly delegation?: DelegationChain | ExternalActors | Reason;
  readonly context: Record<string, JsonValue>;
}

/** Roles of an agent nobody stated roles for: policies grant agents through this role. */
const DEFAULT_AGENT_ROLES = ['agent'];

/** An agent as a principal: roles from a trusted gateway or a resolver, else `agent`. */
export function agentPrincipal(raw: Readonly<Record<string, unknown>> | undefined): Principal | Reason {
  const unresolved = (why: string): Reason => ({ code: 'agent_unresolved', message: `the agent ${why}` });
  if (raw === undefined || typeof raw['id'] !== 'string' || raw['id'] === '') return unresolved('could not be identified');
  const roles = raw['roles'];
  if (roles !== undefined && (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string' && r !== ''))) return unresolved('has malformed roles');
  const attr = raw['attr'];
  if (attr !== undefined && (typeof attr !== 'object' || attr === null || Array.isArray(attr))) return unresolved('has malformed attributes');
  return { id: raw['id'], roles: (roles as string[] | undefined) ?? DEFAULT_AGENT_ROLES, attr: (attr ?? {}) as Record<string, JsonValue> };
}

/** `request.delegation` of a chain. */
export function delegationView(chain: DelegationChain): DelegationView {
  return {
    subject: chain.subject,
    actor: actorOf(chain),
    depth: chain.hops.length,
    chain: chain.hops.map((h) => ({ id: h.id, from: h.from, to: h.to, canSubDelegate: h.canSubDelegate, ...(h.task !== undefined ? { task: h.task } : {}) })),
  };
}

const isReason = (v: unknown): v is Reason => typeof v === 'object' && v !== null && 'code' in v;

/** True for an external actor token (evidence of who acts, no grants). */
export const isExternal = (v: unknown): v is ExternalActors => typeof v === 'object' && v !== null && 'actors' in v;

/** `request.delegation` of an external actor token: the actors as hops, root first. */
function externalView(e: ExternalActors): DelegationView {
  const order = [...e.actors].reverse();
  return {
    subject: e.subject,
    actor: e.actors[0] as string,
    depth: order.length,
    chain: order.map((to, i) => ({ id: e.tokenId ?? '', from: i === 0 ? e.subject : (order[i - 1] as string), to, canSubDelegate: false })),
  };
}

function revokedReason(r: Revocation): Reason {
  return { code: `${r.target}_revoked`, message: `the ${r.target} \`${r.id}\` has been revoked` };
}

/** The revocation of the subject or its session, as a denial (nothing to find when none is revoked). */
function subjectRevocation(subject: string | undefined, session: string | undefined, runtime: DelegationRuntime): Reason | undefined {
  if (subject === undefined || runtime.revocations.size === 0) return undefined;
  const r = runtime.revocations.find(session !== undefined ? { subject, session } : { subject });
  return r === undefined ? undefined : revokedReason(r);
}

/** Why every action of the request is denied before evaluation, if it is. */
function requestDenial(humanId: string | undefined, ids: Identities, runtime: DelegationRuntime): Reason | undefined {
  if (isReason(ids.agent)) return ids.agent;
  if (isReason(ids.delegation)) return ids.delegation;
  const agent = ids.agent;
  if (isExternal(ids.delegation)) {
    const ext = ids.delegation;
    for (const who of [ext.subject, ...ext.actors]) {
      const revoked = runtime.revocations.find(who === ext.subject ? { subject: who } : { agent: who });
      if (revoked !== undefined) return revokedReason(revoked);
    }
    if (agent !== undefined) {
      const revoked = runtime.revocations.find({ agent: agent.id });
      if (revoked !== undefined) return revokedReason(revoked);
    }
    if (humanId !== undefined && ext.subject !== humanId) return { code: 'delegation_subject_mismatch', message: `the actor token acts for \`${ext.subject}\`, not for \`${humanId}\`` };
    if (agent === undefined || ext.actors[0] !== agent.id) return { code: 'delegation_actor_mismatch', message: `the actor token names \`${ext.actors[0] ?? ''}\` as the actor, not the agent making this request` };
    return undefined;
  }
  const chain = ids.delegation;
  if (runtime.revocations.size > 0) {
    // A literal of one shape, not spreads: V8 took the conditional spreads' slow path here, and
    // what it allocated went to the old generation, a full collection about once a minute under
    // load (bench/README.md, the decision log benchmark).
    const revoked = runtime.revocations.find({ subject: humanId, agent: agent?.id, chain });
    if (revoked !== undefined) return revokedReason(revoked);
  }
  if (chain !== undefined) {
    if (humanId !== undefined && chain.subject !== humanId) return { code: 'delegation_subject_mismatch', message: `the delegation acts for \`${chain.subject}\`, not for \`${humanId}\`` };
    if (agent === undefined || actorOf(chain) !== agent.id) return { code: 'delegation_actor_mismatch', message: `the delegation is held by \`${actorOf(chain)}\`, not by the agent making this request` };
  }
  return undefined;
}

/**
 * Why every action of a request by `human` (the enriched subject, if any item resolved it) is
 * denied before anything is evaluated: a revoked subject, session, agent or delegation, an agent
 * that is no principal, a delegation that does not verify or names someone else. Shared by checks
 * and plans, so both refuse the same requests.
 */
export function denialBeforeEvaluation(human: Principal | undefined, ids: Identities, runtime: DelegationRuntime): Reason | undefined {
  const humanId = human?.id;
  const sid = human?.attr['sid'];
  const session = typeof sid === 'string' ? sid : undefined;
  // A revoked subject (or session) is denied whoever acts; an agent or a delegation adds more to check.
  return ids.agent === undefined && ids.delegation === undefined
    ? subjectRevocation(humanId, session, runtime)
    : (subjectRevocation(humanId, session, runtime) ?? requestDenial(humanId, ids, runtime));
}

function deniedEffect(): ActionEffect {
  return { effect: 'EFFECT_DENY', policy: DENIED_BEFORE_EVALUATION };
}

function listed(actions: readonly string[]): string {
  const q = actions.map((a) => `\`${a}\``);
  return q.length === 1 ? (q[0] as string) : `${q.slice(0, -1).join(', ')} and ${q[q.length - 1] as string}`;
}

/** An input with what the request adds (context, delegation) for `principal`. */
function withExtras(i: CheckInput, principal: Principal, context: Record<string, JsonValue> | undefined, view: DelegationView | undefined): CheckInput {
  const out: CheckInput = { principal, resource: i.resource, actions: i.actions };
  if (i.requestId !== undefined) out.requestId = i.requestId;
  if (i.auxData !== undefined) out.auxData = i.auxData;
  if (context !== undefined) out.context = context;
  if (view !== undefined) out.delegation = view;
  return out;
}

/** Shared by the items nothing denied (never modified). */
const NO_REASONS: Reason[] = [];

/**
 * Decides every item for the subject and, when the request names them, for the agent and within
 * the delegation. `items` are the enriched inputs (items denied by enrichment stay denied).
 * `withDetails` adds who decided each action (for `explain`).
 */
export function decideForIdentities(
  engine: Engine,
  items: EnrichedInputs['items'],
  actions: readonly string[],
  ids: Identities,
  runtime: DelegationRuntime,
  now: Date,
  withDetails = true,
): ItemDecision[] {
  let firstOk: EnrichedInputs['items'][number] | undefined;
  for (const it of items) {
    if (it.denied === undefined) {
      firstOk = it;
      break;
    }
  }
  const denial = denialBeforeEvaluation(firstOk?.input.principal, ids, runtime);
  const agent = isReason(ids.agent) ? undefined : ids.agent;
  // An external actor token establishes who acts and grants nothing: no scope of its own.
  const chain = isReason(ids.delegation) || isExternal(ids.delegation) ? undefined : ids.delegation;
  const view = chain !== undefined ? delegationView(chain) : isExternal(ids.delegation) ? externalView(ids.delegation) : undefined;
  const fresh = runtime.isFresh();

  // One engine call: every item for the human, then (sharing one agent principal) for the agent.
  // Inputs are rebuilt only when there is something to add (a context, a delegation, the agent).
  const context = hasKeys(ids.context) ? ids.context : undefined;
  const plain = context === undefined && view === undefined;
  const inputs: CheckInput[] = [];
  if (denial === undefined) {
    for (const it of items) if (it.denied === undefined) inputs.push(plain ? it.input : withExtras(it.input, it.input.principal, context, view));
  }
  const n = inputs.length;
  if (agent !== undefined) for (let j = 0; j < n; j++) inputs.push(withExtras(inputs[j] as CheckInput, agent, context, view));
  const outputs: CheckOutput[] = inputs.length > 0 ? engine.check(inputs, { now, includeEffectiveDerivedRoles: false, includeRules: withDetails }) : [];
  let k = 0;

  const out = new Array<ItemDecision>(items.length);
  for (let idx = 0; idx < items.length; idx++) {
    const item = items[idx] as EnrichedInputs['items'][number];
    const input = item.input;
    const effects: Record<string, Verdict> = {};
    const details: Record<string, ActionDetail> | undefined = withDetails ? {} : undefined;
    if (denial !== undefined || item.denied !== undefined) {
      for (const a of actions) {
        effects[a] = 'DENY';
        if (details !== undefined) details[a] = { effect: 'DENY', subject: deniedEffect() };
      }
      const reasons = denial !== undefined ? [{ ...denial, resource: { kind: input.resource.kind, id: input.resource.id } }] : (item.denied as Reason[]);
      out[idx] = details !== undefined ? { effects, details, reasons, outputs: [] } : { effects, reasons, outputs: [] };
      continue;
    }
    const human = outputs[k] as CheckOutput;
    const agentOut = agent !== undefined ? (outputs[k + n] as CheckOutput) : undefined;
    k += 1;
    // Denied actions by cause, made on the first denial.
    let byHuman: string[] | undefined;
    let byAgent: string[] | undefined;
    let byScope: string[] | undefined;
    let byDepth: string[] | undefined;
    let byStale: string[] | undefined;
    for (const a of actions) {
      const h = human.actions[a] ?? deniedEffect();
      const g = agentOut === undefined ? undefined : (agentOut.actions[a] ?? deniedEffect());
      let allowed = h.effect === 'EFFECT_ALLOW';
      if (!allowed) (byHuman ??= []).push(a);
      if (g !== undefined && g.effect !== 'EFFECT_ALLOW') {
        allowed = false;
        (byAgent ??= []).push(a);
      }
      let delegation: Verdict | undefined;
      if (chain !== undefined) {
        const inScope = chainAllows(chain, { kind: input.resource.kind, id: input.resource.id, action: a, attr: input.resource.attr });
        const deepEnough = chain.hops.length <= runtime.depthLimit(a);
        delegation = inScope && deepEnough ? 'ALLOW' : 'DENY';
        if (!inScope) (byScope ??= []).push(a);
        else if (!deepEnough) (byDepth ??= []).push(a);
        if (delegation === 'DENY') allowed = false;
      }
      if (!fresh && runtime.isHighCapability(a)) {
        allowed = false;
        (byStale ??= []).push(a);
      }
      const effect: Verdict = allowed ? 'ALLOW' : 'DENY';
      effects[a] = effect;
      if (details !== undefined) {
        details[a] = g === undefined && delegation === undefined ? { effect, subject: h } : { effect, subject: h, ...(g !== undefined ? { agent: g } : {}), ...(delegation !== undefined ? { delegation } : {}) };
      }
    }
    let reasons = NO_REASONS;
    if (byHuman !== undefined || byAgent !== undefined || byScope !== undefined || byDepth !== undefined || byStale !== undefined) {
      reasons = [];
      const resource = { kind: input.resource.kind, id: input.resource.id };
      const on = `${resource.kind} \`${resource.id}\``;
      if (byHuman !== undefined) {
        reasons.push(
          agent !== undefined
            ? { code: 'policy_denied', message: `${listed(byHuman)} on ${on} ${verb(byHuman)} not allowed for \`${item.input.principal.id}\``, resource, actions: byHuman, identity: 'subject' }
            : { code: 'policy_denied', message: `${listed(byHuman)} on ${on} ${verb(byHuman)} not allowed by policy`, resource, actions: byHuman },
        );
      }
      if (byAgent !== undefined && agent !== undefined) {
        reasons.push({ code: 'policy_denied', message: `${listed(byAgent)} on ${on} ${verb(byAgent)} not allowed for agent \`${agent.id}\``, resource, actions: byAgent, identity: 'agent' });
      }
      if (chain !== undefined) {
        const hop = lastHop(chain).id;
        if (byScope !== undefined) reasons.push({ code: 'delegation_out_of_scope', message: `${listed(byScope)} on ${on} ${verb(byScope)} outside delegation \`${hop}\``, resource, actions: byScope, delegation: hop });
        if (byDepth !== undefined) {
          const limit = Math.min(...byDepth.map((a) => runtime.depthLimit(a)));
          reasons.push({ code: 'delegation_depth_exceeded', message: `${listed(byDepth)} on ${on} allows at most ${limit} delegations; this chain has ${chain.hops.length}`, resource, actions: byDepth, delegation: hop });
        }
      }
      if (byStale !== undefined) {
        reasons.push({ code: 'revocation_state_stale', message: `${listed(byStale)} ${verb(byStale)} high-capability and this instance cannot confirm its revocation state is current`, resource, actions: byStale });
      }
    }
    const outputsOf = agentOut !== undefined ? [...human.outputs, ...agentOut.outputs] : human.outputs;
    out[idx] = details !== undefined ? { effects, details, reasons, outputs: outputsOf } : { effects, reasons, outputs: outputsOf };
  }
  return out;
}

function verb(list: readonly string[]): string {
  return list.length === 1 ? 'is' : 'are';
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
