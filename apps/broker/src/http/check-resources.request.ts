/**
 * Hand-written validator for Cerbos's `CheckResourcesRequest` JSON (protojson rules: camelCase
 * or proto field names, `null` means unset, unknown fields rejected), producing the engine's
 * `CheckInput`s directly so the hot path allocates once. Messages follow Cerbos 0.55 (checked
 * against the real binary): `validation error: resources[0].actions: value is required`.
 *
 * SECURITY: every malformed request is an `ERR_REQUEST_INVALID` (400), never a partial input.
 */
import { WardenError, type Attributes, type CheckInput, type Principal } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';

/** A validated request, ready to evaluate once the aux data is verified. */
export interface CheckResourcesRequest {
  requestId: string | undefined;
  includeMeta: boolean;
  /** The echo of each resource for the response (as Cerbos prints it). */
  inputs: CheckInput[];
  jwt: { token: string; keySetId: string | undefined } | undefined;
  /** `auxData.jwts`: named tokens (verified, claims not yet passed to the engine). */
  jwts: { name: string; token: string; keySetId: string | undefined }[] | undefined;
}

/** Deepest nesting accepted inside an attribute value. */
export const MAX_ATTR_DEPTH = 64;

const POLICY_VERSION_RE = /^\w*$/;
const SCOPE_RE = /^(^$|\.|[0-9a-zA-Z][\w-]*(\.\w[\w-]*)*)$/;
const POLICY_VERSION_MSG = 'does not match regex pattern `^[\\w]*$`';
const SCOPE_MSG = 'does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeError(kind: string, field: string, value: unknown): WardenError {
  let shown: string;
  try {
    shown = JSON.stringify(value)?.slice(0, 40) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new WardenError('ERR_REQUEST_INVALID', `proto: invalid value for ${kind} field ${field}: ${shown}`);
}

function unknownField(name: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `proto: unknown field ${JSON.stringify(name)}`);
}

/** Collects buf.validate-style violations; allocated only when the first one appears. */
class Violations {
  list: string[] | undefined;
  add(path: string, message: string): void {
    (this.list ??= []).push(`${path}: ${message}`);
  }
  throwIfAny(): void {
    const l = this.list;
    if (l === undefined) return;
    const message = l.length === 1 ? `validation error: ${l[0]}` : `validation errors:\n - ${l.join('\n - ')}`;
    throw new WardenError('ERR_REQUEST_INVALID', message);
  }
}

function str(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw typeError('string', field, v);
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw typeError('bool', field, v);
  return v;
}

/** Checks a `google.protobuf.Value`: finite numbers, bounded depth. Returns it unchanged. */
function checkValue(v: unknown, depth: number): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new WardenError('ERR_REQUEST_INVALID', `proto: invalid google.protobuf.Value: ${v}`);
    return;
  }
  if (depth >= MAX_ATTR_DEPTH) {
    throw new WardenError('ERR_REQUEST_INVALID', `attribute value exceeds max depth (${MAX_ATTR_DEPTH})`);
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkValue(v[i], depth + 1);
    return;
  }
  // JSON.parse output only: plain objects.
  for (const k in v as Obj) checkValue((v as Obj)[k], depth + 1);
}

function attrMap(v: unknown, field: string, path: string, out: Violations): Attributes {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw typeError('map', field, v);
  for (const k in v) {
    if (k.length === 0) out.add(`${path}[""]`, 'must be at least 1 characters');
    checkValue(v[k], 1);
  }
  return v as Attributes;
}

/** A repeated string field with min_len 1 items and uniqueness. Returns [] when unset. */
function stringList(v: unknown, field: string, path: string, out: Violations): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw typeError('repeated string', field, v);
  let dup = false;
  for (let i = 0; i < v.length; i++) {
    const s: unknown = v[i];
    if (typeof s !== 'string') throw typeError('string', field, s);
    if (s.length === 0) out.add(`${path}[${i}]`, 'must be at least 1 characters');
    // Batches are small (limits default to 50): a quadratic scan beats allocating a Set.
    if (!dup) for (let j = 0; j < i; j++) if (v[j] === s) { dup = true; break; }
  }
  if (dup) out.add(path, 'repeated value must contain unique items');
  return v as string[];
}

function parsePrincipal(v: unknown, out: Violations): Principal | undefined {
  if (v === undefined || v === null) {
    out.add('principal', 'value is required');
    return undefined;
  }
  if (!isObj(v)) throw typeError('message', 'principal', v);
  let id: string | undefined;
  let roles: string[] = [];
  let attr: Attributes = {};
  let policyVersion: string | undefined;
  let scope: string | undefined;
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'id':
        id = str(x, 'id');
        break;
      case 'roles':
        roles = stringList(x, 'roles', 'principal.roles', out);
        break;
      case 'attr':
        attr = attrMap(x, 'attr', 'principal.attr', out);
        break;
      case 'policyVersion':
      case 'policy_version':
        policyVersion = str(x, 'policyVersion');
        break;
      case 'scope':
        scope = str(x, 'scope');
        break;
      default:
        throw unknownField(k);
    }
  }
  if (id === undefined || id === '') out.add('principal.id', 'value is required');
  if (policyVersion !== undefined && !POLICY_VERSION_RE.test(policyVersion)) {
    out.add('principal.policy_version', POLICY_VERSION_MSG);
  }
  if (roles.length === 0) out.add('principal.roles', 'value is required');
  if (scope !== undefined && !SCOPE_RE.test(scope)) out.add('principal.scope', SCOPE_MSG);
  const p: Principal = { id: id ?? '', roles, attr };
  if (policyVersion !== undefined && policyVersion !== '') p.policyVersion = policyVersion;
  if (scope !== undefined && scope !== '') p.scope = scope;
  return p;
}

function parseResourceEntry(
  v: unknown,
  i: number,
  principal: Principal | undefined,
  requestId: string | undefined,
  out: Violations,
): CheckInput {
  const at = `resources[${i}]`;
  if (!isObj(v)) throw typeError('message', 'resources', v);
  let actions: string[] = [];
  let resource: unknown;
  for (const k in v) {
    if (k === 'actions') actions = stringList(v[k], 'actions', `${at}.actions`, out);
    else if (k === 'resource') resource = v[k];
    else throw unknownField(k);
  }
  if (actions.length === 0) out.add(`${at}.actions`, 'value is required');
  let kind: string | undefined;
  let id: string | undefined;
  let attr: Attributes = {};
  let policyVersion: string | undefined;
  let scope: string | undefined;
  if (resource === undefined || resource === null) {
    out.add(`${at}.resource`, 'value is required');
  } else {
    if (!isObj(resource)) throw typeError('message', 'resource', resource);
    for (const k in resource) {
      const x = resource[k];
      switch (k) {
        case 'kind':
          kind = str(x, 'kind');
          break;
        case 'id':
          id = str(x, 'id');
          break;
        case 'attr':
          attr = attrMap(x, 'attr', `${at}.resource.attr`, out);
          break;
        case 'policyVersion':
        case 'policy_version':
          policyVersion = str(x, 'policyVersion');
          break;
        case 'scope':
          scope = str(x, 'scope');
          break;
        default:
          throw unknownField(k);
      }
    }
    if (kind === undefined || kind === '') out.add(`${at}.resource.kind`, 'value is required');
    if (policyVersion !== undefined && !POLICY_VERSION_RE.test(policyVersion)) {
      out.add(`${at}.resource.policy_version`, POLICY_VERSION_MSG);
    }
    if (id === undefined || id === '') out.add(`${at}.resource.id`, 'value is required');
    if (scope !== undefined && !SCOPE_RE.test(scope)) out.add(`${at}.resource.scope`, SCOPE_MSG);
  }
  const input: CheckInput = {
    principal: principal as Principal,
    resource: { kind: kind ?? '', id: id ?? '', attr },
    actions,
  };
  if (requestId !== undefined) input.requestId = requestId;
  if (policyVersion !== undefined && policyVersion !== '') input.resource.policyVersion = policyVersion;
  if (scope !== undefined && scope !== '') input.resource.scope = scope;
  return input;
}

function parseJwtRef(v: unknown, path: string, out: Violations): { token: string; keySetId: string | undefined } | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError('message', 'jwt', v);
  let token: string | undefined;
  let keySetId: string | undefined;
  for (const k in v) {
    if (k === 'token') token = str(v[k], 'token');
    else if (k === 'keySetId' || k === 'key_set_id') keySetId = str(v[k], 'keySetId');
    else throw unknownField(k);
  }
  if (token === undefined || token === '') {
    out.add(`${path}.token`, 'value is required');
    return undefined;
  }
  return { token, keySetId: keySetId === '' ? undefined : keySetId };
}

function parseAuxData(v: unknown, req: CheckResourcesRequest, out: Violations): void {
  if (v === undefined || v === null) return;
  if (!isObj(v)) throw typeError('message', 'auxData', v);
  for (const k in v) {
    const x = v[k];
    if (k === 'jwt') req.jwt = parseJwtRef(x, 'aux_data.jwt', out);
    else if (k === 'jwts') {
      if (x === undefined || x === null) continue;
      if (!isObj(x)) throw typeError('map', 'jwts', x);
      const list: { name: string; token: string; keySetId: string | undefined }[] = [];
      for (const name in x) {
        const ref = parseJwtRef(x[name], `aux_data.jwts["${name}"]`, out);
        if (ref !== undefined) list.push({ name, ...ref });
      }
      req.jwts = list;
    } else throw unknownField(k);
  }
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

/**
 * Validates a parsed JSON body as a Cerbos `CheckResourcesRequest` and returns one `CheckInput`
 * per resource entry (sharing the principal object). Throws `ERR_REQUEST_INVALID` or
 * `ERR_REQUEST_LIMIT_EXCEEDED` with Cerbos's messages.
 */
export function parseCheckResourcesRequest(body: unknown, limits: RequestLimitsConfig): CheckResourcesRequest {
  if (!isObj(body)) {
    const token = Array.isArray(body) ? '[' : JSON.stringify(body);
    throw new WardenError('ERR_REQUEST_INVALID', `proto: syntax error: unexpected token ${token}`);
  }
  const out = new Violations();
  const req: CheckResourcesRequest = { requestId: undefined, includeMeta: false, inputs: [], jwt: undefined, jwts: undefined };
  let principalRaw: unknown;
  let resourcesRaw: unknown;
  let auxRaw: unknown;
  for (const k in body) {
    const x = body[k];
    switch (k) {
      case 'requestId':
      case 'request_id':
        req.requestId = str(x, 'requestId');
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
        req.includeMeta = bool(x, 'includeMeta');
        break;
      case 'requestContext':
      case 'request_context':
        parseRequestContext(x);
        break;
      default:
        throw unknownField(k);
    }
  }
  if (req.requestId === '') req.requestId = undefined;
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

  if (resources.length > limits.maxResourcesPerRequest) {
    throw new WardenError(
      'ERR_REQUEST_LIMIT_EXCEEDED',
      `number of resources in batch (${resources.length}) exceeds configured limit (${limits.maxResourcesPerRequest})`,
    );
  }
  for (const input of req.inputs) {
    if (input.actions.length > limits.maxActionsPerResource) {
      throw new WardenError(
        'ERR_REQUEST_LIMIT_EXCEEDED',
        `number of actions (${input.actions.length}) exceeds configured limit (${limits.maxActionsPerResource})`,
      );
    }
  }
  return req;
}
