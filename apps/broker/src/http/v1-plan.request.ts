/**
 * Parses the `POST /v1/plan` body (tool discovery). The identity fields (`subject`, `agent`,
 * `delegation`, `context`, `requestId`) are those of `/v1/check` and are checked by its parser;
 * the rest names what to discover: `kind`, `action` (default `invoke`), either `candidates` (ids)
 * or `catalog` (a `kind: catalog` resolver), the page (`limit`, `cursor`), and `explain` (each
 * resolver's batches and the stage timings). Every problem is an
 * `ERR_REQUEST_INVALID` naming the field; unknown fields are refused.
 */
import { WardenError } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { decodeCursor, type DiscoveryRequest } from '../plan/tool-discovery.js';
import { isObj } from './request-common.js';
import { parseV1CheckRequest } from './v1-check.request.js';

const IDENTITY = new Set(['requestId', 'subject', 'agent', 'delegation', 'context']);
const PLAN = new Set(['action', 'kind', 'candidates', 'catalog', 'cursor', 'limit', 'explain']);
const NAME = /^[^\s]{1,256}$/;

/** Most candidates one request may name, and the largest page. */
export const MAX_PLAN_CANDIDATES = 1000;
/** Page size when `limit` is not given. */
export const DEFAULT_PLAN_LIMIT = 100;

function bad(field: string, message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(field, 'expected a non-empty string without spaces (at most 256 characters)');
  return v;
}

/** The parsed body, and whether it states identities only a trusted gateway may state. */
export function parseV1PlanRequest(body: unknown, limits: RequestLimitsConfig): { request: DiscoveryRequest; needsTrust: boolean; explain: boolean } {
  if (!isObj(body)) throw bad('(body)', 'expected a JSON object');
  const identity: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (IDENTITY.has(k)) identity[k] = v;
    else if (!PLAN.has(k)) throw bad(k, 'unknown field');
  }
  const kind = name(body['kind'], 'kind');
  const action = body['action'] === undefined || body['action'] === null ? 'invoke' : name(body['action'], 'action');
  // The identity part, checked exactly as /v1/check checks it.
  const parsed = parseV1CheckRequest({ ...identity, action, resource: { kind, id: '-' } }, limits);
  const c = body['candidates'];
  const cat = body['catalog'];
  const hasCandidates = c !== undefined && c !== null;
  const hasCatalog = cat !== undefined && cat !== null;
  if (hasCandidates === hasCatalog) throw bad('candidates', 'give exactly one of `candidates` (ids) or `catalog` (a catalog name)');
  let candidates: DiscoveryRequest['candidates'];
  if (hasCandidates) {
    if (!Array.isArray(c) || c.length === 0) throw bad('candidates', 'expected a non-empty list of ids');
    if (c.length > MAX_PLAN_CANDIDATES) throw new WardenError('ERR_REQUEST_LIMIT_EXCEEDED', `\`candidates\`: at most ${MAX_PLAN_CANDIDATES} candidates per request`);
    const ids = c.map((x, i) => name(x, `candidates[${i}]`));
    candidates = [...new Set(ids)].sort().map((id) => ({ id }));
  }
  const l = body['limit'];
  let limit = DEFAULT_PLAN_LIMIT;
  if (l !== undefined && l !== null) {
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > MAX_PLAN_CANDIDATES) throw bad('limit', `expected an integer from 1 to ${MAX_PLAN_CANDIDATES}`);
    limit = l;
  }
  const e = body['explain'];
  if (e !== undefined && e !== null && typeof e !== 'boolean') throw bad('explain', 'expected true or false');
  const cur = body['cursor'];
  const after = cur === undefined || cur === null || cur === '' ? undefined : decodeCursor(typeof cur === 'string' ? cur : '');
  return {
    request: {
      requestId: parsed.requestId,
      token: parsed.token,
      subject: parsed.subject,
      agent: parsed.agent,
      delegation: parsed.delegation,
      action,
      kind,
      candidates,
      catalog: hasCatalog ? name(cat, 'catalog') : undefined,
      context: parsed.context,
      after,
      limit,
    },
    needsTrust: parsed.needsTrust,
    explain: e === true,
  };
}
