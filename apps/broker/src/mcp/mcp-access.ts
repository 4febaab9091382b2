/**
 * Decisions for the MCP proxy, made exactly as `/v1/check` makes them: the caller's identities
 * (bearer token, agent, delegation) and the entries (tools, prompts, resources with the attributes
 * their server lists, plus a call's `arguments`) are enriched by the same resolvers, then decided
 * for the human, the agent and the delegation. Denials carry a message safe to show to a model:
 * what kind of refusal it is, never which policy, rule, resolver or attribute decided.
 */
import { randomUUID } from 'node:crypto';
import { WardenError, type CheckInput, type JsonValue, type Principal } from '@warden/core';
import { enrich, type JsonObject } from '@warden/resolvers';
import { enrichInputs, toPrincipal, type Reason } from '../enrichment/enriched-check.js';
import { agentPrincipal, decideForIdentities, type Identities } from '../delegation/identity-decision.js';
import { verifyDelegation, type ToolDiscoveryDeps } from '../plan/tool-discovery.js';

/**
 * Who calls, as the MCP request says. SECURITY: `token` and `delegation` are credentials. The
 * proxy's callers always present a token; a trusted gateway (agentgateway's extMcp) may instead
 * state the subject, and an agent holding a delegation may act without one (the delegation names
 * the subject).
 */
export interface McpCaller {
  readonly token: string | undefined;
  readonly subject?: { readonly id: string; readonly roles: string[]; readonly attr: JsonObject } | undefined;
  readonly agent: { id: string; token?: string; roles?: string[]; attr?: JsonObject } | undefined;
  readonly delegation: string | undefined;
  /** The checks' `request.context` (default `{}`). */
  readonly context?: JsonObject;
}

/** An entry to decide: its resource id and the attributes its server (and the call) give it. */
export interface McpEntry {
  readonly id: string;
  readonly attr: JsonObject;
}

/** The verdict on one entry. */
export type McpVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: Reason };

/**
 * The subject of `token` as the resolvers make it, or undefined when they cannot (an unknown or
 * refused token): the proxy then answers 401.
 */
export async function resolveMcpSubject(deps: ToolDiscoveryDeps, token: string): Promise<Principal | undefined> {
  const registry = deps.runtime.current().registry;
  if (registry === undefined) throw new WardenError('ERR_STORAGE_UNAVAILABLE', 'context resolvers are misconfigured; an administrator must fix them');
  const outcome = await enrich(registry, { requestId: randomUUID(), principal: {}, subject: { token }, resources: [] });
  const item = outcome.items[0];
  if (item === undefined || item.denials.length > 0) return undefined;
  const p = toPrincipal(item.input.principal);
  return 'code' in p ? undefined : p;
}

/** Decides `action` on every entry (of resource kind `kind`) for `caller`. */
export async function decideEntries(deps: ToolDiscoveryDeps, caller: McpCaller, kind: string, action: string, entries: readonly McpEntry[]): Promise<McpVerdict[]> {
  if (entries.length === 0) return [];
  const requestId = randomUUID();
  const delegation = caller.delegation === undefined ? undefined : await verifyDelegation(deps.delegation, caller.delegation);
  const inputs: CheckInput[] = entries.map((e) => ({ requestId, principal: { id: '', roles: [], attr: {} }, resource: { kind, id: e.id, attr: { ...e.attr } }, actions: [action] }));
  const agent: JsonObject | undefined = caller.agent === undefined ? undefined : ({ ...caller.agent } as unknown as JsonObject);
  const context: JsonObject = caller.context ?? {};
  // The subject, as `/v1/check` takes it: stated by a trusted gateway, resolved from the token, or the delegation's.
  const delegatedFor = delegation !== undefined && !('code' in delegation) ? delegation.subject : undefined;
  const principal: JsonObject =
    caller.subject !== undefined ? { id: caller.subject.id, roles: caller.subject.roles, attr: caller.subject.attr } : caller.token === undefined && delegatedFor !== undefined ? { id: delegatedFor } : {};
  const enriched = await enrichInputs(deps.runtime, inputs, {
    requestId,
    owned: true,
    principal,
    ...(caller.token !== undefined ? { subject: { token: caller.token } } : {}),
    ...(agent !== undefined ? { agent } : {}),
    ...(caller.delegation !== undefined ? { delegation: { token: caller.delegation } } : {}),
    context: { ...context },
  });
  const ids: Identities = {
    ...(agent !== undefined ? { agent: agentPrincipal((enriched.outcome?.items[0]?.input.agent as JsonObject | undefined) ?? agent) } : {}),
    ...(delegation !== undefined ? { delegation } : {}),
    context: context as Record<string, JsonValue>,
  };
  const decided = decideForIdentities(deps.policies.current.engine, enriched.items, [action], ids, deps.delegation, new Date());
  return decided.map((d): McpVerdict => (d.effects[action] === 'ALLOW' ? { allowed: true } : { allowed: false, reason: d.reasons[0] ?? { code: 'policy_denied', message: 'not allowed by policy' } }));
}

/**
 * What a model may be told about a denial: the kind of refusal only.
 * @example safeDenial({ code: 'policy_denied', message: '...' }, 'call tool `x`') // 'Warden denied this request (call tool `x`): ...'
 */
export function safeDenial(reason: Reason, what: string): string {
  const code = reason.code;
  const why =
    code === 'policy_denied'
      ? 'the user or agent is not allowed to do this (with these arguments)'
      : code === 'budget_exhausted'
        ? 'the budget for this is exhausted'
        : code.startsWith('delegation_')
          ? 'this is outside what the agent was delegated'
          : code.endsWith('_revoked')
            ? 'a credential or delegation involved has been revoked'
            : code === 'subject_unresolved' || code === 'token_invalid' || code === 'agent_unresolved'
              ? 'the caller could not be identified'
              : code === 'resolver_failed' || code === 'resolvers_unavailable' || code === 'revocation_state_stale'
                ? 'information needed to decide is unavailable right now; try again later'
                : 'it is not allowed';
  return `Warden denied this request (${what}): ${why}`;
}
