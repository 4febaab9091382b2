/**
 * Envoy's ext_authz gRPC messages (`envoy.service.auth.v3`), as `@grpc/proto-loader` decodes and
 * encodes them (camelCase fields, maps as objects, `bytes` as Buffers, oneofs by the member set):
 * a `CheckRequest` becomes the {@link ForwardedRequest} the HTTP mode also builds (then read by
 * `parseForwardedRequest`), and a {@link GatewayVerdict} becomes a `CheckResponse`. Pure: wire
 * format in and out, no decision logic.
 */
import { WardenError, type JsonValue } from '@warden/core';
import type { ForwardedRequest } from '../http/forwarded-request.js';
import { denialJson, type GatewayVerdict } from '../reply/gateway-verdict.js';

type Msg = Record<string, unknown>;

const isMsg = (v: unknown): v is Msg => typeof v === 'object' && v !== null && !Array.isArray(v);

/** google.rpc.Code values used in `CheckResponse.status`. */
const RPC_OK = 0;
const RPC_INVALID_ARGUMENT = 3;

function bad(message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', message);
}

/** The parts of a `CheckRequest` that describe the HTTP request. */
export interface EnvoyHttpAttributes {
  readonly http: Msg;
  readonly settings: Record<string, string>;
}

/**
 * The HTTP request attributes of a `CheckRequest`. Throws `ERR_REQUEST_INVALID` when the message
 * is not an HTTP check at all (no `attributes`, `attributes.request` or `attributes.request.http`):
 * that is the caller's mistake (a network-filter check, a misconfigured client), answered as a
 * gRPC error rather than an HTTP denial.
 */
export function envoyHttpAttributesOrThrow(message: unknown): EnvoyHttpAttributes {
  if (!isMsg(message) || !isMsg(message['attributes'])) throw bad('`attributes` is required');
  const attributes = message['attributes'];
  const request = attributes['request'];
  if (!isMsg(request) || !isMsg(request['http'])) throw bad('`attributes.request.http` is required (Warden authorizes HTTP requests)');
  const ext = attributes['contextExtensions'];
  const settings: Record<string, string> = {};
  if (isMsg(ext)) for (const k of Object.keys(ext)) if (typeof ext[k] === 'string') settings[k] = ext[k];
  return { http: request['http'], settings };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Headers by lower-cased name: the merged `headers` map, or the raw `header_map` (one value per name). */
function headersOf(http: Msg): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = Object.create(null) as Record<string, string | undefined>;
  const map = http['headers'];
  if (isMsg(map) && Object.keys(map).length > 0) {
    for (const k of Object.keys(map)) {
      const key = k.toLowerCase();
      // Envoy sends lower-cased names; two names differing only in case are not one header.
      if (key in out) throw bad(`header \`${key}\` is sent more than once`);
      out[key] = str(map[k]);
    }
    return out;
  }
  const raw = http['headerMap'];
  const list = isMsg(raw) && Array.isArray(raw['headers']) ? (raw['headers'] as unknown[]) : [];
  for (const h of list) {
    if (!isMsg(h)) continue;
    const key = str(h['key']).toLowerCase();
    const value = Buffer.isBuffer(h['rawValue']) && h['rawValue'].length > 0 ? h['rawValue'].toString('latin1') : str(h['value']);
    // SECURITY: two values of one header are never merged or picked from; the check sees one.
    if (key in out) throw bad(`header \`${key}\` is sent more than once`);
    out[key] = value;
  }
  return out;
}

/**
 * The forwarded request of an HTTP check, for `parseForwardedRequest`. Throws
 * `ERR_REQUEST_INVALID` for a body over `bodyLimit` bytes (the HTTP mode's limit).
 */
export function envoyForwardedRequest(a: EnvoyHttpAttributes, bodyLimit: number): { request: ForwardedRequest; headerNames: readonly string[] } {
  const http = a.http;
  const headers = headersOf(http);
  const rawBody = http['rawBody'];
  let body: string | undefined;
  if (Buffer.isBuffer(rawBody) && rawBody.length > 0) {
    if (rawBody.length > bodyLimit) throw bad('request body too large');
    body = rawBody.toString('utf8');
  } else if (typeof http['body'] === 'string' && http['body'] !== '') {
    if (Buffer.byteLength(http['body']) > bodyLimit) throw bad('request body too large');
    body = http['body'];
  }
  const host = str(http['host']) || headers[':authority'] || headers['host'];
  const request: ForwardedRequest = {
    method: str(http['method']),
    path: str(http['path']),
    ...(host !== undefined && host !== '' ? { host } : {}),
    headers,
    ...(body !== undefined ? { body } : {}),
    settings: a.settings,
  };
  return { request, headerNames: Object.keys(headers) };
}

/** A header to set, replacing any value the request already has (Envoy `append: false`). */
function setHeader(key: string, value: string): Msg {
  return { header: { key, value }, append: { value: false } };
}

/** `google.protobuf.Value` to encode (the member that is set names the kind). */
type ValueMessage =
  | { nullValue: 'NULL_VALUE' }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { listValue: { values: ValueMessage[] } }
  | { structValue: { fields: Record<string, ValueMessage> } };

function toValue(v: JsonValue | undefined): ValueMessage {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: struct(v as Record<string, JsonValue>) };
}

/** A JSON object as a `google.protobuf.Struct` to encode. */
function struct(o: Record<string, JsonValue>): { fields: Record<string, ValueMessage> } {
  const fields: Record<string, ValueMessage> = {};
  for (const k of Object.keys(o)) fields[k] = toValue(o[k]);
  return { fields };
}

/** What the allowed request's upstream must not receive: `x-warden-*` headers the client sent itself. */
function spoofedHeaders(requestHeaderNames: readonly string[], set: ReadonlySet<string>, identities: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const n of requestHeaderNames) if (n.startsWith('x-warden-') && !set.has(n) && !identities.has(n)) out.push(n);
  return out;
}

/** Where a verdict goes: the request's header names and the identity headers left untouched. */
export interface EnvoyAnswerContext {
  readonly requestHeaderNames: readonly string[];
  readonly identityHeaders: ReadonlySet<string>;
}

/**
 * A verdict as a `CheckResponse`: `status` always set; allowed: `ok_response` with the decision
 * id, policy version and hint headers (replacing, never appending to, what the client sent; any
 * other `x-warden-*` header the client sent is removed, so an upstream never reads a hint Warden
 * did not give) and `dynamic_metadata`; denied: `denied_response` with the HTTP status, headers
 * and the JSON body of the HTTP mode.
 */
export function envoyCheckResponse(v: GatewayVerdict, ctx: EnvoyAnswerContext): Msg {
  const meta: Record<string, JsonValue> = {};
  if (v.decisionId !== undefined) meta['decisionId'] = v.decisionId;
  if (v.policyVersion !== undefined) meta['policyVersion'] = v.policyVersion;
  const own: Msg[] = [];
  if (v.decisionId !== undefined) own.push(setHeader('x-warden-decision-id', v.decisionId));
  if (v.policyVersion !== undefined) own.push(setHeader('x-warden-policy-version', v.policyVersion));
  if (v.allowed) {
    const hints: Record<string, JsonValue> = {};
    const headers = [...own];
    const set = new Set(['x-warden-decision-id', 'x-warden-policy-version']);
    for (const h of v.hints) {
      headers.push(setHeader(h.header, h.value));
      set.add(h.header);
      hints[h.key] = h.typed;
    }
    meta['hints'] = hints;
    // SECURITY: metadata only: Envoy adds ok_response headers to the upstream request, and the
    // reservation id is the capability to settle tokens.
    if (v.reservationId !== undefined) meta['reservationId'] = v.reservationId;
    const remove = spoofedHeaders(ctx.requestHeaderNames, set, ctx.identityHeaders);
    return {
      status: { code: RPC_OK, message: '' },
      okResponse: { headers, ...(remove.length > 0 ? { headersToRemove: remove } : {}) },
      dynamicMetadata: struct(meta),
    };
  }
  const headers = [...own, setHeader('content-type', 'application/json')];
  if (v.challenge !== undefined) headers.push(setHeader('www-authenticate', v.challenge));
  return {
    status: { code: v.status.grpc, message: v.reasons.map((r) => r.code).join(', ') },
    deniedResponse: { status: { code: v.status.http }, headers, body: denialJson(v) },
    ...(Object.keys(meta).length > 0 ? { dynamicMetadata: struct(meta) } : {}),
  };
}

/** A request refused as malformed: the HTTP mode's 400 and `{"error": {code, message}}` body. */
export function envoyBadRequest(code: string, message: string): Msg {
  return {
    status: { code: RPC_INVALID_ARGUMENT, message },
    deniedResponse: { status: { code: 400 }, headers: [setHeader('content-type', 'application/json')], body: JSON.stringify({ error: { code, message } }) },
  };
}
