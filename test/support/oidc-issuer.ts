/**
 * A real OpenID Provider for tests: `oidc-provider` 9 on 127.0.0.1 (a free port), with the
 * client-credentials grant, JWT and opaque access tokens (RFC 8707 resource indicators pick the
 * format), RFC 7662 introspection, userinfo and signing-key rotation. Tokens come from the real
 * token endpoint or the provider's own models, so what a resolver sees is what an IdP sends.
 *
 * | audience           | format | from                  | usable at                   |
 * |--------------------|--------|-----------------------|-----------------------------|
 * | `jwtAudience`      | JWT    | {@link OidcTestIssuer.issueJwt}    | local verification (JWKS)   |
 * | `opaqueAudience`   | opaque | {@link OidcTestIssuer.issueOpaque} | introspection               |
 * | (none, `openid`)   | opaque | {@link OidcTestIssuer.issueUserinfoToken} | userinfo, introspection |
 *
 * The client (`clientId` / `clientSecret`, `client_secret_basic`) may introspect every token.
 * Requests are logged by path in `requests`; `setLatency` slows answers down. oidc-provider prints
 * an "Unsupported runtime" warning on Node 20; it works.
 *
 * @example
 * const idp = await startOidcIssuer();
 * try {
 *   const token = await idp.issueJwt({ sub: 'alice', roles: ['admin'] });
 *   // verify `token` against idp.issuer / idp.jwksUrl with audience idp.jwtAudience
 * } finally {
 *   await idp.close();
 * }
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

/** Claims added to (or, for JWTs, overriding) what the IdP puts in a token. */
export type TestClaims = Readonly<Record<string, unknown>>;

/** Options of {@link startOidcIssuer}. */
export interface OidcTestIssuerOptions {
  /** More resource servers (resource indicator → the scopes it accepts), issued JWT access tokens. */
  readonly resources?: Readonly<Record<string, readonly string[]>>;
}

/** A running test IdP. */
export interface OidcTestIssuer {
  /** `http://127.0.0.1:<port>` (no trailing slash); `iss` of every token. */
  readonly issuer: string;
  /** The JWKS URL (`<issuer>/jwks`). */
  readonly jwksUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Audience (resource indicator) of the JWT access tokens {@link issueJwt} returns. */
  readonly jwtAudience: string;
  /** Audience (resource indicator) of the opaque access tokens {@link issueOpaque} returns. */
  readonly opaqueAudience: string;
  /** Paths of every request received, in order (e.g. `/.well-known/openid-configuration`, `/jwks`). */
  readonly requests: readonly string[];
  /**
   * A JWT access token (`typ: at+jwt`, RS256, current key) from a real client-credentials grant.
   * `sub` defaults to the client id; `claims` are merged over the IdP's claims (so `sub`, `roles`,
   * even `exp` can be set).
   */
  issueJwt(claims?: TestClaims): Promise<string>;
  /**
   * A JWT access token for one of the `resources` the IdP was started with (RFC 8707: `aud` is
   * the resource), granting `scopes` (a subset of that resource's).
   */
  issueJwtFor(resource: string, scopes: readonly string[], claims?: TestClaims): Promise<string>;
  /** An opaque access token for `opaqueAudience`; `claims` appear in its introspection response. */
  issueOpaque(claims?: TestClaims): Promise<string>;
  /**
   * An opaque `openid profile email` access token of account `accountId`, usable at userinfo.
   * Userinfo answers `sub` plus those of `claims` among `name`, `given_name`, `family_name`,
   * `roles`, `groups`, `department`, `email`, `email_verified`.
   */
  issueUserinfoToken(accountId: string, claims?: TestClaims): Promise<string>;
  /**
   * A JWT signed with the IdP's current private key, for tokens the IdP would never issue
   * (expired, `nbf` in the future, another `aud`...). Defaults: `iss`, `aud: jwtAudience`,
   * `sub: 'test-subject'`, `iat` now, `exp` in 5 minutes, header `{ alg: RS256, typ: at+jwt, kid }`.
   * A payload field set to `undefined` is removed.
   */
  signJwt(payload?: JWTPayload, header?: Partial<JWTHeaderParameters>): Promise<string>;
  /**
   * Replaces the signing key with a new one (new `kid`). With `keepOld` (default true) the old
   * public key stays in the JWKS, as in a real rotation; without it, the old key disappears.
   */
  rotateKeys(options?: { readonly keepOld?: boolean }): Promise<void>;
  /**
   * Delays answers to `path` (or to every path when omitted) by `ms`. `setLatency(0, path)`
   * removes that path's delay; `setLatency(0)` removes every delay.
   */
  setLatency(ms: number, path?: string): void;
  /** Stops the server, dropping open connections. */
  close(): Promise<void>;
}

const CLIENT_ID = 'warden-test';
const CLIENT_SECRET = 'warden-test-secret';
const JWT_AUDIENCE = 'urn:warden:jwt';
const OPAQUE_AUDIENCE = 'urn:warden:opaque';
const CLAIMS_HEADER = 'x-test-claims';
const USERINFO_SCOPE = 'openid profile email';

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function claimsFrom(ctx: KoaContextWithOIDC | undefined): Record<string, unknown> | undefined {
  const header = ctx?.get(CLAIMS_HEADER);
  return header ? (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>) : undefined;
}

function createProvider(issuer: string, keys: readonly JWK[], accounts: ReadonlyMap<string, TestClaims>, adapter: (model: string) => unknown, resources: Readonly<Record<string, readonly string[]>>): Provider {
  const extraScopes = [...new Set(Object.values(resources).flat())];
  return new Provider(issuer, {
    adapter,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: [`api ${USERINFO_SCOPE}`, ...extraScopes].join(' '),
      },
    ],
    scopes: ['api', 'openid', 'profile', 'email', ...extraScopes],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'roles', 'groups', 'department'],
      email: ['email', 'email_verified'],
    },
    findAccount: (_ctx: unknown, sub: string) => {
      const claims = accounts.get(sub);
      return claims === undefined ? undefined : { accountId: sub, claims: () => ({ ...claims, sub }) };
    },
    jwks: { keys },
    ttl: { ClientCredentials: 300, AccessToken: 300, Grant: 3600 },
    routes: { token: '/token', introspection: '/token/introspection', userinfo: '/me', jwks: '/jwks' },
    extraTokenClaims: (ctx: KoaContextWithOIDC | undefined) => claimsFrom(ctx),
    formats: {
      customizers: {
        jwt: (ctx: KoaContextWithOIDC | undefined, _token: unknown, jwt: { payload: Record<string, unknown> }) => {
          Object.assign(jwt.payload, claimsFrom(ctx));
        },
      },
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      introspection: { enabled: true, allowedPolicy: () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => JWT_AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource === JWT_AUDIENCE) {
            return { scope: 'api', audience: resource, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
          }
          if (resource === OPAQUE_AUDIENCE) return { scope: 'api', audience: resource, accessTokenTTL: 300, accessTokenFormat: 'opaque' };
          const scopes = resources[resource];
          if (scopes !== undefined) return { scope: scopes.join(' '), audience: resource, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
          throw new errors.InvalidTarget();
        },
      },
    },
  });
}

/**
 * Starts a test IdP on 127.0.0.1 (free port). Close it with `close()`.
 * @example const idp = await startOidcIssuer(); const token = await idp.issueOpaque(); await idp.close();
 */
export async function startOidcIssuer(options: OidcTestIssuerOptions = {}): Promise<OidcTestIssuer> {
  const resources = options.resources ?? {};
  const requests: string[] = [];
  const latency = new Map<string, number>();
  const accounts = new Map<string, TestClaims>();
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => void res.writeHead(503).end();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(path);
    const delay = latency.get(path) ?? latency.get('*') ?? 0;
    if (delay > 0) setTimeout(() => handle(req, res), delay).unref();
    else handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let signing = await newSigningKey();
  let published: JWK[] = [signing];
  // One store for every provider instance of this IdP, so tokens survive a key rotation.
  const adapter = createMemoryAdapter(0);
  let provider = createProvider(issuer, published, accounts, adapter, resources);
  handle = provider.callback();

  async function token(resource: string, claims: TestClaims | undefined, scope = 'api'): Promise<string> {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        ...(claims !== undefined ? { [CLAIMS_HEADER]: Buffer.from(JSON.stringify(claims)).toString('base64url') } : {}),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource }),
    });
    const body = (await res.json()) as { access_token?: string };
    if (!res.ok || typeof body.access_token !== 'string') throw new Error(`test IdP token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
    return body.access_token;
  }

  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    jwtAudience: JWT_AUDIENCE,
    opaqueAudience: OPAQUE_AUDIENCE,
    requests,
    issueJwt: (claims) => token(JWT_AUDIENCE, claims),
    issueJwtFor: (resource, scopes, claims) => token(resource, claims, scopes.join(' ')),
    issueOpaque: (claims) => token(OPAQUE_AUDIENCE, claims),
    async issueUserinfoToken(accountId, claims = {}) {
      accounts.set(accountId, claims);
      const client = await provider.Client.find(CLIENT_ID);
      if (client === undefined) throw new Error('test IdP: client missing');
      const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
      grant.addOIDCScope(USERINFO_SCOPE);
      const grantId = await grant.save();
      return new provider.AccessToken({ accountId, client, grantId, scope: USERINFO_SCOPE }).save();
    },
    async signJwt(payload = {}, header = {}) {
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = { iss: issuer, aud: JWT_AUDIENCE, sub: 'test-subject', iat: now, exp: now + 300, ...payload };
      for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
      const key = await importJWK(signing, 'RS256');
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: signing.kid, ...header }).sign(key);
    },
    async rotateKeys(options = {}) {
      const previous = published;
      signing = await newSigningKey();
      published = options.keepOld === false ? [signing] : [signing, ...previous];
      provider = createProvider(issuer, published, accounts, adapter, resources);
      handle = provider.callback();
    },
    setLatency(ms, path) {
      if (ms > 0) latency.set(path ?? '*', ms);
      else if (path === undefined) latency.clear();
      else latency.delete(path);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
