/**
 * Hand-written validators for Cerbos's `CheckResourcesRequest` (`POST /api/check/resources`) and
 * its deprecated twin `CheckResourceBatchRequest` (`POST /api/check_resource_batch`): the same
 * principal + list of `{actions, resource}` entries, the batch without `includeMeta` and
 * `requestContext`. They produce the engine's `CheckInput`s directly so the hot path allocates
 * once. Messages follow Cerbos 0.55 (checked against the real binary):
 * `validation error: resources[0].actions: value is required`.
 *
 * SECURITY: every malformed request is an `ERR_REQUEST_INVALID` (400), never a partial input.
 */
import type { CheckInput, Principal } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import {
  bool,
  checkValue,
  enforceLimits,
  isObj,
  parseAuxData,
  parsePrincipal,
  parseResource,
  requestIdOf,
  requireObjectBody,
  stringList,
  typeError,
  unknownField,
  Violations,
  type CheckRequest,
} from './request-common.js';

export { MAX_ATTR_DEPTH, type CheckRequest } from './request-common.js';

/** A validated `CheckResourcesRequest` (the shape all three check APIs share). */
export type CheckResourcesRequest = CheckRequest;

/** `resources[i]` and `resources[i].resource`, interned for the first entries (no per-request concatenation). */
const ENTRY_PATHS: string[] = [];
const RESOURCE_PATHS: string[] = [];
const INTERNED_ENTRIES = 128;

function internPaths(i: number): void {
  const at = `resources[${i}]`;
  ENTRY_PATHS[i] = at;
  RESOURCE_PATHS[i] = `${at}.resource`;
}
for (let i = 0; i < INTERNED_ENTRIES; i++) internPaths(i);

function parseResourceEntry(
  v: unknown,
  i: number,
  principal: Principal | undefined,
  requestId: string | undefined,
  out: Violations,
): CheckInput {
  const interned = i < INTERNED_ENTRIES;
  const at = interned ? (ENTRY_PATHS[i] as string) : `resources[${i}]`;
  const resourcePath = interned ? (RESOURCE_PATHS[i] as string) : `${at}.resource`;
  if (!isObj(v)) throw typeError('message', 'resources', v);
  let actionsRaw: unknown;
  let resource: unknown;
  for (const k in v) {
    if (k === 'actions') actionsRaw = v[k];
    else if (k === 'resource') resource = v[k];
    else throw unknownField(k);
  }
  const actions = stringList(actionsRaw, at, 'actions', out);
  return parseResource(resource, resourcePath, principal, actions, requestId, out);
}

function parseRequestContext(v: unknown): void {
  if (v === undefined || v === null) return;
  if (!isObj(v)) throw typeError('message', 'requestContext', v);
  for (const k in v) {
    if (k !== 'annotations') throw unknownField(k);
    const a = v[k];
    if (a === undefined || a === null) continue;
    if (!isObj(a)) throw typeError('map', 'annotations', a);
    for (const key in a) checkValue(a[key], 1);
  }
}

/** Both requests; `batch` rejects the fields `CheckResourceBatchRequest` does not have. */
function parseEntriesRequest(body: unknown, limits: RequestLimitsConfig, batch: boolean): CheckRequest {
  const obj = requireObjectBody(body);
  const out = new Violations();
  const req: CheckRequest = { requestId: undefined, includeMeta: false, inputs: [], jwt: undefined, jwts: undefined };
  let principalRaw: unknown;
  let resourcesRaw: unknown;
  let auxRaw: unknown;
  for (const k in obj) {
    const x = obj[k];
    switch (k) {
      case 'requestId':
      case 'request_id':
        req.requestId = requestIdOf(x);
        break;
      case 'principal':
        principalRaw = x;
        break;
      case 'resources':
        resourcesRaw = x;
        break;
      case 'auxData':
      case 'aux_data':
        auxRaw = x;
        break;
      case 'includeMeta':
      case 'include_meta':
        if (batch) throw unknownField(k);
        req.includeMeta = bool(x, 'includeMeta');
        break;
      case 'requestContext':
      case 'request_context':
        if (batch) throw unknownField(k);
        parseRequestContext(x);
        break;
      default:
        throw unknownField(k);
    }
  }
  const principal = parsePrincipal(principalRaw, out);
  if (resourcesRaw !== undefined && resourcesRaw !== null && !Array.isArray(resourcesRaw)) {
    throw typeError('repeated message', 'resources', resourcesRaw);
  }
  const resources = (resourcesRaw ?? []) as unknown[];
  if (resources.length === 0) out.add('resources', 'value is required');
  for (let i = 0; i < resources.length; i++) {
    req.inputs.push(parseResourceEntry(resources[i], i, principal, req.requestId, out));
  }
  parseAuxData(auxRaw, req, out);
  out.throwIfAny();
  enforceLimits(req.inputs, limits);
  return req;
}

/**
 * Validates a parsed JSON body as a Cerbos `CheckResourcesRequest` and returns one `CheckInput`
 * per resource entry (sharing the principal object). Throws `ERR_REQUEST_INVALID` or
 * `ERR_REQUEST_LIMIT_EXCEEDED` with Cerbos's messages.
 */
export function parseCheckResourcesRequest(body: unknown, limits: RequestLimitsConfig): CheckRequest {
  return parseEntriesRequest(body, limits, false);
}

/** As `parseCheckResourcesRequest`, for the deprecated `CheckResourceBatchRequest` (never `includeMeta`). */
export function parseCheckResourceBatchRequest(body: unknown, limits: RequestLimitsConfig): CheckRequest {
  return parseEntriesRequest(body, limits, true);
}
