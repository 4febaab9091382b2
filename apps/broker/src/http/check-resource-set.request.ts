/**
 * Hand-written validator for Cerbos's deprecated `CheckResourceSetRequest` (`POST /api/check`):
 * one list of actions, a principal, and a `ResourceSet` of instances of one kind keyed by id. It
 * maps onto the same engine inputs as `CheckResourcesRequest` (one per instance, the instance key
 * as the resource id, in the request's order). Field order for violations: actions 2,
 * principal 3, resource 4 (kind 1, policy_version 2, instances 3, scope 4), aux_data 6.
 * Unlike `Resource.attr`, `AttributesMap.attr` accepts an empty key (as Cerbos 0.55 does).
 *
 * SECURITY: every malformed request is an `ERR_REQUEST_INVALID` (400), never a partial input.
 */
import type { Principal } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import {
  attrMap,
  bool,
  enforceLimits,
  isObj,
  newInput,
  parseAuxData,
  parsePrincipal,
  policyVersionOf,
  requestIdOf,
  requiredStr,
  requireObjectBody,
  scopeOf,
  stringList,
  typeError,
  unknownField,
  Violations,
  type CheckRequest,
} from './request-common.js';

/** `AttributesMap`: `{attr}` only. */
function instanceAttr(v: unknown) {
  if (v === null || !isObj(v)) throw typeError('message', 'instances', v);
  let attr: unknown;
  for (const k in v) {
    if (k === 'attr') attr = v[k];
    else throw unknownField(k);
  }
  return attrMap(attr, 'resource.instances');
}

function parseResourceSet(
  v: unknown,
  principal: Principal | undefined,
  actions: string[],
  req: CheckRequest,
  out: Violations,
): void {
  if (v === undefined || v === null) {
    out.add('resource', 'value is required');
    return;
  }
  if (!isObj(v)) throw typeError('message', 'resource', v);
  let kindRaw: unknown;
  let pvRaw: unknown;
  let instances: unknown;
  let scopeRaw: unknown;
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'kind':
        kindRaw = x;
        break;
      case 'policyVersion':
      case 'policy_version':
        pvRaw = x;
        break;
      case 'instances':
        instances = x;
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
  if (instances !== undefined && instances !== null && !isObj(instances)) throw typeError('map', 'instances', instances);
  let any = false;
  if (instances !== undefined && instances !== null) {
    for (const id in instances) {
      any = true;
      const attr = instanceAttr(instances[id]);
      req.inputs.push(newInput(principal, kind, id, attr, policyVersion, undefined, actions, req.requestId));
    }
  }
  if (!any) out.add('resource.instances', 'value is required');
  const scope = scopeOf(scopeRaw, 'resource', out);
  if (scope !== undefined) for (const input of req.inputs) input.resource.scope = scope;
}

/**
 * Validates a parsed JSON body as a Cerbos `CheckResourceSetRequest` and returns one `CheckInput`
 * per instance (sharing the principal and actions). Throws `ERR_REQUEST_INVALID` or
 * `ERR_REQUEST_LIMIT_EXCEEDED` with Cerbos's messages.
 */
export function parseCheckResourceSetRequest(body: unknown, limits: RequestLimitsConfig): CheckRequest {
  const obj = requireObjectBody(body);
  const out = new Violations();
  const req: CheckRequest = { requestId: undefined, includeMeta: false, inputs: [], jwt: undefined, jwts: undefined };
  let actionsRaw: unknown;
  let principalRaw: unknown;
  let resourceRaw: unknown;
  let auxRaw: unknown;
  for (const k in obj) {
    const x = obj[k];
    switch (k) {
      case 'requestId':
      case 'request_id':
        req.requestId = requestIdOf(x);
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
      case 'includeMeta':
      case 'include_meta':
        req.includeMeta = bool(x, 'includeMeta');
        break;
      case 'auxData':
      case 'aux_data':
        auxRaw = x;
        break;
      default:
        throw unknownField(k);
    }
  }
  const actions = stringList(actionsRaw, '', 'actions', out);
  const principal = parsePrincipal(principalRaw, out);
  parseResourceSet(resourceRaw, principal, actions, req, out);
  parseAuxData(auxRaw, req, out);
  out.throwIfAny();
  enforceLimits(req.inputs, limits);
  return req;
}
