/**
 * Conversions between the Cerbos gRPC messages (as `@grpc/proto-loader` decodes and encodes them
 * with {@link CERBOS_PROTO_LOADER_OPTIONS}: camelCase fields, enums as names, `google.protobuf.Value`
 * as its oneof object) and the protojson shapes the HTTP API reads and writes. Requests become the
 * JSON body the HTTP validators take, so both transports reject and accept exactly the same
 * requests with the same messages; responses built for HTTP become messages field for field
 * (the JSON field names are the proto3 JSON names of the same fields).
 *
 * Proto3 cannot tell an empty string or list from an absent one, and neither can Cerbos: both
 * become "absent" here (which the validators report as "value is required" where one is).
 */
import type { JsonValue } from '@warden/core';
import type { PlanFilter, PlanOperand } from '@warden/decision';
import type { CerbosCheckResponse } from '../http/check-resources.response.js';
import type { CerbosPlanResponse } from '../http/plan-resources.response.js';

/** How the Cerbos protos are loaded (the shapes below depend on it). */
export const CERBOS_PROTO_LOADER_OPTIONS = {
  keepCase: false,
  enums: String,
  longs: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
} as const;

/** `google.protobuf.Value` as decoded (`kind` names the member that is set). */
export interface ValueMessage {
  kind?: string;
  nullValue?: string | number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, ValueMessage> };
  listValue?: { values?: ValueMessage[] };
}

type Msg = Record<string, unknown>;

function isMsg(v: unknown): v is Msg {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets `obj[key]`, also for the key `__proto__` (an own property, as JSON.parse makes it). */
function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** A decoded `google.protobuf.Value` as JSON; a Value with no member set is `null` (as Cerbos reads it). */
export function valueToJson(v: ValueMessage | null | undefined): JsonValue {
  if (v === null || v === undefined) return null;
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'structValue':
      return valueMapToJson(v.structValue?.fields);
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

/** `map<string, google.protobuf.Value>` as a JSON object. */
export function valueMapToJson(m: Record<string, ValueMessage> | undefined): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  if (m === undefined) return out;
  for (const k of Object.keys(m)) put(out, k, valueToJson(m[k]));
  return out;
}

/** JSON as a `google.protobuf.Value` to encode. */
export function jsonToValue(v: JsonValue | undefined): ValueMessage {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  const fields: Record<string, ValueMessage> = {};
  for (const k of Object.keys(v)) fields[k] = jsonToValue(v[k]);
  return { structValue: { fields } };
}

/** A proto3 string field: '' and absent are the same (undefined). */
function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A proto3 repeated field: empty and absent are the same (undefined). */
function list(v: unknown): unknown[] | undefined {
  return Array.isArray(v) && v.length > 0 ? v : undefined;
}

function attrOf(v: unknown): Record<string, JsonValue> | undefined {
  return isMsg(v) ? valueMapToJson(v as Record<string, ValueMessage>) : undefined;
}

function principalToJson(p: unknown): Msg | undefined {
  if (!isMsg(p)) return undefined;
  return { id: str(p['id']), policyVersion: str(p['policyVersion']), roles: list(p['roles']), attr: attrOf(p['attr']), scope: str(p['scope']) };
}

function resourceToJson(r: unknown): Msg | undefined {
  if (!isMsg(r)) return undefined;
  return { kind: str(r['kind']), policyVersion: str(r['policyVersion']), id: str(r['id']), attr: attrOf(r['attr']), scope: str(r['scope']) };
}

function jwtToJson(j: unknown): Msg | undefined {
  if (!isMsg(j)) return undefined;
  return { token: str(j['token']), keySetId: str(j['keySetId']) };
}

function auxDataToJson(a: unknown): Msg | undefined {
  if (!isMsg(a)) return undefined;
  const out: Msg = { jwt: jwtToJson(a['jwt']) };
  const jwts = a['jwts'];
  if (isMsg(jwts) && Object.keys(jwts).length > 0) {
    const named: Msg = {};
    for (const k of Object.keys(jwts)) put(named, k, jwtToJson(jwts[k]) ?? {});
    out['jwts'] = named;
  }
  return out;
}

function requestContextToJson(c: unknown): Msg | undefined {
  if (!isMsg(c)) return undefined;
  return { annotations: attrOf(c['annotations']) };
}

function entriesToJson(v: unknown): Msg[] | undefined {
  return list(v)?.map((e) => (isMsg(e) ? { actions: list(e['actions']), resource: resourceToJson(e['resource']) } : {}));
}

/** `cerbos.request.v1.CheckResourcesRequest` as the body of `POST /api/check/resources`. */
export function checkResourcesBody(m: Msg): Msg {
  return {
    requestId: str(m['requestId']),
    includeMeta: m['includeMeta'] === true,
    principal: principalToJson(m['principal']),
    resources: entriesToJson(m['resources']),
    auxData: auxDataToJson(m['auxData']),
    requestContext: requestContextToJson(m['requestContext']),
  };
}

/** `cerbos.request.v1.CheckResourceBatchRequest` as the body of `POST /api/check_resource_batch`. */
export function checkResourceBatchBody(m: Msg): Msg {
  return { requestId: str(m['requestId']), principal: principalToJson(m['principal']), resources: entriesToJson(m['resources']), auxData: auxDataToJson(m['auxData']) };
}

/** `cerbos.request.v1.CheckResourceSetRequest` as the body of `POST /api/check`. */
export function checkResourceSetBody(m: Msg): Msg {
  const r = m['resource'];
  let resource: Msg | undefined;
  if (isMsg(r)) {
    const instances: Msg = {};
    const raw = isMsg(r['instances']) ? r['instances'] : {};
    for (const id of Object.keys(raw)) {
      const inst = raw[id];
      put(instances, id, { attr: isMsg(inst) ? attrOf(inst['attr']) : undefined });
    }
    resource = { kind: str(r['kind']), policyVersion: str(r['policyVersion']), instances: Object.keys(instances).length > 0 ? instances : undefined, scope: str(r['scope']) };
  }
  return {
    requestId: str(m['requestId']),
    actions: list(m['actions']),
    principal: principalToJson(m['principal']),
    resource,
    includeMeta: m['includeMeta'] === true,
    auxData: auxDataToJson(m['auxData']),
  };
}

/** `cerbos.request.v1.PlanResourcesRequest` as the body of `POST /api/plan/resources`. */
export function planResourcesBody(m: Msg): Msg {
  const r = m['resource'];
  const body: Msg = {
    requestId: str(m['requestId']),
    action: str(m['action']),
    principal: principalToJson(m['principal']),
    resource: isMsg(r) ? { kind: str(r['kind']), attr: attrOf(r['attr']), policyVersion: str(r['policyVersion']), scope: str(r['scope']) } : undefined,
    auxData: auxDataToJson(m['auxData']),
    includeMeta: m['includeMeta'] === true,
    requestContext: requestContextToJson(m['requestContext']),
  };
  // `actions` only when sent: its presence is what makes the response echo `actions`.
  const actions = list(m['actions']);
  if (actions !== undefined) body['actions'] = actions;
  return body;
}

/** The HTTP `CheckResourcesResponse` as the message (output values as `google.protobuf.Value`). */
export function checkResourcesMessage(res: CerbosCheckResponse): Msg {
  return {
    ...res,
    results: res.results.map((r) =>
      r.outputs === undefined ? r : { ...r, outputs: r.outputs.map((o) => ({ ...o, ...(o.val !== undefined ? { val: jsonToValue(o.val) } : {}) })) },
    ),
  };
}

function operandMessage(o: PlanOperand): Msg {
  if ('value' in o) return { value: jsonToValue(o.value) };
  if ('variable' in o) return { variable: o.variable };
  return { expression: { operator: o.expression.operator, operands: o.expression.operands.map(operandMessage) } };
}

function filterMessage(f: PlanFilter): Msg {
  return f.condition === undefined ? { kind: f.kind } : { kind: f.kind, condition: operandMessage(f.condition) };
}

/** The HTTP `PlanResourcesResponse` as the message (filter values as `google.protobuf.Value`). */
export function planResourcesMessage(res: CerbosPlanResponse): Msg {
  return { ...res, filter: filterMessage(res.filter) };
}
