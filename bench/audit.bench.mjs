#!/usr/bin/env node
// The decision log's cost on /v1/check: the built broker (one worker, its own Postgres database)
// with `audit` off, on with the Postgres sink, and on with the NDJSON sink, driven in alternation
// by autocannon with the same body (a trusted gateway stating the subject; no resolvers).
//
//   npx nest build broker && node bench/audit.bench.mjs
//
// Knobs (env): BENCH_DURATION (s per run, 8), BENCH_ROUNDS (2), BENCH_CONNECTIONS (32).
// Prints a table; writes nothing.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createBenchDatabase, envInt, freePort, policyDir, root } from './harness.mjs';

const DURATION = envInt('BENCH_DURATION', 8);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 32);
const KEY = 'bench-gateway-key-0123456789abcdef';
const entry = join(root, 'dist/apps/broker/apps/broker/src/main.js');
const dir = mkdtempSync(join(tmpdir(), 'warden-audit-bench-'));
const children = [];

async function start(name, audit) {
  const port = await freePort();
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, JSON.stringify({ gateways: [{ name: 'gw', apiKey: KEY }], ...(audit ? { audit } : {}) }));
  const db = await createBenchDatabase();
  const child = spawn(process.execPath, [entry], {
    cwd: dir,
    env: { ...process.env, WARDEN_CONFIG: config, WARDEN_HTTP_ADDR: `127.0.0.1:${port}`, WARDEN_GRPC_ADDR: '127.0.0.1:0', WARDEN_POLICY_DIR: policyDir, WARDEN_WORKERS: '1', DATABASE_URL: db.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push({ child, db });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 30_000;
  while (!log.includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, url: `http://127.0.0.1:${port}`, db };
}

const body = JSON.stringify({ subject: { id: 'alice', roles: ['user'], attr: { department: 'eng' } }, agent: { id: 'bot' }, action: 'invoke', resource: { kind: 'tool', id: 'search', attr: {} }, context: { model: 'gpt' } });

function run(url) {
  return new Promise((resolve, reject) => {
    autocannon({ url: `${url}/v1/check`, method: 'POST', connections: CONNECTIONS, duration: DURATION, headers: { 'content-type': 'application/json', 'x-warden-api-key': KEY }, body }, (err, r) => (err ? reject(err) : resolve(r)));
  });
}

try {
  const servers = [
    await start('off', undefined),
    await start('postgres', { enabled: true, sink: 'postgres', spillDir: join(dir, 'spill-pg') }),
    await start('ndjson', { enabled: true, sink: 'ndjson', path: join(dir, 'audit.ndjson'), spillDir: join(dir, 'spill-nd') }),
  ];
  for (const s of servers) await run(s.url).catch(() => undefined); // warm-up
  const results = new Map(servers.map((s) => [s.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const r = await run(s.url);
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${s.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      results.get(s.name).push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 });
    }
  }
  console.log(`audit bench: ${DURATION}s x ${ROUNDS} rounds, ${CONNECTIONS} connections, one worker`);
  console.log('server     req/s (each round)        p50 ms   p99 ms');
  for (const [name, rs] of results) console.log(`${name.padEnd(10)} ${rs.map((r) => r.rps.toFixed(0)).join(' / ').padEnd(25)} ${rs.map((r) => r.p50).join('/').padEnd(8)} ${rs.map((r) => r.p99).join('/')}`);
  const c = new pg.Client({ connectionString: servers[1].db.url });
  await c.connect();
  const { rows } = await c.query('select count(*)::int as n from warden_audit_log');
  await c.end();
  console.log(`postgres sink: ${rows[0].n} rows so far (the rest still queued when counted)`);
} finally {
  for (const { child } of children) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1500));
  for (const { db } of children) await db.drop?.().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
