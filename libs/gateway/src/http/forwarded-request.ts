/**
 * A request a gateway forwards for authorization (Envoy ext_authz, nginx `auth_request`, Traefik
 * ForwardAuth) as one check: who calls (the bearer token, the agent and delegation headers), and
 * what is asked, read from the body when the gateway sends it, else from the route:
 *
 * - an MCP JSON-RPC body: `tools/call` is `invoke` on `mcp_tool` `<name>` (the call's arguments as
 *   `arguments`), `prompts/get` is `get` on `mcp_prompt`, `resources/read` is `read` on
 *   `mcp_resource`, any other method is that method on `mcp_server` `<host><path>`;
 * - an A2A JSON-RPC body: the called agent (`agent`, id `warden.id` or the route) and the task type, as
 *   {@link parseA2aRequest} reads it;
 * - an OpenAI-style body with a `model`: `invoke` on `model` `<model>` (`max_tokens`, `stream` and
 *   the endpoint as attributes);
 * - otherwise the route: resource kind, id and action from the gateway's settings (Envoy
 *   `context_extensions` `warden.kind`, `warden.id`, `warden.action`), else `route`
 *   `<host><path>` with the HTTP method, lower-cased, as the action.
 *
 * A body whose `content-type` says JSON but that does not parse is refused, never decided on the
 * route. Pure: no I/O, no policy logic. Every malformed part is an `ERR_REQUEST_INVALID` naming it.
 */
import { WardenError, type JsonValue } from '@warden/core';
import { parseA2aRequest } from '../a2a/a2a-request.js';

/** The forwarded request, as the adapter read it off its transport. */
export interface ForwardedRequest {
  /** The original request's method (upper case). */
  readonly method: string;
  /** The original request's path, query included. */
  readonly path: string;
  readonly host?: string;
  /**
   * Header names lower-cased. Read: `authorization`, the agent and delegation headers, `host`,
   * `content-type` (a body claimed to be JSON must be JSON) and `x-envoy-auth-partial-body`.
   */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The original body, when the gateway sends it. */
  readonly body?: string;
  /** Envoy's `context_extensions` (or another gateway's per-route settings). */
  readonly settings?: Readonly<Record<string, string>>;
}

/** Where the caller's identity is read from. */
export interface ForwardedRequestOptions {
  /** Header naming the acting agent (default `x-warden-agent`). */
  readonly agentHeader?: string;
  /** Header carrying a delegation token (default `x-warden-delegation`). */
  readonly delegationHeader?: string;
}

/** The check a forwarded request asks for. */
export interface ForwardedCheck {
  /** SECURITY: a credential; never logged or echoed. */
  readonly token?: string;
  readonly agent?: string;
  /** SECURITY: a credential. */
  readonly delegation?: string;
  readonly action: string;
  readonly resource: { readonly kind: string; readonly id: string; readonly attr: Record<string, JsonValue> };
  /** What the gateway saw, for policies (`request.context.http`). */
  readonly context: { readonly http: { readonly method: string; readonly path: string; readonly host: string } };
}

const NAME = /^[^\s]{1,256}$/;
const METHOD = /^[A-Z]{1,16}$/;
const MAX_TOKEN = 16 * 1024;

function bad(message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', message);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A header value used as an identity: bounded and without whitespace (so never two values in one). */
function identityHeader(v: string | undefined, name: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (v.length > MAX_TOKEN || /[\s,]/.test(v)) throw bad(`header \`${name}\` is not a single value without spaces`);
  return v;
}

function bearer(authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization === '') return undefined;
  const m = /^Bearer ([^\s,]+)$/i.exec(authorization);
  if (m === null) throw bad('header `authorization` must be `Bearer <token>`');
  const token = m[1] as string;
  if (token.length > MAX_TOKEN) throw bad('header `authorization` is too long');
  return token;
}

function name(v: unknown, what: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(`${what} must be a non-empty name without spaces (at most 256 characters)`);
  return v;
}

const MCP_METHODS = new Set(['initialize', 'ping', 'tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list', 'resources/read', 'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'completion/complete', 'logging/setLevel']);

/** The check of an MCP JSON-RPC call. */
function mcpCheck(rpc: Record<string, unknown>, route: string): Pick<ForwardedCheck, 'action' | 'resource'> {
  const method = rpc['method'] as string;
  const params = rpc['params'] === undefined ? {} : rpc['params'];
  if (!isObj(params)) throw bad('`params` must be an object');
  switch (method) {
    case 'tools/call': {
      const args = params['arguments'] === undefined ? {} : params['arguments'];
      if (!isObj(args)) throw bad('`params.arguments` must be an object');
      return { action: 'invoke', resource: { kind: 'mcp_tool', id: name(params['name'], '`params.name`'), attr: { arguments: args as Record<string, JsonValue>, server: route } } };
    }
    case 'prompts/get':
      return { action: 'get', resource: { kind: 'mcp_prompt', id: name(params['name'], '`params.name`'), attr: { server: route } } };
    case 'resources/read':
      return { action: 'read', resource: { kind: 'mcp_resource', id: name(params['uri'], '`params.uri`'), attr: { server: route } } };
    default:
      return { action: method, resource: { kind: 'mcp_server', id: route, attr: { method } } };
  }
}

/** `application/json`, `application/json-rpc`, `application/<x>+json`, with or without parameters. */
const JSON_TYPE = /^application\/(json|json-rpc|[a-z0-9!#$&^_.-]+\+json)\s*(;|$)/i;

function bodyCheck(body: string | undefined, headers: ForwardedRequest['headers'], route: string, path: string, target: string): Pick<ForwardedCheck, 'action' | 'resource'> | undefined {
  if (body === undefined || body.trim() === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    // SECURITY: a body claimed to be JSON that does not parse (malformed, or cut short by the
    // gateway's body limit) is refused: deciding on the route instead could allow what the
    // body asks for (a model, a tool) without ever checking it.
    if (JSON_TYPE.test(headers['content-type'] ?? '')) {
      throw bad(
        headers['x-envoy-auth-partial-body'] === 'true'
          ? 'the body was cut short by the gateway (`x-envoy-auth-partial-body`); raise its body limit (Envoy `with_request_body.max_request_bytes`) to at least the largest request'
          : 'the body is not JSON although `content-type` says it is',
      );
    }
    // Any other body that is not JSON says nothing a policy reads: the route decides.
    return undefined;
  }
  if (!isObj(json)) return undefined;
  if (json['jsonrpc'] === '2.0' && typeof json['method'] === 'string') {
    if (MCP_METHODS.has(json['method'])) return mcpCheck(json, route);
    const a2a = parseA2aRequest(json, { target });
    return { action: a2a.action, resource: a2a.resource };
  }
  if (typeof json['model'] === 'string') {
    const attr: Record<string, JsonValue> = { endpoint: path.split('?')[0] as string };
    const maxTokens = json['max_tokens'] ?? json['max_completion_tokens'];
    if (typeof maxTokens === 'number' && Number.isFinite(maxTokens)) attr['max_tokens'] = maxTokens;
    if (typeof json['stream'] === 'boolean') attr['stream'] = json['stream'];
    return { action: 'invoke', resource: { kind: 'model', id: name(json['model'], '`model`'), attr } };
  }
  return undefined;
}

/**
 * The check a forwarded request asks for.
 * @example parseForwardedRequest({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: 'Bearer t' }, body: '{"model":"gpt-4o"}' }, {}).resource // { kind: 'model', id: 'gpt-4o', ... }
 */
export function parseForwardedRequest(req: ForwardedRequest, options: ForwardedRequestOptions): ForwardedCheck {
  if (!METHOD.test(req.method)) throw bad('the original method is not an HTTP method');
  if (!req.path.startsWith('/') || req.path.length > 8192 || /[\s]/.test(req.path)) throw bad('the original path must start with `/` and hold no spaces');
  const host = req.host ?? req.headers['host'] ?? '';
  if (host.length > 256 || /[\s/]/.test(host)) throw bad('the original host is not a host name');
  const path = req.path.split('?')[0] as string;
  const route = `${host}${path}`;
  const token = bearer(req.headers['authorization']);
  const agent = identityHeader(req.headers[options.agentHeader ?? 'x-warden-agent'], options.agentHeader ?? 'x-warden-agent');
  const delegation = identityHeader(req.headers[options.delegationHeader ?? 'x-warden-delegation'], options.delegationHeader ?? 'x-warden-delegation');
  const s = req.settings ?? {};
  const fromBody = bodyCheck(req.body, req.headers, route, req.path, s['warden.id'] ?? route);
  const asked =
    fromBody ??
    (s['warden.kind'] !== undefined
      ? { action: name(s['warden.action'] ?? req.method.toLowerCase(), '`warden.action`'), resource: { kind: name(s['warden.kind'], '`warden.kind`'), id: name(s['warden.id'] ?? route, '`warden.id`'), attr: {} } }
      : { action: req.method.toLowerCase(), resource: { kind: 'route', id: name(route, 'the route'), attr: {} } });
  return {
    ...(token !== undefined ? { token } : {}),
    ...(agent !== undefined ? { agent } : {}),
    ...(delegation !== undefined ? { delegation } : {}),
    ...asked,
    context: { http: { method: req.method, path: req.path, host } },
  };
}
