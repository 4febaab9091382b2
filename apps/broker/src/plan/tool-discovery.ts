/**
 * Tool discovery (`POST /v1/plan`, and the MCP proxy's listings): which candidates of one
 * resource kind the caller may use, and under which condition on the call's arguments. The
 * candidates (named ids, or a page of a catalog) are enriched together by the same resolvers as a
 * check (one batched call per resolver per level), then planned per identity
 * ({@link planCandidates}). Pages are cut at `limit` candidates in id order; a cut is always
 * reported (`truncated` with a `cursor`), never silent.
 */
import { randomUUID } from 'node:crypto';
import { WardenError, type CheckInput, type JsonValue } from '@warden/core';
import { isDelegationError, type DelegationChain, type ExternalActors } from '@warden/delegation';
import type { PlanOperand } from '@warden/decision';
import { isResolverError, type CatalogEntry, type CatalogSource, type JsonObject, type ResolverRun } from '@warden/resolvers';
import type { Reason } from '../enrichment/enriched-check.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';
import { enrichTraced } from '../tracing/traced-enrichment.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import type { DelegationRuntime } from '../delegation/delegation-runtime.js';
import { agentPrincipal, type Identities } from '../delegation/identity-decision.js';
import type { PolicySnapshots } from '../policy-source/policy-holder.js';
import { conditionAttributes, conditionText } from './condition-text.js';
import { planCandidates } from './plan-candidates.js';

/** What discovery needs, built at boot. */
export interface ToolDiscoveryDeps {
  /** The policy set in force (its engine plans; its `readsRequestExtras` says what the planner cannot see). */
  readonly policies: PolicySnapshots;
  readonly runtime: ResolverRuntime;
  readonly delegation: DelegationRuntime;
  /** Catalogs by name. */
  readonly catalogs: ReadonlyMap<string, CatalogSource>;
}

/** One discovery request, parsed. */
export interface DiscoveryRequest {
  readonly requestId: string | undefined;
  /** SECURITY: a credential; never echoed or logged. */
  readonly token: string | undefined;
  readonly subject: { id: string; roles: string[]; attr: JsonObject } | undefined;
  readonly agent: { id: string; token?: string; roles?: string[]; attr?: JsonObject } | undefined;
  readonly delegation: string | undefined;
  readonly action: string;
  readonly kind: string;
  /** Named candidates (sorted, once each) with attributes the caller states, or a catalog. */
  readonly candidates: ReadonlyArray<{ readonly id: string; readonly attr?: JsonObject }> | undefined;
  readonly catalog: string | undefined;
  readonly context: JsonObject;
  /** Candidates after this id only (from a previous page's cursor). */
  readonly after: string | undefined;
  readonly limit: number;
}

/** A conditional candidate: allowed exactly when `condition` holds on the call. */
export interface ConditionalEntry {
  readonly id: string;
  /** The filter tree (Cerbos's plan operands). */
  readonly condition: PlanOperand;
  /** The condition as text, e.g. `arguments.amount < 500`. */
  readonly text: string;
  /** The attributes the condition reads, e.g. `["arguments.amount"]`. */
  readonly attributes: string[];
}

/** The answer. */
export interface DiscoveryResult {
  readonly requestId?: string;
  readonly planId: string;
  /** The version of the policy set that planned this page. */
  readonly policyVersion: string;
  readonly kind: string;
  readonly action: string;
  readonly allowed: string[];
  readonly conditional: ConditionalEntry[];
  /** How many candidates of this page are denied, and why (reason code → count). */
  readonly denied: { readonly count: number; readonly reasons: Record<string, number> };
  /** True when candidates remain after this page; then `cursor` fetches the next one. */
  readonly truncated: boolean;
  readonly cursor?: string;
  /** The attributes a candidate's catalog entry and enrichment gave it, for callers that show them (the MCP proxy). */
  readonly entries: ReadonlyMap<string, JsonObject>;
  /** For `explain`: each resolver's calls (batches) and keys, and the stage timings in ms. */
  readonly explain: { readonly resolvers: readonly ResolverRun[]; readonly timings: { listMs: number; enrichMs: number; planMs: number; totalMs: number } };
}

/** Encodes the position after `id` as an opaque cursor. */
export function encodeCursor(id: string): string {
  return Buffer.from(JSON.stringify({ after: id }), 'utf8').toString('base64url');
}

/** Decodes a cursor of {@link encodeCursor}; throws `ERR_REQUEST_INVALID` otherwise. */
export function decodeCursor(cursor: string): string {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as { after?: unknown }).after === 'string') return (v as { after: string }).after;
  } catch {
    // Reported below.
  }
  throw new WardenError('ERR_REQUEST_INVALID', '`cursor`: not a cursor this API returned');
}

/** Verifies a delegation token (a Warden chain, or an external actor token), or says why it does not verify. */
export async function verifyDelegation(runtime: DelegationRuntime, token: string): Promise<DelegationChain | ExternalActors | Reason> {
  try {
    return await (runtime.isExternal(token) ? runtime.external.verify(token, Date.now()) : runtime.verifier.verify(token, Date.now()));
  } catch (err) {
    if (isDelegationError(err)) return { code: err.reason, message: err.message };
    throw err;
  }
}

async function candidatesOf(deps: ToolDiscoveryDeps, req: DiscoveryRequest): Promise<readonly CatalogEntry[]> {
  if (req.candidates !== undefined) return req.candidates.map((c) => ({ id: c.id, attr: c.attr ?? {} }));
  const catalog = deps.catalogs.get(req.catalog as string);
  if (catalog === undefined) throw new WardenError('ERR_REQUEST_INVALID', `\`catalog\`: no catalog \`${req.catalog as string}\``);
  if (catalog.resourceKind !== req.kind) throw new WardenError('ERR_REQUEST_INVALID', `\`catalog\`: \`${catalog.name}\` lists \`${catalog.resourceKind}\` resources, not \`${req.kind}\``);
  try {
    return await catalog.list();
  } catch (err) {
    // SECURITY: fail closed: no listing, no candidates (never a partial list passed off as the
    // whole). The message names the catalog and the failure class only; details go to the log.
    if (isResolverError(err)) {
      const why = err.code === 'ERR_RESOLVER_TIMEOUT' ? 'timed out' : err.code === 'ERR_RESOLVER_RESULT_INVALID' ? 'answered malformed entries' : 'failed';
      throw new WardenError('ERR_CATALOG_UNAVAILABLE', `catalog \`${catalog.name}\` could not be listed (${why})`, { cause: err });
    }
    throw err;
  }
}

/**
 * Discovers what `req`'s caller may use among its candidates. With `trace` (`/v1/plan` with tracing
 * on) the enrichment and the planning are its `warden.enrich` and `warden.evaluate` spans.
 * @example const page = await discoverTools(deps, { ...req, kind: 'tool', action: 'invoke', candidates: [{ id: 'web_search' }], limit: 100 });
 */
export async function discoverTools(deps: ToolDiscoveryDeps, req: DiscoveryRequest, trace?: DecisionTrace): Promise<DiscoveryResult> {
  const t0 = performance.now();
  const planId = randomUUID();
  const requestId = req.requestId ?? planId;
  const delegation = req.delegation === undefined ? undefined : await verifyDelegation(deps.delegation, req.delegation);
  const all = await candidatesOf(deps, req);
  const start = req.after === undefined ? 0 : firstAfter(all, req.after);
  const page = all.slice(start, start + req.limit);
  const truncated = start + page.length < all.length;
  const t1 = performance.now();

  const inputs: CheckInput[] = page.map((c) => ({ requestId, principal: { id: '', roles: [], attr: {} }, resource: { kind: req.kind, id: c.id, attr: { ...c.attr } }, actions: [req.action] }));
  const delegatedFor = delegation !== undefined && !('code' in delegation) ? delegation.subject : undefined;
  const principal: JsonObject = req.subject !== undefined ? { id: req.subject.id, roles: req.subject.roles, attr: req.subject.attr } : req.token === undefined && delegatedFor !== undefined ? { id: delegatedFor } : {};
  const agent: JsonObject | undefined = req.agent === undefined ? undefined : ({ ...req.agent } as unknown as JsonObject);
  const enriched = inputs.length === 0 ? undefined : await enrichTraced(trace, deps.runtime, inputs, {
    requestId,
    owned: true,
    principal,
    ...(req.token !== undefined ? { subject: { token: req.token } } : {}),
    ...(agent !== undefined ? { agent } : {}),
    ...(req.delegation !== undefined ? { delegation: { token: req.delegation } } : {}),
    context: { ...req.context },
  });
  const t2 = performance.now();
  const identities: Identities = {
    ...(agent !== undefined ? { agent: agentPrincipal((enriched?.outcome?.items[0]?.input.agent as JsonObject | undefined) ?? agent) } : {}),
    ...(delegation !== undefined ? { delegation } : {}),
    context: req.context as Record<string, JsonValue>,
  };
  // One snapshot plans the whole page and names its version.
  const policies = deps.policies.current;
  const plans = enriched === undefined ? [] : planCandidates(enriched.items, { engine: policies.engine, delegation: deps.delegation, action: req.action, identities, policiesReadRequestExtras: policies.readsRequestExtras, now: new Date() });

  const allowed: string[] = [];
  const conditional: ConditionalEntry[] = [];
  const reasons: Record<string, number> = {};
  let denied = 0;
  const entries = new Map<string, JsonObject>();
  plans.forEach((p, i) => {
    if (p.outcome === 'allowed') allowed.push(p.id);
    else if (p.outcome === 'conditional') conditional.push({ id: p.id, condition: p.condition, text: conditionText(p.condition), attributes: conditionAttributes(p.condition) });
    else {
      denied += 1;
      reasons[p.reason.code] = (reasons[p.reason.code] ?? 0) + 1;
      return;
    }
    const item = enriched?.items[i];
    if (item !== undefined) entries.set(p.id, item.input.resource.attr as JsonObject);
  });
  const t3 = performance.now();
  if (trace !== undefined) {
    trace.evaluate(t2, t3, { 'warden.resources': page.length, 'warden.actions': 1 });
    trace.decided({ decisionId: planId, requestId: req.requestId, reasons: Object.keys(reasons) });
    trace.span.setAttributes({ 'warden.plan.allowed': allowed.length, 'warden.plan.conditional': conditional.length, 'warden.plan.denied': denied });
  }
  const last = page[page.length - 1];
  const ms = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    ...(req.requestId !== undefined ? { requestId: req.requestId } : {}),
    planId,
    policyVersion: policies.version,
    kind: req.kind,
    action: req.action,
    allowed,
    conditional,
    denied: { count: denied, reasons },
    truncated,
    ...(truncated && last !== undefined ? { cursor: encodeCursor(last.id) } : {}),
    entries,
    explain: { resolvers: enriched?.outcome?.runs ?? [], timings: { listMs: ms(t1 - t0), enrichMs: ms(t2 - t1), planMs: ms(t3 - t2), totalMs: ms(t3 - t0) } },
  };
}

/** Index of the first entry whose id sorts after `after` (entries are sorted by id). */
function firstAfter(all: readonly CatalogEntry[], after: string): number {
  let lo = 0;
  let hi = all.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((all[mid] as CatalogEntry).id <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
