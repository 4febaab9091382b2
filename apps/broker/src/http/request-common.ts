/**
 * The parts of Cerbos's check request validators that every check API shares (CheckResources,
 * CheckResourceBatch, CheckResourceSet): protojson rules for scalars, maps and lists (camelCase
 * or proto field names, `null` means unset, unknown fields rejected), the `Principal`, `Resource`
 * and `AuxData` messages, buf.validate violations and the request limits. Messages follow Cerbos
 * 0.55 (checked against the real binary), including the order of violations: by field number
 * within each message, a nested message's violations where its field comes, and for a repeated
 * field the uniqueness violation before the per-item ones.
 *
 * SECURITY: every malformed request is an `ERR_REQUEST_INVALID` (400), never a partial input.
 */
import { WardenError, type Attributes, type CheckInput, type Principal } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** A validated check request of any of the three APIs, ready to evaluate once aux data is verified. */
export interface CheckRequest {
  requestId: string | undefined;
  includeMeta: boolean;
  /** One engine input per resource, sharing the principal object; ids and kinds as sent. */
  inputs: CheckInput[];
  jwt: JwtRef | undefined;
  /** `auxData.jwts`: named tokens (verified, claims not yet passed to the engine). */
  jwts: (JwtRef & { name: string })[] | undefined;
  /** The decision's trace when tracing is on and the request sampled (set by the transport, not the body). */
  trace?: DecisionTrace | undefined;
}

/** `auxData.jwt` (or one entry of `auxData.jwts`) as sent. */
export interface JwtRef {
  token: string;
  keySetId: string | undefined;
}

/** Deepest nesting accepted inside an attribute value. */
export const MAX_ATTR_DEPTH = 64;

const POLICY_VERSION_RE = /^\w*$/;
const SCOPE_RE = /^(^$|\.|[0-9a-zA-Z][\w-]*(\.\w[\w-]*)*)$/;
const POLICY_VERSION_MSG = 'does not match regex pattern `^[\\w]*$`';
const SCOPE_MSG = 'does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** protojson's error for a value of the wrong JSON type. */
export function typeError(kind: string, field: string, value: unknown): WardenError {
  let shown: string;
  try {
    shown = JSON.stringify(value)?.slice(0, 40) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new WardenError('ERR_REQUEST_INVALID', `proto: invalid value for ${kind} field ${field}: ${shown}`);
}

export function unknownField(name: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `proto: unknown field ${JSON.stringify(name)}`);
}

/** The body must be a JSON object (protojson's message). */
export function requireObjectBody(body: unknown): Obj {
  if (isObj(body)) return body;
  const token = Array.isArray(body) ? '[' : JSON.stringify(body);
  throw new WardenError('ERR_REQUEST_INVALID', `proto: syntax error: unexpected token ${token}`);
}

/** Collects buf.validate-style violations; allocated only when the first one appears. */
export class Violations {
  list: string[] | undefined;
  add(path: string, message: string): void {
    (this.list ??= []).push(`${path}: ${message}`);
  }
  /** A message-level rule's violation (no field path), e.g. PlanResources' `action` xor `actions`. */
  addRule(message: string): void {
    (this.list ??= []).push(message);
  }
  /** `add` for field `name` of the message at `prefix` ('' for the request itself). */
  addField(prefix: string, name: string, message: string): void {
    this.add(prefix === '' ? name : `${prefix}.${name}`, message);
  }
  throwIfAny(): void {
    const l = this.list;
    if (l === undefined) return;
    const message = l.length === 1 ? `validation error: ${l[0]}` : `validation errors:\n - ${l.join('\n - ')}`;
    throw new WardenError('ERR_REQUEST_INVALID', message);
  }
}

export function str(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw typeError('string', field, v);
  return v;
}

export function bool(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw typeError('bool', field, v);
  return v;
}

/** `request_id`: the empty string means unset (Cerbos then omits it from the response). */
export function requestIdOf(v: unknown): string | undefined {
  const id = str(v, 'requestId');
  return id === '' ? undefined : id;
}

/** Checks a `google.protobuf.Value`: finite numbers, bounded depth. */
export function checkValue(v: unknown, depth: number): void {
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

/**
 * The `attr` map (`map<string, google.protobuf.Value>`) of the message at `prefix`. `out` given:
 * keys must be non-empty (the engine's `Principal.attr` and `Resource.attr`); omitted: any key
 * (`AttributesMap.attr`).
 */
export function attrMap(v: unknown, prefix: string, out?: Violations): Attributes {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw typeError('map', 'attr', v);
  for (const k in v) {
    if (k.length === 0 && out !== undefined) out.addField(prefix, 'attr[""]', 'must be at least 1 characters');
    checkValue(v[k], 1);
  }
  return v as Attributes;
}

/**
 * A required repeated string field `name` (of the message at `prefix`) with unique, non-empty
 * items (`actions`, `roles`). Returns [] when unset; violations in Cerbos's order (required, or
 * unique then each empty item).
 */
export function stringList(v: unknown, prefix: string, name: string, out: Violations): string[] {
  if (v === undefined || v === null) {
    out.addField(prefix, name, 'value is required');
    return [];
  }
  if (!Array.isArray(v)) throw typeError('repeated string', name, v);
  if (v.length === 0) {
    out.addField(prefix, name, 'value is required');
    return [];
  }
  let dup = false;
  let empty = false;
  for (let i = 0; i < v.length; i++) {
    const s: unknown = v[i];
    if (typeof s !== 'string') throw typeError('string', name, s);
    if (s.length === 0) empty = true;
    // Batches are small (limits default to 50): a quadratic scan beats allocating a Set.
    if (!dup) for (let j = 0; j < i; j++) if (v[j] === s) { dup = true; break; }
  }
  if (dup) out.addField(prefix, name, 'repeated value must contain unique items');
  if (empty) for (let i = 0; i < v.length; i++) if (v[i] === '') out.addField(prefix, `${name}[${i}]`, 'must be at least 1 characters');
  return v as string[];
}

/** `policy_version` of the message at `prefix`: checked against Cerbos's pattern; '' means unset. */
export function policyVersionOf(v: unknown, prefix: string, out: Violations): string | undefined {
  const pv = str(v, 'policyVersion');
  if (pv === undefined || pv === '') return undefined;
  if (!POLICY_VERSION_RE.test(pv)) out.addField(prefix, 'policy_version', POLICY_VERSION_MSG);
  return pv;
}

/** `scope` of the message at `prefix`: checked against Cerbos's pattern; '' means unset. */
export function scopeOf(v: unknown, prefix: string, out: Violations): string | undefined {
  const s = str(v, 'scope');
  if (s === undefined || s === '') return undefined;
  if (!SCOPE_RE.test(s)) out.addField(prefix, 'scope', SCOPE_MSG);
  return s;
}

/** A required string field `name` (`id`, `kind`) of the message at `prefix`: missing or '' is "value is required". */
export function requiredStr(v: unknown, prefix: string, name: string, out: Violations): string {
  const s = str(v, name);
  if (s === undefined || s === '') {
    out.addField(prefix, name, 'value is required');
    return '';
  }
  return s;
}

/** `cerbos.engine.v1.Principal` (required): id 1, policy_version 2, roles 3, attr 4, scope 5. */
export function parsePrincipal(v: unknown, out: Violations): Principal | undefined {
  if (v === undefined || v === null) {
    out.add('principal', 'value is required');
    return undefined;
  }
  if (!isObj(v)) throw typeError('message', 'principal', v);
  let id: unknown;
  let roles: unknown;
  let attr: unknown;
  let policyVersion: unknown;
  let scope: unknown;
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'id':
        id = x;
        break;
      case 'roles':
        roles = x;
        break;
      case 'attr':
        attr = x;
        break;
      case 'policyVersion':
      case 'policy_version':
        policyVersion = x;
        break;
      case 'scope':
        scope = x;
        break;
      default:
        throw unknownField(k);
    }
  }
  const p: Principal = {
    id: requiredStr(id, 'principal', 'id', out),
    roles: [],
    attr: {},
  };
  const pv = policyVersionOf(policyVersion, 'principal', out);
  p.roles = stringList(roles, 'principal', 'roles', out);
  p.attr = attrMap(attr, 'principal', out);
  const sc = scopeOf(scope, 'principal', out);
  if (pv !== undefined) p.policyVersion = pv;
  if (sc !== undefined) p.scope = sc;
  return p;
}

/**
 * `cerbos.engine.v1.Resource` (required, at `path`): kind 1, policy_version 2, id 3, attr 4,
 * scope 5. Returns the engine input for it with `actions`.
 */
export function parseResource(
  v: unknown,
  path: string,
  principal: Principal | undefined,
  actions: string[],
  requestId: string | undefined,
  out: Violations,
): CheckInput {
  let kind = '';
  let id = '';
  let attr: Attributes = {};
  let policyVersion: string | undefined;
  let scope: string | undefined;
  if (v === undefined || v === null) {
    out.add(path, 'value is required');
  } else {
    if (!isObj(v)) throw typeError('message', 'resource', v);
    let kindRaw: unknown;
    let idRaw: unknown;
    let attrRaw: unknown;
    let pvRaw: unknown;
    let scopeRaw: unknown;
    for (const k in v) {
      const x = v[k];
      switch (k) {
        case 'kind':
          kindRaw = x;
          break;
        case 'id':
          idRaw = x;
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
    kind = requiredStr(kindRaw, path, 'kind', out);
    policyVersion = policyVersionOf(pvRaw, path, out);
    id = requiredStr(idRaw, path, 'id', out);
    attr = attrMap(attrRaw, path, out);
    scope = scopeOf(scopeRaw, path, out);
  }
  return newInput(principal, kind, id, attr, policyVersion, scope, actions, requestId);
}

/** One engine input (the principal may be undefined only when a violation was recorded). */
export function newInput(
  principal: Principal | undefined,
  kind: string,
  id: string,
  attr: Attributes,
  policyVersion: string | undefined,
  scope: string | undefined,
  actions: string[],
  requestId: string | undefined,
): CheckInput {
  const input: CheckInput = { principal: principal as Principal, resource: { kind, id, attr }, actions };
  if (requestId !== undefined) input.requestId = requestId;
  if (policyVersion !== undefined) input.resource.policyVersion = policyVersion;
  if (scope !== undefined) input.resource.scope = scope;
  return input;
}

function parseJwtRef(v: unknown, path: string, out: Violations): JwtRef | undefined {
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

/** `cerbos.request.v1.AuxData` (optional): sets `req.jwt` / `req.jwts`. */
export function parseAuxData(v: unknown, req: CheckRequest, out: Violations): void {
  if (v === undefined || v === null) return;
  if (!isObj(v)) throw typeError('message', 'auxData', v);
  for (const k in v) {
    const x = v[k];
    if (k === 'jwt') req.jwt = parseJwtRef(x, 'aux_data.jwt', out);
    else if (k === 'jwts') {
      if (x === undefined || x === null) continue;
      if (!isObj(x)) throw typeError('map', 'jwts', x);
      const list: (JwtRef & { name: string })[] = [];
      for (const name in x) {
        const ref = parseJwtRef(x[name], `aux_data.jwts["${name}"]`, out);
        if (ref !== undefined) list.push({ name, ...ref });
      }
      req.jwts = list;
    } else throw unknownField(k);
  }
}

/** Cerbos's request limits, checked after validation: resources first, then actions. */
export function enforceLimits(inputs: readonly CheckInput[], limits: RequestLimitsConfig): void {
  if (inputs.length > limits.maxResourcesPerRequest) {
    throw new WardenError(
      'ERR_REQUEST_LIMIT_EXCEEDED',
      `number of resources in batch (${inputs.length}) exceeds configured limit (${limits.maxResourcesPerRequest})`,
    );
  }
  for (const input of inputs) {
    if (input.actions.length > limits.maxActionsPerResource) {
      throw new WardenError(
        'ERR_REQUEST_LIMIT_EXCEEDED',
        `number of actions (${input.actions.length}) exceeds configured limit (${limits.maxActionsPerResource})`,
      );
    }
  }
}
