/**
 * The MCP proxy as an OAuth protected resource (MCP authorization; RFC 9728 metadata, RFC 6750
 * bearer errors): `GET /.well-known/oauth-protected-resource` describes it; a request without a
 * usable bearer token is answered 401 with `WWW-Authenticate: Bearer resource_metadata="..."`,
 * one whose token lacks a required scope 403 `error="insufficient_scope"`.
 *
 * With `mcp.token` the bearer token is verified as a JWT (a `jwt` resolver) whose audience must be
 * this resource (`mcp.resource`): a token issued for another resource is refused, so a token
 * meant elsewhere cannot be replayed here. Without it, the token is whatever the resolvers accept
 * as `subject.token`; one they cannot turn into a subject is refused the same way.
 *
 * SECURITY: the token is never logged or echoed; error descriptions name the failure class only.
 */
import { isResolverError, type ContextResolver } from '@warden/resolvers';
import type { ToolDiscoveryDeps } from '../plan/tool-discovery.js';
import { resolveMcpSubject } from './mcp-access.js';

/** What the proxy checks tokens against. */
export interface McpAuthOptions {
  /** `mcp.resource`, when configured (else derived from the request's host, for metadata only). */
  readonly resource: string | undefined;
  readonly authorizationServers: readonly string[];
  readonly requiredScopes: readonly string[];
  /** Verifies bearer JWTs for this resource (audience = `resource`), when `mcp.token` is set. */
  readonly verifier: ContextResolver | undefined;
}

/** The result of {@link authenticateMcp}. */
export type McpAuthResult =
  | { readonly ok: true; readonly token: string }
  | { readonly ok: false; readonly status: 401 | 403 | 503; readonly wwwAuthenticate?: string; readonly body: { error: string; error_description: string } };

/** Path of the protected-resource metadata (RFC 9728 section 3.1, for the resource path `/mcp`). */
export const MCP_METADATA_PATHS = ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource'];

/** The resource URL: configured, or this server's `/mcp` as the request reached it. */
export function resourceUrl(options: McpAuthOptions, host: string | undefined, protocol: string): string {
  return options.resource ?? `${protocol}://${host ?? '127.0.0.1'}/mcp`;
}

/** The RFC 9728 metadata document. */
export function protectedResourceMetadata(options: McpAuthOptions, resource: string): Record<string, unknown> {
  return {
    resource,
    authorization_servers: options.authorizationServers,
    bearer_methods_supported: ['header'],
    ...(options.requiredScopes.length > 0 ? { scopes_supported: options.requiredScopes } : {}),
    resource_name: 'Warden MCP proxy',
  };
}

function metadataUrl(resource: string): string {
  const u = new URL(resource);
  return `${u.origin}/.well-known/oauth-protected-resource${u.pathname === '/' ? '' : u.pathname}`;
}

function quoted(v: string): string {
  return `"${v.replace(/["\\]/g, '')}"`;
}

function challenge(resource: string, extra: Record<string, string>): string {
  const params = { ...extra, resource_metadata: metadataUrl(resource) };
  return `Bearer ${Object.entries(params)
    .map(([k, v]) => `${k}=${quoted(v)}`)
    .join(', ')}`;
}

function scopesOf(claims: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const scope = claims['scope'];
  if (typeof scope === 'string') for (const s of scope.split(' ')) if (s !== '') out.add(s);
  const scp = claims['scp'];
  if (Array.isArray(scp)) for (const s of scp) if (typeof s === 'string') out.add(s);
  return out;
}

/**
 * Checks the `Authorization` header of an MCP request.
 * @example const auth = await authenticateMcp(options, discovery, request.headers.authorization, resource);
 */
export async function authenticateMcp(options: McpAuthOptions, deps: ToolDiscoveryDeps, authorization: string | undefined, resource: string): Promise<McpAuthResult> {
  const m = authorization === undefined ? null : /^Bearer ([^\s]+)$/i.exec(authorization.trim());
  if (m === null) {
    return { ok: false, status: 401, wwwAuthenticate: challenge(resource, options.requiredScopes.length > 0 ? { scope: options.requiredScopes.join(' ') } : {}), body: { error: 'invalid_request', error_description: 'a bearer token is required' } };
  }
  const token = m[1] as string;
  const invalid = (why: string): McpAuthResult => ({ ok: false, status: 401, wwwAuthenticate: challenge(resource, { error: 'invalid_token', error_description: why }), body: { error: 'invalid_token', error_description: why } });
  if (options.verifier !== undefined) {
    const [claims] = await options.verifier.resolveMany([token], { requestId: 'mcp', signal: AbortSignal.timeout(5000) });
    if (isResolverError(claims)) {
      // SECURITY: an unreachable IdP is no reason to let anyone in, nor the caller's fault.
      if (claims.code !== 'ERR_TOKEN_INVALID') return { ok: false, status: 503, body: { error: 'temporarily_unavailable', error_description: 'the token could not be verified right now' } };
      return invalid('the token is not valid for this resource');
    }
    if (claims === undefined || typeof claims !== 'object' || claims === null) return invalid('the token is not valid for this resource');
    const have = scopesOf(claims as Record<string, unknown>);
    const missing = options.requiredScopes.filter((s) => !have.has(s));
    if (missing.length > 0) {
      const why = `the token lacks the scope ${missing.join(' ')}`;
      return { ok: false, status: 403, wwwAuthenticate: challenge(resource, { error: 'insufficient_scope', scope: options.requiredScopes.join(' '), error_description: why }), body: { error: 'insufficient_scope', error_description: why } };
    }
  }
  // The subject must resolve (the same resolvers as every check); a token they refuse is invalid here.
  const subject = await resolveMcpSubject(deps, token);
  if (subject === undefined) return invalid('the token does not identify a caller');
  return { ok: true, token };
}
