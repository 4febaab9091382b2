#!/usr/bin/env node
// PlanResources benchmark: Warden's `POST /api/plan/resources` vs the real Cerbos 0.55 PDP on the
// same policies (./policies), in one run.
//
//   npm run bench:plan-api        (= node bench/plan-api.bench.mjs)
//
// Starts both servers on 127.0.0.1 (Warden with BENCH_WARDEN_WORKERS node:cluster workers, as
// `npm run bench`), checks that both plan every shape to the same filter (operands compared
// order-insensitively), then drives them with autocannon in alternation (warm-up, then ROUNDS x
// [shape x server], the order flipping each round), prints a table, writes the "Results:
// PlanResources" section of bench/README.md, and stops everything (also on error, SIGINT, SIGTERM
// and a watchdog).
//
// Knobs (env): BENCH_DURATION (s per measured run, 8), BENCH_WARMUP (2), BENCH_ROUNDS (2),
// BENCH_CONNECTIONS (48), BENCH_WARDEN_WORKERS (2), BENCH_NO_WRITE=1 (print only).
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  benchDir,
  createBenchDatabase,
  envInt,
  failures,
  fmt,
  freePort,
  gitState,
  loadPhase,
  mergeHist,
  policyDir,
  replaceSection,
  root,
  serverPids as pidsOf,
  spawnServer,
  startWarden as startBroker,
  stopProcesses,
  waitHealthy,
} from './harness.mjs';
import { planBody, planShapes } from './shapes.mjs';

const cerbosBin = join(root, 'node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64');
const DURATION = envInt('BENCH_DURATION', 8);
const WARMUP = envInt('BENCH_WARMUP', 2);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 48);
const WARDEN_WORKERS = envInt('BENCH_WARDEN_WORKERS', 2);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const SHAPES = Object.keys(planShapes);
const SERVERS = ['cerbos', 'warden'];

const log = (msg) => process.stderr.write(`bench:plan-api: ${msg}\n`);
const children = new Set();
const extraPids = new Set();
let tmp;
let db;
let cleaning;

async function cleanup() {
  cleaning ??= (async () => {
    await stopProcesses(children, extraPids);
    if (db !== undefined) await db.drop().catch((e) => log(`could not drop database ${db.name}: ${e.message}`));
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void cleanup().then(() => process.exit(130)));
const budgetS = 120 + SHAPES.length * SERVERS.length * (WARMUP + ROUNDS * DURATION + 4);
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${budgetS}s, stopping`);
  void cleanup().then(() => process.exit(2));
}, budgetS * 1000);

async function startCerbos() {
  try {
    chmodSync(cerbosBin, 0o755);
  } catch {
    /* read-only install: assume executable */
  }
  const httpPort = await freePort();
  let grpcPort = await freePort();
  while (grpcPort === httpPort) grpcPort = await freePort();
  const s = spawnServer(
    children,
    'cerbos',
    cerbosBin,
    ['server', `--set=server.httpListenAddr=127.0.0.1:${httpPort}`, `--set=server.grpcListenAddr=127.0.0.1:${grpcPort}`, '--set=storage.driver=disk', `--set=storage.disk.directory=${policyDir}`, '--set=storage.disk.watchForChanges=false', '--set=audit.enabled=false', '--log-level=warn'],
    { cwd: tmp, env: { ...process.env, CERBOS_NO_TELEMETRY: '1' } },
  );
  s.url = `http://127.0.0.1:${httpPort}`;
  await waitHealthy(s, s.url);
  return s;
}

const canon = (v) => {
  if (Array.isArray(v)) return v.map(canon);
  if (v === null || typeof v !== 'object') return v;
  if ('expression' in v) {
    const operands = (v.expression.operands ?? []).map(canon).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    return { expression: { operator: v.expression.operator, operands } };
  }
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
};

async function plan(url, body) {
  const res = await fetch(`${url}/api/plan/resources`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function main() {
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');
  tmp = mkdtempSync(join(tmpdir(), 'warden-plan-bench-'));
  db = await createBenchDatabase();
  const [cerbos, warden] = await Promise.all([startCerbos(), startBroker({ children, cwd: tmp, workers: WARDEN_WORKERS, databaseUrl: db.url })]);
  const servers = { cerbos, warden };
  const agreement = {};
  for (const shape of SHAPES) {
    const [c, w] = await Promise.all([plan(cerbos.url, planBody(shape)), plan(warden.url, planBody(shape))]);
    const same = JSON.stringify(canon(c.filter)) === JSON.stringify(canon(w.filter));
    if (!same) throw new Error(`filters differ for ${shape}:\n  cerbos: ${c.meta?.filterDebug}\n  warden: ${w.meta?.filterDebug}`);
    agreement[shape] = { kind: c.filter.kind, filterDebug: c.meta?.filterDebug };
  }
  log(`both plan every shape to the same filter: ${JSON.stringify(agreement)}`);

  const phase = (srv, shape, duration) =>
    loadPhase({ pids: pidsOf(servers[srv], extraPids), children, url: `${servers[srv].url}/api/plan/resources`, body: planBody(shape), connections: CONNECTIONS, duration });
  for (const shape of SHAPES) for (const srv of SERVERS) await phase(srv, shape, WARMUP);
  const measured = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? SERVERS : [...SERVERS].reverse();
    for (const shape of SHAPES) {
      for (const srv of order) {
        const r = await phase(srv, shape, DURATION);
        measured.push({ shape, server: srv, result: r });
        log(`round ${round + 1}/${ROUNDS} ${shape.padEnd(10)} ${srv.padEnd(6)} ${fmt(r.rps).padStart(7)} req/s  failed ${failures(r)}  srv ${fmt(r.serverCpuCores, 2)} cores, others ${fmt(r.otherCpuCores, 2)} cores`);
      }
    }
  }
  await cleanup();
  const table = {};
  for (const shape of SHAPES) {
    table[shape] = {};
    for (const srv of SERVERS) {
      const runs = measured.filter((m) => m.shape === shape && m.server === srv).map((m) => m.result);
      const lat = mergeHist(runs);
      table[shape][srv] = { rps: runs.reduce((s, r) => s + r.rps, 0) / runs.length, p50Ms: lat.p50, p99Ms: lat.p99, failures: runs.reduce((s, r) => s + failures(r), 0), otherCpuCores: runs.reduce((s, r) => s + r.otherCpuCores, 0) / runs.length };
    }
    table[shape].ratio = table[shape].warden.rps / table[shape].cerbos.rps;
  }
  const git = gitState();
  const L = [];
  L.push(`Measured ${new Date().toISOString()} on ${cpus()[0]?.model?.trim() ?? 'unknown'} (nproc ${availableParallelism()}), Node ${process.version}; Warden code at ${git.head}. Warden ${WARDEN_WORKERS} workers; autocannon ${CONNECTIONS} connections, ${ROUNDS} rounds x ${DURATION} s per server and shape (alternating, after a ${WARMUP} s warm-up). Reproduce: \`npm run bench:plan-api\`.`);
  L.push('');
  L.push('| shape | plan | Cerbos req/s | Warden req/s | throughput Warden/Cerbos | Cerbos p50 / p99 ms | Warden p50 / p99 ms | failed |');
  L.push('|---|---|--:|--:|--:|--:|--:|--:|');
  for (const shape of SHAPES) {
    const c = table[shape].cerbos;
    const w = table[shape].warden;
    L.push(`| ${shape} | \`${agreement[shape].filterDebug}\` | ${fmt(c.rps)} | ${fmt(w.rps)} | ${fmt(table[shape].ratio, 2)}x | ${fmt(c.p50Ms, 2)} / ${fmt(c.p99Ms, 2)} | ${fmt(w.p50Ms, 2)} / ${fmt(w.p99Ms, 2)} | ${c.failures + w.failures} |`);
  }
  const md = L.join('\n');
  console.log(md);
  if (!NO_WRITE) replaceSection(join(benchDir, 'README.md'), '<!-- plan-results:start -->', '<!-- plan-results:end -->', md, log);
  clearTimeout(watchdog);
}

main().catch(async (err) => {
  log(`failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
});
