import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportSPKI, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { startOidcIssuer, type OidcTestIssuer } from '../../../../../test/support/oidc-issuer.js';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from '../../resolver-registry.js';
import type { ContextResolver, DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import { createJwtResolverFactory, parseJwtResolverConfig } from './jwt.resolver.js';

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

let idp: OidcTestIssuer;
const extraIssuers: OidcTestIssuer[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  idp = await startOidcIssuer();
});
afterAll(async () => {
  await idp.close();
});
afterEach(async () => {
  for (const i of extraIssuers.splice(0)) await i.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function freshIssuer(): Promise<OidcTestIssuer> {
  const i = await startOidcIssuer();
  extraIssuers.push(i);
  return i;
}

function datasourceOf(issuer: OidcTestIssuer | string, extra: Partial<DatasourceConfig> = {}): DatasourceConfig {
  return { kind: 'oidc', issuer: typeof issuer === 'string' ? issuer : issuer.issuer, allowInsecureHttp: true, ...extra };
}

function resolverFor(
  issuer: OidcTestIssuer | string,
  options: Record<string, unknown> = {},
  extra: { datasource?: Partial<DatasourceConfig>; now?: () => number; fetch?: typeof fetch } = {},
): ContextResolver<JsonValue, JWTPayload> {
  const factory = createJwtResolverFactory(extra.fetch !== undefined ? { fetch: extra.fetch } : {});
  const config = factory.parseConfig({
    name: 'bearer',
    kind: 'jwt',
    datasource: 'idp',
    key: 'subject.token',
    audience: 'urn:warden:jwt',
    provides: { 'principal.id': 'result.sub' },
    ...options,
  });
  return factory.create(config, { now: extra.now ?? Date.now, datasource: datasourceOf(issuer, extra.datasource) }) as ContextResolver<JsonValue, JWTPayload>;
}

async function startRaw(handler: (path: string, res: ServerResponse, origin: string) => void): Promise<string> {
  let origin = '';
  const server = createServer((req, res) => handler(new URL(req.url ?? '/', 'http://x').pathname, res, origin));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function publicJwk(issuer: OidcTestIssuer): Promise<JWK> {
  const { keys } = (await (await fetch(issuer.jwksUrl)).json()) as { keys: JWK[] };
  return keys[0] as JWK;
}

const count = (issuer: OidcTestIssuer, path: string) => issuer.requests.filter((p) => p === path).length;

async function failureOf(sut: ContextResolver<JsonValue, JWTPayload>, key: JsonValue): Promise<ResolverError> {
  const [out] = await sut.resolveMany([key], ctx());
  expect(isResolverError(out)).toBe(true);
  return out as ResolverError;
}

describe(createJwtResolverFactory.name, () => {
  it('accepts a token the IdP issued and answers its verified claims, cacheable until exp', async () => {
    const token = await idp.issueJwt({ sub: 'alice', roles: ['admin', 'support'] });
    const sut = resolverFor(idp, { typ: 'at+jwt', requiredClaims: ['sub'] });
    const [claims] = await sut.resolveMany([token], ctx());
    expect(claims).toMatchObject({ sub: 'alice', roles: ['admin', 'support'], iss: idp.issuer, aud: 'urn:warden:jwt', client_id: idp.clientId });
    const exp = (claims as JWTPayload).exp as number;
    expect(exp).toBeGreaterThan(nowS());
    expect(sut.expiresAt?.(claims as JWTPayload)).toBe(exp * 1000);
  });

  it('accepts `Bearer <token>` and answers one entry per key, in order, failures in place', async () => {
    const issuer = await freshIssuer();
    const alice = await issuer.issueJwt({ sub: 'alice' });
    const bob = await issuer.issueJwt({ sub: 'bob' });
    const sut = resolverFor(issuer);
    const out = await sut.resolveMany([alice, 42, `Bearer ${bob}`, 'garbage', alice, null, ''], ctx());
    expect((out[0] as JWTPayload).sub).toBe('alice');
    expect((out[2] as JWTPayload).sub).toBe('bob');
    expect((out[4] as JWTPayload).sub).toBe('alice');
    expect([1, 3, 5, 6].map((i) => (out[i] as ResolverError).message)).toEqual(['token must be a string', 'token malformed', 'token must be a string', 'token is empty']);
    expect(out).toHaveLength(7);
    expect(await sut.resolveMany([], ctx())).toEqual([]);
    // Discovery and the JWKS are fetched once, not per key.
    await sut.resolveMany([bob], ctx());
    expect(count(issuer, '/.well-known/openid-configuration')).toBe(1);
    expect(count(issuer, '/jwks')).toBe(1);
  });

  it('refuses every forged or unacceptable token with its reason and never echoes the token', async () => {
    const other = await generateKeyPair('RS256');
    const jwk = await publicJwk(idp);
    const valid = await idp.issueJwt({ sub: 'alice' });
    const [h, p, s] = valid.split('.') as [string, string, string];
    const hmacSecret = new TextEncoder().encode(await exportSPKI(await importJWK(jwk, 'RS256') as CryptoKey));
    const now = nowS();
    const attacks: Array<[string, string]> = [
      ['token expired', await idp.signJwt({ exp: now - 60, iat: now - 400 })],
      ['token not yet valid', await idp.signJwt({ nbf: now + 600 })],
      ['token issuer not accepted', await idp.signJwt({ iss: 'http://evil.example' })],
      ['token audience not accepted', await idp.signJwt({ aud: 'urn:someone-else' })],
      ['token has no `aud` claim', await idp.signJwt({ aud: undefined })],
      ['token has no `exp` claim', await idp.signJwt({ exp: undefined })],
      ['token claim `exp` invalid', await idp.signJwt({ exp: 'tomorrow' as unknown as number })],
      ['token signature invalid', await new SignJWT({ iss: idp.issuer, aud: idp.jwtAudience, exp: now + 60 }).setProtectedHeader({ alg: 'RS256', kid: jwk.kid as string }).sign(other.privateKey)],
      ['token signature invalid', `${h}.${b64url({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })}.${s}`],
      ['token signing key not found', await new SignJWT({ iss: idp.issuer, aud: idp.jwtAudience, exp: now + 60 }).setProtectedHeader({ alg: 'RS256', kid: 'attacker-key' }).sign(other.privateKey)],
      ['token algorithm not allowed', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: idp.issuer, aud: idp.jwtAudience, sub: 'admin', exp: now + 60 })}.`],
      ['token algorithm not allowed', await new SignJWT({ iss: idp.issuer, aud: idp.jwtAudience, sub: 'admin', exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: jwk.kid as string }).sign(hmacSecret)],
      ['token malformed', 'not-a-jwt'],
      ['token malformed', `${h}.${p}`],
      ['token malformed', `bm90IGpzb24.${p}.${s}`],
      ['token malformed', `${h}.${p}.!!!`],
      ['token too large', 'x'.repeat(17_000)],
    ];
    const sut = resolverFor(idp);
    const out = (await sut.resolveMany(attacks.map(([, t]) => t), ctx())) as ResolverError[];
    expect(out.map((e) => [e.code, e.message])).toEqual(attacks.map(([reason]) => ['ERR_TOKEN_INVALID', reason]));
    for (const [i, e] of out.entries()) {
      for (const part of (attacks[i]?.[1] ?? '').split('.').filter((x) => x.length > 8)) expect(e.message).not.toContain(part.slice(0, 16));
      expect(e.resolver).toBe('bearer');
    }
  });

  it('checks `typ` and the algorithm allowlist when configured', async () => {
    const plainJwt = await idp.signJwt({}, { typ: 'JWT' });
    expect((await failureOf(resolverFor(idp, { typ: 'at+jwt' }), plainJwt)).message).toBe('token type not accepted');
    expect((await resolverFor(idp).resolveMany([plainJwt], ctx()))[0]).toMatchObject({ sub: 'test-subject' });
    const es256Only = resolverFor(idp, { algorithms: ['ES256', 'EdDSA'] });
    expect((await failureOf(es256Only, await idp.issueJwt())).message).toBe('token algorithm not allowed');
  });

  it('checks exp and nbf against the injected clock, with clockTolerance', async () => {
    const token = await idp.signJwt({ exp: nowS() + 60, nbf: nowS() - 1 });
    const at = (offsetS: number, tolerance: string) => resolverFor(idp, { clockTolerance: tolerance }, { now: () => Date.now() + offsetS * 1000 });
    expect(isResolverError((await at(0, '0s').resolveMany([token], ctx()))[0])).toBe(false);
    expect((await failureOf(at(70, '0s'), token)).message).toBe('token expired');
    expect(isResolverError((await at(70, '30s').resolveMany([token], ctx()))[0])).toBe(false);
    expect((await failureOf(at(-120, '30s'), token)).message).toBe('token not yet valid');
  });

  it('follows a key rotation: an unknown kid refetches the JWKS, and the JWKS decides about old keys', async () => {
    const issuer = await freshIssuer();
    const sut = resolverFor(issuer, { jwksCooldown: '0s' });
    const first = await issuer.issueJwt({ sub: 'before' });
    expect((await sut.resolveMany([first], ctx()))[0]).toMatchObject({ sub: 'before' });
    expect(count(issuer, '/jwks')).toBe(1);

    await issuer.rotateKeys(); // the old public key stays published
    const second = await issuer.issueJwt({ sub: 'after' });
    expect(JSON.parse(Buffer.from(second.split('.')[0] as string, 'base64url').toString()).kid).not.toBe(JSON.parse(Buffer.from(first.split('.')[0] as string, 'base64url').toString()).kid);
    const out = await sut.resolveMany([second, first], ctx());
    expect(out.map((c) => (c as JWTPayload).sub)).toEqual(['after', 'before']);
    expect(count(issuer, '/jwks')).toBe(2);

    await issuer.rotateKeys({ keepOld: false }); // every earlier key is withdrawn
    const third = await issuer.issueJwt({ sub: 'third' });
    expect((await sut.resolveMany([third], ctx()))[0]).toMatchObject({ sub: 'third' });
    const refused = (await sut.resolveMany([first, second], ctx())) as ResolverError[];
    expect(refused.map((e) => e.message)).toEqual(['token signing key not found', 'token signing key not found']);
  });

  it('does not refetch the JWKS for an unknown kid within the cooldown', async () => {
    const issuer = await freshIssuer();
    const sut = resolverFor(issuer); // default cooldown: 30s
    expect(isResolverError((await sut.resolveMany([await issuer.issueJwt()], ctx()))[0])).toBe(false);
    await issuer.rotateKeys();
    const rotated = await issuer.issueJwt();
    for (let i = 0; i < 3; i++) expect((await failureOf(sut, rotated)).message).toBe('token signing key not found');
    expect(count(issuer, '/jwks')).toBe(1);
  });

  it('fails with ERR_RESOLVER_FAILED when the IdP is down, and retries discovery on the next call', async () => {
    const closed = await startRaw((_p, res) => json(res, 200, {}));
    servers.splice(0).forEach((s) => {
      s.closeAllConnections();
      s.close();
    });
    await new Promise((r) => setTimeout(r, 20));
    const down = await failureOf(resolverFor(closed), await idp.issueJwt());
    expect([down.code, down.message]).toEqual(['ERR_RESOLVER_FAILED', 'resolver `bearer`: discovery: request failed (ECONNREFUSED)']);

    let discoveries = 0;
    const flaky: typeof fetch = (input, init) => {
      if (String(input).endsWith('/.well-known/openid-configuration') && discoveries++ === 0) return Promise.reject(new TypeError('fetch failed'));
      return fetch(input, init);
    };
    const issuer = await freshIssuer();
    const sut = resolverFor(issuer, {}, { fetch: flaky });
    const token = await issuer.issueJwt({ sub: 'alice' });
    expect((await failureOf(sut, token)).code).toBe('ERR_RESOLVER_FAILED');
    expect((await sut.resolveMany([token], ctx()))[0]).toMatchObject({ sub: 'alice' });
    expect((await sut.resolveMany([token], ctx()))[0]).toMatchObject({ sub: 'alice' });
    expect(discoveries).toBe(2);
    expect(count(issuer, '/.well-known/openid-configuration')).toBe(1);
  });

  it('times out under withTimeout when discovery or the JWKS is slow', async () => {
    const issuer = await freshIssuer();
    const token = await issuer.issueJwt();
    for (const path of ['/.well-known/openid-configuration', '/jwks']) {
      issuer.setLatency(3_000, path);
      const sut = withTimeout(resolverFor(issuer), 100);
      const t0 = performance.now();
      const [err] = (await sut.resolveMany([token], ctx())) as [ResolverError];
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect([err.code, err.message]).toEqual(['ERR_RESOLVER_TIMEOUT', 'resolver `bearer` timed out after 100ms']);
      issuer.setLatency(0, path);
    }
  });

  it('reports a broken issuer as its failure, not the token’s', async () => {
    const token = await idp.issueJwt();
    const broken = await startRaw((path, res, origin) => {
      const meta = (jwks: string) => ({ issuer: origin, jwks_uri: `${origin}${jwks}` });
      if (path === '/a/.well-known/openid-configuration') return json(res, 200, { issuer: 'http://other.example' });
      if (path === '/b/.well-known/openid-configuration') return json(res, 200, { ...meta('/jwks500'), issuer: `${origin}/b` });
      if (path === '/c/.well-known/openid-configuration') return json(res, 200, { ...meta('/jwks-bad'), issuer: `${origin}/c` });
      if (path === '/d/.well-known/openid-configuration') return json(res, 200, { ...meta('/jwks-huge'), issuer: `${origin}/d` });
      if (path === '/e/.well-known/openid-configuration') return json(res, 200, { issuer: `${origin}/e`, jwks_uri: 'ftp://x/jwks' });
      if (path === '/f/.well-known/openid-configuration') return json(res, 500, { error: 'server_error' });
      if (path === '/jwks500') return json(res, 500, { error: 'db password is hunter2' });
      if (path === '/jwks-bad') return void res.writeHead(200).end('{"keys": [');
      if (path === '/jwks-huge') return json(res, 200, { keys: [], pad: 'x'.repeat(2 * 1024 * 1024) });
      json(res, 404, {});
    });
    const cases: Array<[string, string, string]> = [
      ['a', 'ERR_RESOLVER_RESULT_INVALID', 'resolver `bearer`: discovery: the document names another issuer'],
      ['b', 'ERR_RESOLVER_FAILED', 'resolver `bearer`: JWKS: answered HTTP 500'],
      ['c', 'ERR_RESOLVER_RESULT_INVALID', 'resolver `bearer`: JWKS: answered malformed JSON'],
      ['d', 'ERR_RESOLVER_RESULT_INVALID', 'resolver `bearer`: JWKS: answered more than 1048576 bytes'],
      ['e', 'ERR_RESOLVER_RESULT_INVALID', 'resolver `bearer`: discovery: the document has no usable https `jwks_uri`'],
      ['f', 'ERR_RESOLVER_FAILED', 'resolver `bearer`: discovery: answered HTTP 500'],
    ];
    for (const [prefix, code, message] of cases) {
      const err = await failureOf(resolverFor(`${broken}/${prefix}`), token);
      expect([prefix, err.code, err.message]).toEqual([prefix, code, message]);
    }
  });

  it('refuses bad configs before anything is built, naming the resolver and field', () => {
    const base = { name: 'bearer', kind: 'jwt', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub' } };
    const bad = (extra: Record<string, unknown>) => () => parseJwtResolverConfig({ ...base, ...extra });
    expect(bad({ audiences: 'x' })).toThrow('resolver `bearer`: field `audiences`: unknown field');
    expect(bad({ algorithms: ['HS256'] })).toThrow('field `algorithms`: `HS256` is never accepted with a JWKS');
    expect(bad({ algorithms: ['none'] })).toThrow('field `algorithms`: `none` is never accepted');
    expect(bad({ algorithms: ['RS1'] })).toThrow('field `algorithms`: expected some of RS256');
    expect(bad({ algorithms: [] })).toThrow('field `algorithms`');
    expect(bad({ audience: [] })).toThrow('field `audience`');
    expect(bad({ clockTolerance: '1h' })).toThrow('field `clockTolerance`: must be at most 300s');
    expect(bad({ clockTolerance: 5 })).toThrow('field `clockTolerance`: expected a duration');
    expect(bad({ typ: '' })).toThrow('field `typ`');
    expect(bad({ requiredClaims: ['a b'] })).toThrow('field `requiredClaims`');
    expect(bad({ datasource: undefined })).toThrow('field `datasource`');
    expect(parseJwtResolverConfig({ ...base, requiredClaims: ['sub'] }).requiredClaims).toEqual(['exp', 'sub']);

    const factory = createJwtResolverFactory({ env: {} });
    const build = (ds: DatasourceConfig, extra: Record<string, unknown> = { audience: 'urn:a' }) =>
      buildResolverRegistry({ configs: [{ ...base, ...extra }], factories: { jwt: factory }, datasources: { idp: ds } }).errors.map((e) => e.message);
    expect(build({ kind: 'oidc', issuer: 'http://127.0.0.1:1' })).toEqual([
      'resolver `bearer`: cannot create: resolver `bearer`: field `datasource.issuer`: an http issuer needs `allowInsecureHttp: true` (tests and local development only)',
    ]);
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', jwks: 'x' })[0]).toContain('field `datasource.jwks`: unknown field');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example' }, {})[0]).toContain('field `audience`: a `jwt` resolver needs the accepted audience');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', audience: 'urn:a' }, {})).toEqual([]);
    expect(build({ kind: 'http', url: 'https://idp.example' })[0]).toContain('expected a datasource of kind `oidc`, got `http`');
    expect(build({ kind: 'oidc', issuer: 'https://u:p@idp.example' })[0]).toContain('field `datasource.issuer`: credentials in the URL are not allowed');
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', clientSecret: '${IDP_SECRET}', clientId: 'w' })[0]).toContain(
      'field `datasource.clientSecret`: environment variable `IDP_SECRET` is not set',
    );
    expect(build({ kind: 'oidc', issuer: 'https://idp.example', allowInsecureHttp: 'yes' })[0]).toContain('field `datasource.allowInsecureHttp`');
  });
});

describe('jwt resolvers in enrich', () => {
  const registryFor = (issuer: OidcTestIssuer) =>
    createResolverRegistry({
      configs: [
        {
          name: 'bearer',
          kind: 'jwt',
          datasource: 'idp',
          key: 'subject.token',
          typ: 'at+jwt',
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', 'principal.attr.tenant': 'result.tenant' },
        },
      ],
      factories: { jwt: createJwtResolverFactory({ env: { IDP_SECRET: 'unused' } }) },
      datasources: { idp: { kind: 'oidc', issuer: issuer.issuer, allowInsecureHttp: true, audience: issuer.jwtAudience } },
    });

  it('maps verified claims to principal.id and principal.roles', async () => {
    const token = await idp.issueJwt({ sub: 'alice', roles: ['admin', 'billing'], tenant: 'acme' });
    const out = await enrich(registryFor(idp), { requestId: 'r', subject: { token }, principal: { attr: {} }, resources: [] });
    const item = out.items[0];
    expect(item?.input.principal).toEqual({ id: 'alice', roles: ['admin', 'billing'], attr: { tenant: 'acme' } });
    expect(item?.denials).toEqual([]);
    expect(item?.provenance['principal.id']?.resolver).toBe('bearer');
  });

  it('denies, writing nothing, when the token is refused', async () => {
    const token = await idp.signJwt({ sub: 'mallory', roles: ['admin'], aud: 'urn:elsewhere' });
    const out = await enrich(registryFor(idp), { requestId: 'r', subject: { token }, principal: { attr: {} }, resources: [] });
    const item = out.items[0];
    expect(item?.input.principal).toEqual({ attr: {} });
    expect(item?.failures.map((f) => [f.code, f.message])).toEqual([['ERR_TOKEN_INVALID', 'token audience not accepted']]);
    expect(item?.denials).toHaveLength(1);
    const reported = JSON.stringify([item?.failures, item?.denials]);
    for (const part of token.split('.')) expect(reported).not.toContain(part.slice(0, 16));
  });
});
