#!/usr/bin/env node
// HTTP benchmark: Warden vs the real Cerbos 0.55 PDP on the same policies (./policies).
//
//   npm run bench            (= node bench/run.mjs)
//
// Starts both servers on 127.0.0.1 (Warden with 2 node:cluster workers), checks that they return
// identical effects for every bench body, then drives them with autocannon in alternation
// (warm-up, then ROUNDS x [shape x server], the server order flipping each round), samples the
// servers' RSS, prints a table, writes bench/results/latest.json and the results section of
// bench/README.md, runs the in-process engine bench (bench/engine.bench.mjs), and stops
// everything (also on error, SIGINT, SIGTERM and a global watchdog).
//
// Knobs (env): BENCH_DURATION (s per measured run, 10), BENCH_WARMUP (s per warm-up run, 3),
// BENCH_ROUNDS (2), BENCH_CONNECTIONS (48), BENCH_WARDEN_WORKERS (2), BENCH_SKIP_ENGINE=1,
// BENCH_NO_WRITE=1 (print only; do not touch bench/results or bench/README.md).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
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
  mb,
  mergeHist,
  policyDir,
  procStatus,
  replaceSection,
  root,
  serverPids as pidsOf,
  spawnServer,
  BROKER_NODE_ARGS,
  startWarden as startBroker,
  stopProcesses,
  waitHealthy,
} from './harness.mjs';
import { actionCount, httpBody, shapes } from './shapes.mjs';

const cerbosBin = join(root, 'node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64');

const DURATION = envInt('BENCH_DURATION', 10);
const WARMUP = envInt('BENCH_WARMUP', 3);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 48);
const WARDEN_WORKERS = envInt('BENCH_WARDEN_WORKERS', 2);
const SKIP_ENGINE = process.env.BENCH_SKIP_ENGINE === '1';
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const SHAPES = Object.keys(shapes);
const SERVERS = ['cerbos', 'warden'];
const SAMPLE_MS = 200;

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Process bookkeeping and cleanup (every child we start is tracked and stopped by its pid).

const children = new Set(); // ChildProcess objects we spawned
const extraPids = new Set(); // Warden cluster workers (grandchildren) seen while sampling
let tmp;
let db; // the throwaway database Warden's workers share (DATABASE_URL)
let cleaning;

async function cleanup() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    await stopProcesses(children, extraPids);
    if (db !== undefined) await db.drop().catch((e) => log(`could not drop database ${db.name}: ${e.message}`));
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping servers`);
    void cleanup().then(() => process.exit(130));
  });
}

// Global watchdog: the whole run is bounded even if something hangs.
const budgetS = 120 + SHAPES.length * SERVERS.length * (WARMUP + ROUNDS * DURATION + 4) + (SKIP_ENGINE ? 0 : 120);
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${budgetS}s, stopping`);
  void cleanup().then(() => process.exit(2));
}, budgetS * 1000);

// ---------------------------------------------------------------------------------------------
// Servers

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
    [
      'server',
      `--set=server.httpListenAddr=127.0.0.1:${httpPort}`,
      `--set=server.grpcListenAddr=127.0.0.1:${grpcPort}`,
      '--set=storage.driver=disk',
      `--set=storage.disk.directory=${policyDir}`,
      '--set=storage.disk.watchForChanges=false',
      '--set=audit.enabled=false',
      '--log-level=warn',
    ],
    { cwd: tmp, env: { ...process.env, CERBOS_NO_TELEMETRY: '1' } },
  );
  s.url = `http://127.0.0.1:${httpPort}`;
  await waitHealthy(s, s.url);
  return s;
}

function startWarden() {
  // Defaults only: no WARDEN_CONFIG, and cwd is an empty temp dir, so no ./warden.yaml either.
  // More than one worker needs DATABASE_URL (the embedded PGlite is single-process).
  return startBroker({ children, cwd: tmp, workers: WARDEN_WORKERS, databaseUrl: db.url });
}

/** pids that make up a server (Warden: primary + cluster workers). */
const serverPids = (s) => pidsOf(s, extraPids);

// ---------------------------------------------------------------------------------------------
// Correctness gate: both servers must return identical effects for every bench body.

async function post(url, body) {
  const res = await fetch(`${url}/api/check/resources`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

function effectsOf(resp) {
  return (resp.results ?? []).map((r) => ({ id: r.resource?.id, kind: r.resource?.kind, actions: r.actions }));
}

const canon = (v) =>
  Array.isArray(v) ? v.map(canon) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;

async function checkAgreement(cerbos, warden) {
  const report = {};
  for (const name of SHAPES) {
    const body = httpBody(name);
    const [c, w] = await Promise.all([post(cerbos.url, body), post(warden.url, body)]);
    const ce = JSON.stringify(canon(effectsOf(c)));
    const we = JSON.stringify(canon(effectsOf(w)));
    if (ce !== we) {
      throw new Error(`effects differ for shape ${name}:\n  cerbos: ${ce}\n  warden: ${we}`);
    }
    const outputsEqual =
      JSON.stringify(canon((c.results ?? []).map((r) => r.outputs ?? []))) === JSON.stringify(canon((w.results ?? []).map((r) => r.outputs ?? [])));
    if (!outputsEqual) log(`note: outputs differ for shape ${name} (effects agree)`);
    const effects = effectsOf(c).flatMap((r) => Object.values(r.actions));
    report[name] = {
      actions: actionCount(name),
      allow: effects.filter((e) => e === 'EFFECT_ALLOW').length,
      deny: effects.filter((e) => e === 'EFFECT_DENY').length,
      outputsEqual,
      requestBytes: Buffer.byteLength(body),
    };
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Load runs

/** Runs one load phase against a server while sampling its RSS and CPU. */
async function phase(server, shape, duration, rssPeak) {
  const res = await loadPhase({
    pids: serverPids(server),
    sampleMs: SAMPLE_MS,
    children,
    url: `${server.url}/api/check/resources`,
    body: httpBody(shape),
    connections: CONNECTIONS,
    duration,
  });
  rssPeak[server.name] = Math.max(rssPeak[server.name] ?? 0, res.peakRssKb);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Reporting

function summarize(measured, rssPeak, hwm, idle) {
  const table = {};
  for (const shape of SHAPES) {
    table[shape] = {};
    for (const srv of SERVERS) {
      const runs = measured.filter((r) => r.shape === shape && r.server === srv).map((r) => r.result);
      const lat = mergeHist(runs);
      const rps = runs.reduce((s, r) => s + r.rps, 0) / runs.length;
      table[shape][srv] = {
        rps,
        rpsPerRound: runs.map((r) => r.rps),
        actionsPerS: rps * actionCount(shape),
        p50Ms: lat.p50,
        p90Ms: lat.p90,
        p99Ms: lat.p99,
        maxMs: lat.max,
        autocannonP99MsPerRound: runs.map((r) => r.autocannonLatencyMs.p99),
        requests: runs.reduce((s, r) => s + r.requests, 0),
        failures: runs.reduce((s, r) => s + failures(r), 0),
        non2xx: runs.reduce((s, r) => s + (r.non2xx ?? 0), 0),
        serverCpuCores: runs.reduce((s, r) => s + r.serverCpuCores, 0) / runs.length,
        loadgenCpuCores: runs.reduce((s, r) => s + r.loadgenCpuCores, 0) / runs.length,
        otherCpuCores: runs.reduce((s, r) => s + r.otherCpuCores, 0) / runs.length,
        peakRssMb: mb(Math.max(...runs.map((r) => r.peakRssKb))),
      };
    }
    const c = table[shape].cerbos;
    const w = table[shape].warden;
    table[shape].ratio = { throughput: w.rps / c.rps, p50: w.p50Ms / c.p50Ms, p99: w.p99Ms / c.p99Ms, rss: w.peakRssMb / c.peakRssMb };
  }
  const memory = {};
  for (const srv of SERVERS) {
    memory[srv] = { idleRssMb: mb(idle[srv]), peakRssMb: mb(rssPeak[srv] ?? 0), sumVmHwmMb: mb(hwm[srv]) };
  }
  memory.ratio = { peakRss: memory.warden.peakRssMb / memory.cerbos.peakRssMb, idleRss: memory.warden.idleRssMb / memory.cerbos.idleRssMb };
  return { table, memory };
}

function markdown(results) {
  const { table, memory, machine, config, date, agreement } = results;
  const L = [];
  const dirty = machine.git.changedFilesInAppsLibsPolicies;
  L.push(
    `Measured ${date} on ${machine.cpuModel} (nproc ${machine.nproc}, ${fmt(machine.memGb, 1)} GB RAM), Node ${machine.node}, Cerbos ${machine.cerbosVersion}; Warden code at ${machine.git.head}${dirty > 0 ? ` + ${dirty} uncommitted file(s) in apps/libs/policies` : ''}, started as \`node ${BROKER_NODE_ARGS.join(' ')}\` (as \`npm start\` and the Dockerfile do).`,
  );
  L.push(
    `Warden ${config.wardenWorkers} workers; autocannon ${config.connections} connections, pipelining 1, ${config.rounds} rounds x ${config.durationS} s per server and shape (alternating, after a ${config.warmupS} s warm-up of each), load generator on the same ${machine.nproc} cores. Reproduce: \`npm run bench\`.`,
  );
  L.push('');
  L.push('| shape | server | req/s | actions/s | p50 ms | p99 ms | server CPU (cores) | load-gen CPU (cores) | other processes CPU (cores) | peak RSS MB | failed |');
  L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const shape of SHAPES) {
    for (const srv of SERVERS) {
      const r = table[shape][srv];
      L.push(
        `| ${shape} | ${srv} | ${fmt(r.rps)} | ${fmt(r.actionsPerS)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.serverCpuCores, 2)} | ${fmt(r.loadgenCpuCores, 2)} | ${fmt(r.otherCpuCores, 2)} | ${fmt(r.peakRssMb, 1)} | ${r.failures} |`,
      );
    }
  }
  L.push('');
  L.push('Warden / Cerbos ratios (throughput: higher is better for Warden; latency and RSS: lower is better):');
  L.push('');
  L.push('| shape | throughput | p50 | p99 | peak RSS |');
  L.push('|---|--:|--:|--:|--:|');
  for (const shape of SHAPES) {
    const q = table[shape].ratio;
    L.push(`| ${shape} | ${fmt(q.throughput, 2)}x | ${fmt(q.p50, 2)}x | ${fmt(q.p99, 2)}x | ${fmt(q.rss, 2)}x |`);
  }
  L.push('');
  L.push('Memory over the whole run (Warden = primary + workers, summed):');
  L.push('');
  L.push('| server | RSS idle after start MB | peak RSS (sampled every 200 ms) MB | sum of VmHWM MB |');
  L.push('|---|--:|--:|--:|');
  for (const srv of SERVERS) {
    const m = memory[srv];
    L.push(`| ${srv} | ${fmt(m.idleRssMb, 1)} | ${fmt(m.peakRssMb, 1)} | ${fmt(m.sumVmHwmMb, 1)} |`);
  }
  L.push('');
  L.push(
    `Bench bodies (effects identical on both servers, checked before measuring): ${SHAPES.map((s) => `${s}: ${agreement[s].allow} ALLOW / ${agreement[s].deny} DENY, ${agreement[s].requestBytes} B`).join('; ')}.`,
  );
  if (results.noise.busy) {
    L.push(
      `**Noisy machine:** processes outside the bench used on average ${fmt(results.noise.meanOtherCpuCores, 2)} of ${machine.nproc} cores during the measured runs (load average at start ${results.noise.loadavgAtStart}); absolute numbers are depressed and ratios less reliable. Re-run on an idle machine.`,
    );
  }
  L.push(`Status: ${results.ok ? 'OK, no non-2xx responses, errors or timeouts' : `FAILED (${results.failureReason})`}.`);
  return L.join('\n');
}

function printTable(results) {
  const rows = [];
  for (const shape of SHAPES) {
    for (const srv of SERVERS) {
      const r = results.table[shape][srv];
      rows.push({
        shape,
        server: srv,
        'req/s': fmt(r.rps),
        'p50 ms': fmt(r.p50Ms, 2),
        'p99 ms': fmt(r.p99Ms, 2),
        'srv cores': fmt(r.serverCpuCores, 2),
        'gen cores': fmt(r.loadgenCpuCores, 2),
        'other cores': fmt(r.otherCpuCores, 2),
        'peak RSS MB': fmt(r.peakRssMb, 1),
        failed: r.failures,
      });
    }
    const q = results.table[shape].ratio;
    rows.push({ shape, server: 'W/C ratio', 'req/s': `${fmt(q.throughput, 2)}x`, 'p50 ms': `${fmt(q.p50, 2)}x`, 'p99 ms': `${fmt(q.p99, 2)}x`, 'peak RSS MB': `${fmt(q.rss, 2)}x` });
  }
  console.table(rows);
  console.table(
    Object.fromEntries(SERVERS.map((s) => [s, { 'idle RSS MB': fmt(results.memory[s].idleRssMb, 1), 'peak RSS MB': fmt(results.memory[s].peakRssMb, 1), 'sum VmHWM MB': fmt(results.memory[s].sumVmHwmMb, 1) }])),
  );
}

// ---------------------------------------------------------------------------------------------

async function main() {
  log('building the broker if needed (scripts/ensure-built.mjs)');
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');

  const loadavgAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  tmp = mkdtempSync(join(tmpdir(), 'warden-bench-'));
  db = await createBenchDatabase();
  log(`created database ${db.name} for Warden's workers (DATABASE_URL)`);
  log('starting Cerbos and Warden');
  const [cerbos, warden] = await Promise.all([startCerbos(), startWarden()]);
  const servers = { cerbos, warden };
  const wardenPids = serverPids(warden);
  if (wardenPids.length !== WARDEN_WORKERS + 1) log(`warning: expected ${WARDEN_WORKERS + 1} Warden processes, found ${wardenPids.length}`);
  log(`cerbos pid ${cerbos.pid} at ${cerbos.url}; warden pids ${wardenPids.join(',')} at ${warden.url}`);

  let cerbosVersion = 'unknown';
  try {
    cerbosVersion = (await (await fetch(`${cerbos.url}/api/server_info`)).json()).version ?? cerbosVersion;
  } catch {
    /* informational */
  }

  const agreement = await checkAgreement(cerbos, warden);
  log(`effects agree on all ${SHAPES.length} shapes: ${JSON.stringify(agreement)}`);

  await sleep(500);
  const idle = Object.fromEntries(SERVERS.map((s) => [s, serverPids(servers[s]).reduce((a, p) => a + (procStatus(p)?.rssKb ?? 0), 0)]));

  const rssPeak = {};
  const allRuns = [];
  log(`warm-up: ${WARMUP} s per server and shape`);
  for (const shape of SHAPES) {
    for (const srv of SERVERS) {
      const r = await phase(servers[srv], shape, WARMUP, rssPeak);
      allRuns.push({ kind: 'warmup', shape, server: srv, result: r });
      if (failures(r) > 0) throw Object.assign(new Error(`warm-up ${srv} ${shape}: ${failures(r)} failed requests (${JSON.stringify(r.statusCodeStats)})`), { runs: allRuns });
    }
  }
  const measured = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? SERVERS : [...SERVERS].reverse();
    for (const shape of SHAPES) {
      for (const srv of order) {
        const r = await phase(servers[srv], shape, DURATION, rssPeak);
        const entry = { kind: 'measured', round, shape, server: srv, result: r };
        allRuns.push(entry);
        measured.push(entry);
        log(
          `round ${round + 1}/${ROUNDS} ${shape.padEnd(4)} ${srv.padEnd(6)} ${fmt(r.rps).padStart(7)} req/s  non2xx ${r.non2xx} errors ${r.errors} timeouts ${r.timeouts}  srv ${fmt(r.serverCpuCores, 2)} cores, gen ${fmt(r.loadgenCpuCores, 2)} cores, others ${fmt(r.otherCpuCores, 2)} cores`,
        );
      }
    }
  }

  const hwm = Object.fromEntries(SERVERS.map((s) => [s, serverPids(servers[s]).reduce((a, p) => a + (procStatus(p)?.hwmKb ?? 0), 0)]));
  await cleanup();
  cleaning = undefined; // allow the engine bench child to be tracked and cleaned too
  children.clear();

  const meanOther = measured.reduce((s, e) => s + e.result.otherCpuCores, 0) / measured.length;
  const noise = { loadavgAtStart, meanOtherCpuCores: meanOther, busy: meanOther > 0.15 };
  if (noise.busy) log(`WARNING: other processes used ${fmt(meanOther, 2)} cores on average during the measured runs; results are noisy`);
  const totalFailures = measured.reduce((s, e) => s + failures(e.result), 0);
  const { table, memory } = summarize(measured, rssPeak, hwm, idle);
  const machine = {
    git: gitState(),
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
    memGb: totalmem() / 2 ** 30,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cerbosVersion,
  };
  const results = {
    date: new Date().toISOString(),
    ok: totalFailures === 0,
    failureReason: totalFailures === 0 ? undefined : `${totalFailures} non-2xx responses, errors or timeouts`,
    command: 'npm run bench',
    machine,
    config: { connections: CONNECTIONS, pipelining: 1, durationS: DURATION, warmupS: WARMUP, rounds: ROUNDS, wardenWorkers: WARDEN_WORKERS, cerbosGomaxprocs: 'default (= nproc)' },
    shapes: Object.fromEntries(SHAPES.map((s) => [s, { description: shapes[s].description, actions: actionCount(s) }])),
    agreement,
    noise,
    table,
    memory,
    runs: allRuns.map((e) => ({ ...e, result: { ...e.result, hist: undefined } })),
  };

  printTable(results);
  if (!NO_WRITE) {
    mkdirSync(join(benchDir, 'results'), { recursive: true });
    writeFileSync(join(benchDir, 'results/latest.json'), JSON.stringify(results, null, 2) + '\n');
    replaceSection(join(benchDir, 'README.md'), '<!-- results:start -->', '<!-- results:end -->', markdown(results), log);
    log('wrote bench/results/latest.json and bench/README.md');
  }

  if (!SKIP_ENGINE) {
    log('in-process engine bench (bench/engine.bench.mjs)');
    const engineArgs = NO_WRITE ? ['--no-write'] : [];
    // Same build as the HTTP bench (no rebuild in between, even if sources changed meanwhile).
    const child = spawn(process.execPath, [join(benchDir, 'engine.bench.mjs'), ...engineArgs], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, BENCH_SKIP_BUILD: '1' },
    });
    children.add(child);
    const code = await new Promise((r) => child.on('close', r));
    if (code !== 0) throw new Error(`engine bench exited ${code}`);
  }

  if (!results.ok) throw new Error(`bench FAILED: ${results.failureReason}`);
}

main()
  .then(async () => {
    clearTimeout(watchdog);
    await cleanup();
    process.exit(0);
  })
  .catch(async (err) => {
    log(`error: ${err?.stack ?? err}`);
    clearTimeout(watchdog);
    await cleanup();
    process.exit(1);
  });
