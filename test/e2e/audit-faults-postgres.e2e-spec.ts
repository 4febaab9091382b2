/**
 * Decision-log fault test (issue 7), Postgres sink: the built broker (a child process) runs on a
 * PRIVATE PostgreSQL server (its own database and the decision log's sink); eight clients send
 * `/v1/check` for four seconds; one second in, that server is stopped (fast shutdown: every
 * connection of the broker's pool is cut, batches in flight fail) and 1.5 s later it is started
 * again on the same port and data directory. Afterwards, without a restart of the broker, every
 * decision id a client received is in `warden_audit_log` exactly once, no other row is there, and
 * the spill file is gone; a SIGTERM then exits cleanly.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ensureBrokerBuilt, spawnBroker, type BrokerProcess } from '../support/broker-process.js';
import { eventually, runCheckLoad, type CheckLoadResult } from '../support/audit-faults.js';
import { privateServicesMissing, startPrivatePostgres, type PrivatePostgres } from '../support/private-services.js';
import { sleep, writePolicyDir } from '../support/upstreams.js';

const GATEWAY_KEY = `gw-${randomBytes(4).toString('hex')}-0123456789abcdef`;
const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id != "shell"
`;

const missing = privateServicesMissing('postgres');
if (missing !== undefined) console.warn(`audit-faults-postgres: skipped: ${missing}`);

async function auditRows(url: string): Promise<Array<{ decision_id: string; decision: string }>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ decision_id: string; decision: string }>('select decision_id, decision from warden_audit_log')).rows;
  } finally {
    await c.end();
  }
}

describe.skipIf(missing !== undefined)('decision log, Postgres sink stopped and started again under load', () => {
  let server: PrivatePostgres;
  let broker: BrokerProcess | undefined;
  let dir: string;
  let spillPath: string;

  beforeAll(async () => {
    ensureBrokerBuilt();
    server = await startPrivatePostgres();
    const written = writePolicyDir({ 'tool.yaml': TOOL_POLICY }, 'warden-audit-faults-pg-');
    dir = written.dir;
    spillPath = join(dir, 'spill', 'audit.spill.ndjson');
    writeFileSync(join(dir, 'warden.yaml'), stringify({ gateways: [{ name: 'gw', apiKey: GATEWAY_KEY }], audit: { enabled: true, sink: 'postgres', spillDir: join(dir, 'spill') } }));
    broker = await spawnBroker({ cwd: dir, env: { DATABASE_URL: server.url(), WARDEN_POLICY_DIR: written.policyDir } });
  });

  afterAll(async () => {
    await broker?.stop(2_000);
    await server?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every returned decision id, exactly once, across the outage', async () => {
    const b = broker as BrokerProcess;
    const load = runCheckLoad({
      base: b.base,
      clients: 8,
      durationMs: 4_000,
      headers: { 'x-warden-api-key': GATEWAY_KEY },
      body: (c, n) => ({ subject: { id: `user-${c}`, roles: ['user'] }, action: 'invoke', resource: { kind: 'tool', id: n % 3 === 0 ? 'shell' : 'search' } }),
    });
    await sleep(1_000);
    const stoppedAt = Date.now();
    await server.stop('fast');
    await sleep(1_500);
    await server.start();
    const startedAt = Date.now();
    const result: CheckLoadResult = await load.done;

    // The load ran through the outage: decisions do not need the database, so none failed.
    expect(result.failed, result.failures.join('\n')).toBe(0);
    expect(result.auditUnavailable).toEqual([]);
    const ids = result.returned.map((r) => r.id);
    expect(ids.length).toBeGreaterThan(200);
    expect(result.returned.filter((r) => r.at > stoppedAt && r.at < startedAt).length).toBeGreaterThan(50);
    // ... and the sink did fail under it (the writer spilled).
    expect(b.stderr()).toContain('audit: sink `postgres` failed');

    // The writer replays the spill file by itself once the server is back (no restart of the broker).
    const drained = await eventually(async () => !existsSync(spillPath) && (await auditRows(server.url())).length >= ids.length, 20_000, 250);
    expect(drained, `spill file present: ${existsSync(spillPath)}; rows: ${(await auditRows(server.url()).catch(() => [])).length} of ${ids.length}\n${b.stderr().slice(-3000)}`).toBe(true);

    await b.stop(8_000);
    // Nest's shutdown hooks close the app, then raise the signal again: a clean stop ends by SIGTERM.
    expect({ code: b.process.exitCode, signal: b.process.signalCode }).toEqual({ code: null, signal: 'SIGTERM' });
    broker = undefined;

    const rows = await auditRows(server.url());
    const c = new pg.Client({ connectionString: server.url() });
    await c.connect();
    const dupes = (await c.query('select decision_id, count(*) from warden_audit_log group by decision_id having count(*) > 1')).rows;
    await c.end();
    expect(dupes).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(rows).toHaveLength(ids.length);
    expect(new Set(rows.map((r) => r.decision_id))).toEqual(new Set(ids));
    expect(existsSync(spillPath)).toBe(false);
  });
});
