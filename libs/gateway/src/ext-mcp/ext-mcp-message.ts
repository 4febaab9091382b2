/**
 * agentgateway's extMcp messages (`agentgateway.dev.ext_mcp.ExtMcp`) as checks. agentgateway asks
 * an external policy server before it forwards an MCP request (`CheckRequest`: the backend's name,
 * the JSON-RPC method and `params`) and before it returns a result (`CheckResponse`: the same with
 * the JSON-RPC `result`), with `metadata_context`: values its configuration computes per request
 * with CEL (one field per configured key).
 *
 * Who calls, read from `metadata_context` (the keys Warden reads; any other key is refused, so a
 * misspelt key never silently drops a credential):
 *
 * - `authorization`: `Bearer <token>` (e.g. `request.headers.authorization`), or `token`: the bare
 *   token; the subject's credential, resolved by the same resolvers as `/v1/check`'s `subject.token`;
 * - `agent`: the acting agent's id, or (trusted gateways only) `{ id, token?, roles?, attr? }`;
 *   `agentToken`: the agent's credential;
 * - `delegation`: a delegation token the agent holds (needs `agent`);
 * - `subject`: `{ id, roles, attr? }`, a subject stated directly (trusted gateways only);
 * - `context`: an object, the check's `request.context`.
 *
 * What is asked, with ids as the MCP proxy names them (`<server>/<name>`, the server being the
 * backend's `service_name`), so one policy set and one set of resolvers serve both:
 *
 * - request `tools/call`: `invoke` on `mcp_tool` `<service>/<params.name>`, attributes `server`,
 *   `name` and `arguments`; `prompts/get`: `get` on `mcp_prompt` `<service>/<params.name>`
 *   (`server`, `name`, `arguments`); `resources/read`: `read` on `mcp_resource`
 *   `<service>/<params.uri>` (`server`, `uri`); any other request passes;
 * - response `tools/list` (`invoke` on `mcp_tool`), `prompts/list` (`list` on `mcp_prompt`),
 *   `resources/list` (`list` on `mcp_resource`): the listed entries, to filter; any other response
 *   passes.
 *
 * Pure: no I/O, no policy logic. Every malformed part is an `ERR_REQUEST_INVALID` naming it.
 */
import { WardenError, type JsonValue } from '@warden/core';

/** An extMcp message with its `google.protobuf.Struct` fields as JSON (absent: undefined). */
export interface ExtMcpMessage {
  readonly serviceName: unknown;
  readonly method: unknown;
  readonly metadataContext: unknown;
  /** `mcp_request` (the JSON-RPC params) or `mcp_response` (the JSON-RPC result). */
  readonly body: unknown;
}

type JsonObject = Record<string, JsonValue>;

/** Who calls, as `metadata_context` states it. SECURITY: `token`, `agent.token` and `delegation` are credentials. */
export interface ExtMcpIdentity {
  readonly token: string | undefined;
  readonly subject: { readonly id: string; readonly roles: string[]; readonly attr: JsonObject } | undefined;
  readonly agent: { readonly id: string; readonly token?: string; readonly roles?: string[]; readonly attr?: JsonObject } | undefined;
  readonly delegation: string | undefined;
  readonly context: JsonObject;
  /** True when the caller states a subject or agent attributes, which only a trusted gateway may. */
  readonly needsTrust: boolean;
  /** True when any credential or stated identity is present. */
  readonly present: boolean;
}

/** One resource to decide. */
export interface ExtMcpResource {
  readonly kind: string;
  readonly id: string;
  readonly attr: JsonObject;
}

/** What a `CheckRequest` asks. */
export type ExtMcpRequestCheck =
  | { readonly kind: 'check'; readonly method: string; readonly identity: ExtMcpIdentity; readonly action: string; readonly resource: ExtMcpResource; readonly what: string }
  | { readonly kind: 'pass'; readonly method: string; readonly identity: ExtMcpIdentity };

/** What a `CheckResponse` asks: entries of a listing to filter, or nothing. */
export type ExtMcpResponseCheck =
  | {
      readonly kind: 'filter';
      readonly method: string;
      readonly identity: ExtMcpIdentity;
      /** The field of the result holding the entries. */
      readonly field: 'tools' | 'prompts' | 'resources';
      readonly action: string;
      readonly resourceKind: string;
      /** One per listed entry, in the listing's order. */
      readonly entries: readonly ExtMcpResource[];
      /** The whole result (the filtered one replaces `field`). */
      readonly result: JsonObject;
    }
  | { readonly kind: 'pass'; readonly method: string; readonly identity: ExtMcpIdentity };

/** The keys of `metadata_context` Warden reads. */
export const EXT_MCP_METADATA_KEYS = ['authorization', 'token', 'agent', 'agentToken', 'delegation', 'subject', 'context'] as const;

const KEYS = new Set<string>(EXT_MCP_METADATA_KEYS);
const NAME = /^[^\s]{1,256}$/;
/** A backend name: it prefixes resource ids as `<service>/...`, so it holds no `/`. */
const SERVICE = /^[^\s/]{1,256}$/;
const METHOD = /^[A-Za-z][A-Za-z0-9_./-]{0,127}$/;
const URI = /^[^\s]{1,4096}$/;
const MAX_TOKEN = 16 * 1024;
const MAX_DEPTH = 32;

function bad(message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', message);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v` is plain JSON within the nesting limit (the Struct decoder guarantees the rest). */
function json(v: unknown, field: string, depth = 0): JsonValue {
  if (depth > MAX_DEPTH) throw bad(`${field}: nested more than ${MAX_DEPTH} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad(`${field}: not a finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => json(x, `${field}[${i}]`, depth + 1));
  if (isObj(v)) {
    for (const k of Object.keys(v)) json(v[k], `${field}.${k}`, depth + 1);
    return v as JsonObject;
  }
  throw bad(`${field}: not a JSON value`);
}

function object(v: unknown, field: string): JsonObject {
  if (!isObj(v)) throw bad(`${field} must be an object`);
  return json(v, field) as JsonObject;
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(`${field} must be a non-empty name without spaces (at most 256 characters)`);
  return v;
}

function token(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_TOKEN || /\s/.test(v)) throw bad(`${field} must be a token (a non-empty string without spaces, at most ${MAX_TOKEN} characters)`);
  return v;
}

function roles(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw bad(`${field} must be a non-empty list of role names`);
  const out = v.map((r, i) => name(r, `${field}[${i}]`));
  if (new Set(out).size !== out.length) throw bad(`${field} lists a role twice`);
  return out;
}

/** A value the gateway's CEL evaluated to null counts as absent. */
const given = (v: unknown): boolean => v !== undefined && v !== null;

/**
 * Who calls, from `metadata_context`.
 * @example parseExtMcpIdentity({ authorization: 'Bearer t', agent: 'bot' }).token // 't'
 */
export function parseExtMcpIdentity(metadata: unknown): ExtMcpIdentity {
  const m = metadata === undefined || metadata === null ? {} : metadata;
  if (!isObj(m)) throw bad('`metadata_context` must be an object');
  for (const k of Object.keys(m)) if (!KEYS.has(k)) throw bad(`\`metadata_context.${k}\`: unknown key (Warden reads ${EXT_MCP_METADATA_KEYS.map((x) => `\`${x}\``).join(', ')})`);
  let needsTrust = false;

  let tok: string | undefined;
  if (given(m['authorization'])) {
    const a = m['authorization'];
    const match = typeof a === 'string' ? /^Bearer ([^\s,]+)$/i.exec(a.trim()) : null;
    if (match === null) throw bad('`metadata_context.authorization` must be `Bearer <token>`');
    tok = token(match[1], '`metadata_context.authorization`');
  }
  if (given(m['token'])) {
    const t = token(m['token'], '`metadata_context.token`');
    if (tok !== undefined && tok !== t) throw bad('`metadata_context.authorization` and `metadata_context.token` name different tokens');
    tok = t;
  }

  let subject: ExtMcpIdentity['subject'];
  if (given(m['subject'])) {
    const s = m['subject'];
    if (!isObj(s)) throw bad('`metadata_context.subject` must be an object with `id` and `roles`');
    for (const k of Object.keys(s)) if (k !== 'id' && k !== 'roles' && k !== 'attr') throw bad(`\`metadata_context.subject.${k}\`: unknown field`);
    if (tok !== undefined) throw bad('`metadata_context`: give either a token or a `subject`, not both');
    subject = { id: name(s['id'], '`metadata_context.subject.id`'), roles: roles(s['roles'], '`metadata_context.subject.roles`'), attr: given(s['attr']) ? object(s['attr'], '`metadata_context.subject.attr`') : {} };
    needsTrust = true;
  }

  let agent: { id: string; token?: string; roles?: string[]; attr?: JsonObject } | undefined;
  if (given(m['agent'])) {
    const a = m['agent'];
    if (typeof a === 'string') agent = { id: name(a, '`metadata_context.agent`') };
    else if (isObj(a)) {
      for (const k of Object.keys(a)) if (k !== 'id' && k !== 'token' && k !== 'roles' && k !== 'attr') throw bad(`\`metadata_context.agent.${k}\`: unknown field`);
      agent = { id: name(a['id'], '`metadata_context.agent.id`') };
      if (given(a['token'])) agent.token = token(a['token'], '`metadata_context.agent.token`');
      if (given(a['roles'])) {
        agent.roles = roles(a['roles'], '`metadata_context.agent.roles`');
        needsTrust = true;
      }
      if (given(a['attr'])) {
        agent.attr = object(a['attr'], '`metadata_context.agent.attr`');
        needsTrust = true;
      }
    } else throw bad('`metadata_context.agent` must be an agent id or an object with `id`');
  }
  if (given(m['agentToken'])) {
    if (agent === undefined) throw bad('`metadata_context.agentToken` needs `metadata_context.agent`: the agent it identifies');
    const t = token(m['agentToken'], '`metadata_context.agentToken`');
    if (agent.token !== undefined && agent.token !== t) throw bad('`metadata_context.agentToken` and `metadata_context.agent.token` differ');
    agent.token = t;
  }
  const delegation = given(m['delegation']) ? token(m['delegation'], '`metadata_context.delegation`') : undefined;
  if (delegation !== undefined && agent === undefined) throw bad('`metadata_context.delegation` needs `metadata_context.agent`: the agent that holds it');
  const context = given(m['context']) ? object(m['context'], '`metadata_context.context`') : {};
  return { token: tok, subject, agent, delegation, context, needsTrust, present: tok !== undefined || subject !== undefined || agent !== undefined || delegation !== undefined };
}

function methodOf(v: unknown): string {
  if (v === undefined || v === null || v === '') throw bad('`method` is required (the JSON-RPC method)');
  if (typeof v !== 'string' || !METHOD.test(v)) throw bad('`method` is not a JSON-RPC method name');
  return v;
}

function serviceOf(v: unknown): string {
  if (v === undefined || v === null || v === '') throw bad('`service_name` is required (the MCP backend)');
  if (typeof v !== 'string' || !SERVICE.test(v)) throw bad('`service_name` must be a backend name without spaces or `/` (at most 256 characters)');
  return v;
}

function paramsOf(v: unknown, method: string): Record<string, unknown> {
  if (v === undefined || v === null) throw bad(`\`mcp_request\` is required for \`${method}\` (the JSON-RPC params)`);
  if (!isObj(v)) throw bad('`mcp_request` must be an object (the JSON-RPC params)');
  return v;
}

function argumentsOf(v: unknown): JsonObject {
  return given(v) ? object(v, '`mcp_request.arguments`') : {};
}

/**
 * The check a `CheckRequest` asks for.
 * @example parseExtMcpRequest({ serviceName: 'github', method: 'tools/call', metadataContext: { token: 't' }, body: { name: 'search', arguments: {} } })
 */
export function parseExtMcpRequest(m: ExtMcpMessage): ExtMcpRequestCheck {
  const method = methodOf(m.method);
  const identity = parseExtMcpIdentity(m.metadataContext);
  switch (method) {
    case 'tools/call': {
      const service = serviceOf(m.serviceName);
      const p = paramsOf(m.body, method);
      const tool = name(p['name'], '`mcp_request.name`');
      return { kind: 'check', method, identity, action: 'invoke', resource: { kind: 'mcp_tool', id: `${service}/${tool}`, attr: { server: service, name: tool, arguments: argumentsOf(p['arguments']) } }, what: `call tool \`${tool}\`` };
    }
    case 'prompts/get': {
      const service = serviceOf(m.serviceName);
      const p = paramsOf(m.body, method);
      const prompt = name(p['name'], '`mcp_request.name`');
      return { kind: 'check', method, identity, action: 'get', resource: { kind: 'mcp_prompt', id: `${service}/${prompt}`, attr: { server: service, name: prompt, arguments: argumentsOf(p['arguments']) } }, what: `get prompt \`${prompt}\`` };
    }
    case 'resources/read': {
      const service = serviceOf(m.serviceName);
      const p = paramsOf(m.body, method);
      const uri = p['uri'];
      if (typeof uri !== 'string' || !URI.test(uri)) throw bad('`mcp_request.uri` must be a URI without spaces');
      return { kind: 'check', method, identity, action: 'read', resource: { kind: 'mcp_resource', id: `${service}/${uri}`, attr: { server: service, uri } }, what: `read resource \`${uri}\`` };
    }
    default:
      return { kind: 'pass', method, identity };
  }
}

const LISTINGS: Record<string, { field: 'tools' | 'prompts' | 'resources'; action: string; resourceKind: string }> = {
  'tools/list': { field: 'tools', action: 'invoke', resourceKind: 'mcp_tool' },
  'prompts/list': { field: 'prompts', action: 'list', resourceKind: 'mcp_prompt' },
  'resources/list': { field: 'resources', action: 'list', resourceKind: 'mcp_resource' },
};

function optText(v: unknown, field: string): string | undefined {
  if (!given(v)) return undefined;
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
}

/** One listed entry (at `at`, e.g. `mcp_response.tools[0]`) as a resource: its id, and the attributes the MCP proxy gives it. */
function entryOf(field: 'tools' | 'prompts' | 'resources', resourceKind: string, service: string, v: unknown, at: string): ExtMcpResource {
  if (!isObj(v)) throw bad(`\`${at}\` must be an object`);
  if (field === 'resources') {
    const uri = v['uri'];
    if (typeof uri !== 'string' || !URI.test(uri)) throw bad(`\`${at}.uri\` must be a URI without spaces`);
    const label = optText(v['name'], `\`${at}.name\``);
    const mimeType = optText(v['mimeType'], `\`${at}.mimeType\``);
    return { kind: resourceKind, id: `${service}/${uri}`, attr: { server: service, uri, ...(label !== undefined ? { name: label } : {}), ...(mimeType !== undefined ? { mimeType } : {}) } };
  }
  const n = name(v['name'], `\`${at}.name\``);
  const description = optText(v['description'], `\`${at}.description\``);
  const attr: JsonObject = { server: service, name: n, ...(description !== undefined ? { description } : {}) };
  if (field === 'tools' && given(v['annotations'])) attr['annotations'] = object(v['annotations'], `\`${at}.annotations\``);
  return { kind: resourceKind, id: `${service}/${n}`, attr };
}

/**
 * What a `CheckResponse` asks for: the entries of a `tools/list`, `prompts/list` or
 * `resources/list` result to filter, or nothing.
 * @example parseExtMcpResponse({ serviceName: 'github', method: 'tools/list', metadataContext: { token: 't' }, body: { tools: [{ name: 'search' }] } })
 */
export function parseExtMcpResponse(m: ExtMcpMessage): ExtMcpResponseCheck {
  const method = methodOf(m.method);
  const identity = parseExtMcpIdentity(m.metadataContext);
  const listing = LISTINGS[method];
  if (listing === undefined) return { kind: 'pass', method, identity };
  const service = serviceOf(m.serviceName);
  if (!isObj(m.body)) throw bad(`\`mcp_response\` is required for \`${method}\` (the JSON-RPC result)`);
  const result = json(m.body, '`mcp_response`') as JsonObject;
  const listed = result[listing.field];
  if (!Array.isArray(listed)) throw bad(`\`mcp_response.${listing.field}\` must be a list`);
  const entries = listed.map((v, i) => entryOf(listing.field, listing.resourceKind, service, v, `mcp_response.${listing.field}[${i}]`));
  // SECURITY: two entries with one id would get one decision for two different descriptions.
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.id)) throw bad(`\`mcp_response.${listing.field}\` lists \`${e.id.slice(service.length + 1)}\` more than once`);
    seen.add(e.id);
  }
  return { kind: 'filter', method, identity, field: listing.field, action: listing.action, resourceKind: listing.resourceKind, entries, result };
}
