/**
 * What a failing upstream does to a decision, for every resolver kind against real servers:
 * upstream down (a closed port), slow (beyond the resolver's timeout), HTTP 500 (or the kind's
 * equivalent: an SQL error, a Redis error reply), a malformed body and a body of the wrong shape,
 * under each `onError`:
 *
 * - `deny`: DENY with reason `resolver_failed` naming the resolver;
 * - `omit`: the attribute is missing and the policy decides (`strict` needs it, `lenient` has a
 *   second rule that does not);
 * - `stale`: the last good value is served within `staleMaxAge`, then the decision denies.
 *
 * One broker holds a probe resolver per (kind, mode, onError); each answers only for the probe
 * resource named like it (`when: R.id == ...`) and provides `resource.attr.<that id>`. The probe
 * policy ALLOWs `strict` only when that attribute is `true`, so the healthy controls prove every
 * probe can ALLOW and the failure probes prove no failure ever does. Last, token attacks through
 * `subject.token` and a `jwt` resolver, each DENY `token_invalid` with a clear message.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchema, createYoga } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { exportSPKI, importJWK, SignJWT, type JWK } from 'jose';
import pg from 'pg';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '../support/services.js';
import {
  closedPort,
  sendJson,
  sleep,
  startFakeRedis,
  startHttpUpstream,
  v1Check,
  writePolicyDir,
  type FakeRedis,
  type HttpUpstream,
  type V1Answer,
} from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const REDIS_PREFIX = `warden-e2e:${RUN}:probe`;
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;
/** Timeout of the `slow` probes (their upstream answers after SLOW_MS); the others get more room for cold connections. */
const SLOW_TIMEOUT = '300ms';
const TIMEOUT = '3s';
const SLOW_MS = 2500;
const BROKEN_AUDIENCE = 'urn:warden:broken';

const KINDS = ['http', 'graphql', 'postgres', 'redis', 'jwt', 'introspection', 'userinfo'] as const;
type Kind = (typeof KINDS)[number];
const FAILURES = ['down', 'slow', 'error', 'malformed', 'wrongtype'] as const;
type Failure = (typeof FAILURES)[number];
type Mode = Failure | 'ok' | 'toggle';
type OnError = 'deny' | 'omit' | 'stale';

/** Probe id = resolver name = provided attribute: `<kind>_<mode>_<onError>`. */
const probeId = (kind: Kind, mode: Mode, onError: OnError): string => `${kind}_${mode}_${onError}`;

const PROBE_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: probe
  version: default
  rules:
    # Missing or not true: DENY.
    - actions: [strict, lenient]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr[R.id] == true
    # A second rule that does not need the enriched attribute.
    - actions: [lenient]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: P.attr.department == "ops"
`;

const DOC_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
`;

let idp: OidcTestIssuer;
let attackIdp: OidcTestIssuer;
let dataDb: TestDatabase;
let api: HttpUpstream;
let gql: HttpUpstream;
let issuer: HttpUpstream;
let slowRedis: FakeRedis;
let errorRedis: FakeRedis;
let redis: Redis;
let broker: TestBroker;
const broken = { toggle: false };
const tokens = new Map<string, string>();

/** The broken issuer: OIDC discovery under `/<mode>`, whose endpoints misbehave by mode. */
function brokenIssuerHandler(base: () => string) {
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => {
    const m = /^\/([a-z]+)(\/.*)$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (m === null) return void sendJson(res, 404, {});
    const [, mode, rest] = m as unknown as [string, string, string];
    const iss = `${base()}/${mode}`;
    if (rest === '/.well-known/openid-configuration') {
      return void sendJson(res, 200, {
        issuer: iss,
        jwks_uri: `${iss}/jwks`,
        introspection_endpoint: `${iss}/introspect`,
        userinfo_endpoint: `${iss}/me`,
        token_endpoint: `${iss}/token`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    const good = async (): Promise<void> => {
      if (rest === '/jwks') return sendJson(res, 200, await (await fetch(idp.jwksUrl)).json());
      if (rest === '/introspect') return sendJson(res, 200, { active: true, allow: true, aud: BROKEN_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 });
      if (rest === '/me') return sendJson(res, 200, { sub: 'ursula', department: 'eng' });
      sendJson(res, 404, {});
    };
    switch (mode) {
      case 'slow':
        setTimeout(() => void good().catch(() => res.destroy()), SLOW_MS).unref();
        return;
      case 'error':
        return void sendJson(res, 500, { error: 'server_error' });
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [ {"kty":');
        return;
      case 'wrongtype':
        if (rest === '/jwks') return void sendJson(res, 200, { keys: 'not-a-list' });
        if (rest === '/introspect') return void sendJson(res, 200, { active: 'yes', allow: true });
        return void sendJson(res, 200, [{ sub: 'ursula', department: 'eng' }]);
      case 'toggle':
        if (broken.toggle) return void sendJson(res, 500, { error: 'server_error' });
        void good();
        return;
      default:
        sendJson(res, 404, {});
    }
  };
}

/** The JSON API behind the `http` probes: `/<mode>/<key>`. */
function apiHandler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const mode = (req.url ?? '/').split('/')[1];
  switch (mode) {
    case 'ok':
      return sendJson(res, 200, { allow: true });
    case 'slow':
      setTimeout(() => sendJson(res, 200, { allow: true }), SLOW_MS).unref();
      return;
    case 'error':
      return sendJson(res, 500, { error: 'boom' });
    case 'malformed':
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow": tru');
      return;
    case 'wrongtype':
      return sendJson(res, 200, [{ allow: true }]);
    case 'toggle':
      return broken.toggle ? sendJson(res, 500, { error: 'boom' }) : sendJson(res, 200, { allow: true });
    default:
      sendJson(res, 404, {});
  }
}

async function startGraphQL(): Promise<HttpUpstream> {
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: 'type Probe { id: ID! allow: Boolean! } type Query { probes(ids: [ID!]!): [Probe!]! }',
      resolvers: { Query: { probes: (_: unknown, args: { ids: string[] }) => args.ids.map((id) => ({ id, allow: true })) } },
    }),
    graphqlEndpoint: '/graphql',
    logging: false,
  });
  return startHttpUpstream((req, res) => {
    const mode = (req.url ?? '/').split('/')[1];
    const forward = (): void => {
      req.url = '/graphql';
      void yoga(req, res);
    };
    switch (mode) {
      case 'ok':
        return forward();
      case 'slow':
        setTimeout(forward, SLOW_MS).unref();
        return;
      case 'error':
        return sendJson(res, 500, { errors: [{ message: 'internal' }] });
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' }).end('<html>oops</html>');
        return;
      case 'wrongtype':
        return sendJson(res, 200, { data: { probes: 'not-a-list' } });
      case 'toggle':
        return broken.toggle ? sendJson(res, 500, { errors: [{ message: 'internal' }] }) : forward();
      default:
        sendJson(res, 404, {});
    }
  });
}

const POSTGRES_QUERIES: Record<Exclude<Mode, 'down'>, string> = {
  ok: 'select id as key, allow from probes where id = any($1)',
  toggle: 'select id as key, allow from toggle_probes where id = any($1)',
  slow: 'select k as key, true as allow from unnest($1::text[]) as k, pg_sleep(2)',
  error: 'select k as key, true as allow from unnest($1::text[]) as k, no_such_table',
  malformed: 'select k as id, true as allow from unnest($1::text[]) as k',
  wrongtype: "select k as key, '\\x01'::bytea as allow from unnest($1::text[]) as k",
};

/** One probe resolver's config. */
function probeResolver(kind: Kind, mode: Mode, onError: OnError): Record<string, unknown> {
  const id = probeId(kind, mode, onError);
  const common: Record<string, unknown> = {
    name: id,
    when: `R.kind == "probe" && R.id == "${id}"`,
    timeout: mode === 'slow' ? SLOW_TIMEOUT : TIMEOUT,
    onError,
    provides: { [`resource.attr.${id}`]: kind === 'userinfo' ? 'result.department == "eng"' : 'result.allow' },
    ...(onError === 'stale' ? { cache: { ttl: '1s', staleMaxAge: '2500ms' } } : {}),
  };
  switch (kind) {
    case 'http':
      return { ...common, kind: 'http', datasource: mode === 'down' ? 'api-down' : 'api', key: 'resource.id', path: `/${mode}/{key}` };
    case 'graphql':
      return {
        ...common,
        kind: 'graphql',
        datasource: `gql-${mode}`,
        key: 'resource.id',
        query: 'query($keys: [ID!]!) { probes(ids: $keys) { id allow } }',
        resultPath: 'probes',
      };
    case 'postgres':
      return { ...common, kind: 'postgres', datasource: mode === 'down' ? 'db-down' : 'db', key: 'resource.id', query: POSTGRES_QUERIES[mode === 'down' ? 'ok' : mode] };
    case 'redis': {
      const datasource = mode === 'down' ? 'redis-down' : mode === 'slow' ? 'redis-slow' : mode === 'error' ? 'redis-error' : 'redis';
      return { ...common, kind: 'redis', datasource, key: 'resource.id', keyTemplate: `${REDIS_PREFIX}:${mode}:{key}`, type: 'json' };
    }
    case 'jwt':
      return { ...common, kind: 'jwt', datasource: mode === 'ok' ? 'idp' : `broken-${mode}`, key: 'context.token', jwksMaxAge: '1ms' };
    case 'introspection':
      return { ...common, kind: 'oidc-introspection', datasource: mode === 'ok' ? 'idp' : `broken-${mode}`, key: 'context.token' };
    case 'userinfo':
      return { ...common, kind: 'oidc-userinfo', datasource: mode === 'ok' ? 'idp' : `broken-${mode}`, key: 'context.token' };
  }
}

/** Every probe: healthy controls, each failure under each onError, and the toggles for `stale`. */
const PROBES: Array<{ kind: Kind; mode: Mode; onError: OnError }> = KINDS.flatMap((kind) => [
  { kind, mode: 'ok' as Mode, onError: 'deny' as OnError },
  { kind, mode: 'toggle' as Mode, onError: 'stale' as OnError },
  ...FAILURES.flatMap((mode) => (['deny', 'omit', 'stale'] as const).map((onError) => ({ kind, mode: mode as Mode, onError }))),
]);

/** The token a token-kind probe presents (in `context.token`). */
async function tokenFor(kind: Kind, mode: Mode, base: string): Promise<string | undefined> {
  switch (kind) {
    case 'jwt':
      if (mode === 'ok') return idp.issueJwt({ allow: true });
      if (mode === 'toggle') return idp.signJwt({ allow: true, iss: `${base}/toggle`, aud: BROKEN_AUDIENCE });
      return idp.signJwt({ allow: true });
    case 'introspection':
      return mode === 'ok' ? idp.issueOpaque({ allow: true }) : `opaque-${mode}-${RUN}`;
    case 'userinfo':
      return mode === 'ok' ? idp.issueUserinfoToken('ursula', { department: 'eng' }) : `opaque-${mode}-${RUN}`;
    default:
      return undefined;
  }
}

beforeAll(async () => {
  [idp, attackIdp] = await Promise.all([startOidcIssuer(), startOidcIssuer()]);
  const downPort = await closedPort();

  dataDb = await createTestDatabase('warden_fail');
  const c = new pg.Client({ connectionString: dataDb.url });
  await c.connect();
  await c.query('create table probes (id text primary key, allow boolean not null)');
  await c.query('create table toggle_probes (id text primary key, allow boolean not null)');
  await c.query('insert into probes values ($1, true)', [probeId('postgres', 'ok', 'deny')]);
  await c.query('insert into toggle_probes values ($1, true)', [probeId('postgres', 'toggle', 'stale')]);
  await c.end();

  redis = new Redis(TEST_REDIS_URL);
  for (const p of PROBES.filter((x) => x.kind === 'redis')) {
    const key = `${REDIS_PREFIX}:${p.mode}:${probeId(p.kind, p.mode, p.onError)}`;
    if (p.mode === 'ok' || p.mode === 'toggle') await redis.set(key, JSON.stringify({ allow: true }));
    if (p.mode === 'malformed') await redis.set(key, '{"allow": tru');
    if (p.mode === 'wrongtype') await redis.rpush(key, 'allow');
  }

  [api, gql, slowRedis, errorRedis] = await Promise.all([
    startHttpUpstream(apiHandler),
    startGraphQL(),
    startFakeRedis({ kind: 'slow', delayMs: SLOW_MS }),
    startFakeRedis({ kind: 'error', message: 'ERR internal failure' }),
  ]);
  let issuerBase = '';
  issuer = await startHttpUpstream(brokenIssuerHandler(() => issuerBase));
  issuerBase = issuer.url;

  const oidc = { kind: 'oidc', allowInsecureHttp: true, clientId: idp.clientId, clientSecret: idp.clientSecret };
  const datasources: Record<string, unknown> = {
    api: { kind: 'http', url: api.url },
    'api-down': { kind: 'http', url: `http://127.0.0.1:${downPort}` },
    db: { kind: 'postgres', url: dataDb.url },
    'db-down': { kind: 'postgres', url: `postgres://postgres@127.0.0.1:${downPort}/nothing` },
    redis: { kind: 'redis', url: TEST_REDIS_URL },
    'redis-down': { kind: 'redis', url: `redis://127.0.0.1:${downPort}` },
    'redis-slow': { kind: 'redis', url: slowRedis.url },
    'redis-error': { kind: 'redis', url: errorRedis.url },
    'gql-down': { kind: 'graphql', url: `http://127.0.0.1:${downPort}/graphql` },
    idp: { ...oidc, issuer: idp.issuer, audience: [idp.jwtAudience, idp.opaqueAudience] },
    'broken-down': { ...oidc, issuer: `http://127.0.0.1:${downPort}/down`, audience: BROKEN_AUDIENCE },
    'attack-idp': { kind: 'oidc', allowInsecureHttp: true, issuer: attackIdp.issuer, audience: attackIdp.jwtAudience },
  };
  for (const mode of ['ok', 'toggle', ...FAILURES.filter((f) => f !== 'down')]) {
    datasources[`gql-${mode}`] = { kind: 'graphql', url: `${gql.url}/${mode}` };
    datasources[`broken-${mode}`] = { ...oidc, issuer: `${issuer.url}/${mode}`, audience: BROKEN_AUDIENCE };
  }
  const resolvers: unknown[] = PROBES.map((p) => probeResolver(p.kind, p.mode, p.onError));
  resolvers.push({
    name: 'bearer',
    kind: 'jwt',
    datasource: 'attack-idp',
    key: 'subject.token',
    jwksCooldown: '0s',
    provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles' },
  });

  const { dir, policyDir } = writePolicyDir({ 'probe.yaml': PROBE_POLICY, 'doc.yaml': DOC_POLICY }, 'warden-fail-');
  writeFileSync(join(dir, 'warden.yaml'), stringify({ datasources, resolvers, gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }] }));
  broker = await startTestBroker({ cwd: dir, policyDir });

  await Promise.all(
    PROBES.map(async (p) => {
      const t = await tokenFor(p.kind, p.mode, issuer.url);
      if (t !== undefined) tokens.set(probeId(p.kind, p.mode, p.onError), t);
    }),
  );
});

afterAll(async () => {
  await broker?.close();
  if (redis !== undefined) {
    const keys = await redis.keys(`${REDIS_PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  await Promise.all([idp?.close(), attackIdp?.close(), api?.close(), gql?.close(), issuer?.close(), slowRedis?.close(), errorRedis?.close()]);
  await dataDb?.drop();
});

/** Asks for `action` on the probe resource `id`, as a gateway-stated user (`ops` for the lenient rule). */
function probe(id: string, action: 'strict' | 'lenient', department = 'eng'): Promise<V1Answer> {
  const token = tokens.get(id);
  return v1Check(
    broker.base,
    {
      subject: { id: 'alice', roles: ['user'], attr: { department } },
      action,
      resource: { kind: 'probe', id },
      ...(token !== undefined ? { context: { token } } : {}),
      explain: true,
    },
    { 'x-warden-api-key': GATEWAY_KEY },
  );
}

describe('healthy controls', () => {
  it('every kind ALLOWs `strict` when its upstream answers `allow`', async () => {
    const ids = KINDS.map((k) => probeId(k, 'ok', 'deny'));
    const answers = await Promise.all(ids.map((id) => probe(id, 'strict')));
    answers.forEach((a, i) => {
      const id = ids[i] as string;
      expect(a.status, id).toBe(200);
      expect(a.json.decision, `${id}: ${a.text}`).toBe('ALLOW');
      expect(a.json.explain?.items[0]?.attributes[`resource.attr.${id}`]?.resolver, id).toBe(id);
    });
  });
});

/** The failure code each mode must produce, and what the deny reason then says. */
const EXPECTED_FAILURE: Record<Failure, [string, string]> = {
  down: ['ERR_RESOLVER_FAILED', 'failed'],
  slow: ['ERR_RESOLVER_TIMEOUT', 'timed out'],
  error: ['ERR_RESOLVER_FAILED', 'failed'],
  malformed: ['ERR_RESOLVER_RESULT_INVALID', 'returned malformed data'],
  wrongtype: ['ERR_RESOLVER_RESULT_INVALID', 'returned malformed data'],
};

describe('onError: deny', () => {
  it.each(KINDS)('%s: every failure mode denies with resolver_failed naming the resolver', async (kind) => {
    const answers = await Promise.all(FAILURES.map((mode) => probe(probeId(kind, mode, 'deny'), 'strict')));
    answers.forEach((a, i) => {
      const mode = FAILURES[i] as Failure;
      const id = probeId(kind, mode, 'deny');
      expect(a.status, id).toBe(200);
      expect(a.json.decision, id).toBe('DENY');
      const [code, why] = EXPECTED_FAILURE[mode];
      expect(a.json.reasons, `${id}: ${a.text}`).toEqual([{ code: 'resolver_failed', resolver: id, message: `resolver \`${id}\` ${why}`, resource: { kind: 'probe', id } }]);
      expect(a.json.results[0]?.actions['strict']).toBe('DENY');
      expect(a.json.explain?.items[0]?.actions['strict']).toEqual({ policy: 'NO_MATCH' });
      expect(a.json.explain?.items[0]?.failures, id).toEqual([expect.objectContaining({ resolver: id, code, onError: 'deny' })]);
      // SECURITY: the reason names the resolver, not the upstream's text or address.
      expect(a.json.reasons[0]?.message).not.toMatch(/127\.0\.0\.1|boom|internal failure|oops/);
    });
  });
});

describe('onError: omit', () => {
  it.each(KINDS)('%s: the attribute is missing and the policy decides', async (kind) => {
    const ids = FAILURES.map((mode) => probeId(kind, mode, 'omit'));
    const [strict, lenientOps, lenientEng] = await Promise.all([
      Promise.all(ids.map((id) => probe(id, 'strict'))),
      Promise.all(ids.map((id) => probe(id, 'lenient', 'ops'))),
      Promise.all(ids.map((id) => probe(id, 'lenient', 'eng'))),
    ]);
    ids.forEach((id, i) => {
      const s = strict[i] as V1Answer;
      // The policy that needs the attribute denies, on its own terms (no resolver_failed reason).
      expect(s.json.decision, `${id}: ${s.text}`).toBe('DENY');
      expect(s.json.reasons.map((r) => r.code), id).toEqual(['policy_denied']);
      const item = s.json.explain?.items[0];
      expect(item?.failures, id).toEqual([expect.objectContaining({ resolver: id, onError: 'omit' })]);
      expect(item?.attributes, id).not.toHaveProperty(`resource.attr.${id}`);
      expect((item?.input['resource'] as { attr?: Record<string, unknown> }).attr ?? {}, id).not.toHaveProperty(id);
      // A different rule that does not need it still allows...
      expect((lenientOps[i] as V1Answer).json.decision, id).toBe('ALLOW');
      // ...and only because of that rule.
      expect((lenientEng[i] as V1Answer).json.decision, id).toBe('DENY');
    });
  });
});

describe('onError: stale', () => {
  it('serves the last good value within staleMaxAge, then denies (every kind)', async () => {
    const ids = KINDS.map((k) => probeId(k, 'toggle', 'stale'));
    const all = (): Promise<V1Answer[]> => Promise.all(ids.map((id) => probe(id, 'strict')));
    // Every entry is stored between tStart and t0; it is fresh for 1s and may be served stale up to 3.5s.
    const tStart = Date.now();
    const fresh = await all();
    const t0 = Date.now();
    fresh.forEach((a, i) => {
      expect(a.json.decision, `${ids[i]}: ${a.text}`).toBe('ALLOW');
      expect(a.json.explain?.items[0]?.attributes[`resource.attr.${ids[i]}`]?.cache, ids[i]).toEqual({ hit: false, ageMs: 0, stale: false });
    });

    // Break every upstream: HTTP 500s, a renamed table, a Redis key of the wrong type.
    broken.toggle = true;
    const c = new pg.Client({ connectionString: dataDb.url });
    await c.connect();
    await c.query('alter table toggle_probes rename to toggle_probes_gone');
    await c.end();
    const redisKey = `${REDIS_PREFIX}:toggle:${probeId('redis', 'toggle', 'stale')}`;
    await redis.del(redisKey);
    await redis.rpush(redisKey, 'not json');

    await sleep(Math.max(0, 1200 - (Date.now() - t0)));
    expect(Date.now() - tStart, 'the stale phase must start within staleMaxAge').toBeLessThan(3000);
    const stale = await all();
    stale.forEach((a, i) => {
      const id = ids[i] as string;
      expect(a.json.decision, `${id}: ${a.text}`).toBe('ALLOW');
      const cache = a.json.explain?.items[0]?.attributes[`resource.attr.${id}`]?.cache;
      expect(cache?.hit, id).toBe(true);
      expect(cache?.stale, id).toBe(true);
      expect(cache?.ageMs, id).toBeGreaterThanOrEqual(1000);
      expect(a.json.explain?.items[0]?.failures, id).toEqual([]);
    });

    // Past ttl (1s) + staleMaxAge (2.5s): the failure stands and `stale` denies.
    await sleep(Math.max(0, 3600 - (Date.now() - t0)));
    const expired = await all();
    expired.forEach((a, i) => {
      const id = ids[i] as string;
      expect(a.json.decision, `${id}: ${a.text}`).toBe('DENY');
      expect(a.json.reasons, id).toEqual([expect.objectContaining({ code: 'resolver_failed', resolver: id })]);
      expect(a.json.explain?.items[0]?.failures, id).toEqual([expect.objectContaining({ resolver: id, onError: 'stale' })]);
    });
  });
});

describe('no ALLOW leak', () => {
  it('every failure mode of every kind, under every onError, yields DENY where only the attribute could allow', async () => {
    const failing = PROBES.filter((p) => p.mode !== 'ok' && p.mode !== 'toggle');
    expect(failing).toHaveLength(KINDS.length * FAILURES.length * 3);
    const ids = failing.map((p) => probeId(p.kind, p.mode, p.onError));
    const answers = await Promise.all(ids.flatMap((id) => [probe(id, 'strict'), probe(id, 'lenient')]));
    const allowed = answers.filter((a) => a.json.decision !== 'DENY' || a.json.results.some((r) => r.decision !== 'DENY'));
    expect(allowed.map((a) => a.text)).toEqual([]);
    // The same request shape does allow when the upstream is healthy: the DENYs above are the failures'.
    const controls = await Promise.all(KINDS.map((k) => probe(probeId(k, 'ok', 'deny'), 'strict')));
    expect(controls.map((a) => a.json.decision)).toEqual(KINDS.map(() => 'ALLOW'));
  });
});

describe('token attacks through /v1/check (jwt kind)', () => {
  const read = (token: string): Promise<V1Answer> => v1Check(broker.base, { subject: { token }, action: 'read', resource: { kind: 'doc', id: 'd1' } });
  const refused = (a: V1Answer, message: string): void => {
    expect(a.status, a.text).toBe(200);
    expect(a.json.decision, a.text).toBe('DENY');
    expect(a.json.reasons, a.text).toEqual([{ code: 'token_invalid', resolver: 'bearer', message, resource: { kind: 'doc', id: 'd1' } }]);
  };
  const now = (): number => Math.floor(Date.now() / 1000);

  it('a token the IdP issued is accepted (control)', async () => {
    const a = await read(await attackIdp.issueJwt({ sub: 'mallory', roles: ['user'] }));
    expect(a.json.decision, a.text).toBe('ALLOW');
  });

  it('alg none', async () => {
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64({ iss: attackIdp.issuer, aud: attackIdp.jwtAudience, sub: 'mallory', roles: ['user'], exp: now() + 300 })}.`;
    refused(await read(token), 'token algorithm not allowed');
  });

  it('HS256 signed with the public key as the secret', async () => {
    const jwks = (await (await fetch(attackIdp.jwksUrl)).json()) as { keys: JWK[] };
    const jwk = jwks.keys[0] as JWK;
    const pem = await exportSPKI((await importJWK(jwk, 'RS256')) as CryptoKey);
    const token = await new SignJWT({ sub: 'mallory', roles: ['user'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', ...(jwk.kid !== undefined ? { kid: jwk.kid } : {}) })
      .setIssuer(attackIdp.issuer)
      .setAudience(attackIdp.jwtAudience)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(pem));
    refused(await read(token), 'token algorithm not allowed');
  });

  it('expired', async () => {
    refused(await read(await attackIdp.signJwt({ sub: 'mallory', roles: ['user'], iat: now() - 1200, exp: now() - 600 })), 'token expired');
  });

  it('not yet valid', async () => {
    refused(await read(await attackIdp.signJwt({ sub: 'mallory', roles: ['user'], nbf: now() + 600 })), 'token not yet valid');
  });

  it('wrong issuer', async () => {
    refused(await read(await attackIdp.signJwt({ sub: 'mallory', roles: ['user'], iss: idp.issuer })), 'token issuer not accepted');
  });

  it('wrong audience', async () => {
    refused(await read(await attackIdp.signJwt({ sub: 'mallory', roles: ['user'], aud: 'urn:someone-else' })), 'token audience not accepted');
  });

  it('unknown kid', async () => {
    refused(await read(await attackIdp.signJwt({ sub: 'mallory', roles: ['user'] }, { kid: 'not-a-published-kid' })), 'token signing key not found');
  });

  it('signed by another IdP key with the right claims', async () => {
    // Right iss, aud and kid shape, but a signature by a key the attack IdP never published.
    const token = await idp.signJwt({ sub: 'mallory', roles: ['user'], iss: attackIdp.issuer, aud: attackIdp.jwtAudience });
    refused(await read(token), 'token signing key not found');
  });

  it('rotated JWKS: the new key is followed and a token of the withdrawn key is refused', async () => {
    const old = await attackIdp.signJwt({ sub: 'mallory', roles: ['user'] });
    expect((await read(old)).json.decision).toBe('ALLOW');
    await attackIdp.rotateKeys({ keepOld: false });
    const fresh = await attackIdp.signJwt({ sub: 'mallory', roles: ['user'] });
    expect((await read(fresh)).json.decision).toBe('ALLOW');
    refused(await read(old), 'token signing key not found');
  });
});

describe('shutdown', () => {
  it('does not wait on a Redis datasource that stopped answering', async () => {
    const hung = await startFakeRedis({ kind: 'slow', delayMs: 120_000 });
    const { dir, policyDir } = writePolicyDir({ 'doc.yaml': DOC_POLICY }, 'warden-hung-');
    writeFileSync(
      join(dir, 'warden.yaml'),
      stringify({
        datasources: { hung: { kind: 'redis', url: hung.url } },
        resolvers: [{ name: 'hung-flags', kind: 'redis', datasource: 'hung', key: 'resource.id', keyTemplate: 'flags:{key}', type: 'json', timeout: SLOW_TIMEOUT, provides: { 'resource.attr.flag': 'result.flag' } }],
        gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
      }),
    );
    const small = await startTestBroker({ cwd: dir, policyDir });
    try {
      const a = await v1Check(small.base, { subject: { id: 'alice', roles: ['user'] }, action: 'read', resource: { kind: 'doc', id: 'd1' } }, { 'x-warden-api-key': GATEWAY_KEY });
      expect(a.json.reasons).toEqual([expect.objectContaining({ code: 'resolver_failed', resolver: 'hung-flags', message: 'resolver `hung-flags` timed out' })]);
      const t0 = Date.now();
      const outcome = await Promise.race([small.close().then(() => 'closed'), sleep(5_000).then(() => 'still closing')]);
      expect(outcome).toBe('closed');
      expect(Date.now() - t0).toBeLessThan(3_000);
    } finally {
      await hung.close();
    }
  });
});
