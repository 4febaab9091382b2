import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isResolverError, type ResolverError } from '../../resolver-error.js';
import { createOidcFetch } from './oidc-fetch.js';
import { createOidcIssuerClient } from './oidc-issuer-client.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

interface Raw {
  readonly origin: string;
  readonly paths: string[];
  /** Resolves when a request's connection closed before its answer was sent. */
  readonly abandoned: Promise<void>;
}

async function startRaw(handler: (req: IncomingMessage, res: ServerResponse, origin: string) => void): Promise<Raw> {
  const paths: string[] = [];
  let onAbandoned: () => void = () => undefined;
  const abandoned = new Promise<void>((resolve) => (onAbandoned = resolve));
  let origin = '';
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.on('close', () => {
      if (!res.writableFinished) onAbandoned();
    });
    handler(req, res, origin);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, paths, abandoned };
}

const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const timeoutSignal = (ms: number) => {
  const c = new AbortController();
  setTimeout(() => c.abort(new DOMException('timed out', 'TimeoutError')), ms).unref();
  return c.signal;
};

describe(createOidcFetch.name, () => {
  it('aborts the upstream request with the call signal', async () => {
    const call = new AbortController();
    // Never answers; the call times out once the request has surely arrived.
    const raw = await startRaw(() => void setTimeout(() => call.abort(new DOMException('timed out', 'TimeoutError')), 20));
    const sut = createOidcFetch({ resolver: 'r', step: 'userinfo', fetch, signal: call.signal });
    const err = (await sut(`${raw.origin}/slow`, { method: 'GET' }).catch((e: unknown) => e)) as ResolverError;
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_TIMEOUT', 'resolver `r` timed out']);
    await raw.abandoned;
  });

  it('bounds the answer, refuses redirects, and checks JSON 200 when asked', async () => {
    const raw = await startRaw((req, res, origin) => {
      if (req.url === '/big') {
        res.writeHead(200);
        res.write('x'.repeat(600));
        return void res.end('x'.repeat(600));
      }
      if (req.url === '/redirect') return void res.writeHead(302, { location: `${origin}/big` }).end();
      if (req.url === '/bad') return void res.writeHead(200).end('{');
      json(res, { ok: true });
    });
    const sut = createOidcFetch({ resolver: 'r', step: 'JWKS', fetch, maxResponseBytes: 1000, requireJson200: true });
    const failure = async (path: string) => ((await sut(`${raw.origin}${path}`, {}).catch((e: unknown) => e)) as ResolverError).message;
    expect(await failure('/big')).toBe('resolver `r`: JWKS: answered more than 1000 bytes');
    expect(await failure('/redirect')).toBe('resolver `r`: JWKS: answered HTTP 302');
    expect(await failure('/bad')).toBe('resolver `r`: JWKS: answered malformed JSON');
    expect(await (await sut(`${raw.origin}/ok`, {})).json()).toEqual({ ok: true });
    expect(raw.paths).toEqual(['/big', '/redirect', '/bad', '/ok']);
  });
});

describe(createOidcIssuerClient.name, () => {
  it('discovers once for concurrent callers, and one caller giving up does not cancel it for the others', async () => {
    const raw = await startRaw((_req, res, origin) => setTimeout(() => json(res, { issuer: origin, jwks_uri: `${origin}/jwks` }), 150));
    const sut = createOidcIssuerClient({ resolver: 'r', datasource: { issuer: raw.origin, discovery: 'oidc', clientAuth: 'client_secret_basic', allowInsecureHttp: true } });
    const impatient = sut.metadata(timeoutSignal(20));
    const patient = sut.metadata(new AbortController().signal);
    expect(((await impatient.catch((e: unknown) => e)) as ResolverError).code).toBe('ERR_RESOLVER_TIMEOUT');
    expect((await patient).jwks_uri).toBe(`${raw.origin}/jwks`);
    expect((await sut.metadata(new AbortController().signal)).issuer).toBe(raw.origin);
    expect(raw.paths).toEqual(['/.well-known/openid-configuration']);
  });

  it('forgets a failed discovery so that the next call retries', async () => {
    let calls = 0;
    const raw = await startRaw((_req, res, origin) => (calls++ === 0 ? void res.writeHead(503).end() : json(res, { issuer: origin })));
    const sut = createOidcIssuerClient({ resolver: 'r', datasource: { issuer: raw.origin, discovery: 'oidc', clientAuth: 'client_secret_basic', allowInsecureHttp: true } });
    const first = (await sut.metadata(new AbortController().signal).catch((e: unknown) => e)) as ResolverError;
    expect([isResolverError(first), first.message]).toEqual([true, 'resolver `r`: discovery: answered HTTP 503']);
    expect((await sut.metadata(new AbortController().signal)).issuer).toBe(raw.origin);
    expect(calls).toBe(2);
  });

  it('refuses plain-http endpoints from discovery unless the datasource allows them', async () => {
    const raw = await startRaw((_req, res, origin) => json(res, { issuer: origin, userinfo_endpoint: `${origin}/me` }));
    // The issuer itself is http here, so only `allowInsecureHttp` lets discovery run at all.
    const sut = createOidcIssuerClient({ resolver: 'r', datasource: { issuer: raw.origin, discovery: 'oidc', clientAuth: 'client_secret_basic', allowInsecureHttp: false } });
    const err = (await sut.metadata(new AbortController().signal).catch((e: unknown) => e)) as ResolverError;
    expect([err.code, err.message]).toEqual(['ERR_RESOLVER_FAILED', 'resolver `r`: discovery: refused a plain http endpoint (set `allowInsecureHttp` only for tests)']);
    expect(raw.paths).toEqual([]);
  });
});
