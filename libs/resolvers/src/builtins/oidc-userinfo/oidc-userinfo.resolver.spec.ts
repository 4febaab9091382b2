import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { startOidcIssuer, type OidcTestIssuer } from '../../../../../test/support/oidc-issuer.js';
import type { ResolverError } from '../../resolver-error.js';
import { createResolverRegistry } from '../../resolver-registry.js';
import type { ContextResolver, DatasourceConfig } from '../../resolver.types.js';
import { enrich } from '../../scheduler.js';
import { withTimeout } from '../../with-timeout.js';
import { createOidcUserinfoResolverFactory, parseOidcUserinfoResolverConfig, type UserinfoClaims } from './oidc-userinfo.resolver.js';

const ctx = () => ({ requestId: 'r', signal: new AbortController().signal });

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

function resolverFor(options: Record<string, unknown> = {}, datasource: Partial<DatasourceConfig> = {}): ContextResolver<JsonValue, UserinfoClaims> {
  const factory = createOidcUserinfoResolverFactory();
  const config = factory.parseConfig({ name: 'userinfo', kind: 'oidc-userinfo', datasource: 'idp', key: 'subject.token', provides: { 'principal.attr.email': 'result.email' }, ...options });
  return factory.create(config, { now: Date.now, datasource: { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true, ...datasource } }) as ContextResolver<JsonValue, UserinfoClaims>;
}

/** A hand-written issuer whose userinfo endpoint answers with `answer`. */
async function startFakeIssuer(answer: (res: ServerResponse) => void, metadata: Record<string, unknown> = {}): Promise<string> {
  let origin = '';
  const server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ issuer: origin, userinfo_endpoint: `${origin}/userinfo`, ...metadata }));
    }
    answer(res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}

const userinfoCalls = () => idp.requests.filter((p) => p === '/me').length;

describe(createOidcUserinfoResolverFactory.name, () => {
  it('answers the userinfo claims of an access token, with no expiry of their own', async () => {
    const token = await idp.issueUserinfoToken('alice', { name: 'Alice', email: 'alice@example.com', roles: ['admin'], unreleased: 'x' });
    const sut = resolverFor();
    const [claims] = await sut.resolveMany([token], ctx());
    expect(claims).toEqual({ sub: 'alice', name: 'Alice', email: 'alice@example.com', roles: ['admin'] });
    expect(sut.expiresAt?.(claims as UserinfoClaims)).toBeUndefined();
  });

  it('answers one entry per key, in order, one request per distinct token', async () => {
    const before = userinfoCalls();
    const alice = await idp.issueUserinfoToken('alice', { email: 'a@example.com' });
    const bob = await idp.issueUserinfoToken('bob', { email: 'b@example.com' });
    const out = await resolverFor().resolveMany([bob, { token: bob }, alice, bob, 'nope'], ctx());
    expect([out[0], out[2], out[3]].map((c) => (c as UserinfoClaims)['sub'])).toEqual(['bob', 'alice', 'bob']);
    expect([out[1], out[4]].map((e) => (e as ResolverError).message)).toEqual(['token must be a string', 'token not accepted by the issuer']);
    expect(userinfoCalls() - before).toBe(3);
  });

  it('refuses tokens the userinfo endpoint does not accept as ERR_TOKEN_INVALID', async () => {
    const jwtForAnotherAudience = await idp.issueJwt({ sub: 'alice' });
    const out = (await resolverFor().resolveMany(['unknown-token', jwtForAnotherAudience, await idp.issueOpaque()], ctx())) as ResolverError[];
    expect(out.map((e) => [e.code, e.message])).toEqual(Array(3).fill(['ERR_TOKEN_INVALID', 'token not accepted by the issuer']));
  });

  it('fails as the issuer’s problem on 500, non-JSON, a missing sub or a missing endpoint', async () => {
    const token = 'some-token';
    const cases: Array<[(res: ServerResponse) => void, Record<string, unknown>, string, string]> = [
      [(res) => void res.writeHead(500).end('db password is hunter2'), {}, 'ERR_RESOLVER_FAILED', 'resolver `userinfo`: userinfo: answered HTTP 500'],
      [(res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'), {}, 'ERR_RESOLVER_RESULT_INVALID', 'resolver `userinfo`: userinfo: answered malformed data (OAUTH_RESPONSE_IS_NOT_JSON)'],
      [(res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"name":"no sub"}'), {}, 'ERR_RESOLVER_RESULT_INVALID', 'resolver `userinfo`: userinfo: answered malformed data (OAUTH_INVALID_RESPONSE)'],
      [(res) => void res.writeHead(200).end('{}'), { userinfo_endpoint: undefined }, 'ERR_RESOLVER_RESULT_INVALID', 'resolver `userinfo`: discovery: the document has no `userinfo_endpoint`'],
    ];
    for (const [answer, metadata, code, message] of cases) {
      const origin = await startFakeIssuer(answer, metadata);
      const [err] = (await resolverFor({}, { issuer: origin }).resolveMany([token], ctx())) as [ResolverError];
      expect([err.code, err.message]).toEqual([code, message]);
      expect(err.message).not.toContain('hunter2');
    }
  });

  it('fails with ERR_RESOLVER_FAILED when the IdP is down', async () => {
    const closed = await startFakeIssuer(() => undefined);
    servers.splice(0).forEach((s) => {
      s.closeAllConnections();
      s.close();
    });
    await new Promise((r) => setTimeout(r, 20));
    const [err] = (await resolverFor({}, { issuer: closed }).resolveMany(['t'], ctx())) as [ResolverError];
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_FAILED', 'resolver `userinfo`: discovery: request failed (ECONNREFUSED)']);
  });

  it('times out under withTimeout when userinfo is slow', async () => {
    const token = await idp.issueUserinfoToken('carol', { email: 'c@example.com' });
    idp.setLatency(3_000, '/me');
    const t0 = performance.now();
    const [err] = (await withTimeout(resolverFor(), 150).resolveMany([token], ctx())) as [ResolverError];
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(err.code).toBe('ERR_RESOLVER_TIMEOUT');
  });

  it('feeds enrich: claims become attributes', async () => {
    const token = await idp.issueUserinfoToken('dave', { email: 'dave@example.com', department: 'sales' });
    const registry = createResolverRegistry({
      configs: [{ name: 'userinfo', kind: 'oidc-userinfo', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub', 'principal.attr.department': 'result.department' } }],
      factories: { 'oidc-userinfo': createOidcUserinfoResolverFactory() },
      datasources: { idp: { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true } },
    });
    const out = await enrich(registry, { requestId: 'r', subject: { token }, principal: { attr: {} }, resources: [] });
    expect(out.items[0]?.input.principal).toEqual({ id: 'dave', attr: { department: 'sales' } });
    expect(out.items[0]?.failures).toEqual([]);
  });

  it('refuses bad configs, naming the resolver and field', () => {
    const base = { name: 'userinfo', kind: 'oidc-userinfo', datasource: 'idp', key: 'subject.token', provides: { 'principal.id': 'result.sub' } };
    expect(() => parseOidcUserinfoResolverConfig({ ...base, audience: 'x' })).toThrow('resolver `userinfo`: field `audience`: unknown field');
    expect(() => parseOidcUserinfoResolverConfig({ ...base, concurrency: 100 })).toThrow('field `concurrency`: expected an integer from 1 to 64');
    expect(() => parseOidcUserinfoResolverConfig({ ...base, datasource: undefined })).toThrow('field `datasource`');
    expect(() => parseOidcUserinfoResolverConfig({ ...base, kind: 'jwt' })).toThrow('field `kind`');
  });
});
