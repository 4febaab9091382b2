/**
 * Policy hot reload across instances (issue 7's proof):
 *
 * - two broker PROCESSES (the built `main.js`) watching one policy directory with the default
 *   settings: a change with a YAML syntax error is refused by both (both keep deciding with the
 *   old set and version, both show the refusal with file, line and column at
 *   `GET /v1/admin/policies`, log it and count it); a good change is served by both, decisions and
 *   `policyVersion`, within two seconds of the write, and the decision log names the version that
 *   decided each check;
 * - `/v1/admin/policies` is authorised by Warden's admin policies (no token 401, a viewer reads
 *   but may not force a reload, an admin may);
 * - two brokers following one git branch (a bare repository on disk, polled every 300 ms): a bad
 *   commit refused by both, a good one served by both within two seconds, the version naming the
 *   commit.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createPgDb } from '@warden/persistence';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { sleep, v1Check, writePolicyDir, type V1Answer } from '../support/upstreams.js';

const RUN = randomBytes(4).toString('hex');
const ADMIN_TOKEN = `admin-${RUN}-0123456789abcdef`;
const GATEWAY_KEY = `gw-${RUN}-0123456789abcdef`;
/** How soon every instance must serve a good change (the issue's bound). */
const CONVERGE_MS = 2_000;

const toolPolicy = (effect: 'EFFECT_ALLOW' | 'EFFECT_DENY') => `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: ${effect}
      roles: [user]
`;
/** A YAML syntax error: the flow sequence opened on line 4 is never closed. */
const BROKEN = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: [default
  rules: []
`;

type Base = { readonly base: string };
/** `GET /v1/admin/policies`, read loosely: each test asserts the fields it relies on. */
type Status = { status: number; json: any };

const check = (broker: Base): Promise<V1Answer> =>
  v1Check(broker.base, { subject: { id: 'alice', roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, { 'x-warden-api-key': GATEWAY_KEY });

/** An admin call; `token` null sends no Authorization header. */
async function policies(broker: Base, token: string | null = ADMIN_TOKEN, method = 'GET', path = ''): Promise<Status> {
  const res = await fetch(`${broker.base}/v1/admin/policies${path}`, { method, headers: token !== null ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

async function metric(broker: Base, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${broker.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Polls `done` every 50 ms; resolves to the ms since `since` when it holds, fails after `limitMs`. */
async function msUntil(since: number, done: () => Promise<boolean>, what: string, limitMs = 3_000): Promise<number> {
  for (;;) {
    if (await done()) return performance.now() - since;
    if (performance.now() - since > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(50);
  }
}

/** Waits until both instances show a refusal, and returns their statuses. */
async function refusedOnBoth(brokers: readonly Base[], since: number): Promise<Status[]> {
  const out: Status[] = [];
  for (const b of brokers) {
    await msUntil(since, async () => (await policies(b)).json?.lastRefused != null, `refusal on ${b.base}`);
    out.push(await policies(b));
  }
  return out;
}

/** Both serve `effect` with a version other than `old` (the same one on both): each one's ms since `since`. */
async function convergedMs(brokers: readonly Base[], since: number, old: string, decision: 'ALLOW' | 'DENY'): Promise<number[]> {
  return Promise.all(
    brokers.map((b) =>
      msUntil(
        since,
        async () => {
          const a = await check(b);
          expect(a.status, a.text).toBe(200);
          return a.json.decision === decision && (a.json as unknown as { policyVersion: string }).policyVersion !== old;
        },
        `new policy on ${b.base}`,
      ),
    ),
  );
}

const versionOf = (a: V1Answer): string => (a.json as unknown as { policyVersion: string }).policyVersion;

describe('two broker processes watching one policy directory', () => {
  let idp: OidcTestIssuer;
  let db: TestDatabase;
  let root: string;
  let policyDir: string;
  let a: BrokerProcess;
  let b: BrokerProcess;
  const brokers = (): BrokerProcess[] => [a, b];
  let v1 = '';
  let v2 = '';
  /** Decision ids answered, with the version each answer named. */
  const answered = new Map<string, string>();

  beforeAll(async () => {
    ensureBrokerBuilt();
    idp = await startOidcIssuer();
    db = await createTestDatabase('warden_reload');
    const written = writePolicyDir({ 'tool.yaml': toolPolicy('EFFECT_ALLOW') }, 'warden-reload-');
    root = written.dir;
    policyDir = written.policyDir;
    const start = (name: string): Promise<BrokerProcess> => {
      const cwd = join(root, name);
      mkdirSync(cwd);
      // Default storage settings (watch on, 200 ms debounce, 1 s poll): the proof holds without tuning.
      writeFileSync(
        join(cwd, 'warden.yaml'),
        stringify({
          gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
          datasources: { idp: { kind: 'oidc', issuer: idp.issuer, audience: idp.jwtAudience, allowInsecureHttp: true } },
          admin: { jwt: { datasource: 'idp', rolesClaim: 'roles' } },
          // Strict: a check is answered once its entry is in the database, so the test reads it at once.
          audit: { enabled: true, sink: 'postgres', mode: 'strict', spillDir: join(cwd, 'spill') },
        }),
      );
      return spawnBroker({ cwd, env: { WARDEN_POLICY_DIR: policyDir, DATABASE_URL: db.url, WARDEN_ADMIN_TOKEN: ADMIN_TOKEN } });
    };
    [a, b] = await Promise.all([start('a'), start('b')]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await idp?.close();
    await db?.drop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('both start on the same version', async () => {
    const [ca, cb] = [await check(a), await check(b)];
    expect([ca.json.decision, cb.json.decision]).toEqual(['ALLOW', 'ALLOW']);
    v1 = versionOf(ca);
    expect(v1).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(versionOf(cb)).toBe(v1);
    for (const x of [ca, cb]) answered.set(x.json.decisionId as string, v1);
    for (const broker of brokers()) {
      const s = await policies(broker);
      expect(s.status).toBe(200);
      expect(s.json).toMatchObject({ source: { driver: 'disk', directory: policyDir, watchForChanges: true }, active: { version: v1, source: 'disk', policies: 1, kinds: ['tool'] }, lastRefused: null, lastError: null, reloads: 0, failures: 0 });
    }
  });

  it('a change with a syntax error: both keep serving the old version and both report the refusal with file, line and column', async () => {
    const t0 = performance.now();
    writeFileSync(join(policyDir, 'tool.yaml'), BROKEN);
    const statuses = await refusedOnBoth(brokers(), t0);
    for (const s of statuses) {
      expect(s.json.active.version).toBe(v1);
      expect(s.json.failures).toBe(1);
      expect(s.json.lastRefused).toMatchObject({ version: expect.stringMatching(/^sha256:[0-9a-f]{16}$/), errorCount: expect.any(Number) });
      expect(s.json.lastRefused.version).not.toBe(v1);
      expect(s.json.lastRefused.errors[0]).toEqual({ file: 'tool.yaml', line: expect.any(Number), column: expect.any(Number), message: expect.any(String), code: expect.any(String) });
      expect(s.json.lastRefused.errors[0].line).toBeGreaterThanOrEqual(4);
      expect(s.json.lastRefused.errors[0].column).toBeGreaterThan(0);
    }
    // Both refused the same change, at the same position.
    expect(statuses[1]?.json.lastRefused.errors).toEqual(statuses[0]?.json.lastRefused.errors);
    const { line, column } = statuses[0]?.json.lastRefused.errors[0] as { line: number; column: number };
    // Still deciding with the old set, and saying so.
    for (const broker of brokers()) {
      for (let i = 0; i < 3; i++) {
        const c = await check(broker);
        expect([c.json.decision, versionOf(c)]).toEqual(['ALLOW', v1]);
        answered.set(c.json.decisionId as string, v1);
      }
      // Logged (warn, the default level) with the position, and counted.
      expect(broker.stderr()).toMatch(new RegExp(`policy change refused \\(\\d+ errors?\\), still serving ${v1}: tool\\.yaml:${line}:${column} `));
      expect(await metric(broker, 'warden_policy_reloads_total{result="refused"}')).toBe(1);
      expect(await metric(broker, 'warden_policy_stale{reason="refused"}')).toBe(1);
      expect(await metric(broker, `warden_policy_info{version="${v1}",source="disk"}`)).toBe(1);
      // Refusing a change does not make an instance unready: it serves the set in force.
      expect((await fetch(`${broker.base}/readyz`)).status).toBe(200);
    }
  });

  it('a good change: both serve the new decision and the new policyVersion within two seconds of the write', async () => {
    writeFileSync(join(policyDir, 'tool.yaml'), toolPolicy('EFFECT_DENY'));
    const t0 = performance.now();
    const ms = await convergedMs(brokers(), t0, v1, 'DENY');
    for (const m of ms) expect(m).toBeLessThan(CONVERGE_MS);
    const [ca, cb] = [await check(a), await check(b)];
    v2 = versionOf(ca);
    expect(v2).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(versionOf(cb)).toBe(v2);
    for (const x of [ca, cb]) answered.set(x.json.decisionId as string, v2);
    for (const broker of brokers()) {
      const s = await policies(broker);
      expect(s.json).toMatchObject({ active: { version: v2 }, lastRefused: null, reloads: 1, failures: 1 });
      expect(Date.parse(s.json.active.loadedAt)).toBeGreaterThan(Date.now() - 10_000);
      expect(await metric(broker, 'warden_policy_reloads_total{result="ok"}')).toBe(1);
      expect(await metric(broker, 'warden_policy_stale{reason="refused"}')).toBe(0);
      expect(await metric(broker, `warden_policy_info{version="${v2}",source="disk"}`)).toBe(1);
    }
    process.stdout.write(`policy-reload: both processes served the good change after ${ms.map((m) => `${Math.round(m)} ms`).join(' and ')}\n`);
  });

  it('the decision log names, for every check, the version that decided it', async () => {
    const read = createPgDb({ url: db.url, max: 1 });
    try {
      const rows = (await read.query<{ decision_id: string; policy_version: string; decision: string }>('select decision_id, policy_version, decision from warden_audit_log where decision_id = any($1)', [[...answered.keys()]])).rows;
      expect(rows).toHaveLength(answered.size);
      for (const r of rows) {
        expect(r.policy_version).toBe(answered.get(r.decision_id));
        expect(r.decision).toBe(r.policy_version === v1 ? 'ALLOW' : 'DENY');
      }
      expect(new Set(rows.map((r) => r.policy_version))).toEqual(new Set([v1, v2]));
    } finally {
      await read.close();
    }
  });

  it('the decision log records each process\'s refusal and reload as admin changes', async () => {
    const read = createPgDb({ url: db.url, max: 1 });
    try {
      const rows = (await read.query<{ decision: string; policy_version: string; entry: { input: Record<string, string>; reasons: Array<{ code: string; errors: string[] }> } }>("select decision, policy_version, entry from warden_audit_log where kind = 'admin' and source = 'policy-source' order by time")).rows;
      const refused = rows.filter((r) => r.entry.input['action'] === 'policies-refused');
      const reloaded = rows.filter((r) => r.entry.input['action'] === 'policies-reloaded');
      // Two processes, each its own entries.
      expect(refused).toHaveLength(2);
      expect(reloaded).toHaveLength(2);
      for (const r of refused) {
        expect(r).toMatchObject({ decision: 'DENY', policy_version: v1, entry: { input: { previous: v1, source: 'disk' }, reasons: [{ code: 'policy_compile_failed' }] } });
        expect(r.entry.reasons[0]?.errors[0]).toMatch(/^tool\.yaml:\d+:\d+ /);
      }
      for (const r of reloaded) expect(r).toMatchObject({ decision: 'ALLOW', policy_version: v2, entry: { input: { version: v2, previous: v1 } } });
    } finally {
      await read.close();
    }
  });

  it('GET /v1/admin/policies is for admins and viewers; forcing a reload is for admins', async () => {
    expect((await policies(a, null)).status).toBe(401);
    expect((await policies(a, 'wrong-token-0123456789abcdef')).status).toBe(401);
    const viewer = await idp.issueJwt({ sub: 'vic', roles: ['warden-viewer'] });
    const seen = await policies(a, viewer);
    expect(seen.status).toBe(200);
    expect(seen.json.active.version).toBe(v2);
    const other = await idp.issueJwt({ sub: 'eve', roles: ['developer'] });
    const denied = await policies(a, other);
    expect([denied.status, denied.json.error]).toEqual([403, { code: 'ERR_FORBIDDEN', message: '`eve` may not `read` the policy set' }]);
    expect((await policies(a, null, 'POST', '/reload')).status).toBe(401);
    const byViewer = await policies(a, viewer, 'POST', '/reload');
    expect([byViewer.status, byViewer.json.error?.code]).toEqual([403, 'ERR_FORBIDDEN']);
    const forced = await policies(a, ADMIN_TOKEN, 'POST', '/reload');
    expect(forced.status).toBe(200);
    expect(forced.json).toMatchObject({ result: 'unchanged', status: { active: { version: v2 } } });
  });
});

/** Runs git in `cwd` with a committer of its own. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Warden Test', '-c', 'user.email=test@warden.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' }).trim();
}

describe('two brokers following one git branch', () => {
  let root: string;
  let work: string;
  let origin: string;
  let brokers: TestBroker[] = [];

  const commit = (text: string, message: string): string => {
    writeFileSync(join(work, 'policies', 'tool.yaml'), text);
    git(work, 'add', '--all');
    git(work, 'commit', '--quiet', '-m', message);
    git(work, 'push', '--quiet', origin, 'HEAD:main');
    return git(work, 'rev-parse', 'HEAD');
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'warden-reload-git-'));
    origin = join(root, 'origin.git');
    work = join(root, 'work');
    git(root, 'init', '--quiet', '--bare', origin);
    git(root, 'init', '--quiet', work);
    mkdirSync(join(work, 'policies'));
    commit(toolPolicy('EFFECT_ALLOW'), 'allow');
    writeFileSync(
      join(root, 'warden.yaml'),
      stringify({
        gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }],
        storage: { driver: 'git', git: { url: origin, branch: 'main', subDir: 'policies', checkoutDir: join(root, 'checkouts'), updatePollInterval: '300ms' } },
      }),
    );
    brokers = await Promise.all([0, 1].map(() => startTestBroker({ cwd: root, env: { WARDEN_ADMIN_TOKEN: ADMIN_TOKEN } })));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(brokers.map((x) => x.close()));
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('a bad commit is refused by both (the commit named), a good one is served by both within two seconds', async () => {
    const first = await check(brokers[0] as TestBroker);
    const v1 = versionOf(first);
    const c1 = git(work, 'rev-parse', 'HEAD');
    expect(v1).toMatch(new RegExp(`^sha256:[0-9a-f]{16}@${c1.slice(0, 12)}$`));
    expect(versionOf(await check(brokers[1] as TestBroker))).toBe(v1);

    const bad = commit(BROKEN, 'broken');
    const statuses = await refusedOnBoth(brokers, performance.now());
    for (const s of statuses) {
      expect(s.json).toMatchObject({ source: { driver: 'git', branch: 'main', subDir: 'policies' }, active: { version: v1, commit: c1 }, lastRefused: { commit: bad, errors: [expect.objectContaining({ file: 'tool.yaml', line: expect.any(Number), column: expect.any(Number) })] } });
    }
    for (const x of brokers) expect([(await check(x)).json.decision, versionOf(await check(x))]).toEqual(['ALLOW', v1]);

    const good = commit(toolPolicy('EFFECT_DENY'), 'deny');
    const t0 = performance.now();
    const ms = await convergedMs(brokers, t0, v1, 'DENY');
    for (const m of ms) expect(m).toBeLessThan(CONVERGE_MS);
    const versions = await Promise.all(brokers.map(async (x) => versionOf(await check(x))));
    expect(versions[0]).toMatch(new RegExp(`@${good.slice(0, 12)}$`));
    expect(versions[1]).toBe(versions[0]);
    for (const x of brokers) expect((await policies(x)).json).toMatchObject({ active: { commit: good, source: 'git' }, lastRefused: null, reloads: 1, failures: 1 });
    process.stdout.write(`policy-reload (git): both brokers served the good commit after ${ms.map((m) => `${Math.round(m)} ms`).join(' and ')}\n`);
  });
});
