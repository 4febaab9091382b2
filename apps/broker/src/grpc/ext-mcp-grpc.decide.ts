/**
 * What Warden answers agentgateway's extMcp hooks, once a message is parsed
 * (`@warden/gateway`'s `parseExtMcpRequest` / `parseExtMcpResponse`):
 *
 * - a call (`tools/call`, `prompts/get`, `resources/read`) is decided by `/v1/check`'s one
 *   decision path (`checkWith`): allowed → `pass`, denied → `error` (see `ext-mcp-grpc.answer.ts`);
 * - any other request passes once its caller is identified (the bearer token resolves to a
 *   subject, a delegation verifies), as the MCP proxy admits a request;
 * - a `tools/list` result keeps the tools tool discovery shows the caller (the MCP proxy's filter,
 *   with a conditional tool's condition in its description and `_meta`); `prompts/list` and
 *   `resources/list` keep the entries the proxy's checks allow; other results pass.
 *
 * A listing whose entries were denied because the caller is not identified, or because Warden
 * could not decide, is refused as a whole, never passed off as a shorter listing.
 */
import type { JsonValue } from '@warden/core';
import type { ExtMcpIdentity, ExtMcpRequestCheck, ExtMcpResponseCheck } from '@warden/gateway';
import type { JsonObject } from '@warden/resolvers';
import type { Reason } from '../enrichment/enriched-check.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';
import { checkWith, type CheckAnswer, type V1CheckDeps } from '../http/v1-check.routes.js';
import { fromMetadata, type MetadataLike } from '../tracing/broker-tracing.js';
import type { V1CheckRequest } from '../http/v1-check.request.js';
import { decideEntries, resolveMcpSubject, type McpCaller } from '../mcp/mcp-access.js';
import { describeShownTool, listVisibleTools } from '../mcp/mcp-tool-listing.js';
import { verifyDelegation, type ToolDiscoveryDeps } from '../plan/tool-discovery.js';
import { isUnidentified, isWardenSide, mutated, PASS, refusal } from './ext-mcp-grpc.answer.js';

type Msg = Record<string, unknown>;

/** What the extMcp service needs, built at boot (the same as `/v1/check` and `/v1/plan`). */
export interface ExtMcpDeps {
  readonly check: V1CheckDeps;
  readonly discovery: ToolDiscoveryDeps;
}

/** Where a decided call's answer goes. */
interface Holder {
  result: Msg | undefined;
}

function callerOf(identity: ExtMcpIdentity): McpCaller {
  return {
    token: identity.token,
    subject: identity.subject === undefined ? undefined : { id: identity.subject.id, roles: [...identity.subject.roles], attr: { ...identity.subject.attr } as JsonObject },
    agent: identity.agent === undefined ? undefined : ({ ...identity.agent } as McpCaller['agent']),
    delegation: identity.delegation,
    context: { ...identity.context } as JsonObject,
  };
}

const SPAN_ATTRIBUTES = { 'rpc.system': 'grpc', 'rpc.service': 'ExtMcp', 'rpc.method': 'CheckRequest' } as const;

/** Decides a call through `/v1/check`'s decision path (traced as `ext-mcp-grpc`, continuing a `traceparent` in `metadata`). */
export function decideCall(deps: ExtMcpDeps, c: Extract<ExtMcpRequestCheck, { kind: 'check' }>, metadata?: MetadataLike): Promise<Msg> {
  const trace = deps.check.tracing?.start('warden.check', 'ext-mcp-grpc', metadata === undefined ? undefined : fromMetadata(metadata), SPAN_ATTRIBUTES);
  return trace === undefined ? decideCallTraced(deps, c, undefined) : trace.run(() => decideCallTraced(deps, c, trace));
}

async function decideCallTraced(deps: ExtMcpDeps, c: Extract<ExtMcpRequestCheck, { kind: 'check' }>, trace: DecisionTrace | undefined): Promise<Msg> {
  const caller = callerOf(c.identity);
  const req: V1CheckRequest = {
    requestId: undefined,
    token: caller.token,
    subject: caller.subject === undefined ? undefined : { id: caller.subject.id, roles: caller.subject.roles, attr: caller.subject.attr },
    agent: caller.agent,
    delegation: caller.delegation,
    actions: [c.action],
    // The parser made these objects for this message alone (enrichment may write into them).
    resources: [{ kind: c.resource.kind, id: c.resource.id, attr: c.resource.attr as JsonObject }],
    context: caller.context ?? {},
    explain: false,
    needsTrust: c.identity.needsTrust,
    ...(trace !== undefined ? { trace } : {}),
  };
  const answer: CheckAnswer<Holder> = (holder, d) => {
    const item = d.decisions[0];
    const allowed = item !== undefined && d.req.actions.every((a) => item.effects[a] === 'ALLOW');
    holder.result = allowed ? PASS : refusal(item?.reasons ?? [{ code: 'internal', message: 'no decision' }], c.what, d.decisionId);
    return holder;
  };
  const holder: Holder = { result: undefined };
  await checkWith(deps.check, req, holder, answer);
  // SECURITY: fail closed; the decision path always answers, this only guards a bug.
  return holder.result ?? refusal([{ code: 'internal', message: 'no decision' }], c.what);
}

/**
 * Whether the caller is identified: its bearer token resolves to a subject, its delegation
 * verifies. Undefined when it is; the refusal otherwise.
 */
export async function identify(deps: ExtMcpDeps, identity: ExtMcpIdentity, what: string): Promise<Msg | undefined> {
  if (identity.token !== undefined && (await resolveMcpSubject(deps.discovery, identity.token)) === undefined) {
    return refusal([{ code: 'subject_unresolved', message: 'the token does not identify a caller' }], what);
  }
  if (identity.delegation !== undefined) {
    const v = await verifyDelegation(deps.discovery.delegation, identity.delegation);
    if ('code' in v) return refusal([v], what);
  }
  return undefined;
}

/** Refuses a listing when a denial says the caller is unidentified or Warden could not decide. */
function listingRefusal(codes: Iterable<string>, what: string): Msg | undefined {
  const all = [...codes];
  const failed = all.find(isWardenSide) ?? all.find(isUnidentified);
  return failed === undefined ? undefined : refusal([{ code: failed, message: '' }], what);
}

/** Filters a listing result. */
export async function filterListing(deps: ExtMcpDeps, c: Extract<ExtMcpResponseCheck, { kind: 'filter' }>): Promise<Msg> {
  const what = `list ${c.field}`;
  if (c.entries.length === 0) return (await identify(deps, c.identity, what)) ?? PASS;
  const listed = c.result[c.field] as JsonObject[];
  const caller = callerOf(c.identity);
  let kept: JsonValue[];
  if (c.field === 'tools') {
    const listing = await listVisibleTools(deps.discovery, { requestId: undefined, ...caller, subject: caller.subject === undefined ? undefined : { ...caller.subject }, context: caller.context ?? {} }, c.entries, { after: undefined, limit: c.entries.length });
    const refused = listingRefusal(Object.keys(listing.denied.reasons), what);
    if (refused !== undefined) return refused;
    const shown = new Map(listing.shown.map((s) => [s.id, s]));
    kept = [];
    c.entries.forEach((e, i) => {
      const s = shown.get(e.id);
      if (s === undefined) return;
      const tool = listed[i] as JsonObject;
      if (s.condition === undefined) kept.push(tool);
      else {
        const description = typeof tool['description'] === 'string' ? tool['description'] : undefined;
        const meta = typeof tool['_meta'] === 'object' && tool['_meta'] !== null && !Array.isArray(tool['_meta']) ? (tool['_meta'] as Record<string, JsonValue>) : undefined;
        kept.push({ ...tool, ...describeShownTool(description, meta, s.condition) } as JsonObject);
      }
    });
    if (kept.length === listed.length && listing.shown.every((s) => s.condition === undefined)) return PASS;
  } else {
    const verdicts = await decideEntries(deps.discovery, caller, c.resourceKind, c.action, c.entries.map((e) => ({ id: e.id, attr: { ...e.attr } as JsonObject })));
    const refused = listingRefusal(verdicts.flatMap((v): string[] => (v.allowed ? [] : [(v.reason as Reason).code])), what);
    if (refused !== undefined) return refused;
    kept = listed.filter((_e, i) => verdicts[i]?.allowed === true);
    if (kept.length === listed.length) return PASS;
  }
  return mutated({ ...c.result, [c.field]: kept });
}
