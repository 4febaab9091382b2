import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { startOidcIssuer, type OidcTestIssuer } from '../../../../../test/support/oidc-issuer.js';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry } from '../../resolver-registry.js';
import type { ContextResolver, DatasourceConfig } from '../../resolver.types.js';
import { withTimeout } from '../../with-timeout.js';
import { createOidcIntrospectionResolverFactory, parseOidcIntrospectionResolverConfig, type IntrospectionResult } from './oidc-introspection.resolver.js';

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });
const SECRET_NAME = 'IDP_SECRET';

let idp: OidcTestIssuer;
const servers: Server[] = [];

beforeAll(async () => {
  idp = await startOidcIssuer();
});
afterAll(async () => {
  await idp.close();
});
afterEach(async () => {
  idp.setLatency(0);
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

function resolverFor(
  options: Record<string, unknown> = {},
  extra: { datasource?: Partial<DatasourceConfig>; now?: () => number; env?: Record<string, string> } = {},
): ContextResolver<JsonValue, IntrospectionResult> {
  const factory = createOidcIntrospectionResolverFactory({ env: extra.env ?? { [SECRET_NAME]: idp.clientSecret } });
  const config = factory.parseConfig({ name: 'introspect', kind: 'oidc-introspection', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub' }, ...options });
  const datasource: DatasourceConfig = { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true, clientId: idp.clientId, clientSecret: `\${${SECRET_NAME}}`, ...extra.datasource };
  return factory.create(config, { now: extra.now ?? Date.now, datasource }) as ContextResolver<JsonValue, IntrospectionResult>;
}

async function failureOf(sut: ContextResolver<JsonValue, IntrospectionResult>, key: JsonValue): Promise<ResolverError> {
  const [out] = await sut.resolveMany([key], ctx());
  expect(isResolverError(out)).toBe(true);
  return out as ResolverError;
}

interface SeenIntrospection {
  readonly authorization: string | undefined;
  readonly form: URLSearchParams;
}

/** A hand-written issuer whose introspection endpoint answers `answer(token)`; requests land in `seen`. */
async function startFakeIssuer(answer: (token: string, res: ServerResponse) => void, seen: SeenIntrospection[] = []): Promise<string> {
  let origin = '';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ issuer: origin, introspection_endpoint: `${origin}/introspect` }));
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      seen.push({ authorization: req.headers.authorization, form });
      answer(form.get('token') ?? '', res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}

describe(createOidcIntrospectionResolverFactory.name, () => {
  it('answers the introspection response of an active opaque token, cacheable until its exp', async () => {
    const token = await idp.issueOpaque({ roles: ['reader'], tenant: 'acme' });
    const sut = resolverFor({ audience: idp.opaqueAudience, tokenTypeHint: 'access_token' });
    const [answer] = await sut.resolveMany([token], ctx());
    expect(answer).toMatchObject({ active: true, client_id: idp.clientId, aud: idp.opaqueAudience, roles: ['reader'], tenant: 'acme', iss: idp.issuer, token_type: 'Bearer' });
    const exp = (answer as IntrospectionResult)['exp'] as number;
    expect(exp * 1000).toBeGreaterThan(Date.now());
    expect(sut.expiresAt?.(answer as IntrospectionResult)).toBe(exp * 1000);
    expect(sut.expiresAt?.({ active: true })).toBeUndefined();
  });

  it('refuses inactive tokens and answers one entry per key, in order, one request per distinct token', async () => {
    const before = idp.requests.filter((p) => p === '/token/introspection').length;
    const a = await idp.issueOpaque({ sub: 'a' });
    const out = await resolverFor().resolveMany([a, 'no-such-token', 7, a, `Bearer ${a}`], ctx());
    expect((out[0] as IntrospectionResult)['active']).toBe(true);
    expect((out[1] as ResolverError).code).toBe('ERR_TOKEN_INVALID');
    expect((out[1] as ResolverError).message).toBe('token not active');
    expect((out[2] as ResolverError).message).toBe('token must be a string');
    expect(out[3]).toEqual(out[0]);
    expect(out[4]).toEqual(out[0]);
    expect(idp.requests.filter((p) => p === '/token/introspection').length - before).toBe(2);
  });

  it('refuses an answer for another audience (configured here or on the datasource)', async () => {
    const token = await idp.issueOpaque();
    expect((await failureOf(resolverFor({ audience: ['urn:other', 'urn:another'] }), token)).message).toBe('token audience not accepted');
    expect((await failureOf(resolverFor({}, { datasource: { audience: 'urn:other' } }), token)).message).toBe('token audience not accepted');
    expect(isResolverError((await resolverFor({ audience: ['urn:other', idp.opaqueAudience] }).resolveMany([token], ctx()))[0])).toBe(false);
  });

  it('refuses an answer past its exp by the injected clock, within clockTolerance', async () => {
    const token = await idp.issueOpaque();
    const later = (s: number, tolerance: string) => resolverFor({ clockTolerance: tolerance }, { now: () => Date.now() + s * 1000 });
    expect((await failureOf(later(400, '5s'), token)).message).toBe('token expired');
    expect(isResolverError((await later(302, '10s').resolveMany([token], ctx()))[0])).toBe(false);
  });

  it('fails as the issuer’s problem when the client is refused, never showing the secret', async () => {
    const token = await idp.issueOpaque();
    const wrong = 'not-the-secret-xyz';
    const err = await failureOf(resolverFor({}, { env: { [SECRET_NAME]: wrong } }), token);
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_FAILED', 'resolver `introspect`: introspection: answered HTTP 401 (invalid_client)']);
    expect(JSON.stringify({ m: err.message, c: String(err.cause) })).not.toContain(wrong);
    const post = await resolverFor({}, { datasource: { clientAuth: 'client_secret_post' } }).resolveMany([token], ctx());
    expect(post[0]).toMatchObject({ active: true });
    const postWrong = await failureOf(resolverFor({}, { env: { [SECRET_NAME]: wrong }, datasource: { clientAuth: 'client_secret_post' } }), token);
    expect(postWrong.message).toBe('resolver `introspect`: introspection: answered HTTP 401 (invalid_client)');
  });

  it('authenticates with client_secret_basic by default and client_secret_post when configured', async () => {
    const seen: SeenIntrospection[] = [];
    const origin = await startFakeIssuer((token, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ active: true, sub: token }));
    }, seen);
    await resolverFor({ tokenTypeHint: 'refresh_token' }, { datasource: { issuer: origin } }).resolveMany(['t1'], ctx());
    await resolverFor({}, { datasource: { issuer: origin, clientAuth: 'client_secret_post' } }).resolveMany(['t2'], ctx());
    // RFC 6749 section 2.3.1: form-encoded id and secret, then base64.
    const basic = (h: string | undefined) => h && /^Basic /.test(h) ? Buffer.from(h.slice(6), 'base64').toString().split(':').map(decodeURIComponent) : h;
    expect(seen.map((s) => [basic(s.authorization), s.form.get('token'), s.form.get('token_type_hint'), s.form.get('client_secret')])).toEqual([
      [[idp.clientId, idp.clientSecret], 't1', 'refresh_token', null],
      [undefined, 't2', null, idp.clientSecret],
    ]);
  });

  it('reports a JWT access token the IdP will not introspect as an upstream failure', async () => {
    const err = await failureOf(resolverFor(), await idp.issueJwt());
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_FAILED', 'resolver `introspect`: introspection: answered HTTP 400 (unsupported_token_type)']);
  });

  it('checks what a non-conforming issuer answers', async () => {
    const origin = await startFakeIssuer((token, res) => {
      const send = (body: unknown, type = 'application/json') => {
        res.writeHead(200, { 'content-type': type });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      if (token === 'other-iss') return send({ active: true, iss: 'http://evil.example', sub: 'x' });
      if (token === 'active-string') return send({ active: 'true', sub: 'x' });
      if (token === 'not-json') return send('<html>');
      if (token === 'html') return send('<html>', 'text/html');
      if (token === 'nbf') return send({ active: true, nbf: Math.floor(Date.now() / 1000) + 600 });
      send({ active: true, sub: token });
    });
    const sut = resolverFor({}, { datasource: { issuer: origin } });
    const out = await sut.resolveMany(['other-iss', 'active-string', 'not-json', 'nbf', 'ok', 'html'], ctx());
    expect([0, 1, 2, 3, 5].map((i) => [(out[i] as ResolverError).code, (out[i] as ResolverError).message])).toEqual([
      ['ERR_TOKEN_INVALID', 'token issuer not accepted'],
      ['ERR_RESOLVER_RESULT_INVALID', 'resolver `introspect`: introspection: answered malformed data (OAUTH_INVALID_RESPONSE)'],
      ['ERR_RESOLVER_RESULT_INVALID', 'resolver `introspect`: introspection: answered malformed data (OAUTH_PARSE_ERROR)'],
      ['ERR_TOKEN_INVALID', 'token not yet valid'],
      ['ERR_RESOLVER_RESULT_INVALID', 'resolver `introspect`: introspection: answered malformed data (OAUTH_RESPONSE_IS_NOT_JSON)'],
    ]);
    expect(out[4]).toEqual({ active: true, sub: 'ok' });
  });

  it('fails with ERR_RESOLVER_FAILED when the IdP is down', async () => {
    const closed = await startFakeIssuer(() => undefined);
    servers.splice(0).forEach((s) => {
      s.closeAllConnections();
      s.close();
    });
    await new Promise((r) => setTimeout(r, 20));
    const out = (await resolverFor({}, { datasource: { issuer: closed } }).resolveMany(['a', 'b'], ctx())) as ResolverError[];
    expect(out.map((e) => [e.code, e.message])).toEqual(Array(2).fill(['ERR_RESOLVER_FAILED', 'resolver `introspect`: discovery: request failed (ECONNREFUSED)']));
  });

  it('times out under withTimeout when introspection is slow', async () => {
    const token = await idp.issueOpaque();
    await resolverFor().resolveMany([token], ctx()); // discovery done, so the introspection call is what is slow
    idp.setLatency(3_000, '/token/introspection');
    const sut = withTimeout(resolverFor(), 150);
    const t0 = performance.now();
    const [err] = (await sut.resolveMany([token], ctx())) as [ResolverError];
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_TIMEOUT', 'resolver `introspect` timed out after 150ms']);
  });

  it('refuses bad configs, naming the resolver and field', () => {
    const base = { name: 'introspect', kind: 'oidc-introspection', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub' } };
    const bad = (extra: Record<string, unknown>) => () => parseOidcIntrospectionResolverConfig({ ...base, ...extra });
    expect(bad({ endpoint: '/x' })).toThrow('resolver `introspect`: field `endpoint`: unknown field');
    expect(bad({ tokenTypeHint: 'id_token' })).toThrow('field `tokenTypeHint`');
    expect(bad({ concurrency: 0 })).toThrow('field `concurrency`: expected an integer from 1 to 64');
    expect(bad({ audience: 3 })).toThrow('field `audience`');
    const build = (ds: DatasourceConfig) =>
      buildResolverRegistry({ configs: [base], factories: { 'oidc-introspection': createOidcIntrospectionResolverFactory({ env: { S: 'v' } }) }, datasources: { idp: ds } }).errors.map(
        (e) => e.message,
      );
    expect(build({ kind: 'oidc', issuer: 'https://idp.example' })[0]).toContain('field `datasource.clientId`: introspection needs a client');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', clientId: 'w' })[0]).toContain('field `datasource.clientSecret`: introspection needs a client');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', clientSecret: '${S}' })[0]).toContain('field `datasource.clientId`: a `clientSecret` needs a `clientId`');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', clientId: 'w', clientSecret: '${S}', clientAuth: 'private_key_jwt' })[0]).toContain('field `datasource.clientAuth`');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', clientId: 'w', clientSecret: '${S}' })).toEqual([]);
  });
});
