#!/usr/bin/env node
// Envoy ext_authz over gRPC vs the Cerbos-compatible HTTP API (`POST /api/check/resources`) on
// the same decisions, same broker, one run.
//
//   npm run bench:ext-authz        (= node bench/ext-authz.bench.mjs)
//
// Starts one Warden (BENCH_WARDEN_WORKERS node:cluster workers, as `npm run bench`) over the
// shipped policies with two `static` resolvers (the bearer token `alice-token` -> user alice of
// bench/shapes.mjs, and the tool catalog -> the tools' attributes), so the ext_authz request (a
// token and the route's `warden.kind/id/action` context_extensions, as Envoy sends them) and the
// Cerbos request (alice and the tool stated in full) reach the same decision. A correctness gate
// checks both transports agree on every shape before measuring. Then warm-up and ROUNDS x [shape
// x transport], the order flipping each round: HTTP load is autocannon (bench/load.mjs), gRPC load
// an in-process grpc-js generator (bench/grpc-load.mjs) keeping the same number of calls in flight.
// CPU of the server, of each load generator and of other processes is measured per run. Prints a
// table, writes bench/results/ext-authz.json and the "ext_authz" section of bench/README.md, and
// stops everything (also on error, SIGINT, SIGTERM and a watchdog).
//
// Knobs (env): BENCH_DURATION (s per measured run, 8), BENCH_WARMUP (2), BENCH_ROUNDS (2),
// BENCH_CONNECTIONS (in-flight requests, 48), BENCH_GRPC_CHANNELS (4), BENCH_WARDEN_WORKERS (2),
// BENCH_NO_WRITE=1 (print only).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
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
  replaceSection,
  root,
  serverPids as pidsOf,
  startWarden,
  stopProcesses,
} from './harness.mjs';
import { shapes } from './shapes.mjs';

const DURATION = envInt('BENCH_DURATION', 8);
const WARMUP = envInt('BENCH_WARMUP', 2);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 48);
const CHANNELS = envInt('BENCH_GRPC_CHANNELS', 4);
const WARDEN_WORKERS = envInt('BENCH_WARDEN_WORKERS', 2);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const TRANSPORTS = ['http', 'grpc'];
const PROTO_DIR = join(root, 'apps/broker/src/proto');

const alice = shapes['1x1'].principal;
const TOOLS = { search_docs: { risk: 'low', tenant: 'acme' }, drop_database: { risk: 'critical', tenant: 'acme' } };
/** Two decisions: the README example (ALLOW) and a critical tool (DENY). */
const SHAPES = {
  'tool-allow': { tool: 'search_docs', expect: 'allowed' },
  'tool-deny': { tool: 'drop_database', expect: 'denied' },
};

const CONFIG = `resolvers:
  - name: bench-tokens
    kind: static
    key: subject.token
    data:
      alice-token: ${JSON.stringify(alice)}
    provides:
      principal.id: result.id
      principal.roles: result.roles
      principal.attr.tenant: result.attr.tenant
      principal.attr.plan: result.attr.plan
      principal.attr.groups: result.attr.groups
  - name: bench-tools
    kind: static
    key: resource.id
    when: R.kind == "tool"
    data: ${JSON.stringify(TOOLS)}
    provides:
      resource.attr.risk: result.risk
      resource.attr.tenant: result.tenant
`;

const httpBody = (shape) =>
  JSON.stringify({ requestId: `bench-${shape}`, principal: alice, resources: [{ actions: ['invoke'], resource: { kind: 'tool', id: SHAPES[shape].tool, attr: TOOLS[SHAPES[shape].tool] } }] });

/** The CheckRequest Envoy sends for a route configured with `warden.kind/id/action`. */
const checkMessage = (shape) => ({
  attributes: {
    request: {
      http: {
        id: 'bench',
        method: 'POST',
        path: `/tools/${SHAPES[shape].tool}`,
        host: 'gw.local',
        scheme: 'http',
        protocol: 'HTTP/1.1',
        headers: { ':authority': 'gw.local', ':method': 'POST', ':path': `/tools/${SHAPES[shape].tool}`, authorization: 'Bearer alice-token', 'content-type': 'application/json', 'x-request-id': 'bench' },
      },
    },
    contextExtensions: { 'warden.kind': 'tool', 'warden.id': SHAPES[shape].tool, 'warden.action': 'invoke' },
  },
});

const log = (msg) => process.stderr.write(`bench:ext-authz: ${msg}\n`);
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
const budgetS = 120 + Object.keys(SHAPES).length * TRANSPORTS.length * (WARMUP + ROUNDS * DURATION + 6);
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${budgetS}s, stopping`);
  void cleanup().then(() => process.exit(2));
}, budgetS * 1000);

/** Both answers of a shape, for the correctness gate. */
async function gate(warden, grpcAddr) {
  const def = loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: [PROTO_DIR], keepCase: false, longs: String, enums: Number, defaults: false, oneofs: true });
  const client = new (loadPackageDefinition(def).envoy.service.auth.v3.Authorization)(grpcAddr, credentials.createInsecure());
  try {
    for (const shape of Object.keys(SHAPES)) {
      const res = await fetch(`${warden.url}/api/check/resources`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: httpBody(shape), signal: AbortSignal.timeout(5000) });
      const json = await res.json();
      const effect = json.results?.[0]?.actions?.invoke;
      const g = await new Promise((resolve, reject) => client.Check(checkMessage(shape), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r))));
      const allowed = (g.status?.code ?? 0) === 0 && g.okResponse !== undefined;
      const want = SHAPES[shape].expect === 'allowed';
      if ((effect === 'EFFECT_ALLOW') !== want || allowed !== want) {
        throw new Error(`${shape}: expected ${SHAPES[shape].expect}, got HTTP ${effect} and gRPC ${allowed ? 'OK' : `status ${g.status?.code} ${g.deniedResponse?.body ?? ''}`}`);
      }
      log(`gate ${shape}: HTTP ${effect}, gRPC ${allowed ? 'OK' : `status ${g.status?.code} (${g.deniedResponse?.status?.code})`}`);
    }
  } finally {
    client.close();
  }
}

async function main() {
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');
  tmp = mkdtempSync(join(tmpdir(), 'warden-extauthz-bench-'));
  const config = join(tmp, 'warden.yaml');
  writeFileSync(config, CONFIG);
  db = await createBenchDatabase();
  const grpcPort = await freePort();
  const grpcAddr = `127.0.0.1:${grpcPort}`;
  const warden = await startWarden({ children, cwd: tmp, workers: WARDEN_WORKERS, databaseUrl: db.url, config, env: { WARDEN_GRPC_ADDR: grpcAddr } });
  await gate(warden, grpcAddr);

  const phase = (transport, shape, duration) =>
    transport === 'http'
      ? loadPhase({ pids: pidsOf(warden, extraPids), children, url: `${warden.url}/api/check/resources`, body: httpBody(shape), connections: CONNECTIONS, duration })
      : loadPhase({ pids: pidsOf(warden, extraPids), children, script: 'grpc-load.mjs', url: grpcAddr, connections: CONNECTIONS, duration, extra: { message: checkMessage(shape), channels: CHANNELS, expect: SHAPES[shape].expect } });
  for (const shape of Object.keys(SHAPES)) for (const t of TRANSPORTS) await phase(t, shape, WARMUP);
  const measured = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? TRANSPORTS : [...TRANSPORTS].reverse();
    for (const shape of Object.keys(SHAPES)) {
      for (const t of order) {
        const r = await phase(t, shape, DURATION);
        measured.push({ shape, transport: t, result: r });
        log(
          `round ${round + 1}/${ROUNDS} ${shape.padEnd(10)} ${t.padEnd(4)} ${fmt(r.rps).padStart(7)} req/s  failed ${failures(r)}  srv ${fmt(r.serverCpuCores, 2)} cores, loadgen ${fmt(r.loadgenCpuCores, 2)}, others ${fmt(r.otherCpuCores, 2)}`,
        );
      }
    }
  }
  await cleanup();

  const avg = (runs, f) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  const table = {};
  for (const shape of Object.keys(SHAPES)) {
    table[shape] = {};
    for (const t of TRANSPORTS) {
      const runs = measured.filter((m) => m.shape === shape && m.transport === t).map((m) => m.result);
      const lat = mergeHist(runs);
      table[shape][t] = {
        rps: avg(runs, (r) => r.rps),
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        failures: runs.reduce((s, r) => s + failures(r), 0),
        serverCpuCores: avg(runs, (r) => r.serverCpuCores),
        // Warden's CPU per answered request: the comparison the load generators' own cost cannot skew.
        serverCpuUsPerReq: avg(runs, (r) => (r.serverCpuCores / r.rps) * 1e6),
        loadgenCpuCores: avg(runs, (r) => r.loadgenCpuCores),
        otherCpuCores: avg(runs, (r) => r.otherCpuCores),
      };
    }
    table[shape].rpsRatio = table[shape].grpc.rps / table[shape].http.rps;
    table[shape].p99Ratio = table[shape].grpc.p99Ms / table[shape].http.p99Ms;
    table[shape].cpuPerReqRatio = table[shape].grpc.serverCpuUsPerReq / table[shape].http.serverCpuUsPerReq;
  }
  const git = gitState();
  const totalFailures = Object.values(table).reduce((s, x) => s + x.http.failures + x.grpc.failures, 0);
  const others = Object.values(table).reduce((s, x) => s + x.http.otherCpuCores + x.grpc.otherCpuCores, 0) / (2 * Object.keys(table).length);
  const othersNote =
    others > 0.2
      ? `The machine was shared with other engineers' test runs: processes outside the bench used ${fmt(others, 2)} cores on average ("others"), so treat the numbers as rough.`
      : `The machine is shared with other engineers' test runs, but was quiet during this one ("others": ${fmt(others, 2)} cores on average).`;
  const L = [];
  L.push(
    `Measured ${new Date().toISOString()} on ${cpus()[0]?.model?.trim() ?? 'unknown'} (nproc ${availableParallelism()}), Node ${process.version}; Warden code at ${git.head}${git.changedFilesInAppsLibsPolicies > 0 ? ` (+${git.changedFilesInAppsLibsPolicies} changed files)` : ''}. One Warden, ${WARDEN_WORKERS} workers; ${CONNECTIONS} requests in flight (HTTP: autocannon connections; gRPC: calls over ${CHANNELS} channels); ${ROUNDS} rounds x ${DURATION} s per transport and shape (alternating, after a ${WARMUP} s warm-up). ${othersNote} Reproduce: \`npm run bench:ext-authz\`.`,
  );
  L.push('');
  L.push(
    '| decision | HTTP `/api/check/resources` req/s | ext_authz gRPC req/s | gRPC/HTTP throughput | HTTP p50 / p99 ms | gRPC p50 / p99 ms | gRPC/HTTP p99 | Warden CPU µs per request HTTP / gRPC (ratio) | Warden CPU cores HTTP / gRPC | load generator CPU cores HTTP / gRPC | others | failed |',
  );
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const shape of Object.keys(SHAPES)) {
    const h = table[shape].http;
    const g = table[shape].grpc;
    L.push(
      `| ${shape} (${SHAPES[shape].expect}) | ${fmt(h.rps)} | ${fmt(g.rps)} | ${fmt(table[shape].rpsRatio, 2)}x | ${fmt(h.p50Ms, 2)} / ${fmt(h.p99Ms, 2)} | ${fmt(g.p50Ms, 2)} / ${fmt(g.p99Ms, 2)} | ${fmt(table[shape].p99Ratio, 2)}x | ${fmt(h.serverCpuUsPerReq)} / ${fmt(g.serverCpuUsPerReq)} (${fmt(table[shape].cpuPerReqRatio, 2)}x) | ${fmt(h.serverCpuCores, 2)} / ${fmt(g.serverCpuCores, 2)} | ${fmt(h.loadgenCpuCores, 2)} / ${fmt(g.loadgenCpuCores, 2)} | ${fmt((h.otherCpuCores + g.otherCpuCores) / 2, 2)} | ${h.failures + g.failures} |`,
    );
  }
  const md = L.join('\n');
  console.log(md);
  if (!NO_WRITE) {
    writeFileSync(
      join(benchDir, 'results/ext-authz.json'),
      `${JSON.stringify({ date: new Date().toISOString(), git, host: { cpus: availableParallelism(), model: cpus()[0]?.model?.trim(), node: process.version }, knobs: { DURATION, WARMUP, ROUNDS, CONNECTIONS, CHANNELS, WARDEN_WORKERS }, table }, null, 2)}\n`,
    );
    replaceSection(join(benchDir, 'README.md'), '<!-- ext-authz-results:start -->', '<!-- ext-authz-results:end -->', md, log);
    log('wrote bench/results/ext-authz.json and bench/README.md');
  }
  clearTimeout(watchdog);
  if (totalFailures > 0) {
    log(`${totalFailures} failed requests (errors or wrong verdicts)`);
    process.exit(1);
  }
}

main().catch(async (err) => {
  log(`failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
});
