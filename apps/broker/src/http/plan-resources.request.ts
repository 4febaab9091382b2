/**
 * Validator for Cerbos's `PlanResourcesRequest` (`POST /api/plan/resources`): a principal, the
 * resource kind with any attributes already known (no id), `action` or `actions`, aux data and
 * `includeMeta`. Messages follow Cerbos's protovalidate wording, as the check requests do.
 *
 * SECURITY: every malformed request is an `ERR_REQUEST_INVALID` (400), never a partial plan.
 */
import type { JsonValue, Principal } from '@warden/core';
import type { PlanInput } from '@warden/decision';
import {
  attrMap,
  bool,
  isObj,
  parseAuxData,
  parsePrincipal,
  policyVersionOf,
  requestIdOf,
  requireObjectBody,
  requiredStr,
  scopeOf,
  str,
  stringList,
  typeError,
  unknownField,
  Violations,
  type CheckRequest,
  type JwtRef,
} from './request-common.js';

/** Cerbos's message-level rule on `action` and `actions` (`exclusiveFieldsActionOrActions`). */
const ACTION_XOR_ACTIONS = "Exactly one of 'action' or 'actions' field must be set";

/** A validated PlanResources request. */
export interface PlanResourcesRequest {
  requestId: string | undefined;
  includeMeta: boolean;
  /** Whether the caller sent `actions` (the response echoes the same field). */
  manyActions: boolean;
  input: PlanInput;
  jwt: JwtRef | undefined;
  jwts: (JwtRef & { name: string })[] | undefined;
}

function parsePlanResource(v: unknown, out: Violations): PlanInput['resource'] {
  if (v === undefined || v === null) {
    out.add('resource', 'value is required');
    return { kind: '' };
  }
  if (!isObj(v)) throw typeError('message', 'resource', v);
  let kindRaw: unknown;
  let attrRaw: unknown;
  let pvRaw: unknown;
  let scopeRaw: unknown;
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'kind':
        kindRaw = x;
        break;
      case 'attr':
        attrRaw = x;
        break;
      case 'policyVersion':
      case 'policy_version':
        pvRaw = x;
        break;
      case 'scope':
        scopeRaw = x;
        break;
      default:
        throw unknownField(k);
    }
  }
  const kind = requiredStr(kindRaw, 'resource', 'kind', out);
  const policyVersion = policyVersionOf(pvRaw, 'resource', out);
  const attr = attrMap(attrRaw, 'resource', out) as Record<string, JsonValue>;
  const scope = scopeOf(scopeRaw, 'resource', out);
  return { kind, attr, ...(policyVersion !== undefined ? { policyVersion } : {}), ...(scope !== undefined ? { scope } : {}) };
}

/**
 * Validates a parsed JSON body as a Cerbos `PlanResourcesRequest`. Throws `ERR_REQUEST_INVALID`.
 * @example parsePlanResourcesRequest({ action: 'view', principal: { id: 'a', roles: ['user'] }, resource: { kind: 'doc' } })
 */
export function parsePlanResourcesRequest(body: unknown): PlanResourcesRequest {
  const obj = requireObjectBody(body);
  const out = new Violations();
  let requestId: string | undefined;
  let includeMeta = false;
  let principalRaw: unknown;
  let resourceRaw: unknown;
  let actionRaw: unknown;
  let actionsRaw: unknown;
  let auxRaw: unknown;
  for (const k in obj) {
    const x = obj[k];
    switch (k) {
      case 'requestId':
      case 'request_id':
        requestId = requestIdOf(x);
        break;
      case 'action':
        actionRaw = x;
        break;
      case 'actions':
        actionsRaw = x;
        break;
      case 'principal':
        principalRaw = x;
        break;
      case 'resource':
        resourceRaw = x;
        break;
      case 'auxData':
      case 'aux_data':
        auxRaw = x;
        break;
      case 'includeMeta':
      case 'include_meta':
        includeMeta = bool(x, 'includeMeta');
        break;
      case 'requestContext':
      case 'request_context':
        if (x !== undefined && x !== null && !isObj(x)) throw typeError('message', 'requestContext', x);
        break;
      default:
        throw unknownField(k);
    }
  }
  // Cerbos's violations come in its order: the message rule (exactly one of `action` or a
  // non-empty `actions`), then the fields as declared (action, actions, principal, resource).
  const action = str(actionRaw, 'action');
  const hasAction = action !== undefined && action !== '';
  if (actionsRaw !== undefined && actionsRaw !== null && !Array.isArray(actionsRaw)) throw typeError('repeated string', 'actions', actionsRaw);
  // An empty list is an unset repeated field (as in protobuf).
  const manyActions = Array.isArray(actionsRaw) && actionsRaw.length > 0;
  if (hasAction === manyActions) out.addRule(ACTION_XOR_ACTIONS);
  const actions = manyActions ? stringList(actionsRaw, '', 'actions', out) : hasAction ? [action] : [];
  const principal = parsePrincipal(principalRaw, out);
  const resource = parsePlanResource(resourceRaw, out);
  const aux: CheckRequest = { requestId, includeMeta, inputs: [], jwt: undefined, jwts: undefined };
  parseAuxData(auxRaw, aux, out);
  out.throwIfAny();
  return {
    requestId,
    includeMeta,
    manyActions,
    input: { principal: principal as Principal, resource, actions },
    jwt: aux.jwt,
    jwts: aux.jwts,
  };
}
