#!/usr/bin/env node
// nginx with Warden's `auth_request` against nginx alone: what asking Warden adds to a request
// that an AI gateway proxies to a model provider.
//
//   npm run bench:nginx        (= node bench/nginx-auth.bench.mjs)
//
// Starts on 127.0.0.1, on free ports:
//  - a small OpenAI-compatible upstream (bench/openai-upstream.mjs, its own process) answering
//    `POST /v1/chat/completions` with a fixed chat completion and counting the requests it gets;
//  - Warden (the built dist, BENCH_WARDEN_WORKERS workers, 1 by default) with the demo bearer
//    tokens of the shipped ./warden.yaml (its `demo-tokens` resolver, copied as is) and the
//    shipped ./policies plus one `route` policy: nginx's auth_request never forwards the body,
//    so Warden decides on the route (kind `route`, id `<host><path>`, action `post`), for which
//    the shipped policies have no rule. The policy is the one the nginx e2e test uses: users of
//    tenant `acme` may POST to `.../v1/chat/completions`, with a region routing hint;
//  - one nginx (Debian's, `daemon off`, master process, 1 worker, its own prefix in a temp dir,
//    error log there, no access log) with two server blocks in front of the same upstream
//    (keepalive to it in both): "alone" proxies straight to it; "warden" first asks Warden's
//    `/v1/ext-authz` with auth_request, as examples/nginx/warden-auth.conf does (keepalive
//    upstream to Warden, X-Original-URI / X-Original-Method, Authorization passed through, the
//    decision id and region forwarded to the upstream).
// Before measuring it checks that through the Warden block the demo token gets 200 from the
// upstream (which sees Warden's decision id), and that no token (401), an unknown token (401) and
// a route the policy denies (403) are refused without reaching the upstream (its request count
// does not move). Then autocannon (bench/load.mjs, a child process) sends the same request (bearer
// token, OpenAI body with `model`) to both blocks with the same connections, alternating, for
// each connection count of BENCH_CONNECTIONS: a warm-up, then BENCH_ROUNDS rounds with the order
// flipping every round. It reports p50/p90/p99 and throughput per block, the ratios
// (warden / alone), the added p50/p99 in ms, and the CPU of nginx (master + worker), Warden,
// the upstream, the load generator and the rest of the machine ("others") during each run.
// Writes bench/results/nginx-auth.json and the nginx section of bench/README.md. Everything is
// stopped at the end, on errors, on SIGINT/SIGTERM and by a global watchdog.
//
// Knobs (env): BENCH_DURATION (s per measured run, 8), BENCH_WARMUP (2), BENCH_ROUNDS (2),
// BENCH_CONNECTIONS (comma list of connection counts, "1,32"), BENCH_WARDEN_WORKERS (1; more
// than 1 needs the Postgres of BENCH_PG_URL for a throwaway database), NGINX (path of the nginx
// binary; default `nginx` on PATH, else /usr/sbin/nginx), BENCH_NO_WRITE=1 (print only).
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  alive,
  benchDir,
  childPids,
  createBenchDatabase,
  envInt,
  failures,
  fmt,
  freePort,
  gitState,
  loadPhase,
  mergeHist,
  policyDir,
  procCpuS,
  replaceSection,
  root,
  serverPids,
  sleep,
  spawnServer,
  startWarden,
  stopProcesses,
} from './harness.mjs';

const DURATION = envInt('BENCH_DURATION', 8);
const WARMUP = envInt('BENCH_WARMUP', 2);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const WARDEN_WORKERS = envInt('BENCH_WARDEN_WORKERS', 1);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const LEVELS = (process.env.BENCH_CONNECTIONS || '1,32').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n <= 0) throw new Error(`BENCH_CONNECTIONS must be a comma list of positive integers, got ${process.env.BENCH_CONNECTIONS}`);
  return n;
});
const BLOCKS = ['alone', 'warden'];
const BLOCK_LABEL = { alone: 'nginx alone', warden: 'nginx + Warden auth_request' };
const PATH = '/v1/chat/completions';
const TOKEN = 'alice-demo-token'; // ./warden.yaml demo-tokens: alice, role user, tenant acme, residency US
const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello in five words.' }], max_tokens: 16 });
const HEADERS = { authorization: `Bearer ${TOKEN}` };

// The shipped policies have no `route` policy; this is the nginx e2e test's
// (test/e2e/nginx-forward-auth.e2e-spec.ts), unchanged.
const ROUTE_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: route
  version: default
  rules:
    - actions: [post]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id.endsWith("/v1/chat/completions") && P.attr.tenant == "acme"
      output:
        when:
          ruleActivated: '{"region": P.attr.residency == "EU" ? "eu-west-1" : "us-east-1"}'
`;

const log = (msg) => process.stderr.write(`bench:nginx: ${msg}\n`);
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
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    interrupted = true;
    log(`${sig}: stopping`);
    void cleanup().then(() => process.exit(130));
  });
// Last resort (an exit that skipped cleanup): kill whatever is left, synchronously.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of extraPids) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
const budgetS = 120 + LEVELS.length * BLOCKS.length * (WARMUP + 3 + ROUNDS * (DURATION + 3));
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${budgetS}s, stopping`);
  void cleanup().then(() => process.exit(2));
}, budgetS * 1000);

function findNginx() {
  if (process.env.NGINX) return process.env.NGINX;
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  if (which !== '') return which;
  if (existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx';
  throw new Error('nginx not found (Debian: apt-get install nginx-light, as .ci/run does; or set NGINX=/path/to/nginx)');
}

function waitPort(port, server, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (server.child.exitCode !== null || server.child.signalCode !== null) return reject(new Error(`${server.name} exited during startup:\n${server.log()}`));
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`${server.name} did not listen on ${port} in ${timeoutMs} ms:\n${server.log()}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

function nginxConf({ dir, alonePort, wardenPort, upstreamPort, pdpPort }) {
  return `# Written by bench/nginx-auth.bench.mjs.
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  # nginx closes a client connection after 1000 requests by default. autocannon 9 then keeps the
  # request it had just written on that connection in its queue and times every later response on
  # the connection from an earlier request (latencies grow with every close; seen here as a p50 of
  # 3.4 ms at 1 connection and 6,500 req/s). So the client side never closes during a run.
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;

  upstream llm_provider { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  upstream warden_pdp   { server 127.0.0.1:${pdpPort}; keepalive 64; }

  # nginx alone: straight to the provider.
  server {
    listen 127.0.0.1:${alonePort};
    location / {
      proxy_pass         http://llm_provider;
      proxy_http_version 1.1;
      proxy_set_header   Connection "";
    }
  }

  # nginx asking Warden first (examples/nginx/warden-auth.conf).
  server {
    listen 127.0.0.1:${wardenPort};
    location = /_warden {
      internal;
      proxy_pass              http://warden_pdp/v1/ext-authz;
      proxy_http_version      1.1;
      proxy_set_header        Connection "";
      proxy_pass_request_body off;
      proxy_set_header        Content-Length "";
      proxy_set_header        X-Original-URI    $request_uri;
      proxy_set_header        X-Original-Method $request_method;
      proxy_connect_timeout   1s;
      proxy_read_timeout      2s;
    }
    location / {
      auth_request       /_warden;
      auth_request_set   $warden_decision $upstream_http_x_warden_decision_id;
      auth_request_set   $warden_region   $upstream_http_x_warden_region;
      proxy_set_header   X-Warden-Decision-Id $warden_decision;
      proxy_set_header   X-Warden-Region      $warden_region;
      add_header         X-Warden-Decision-Id $warden_decision always;
      proxy_pass         http://llm_provider;
      proxy_http_version 1.1;
      proxy_set_header   Connection "";
    }
  }
}
`;
}

async function startNginx(nginxBin, ports) {
  const dir = join(tmp, 'nginx');
  mkdirSync(dir, { recursive: true });
  // As root, nginx's worker runs as `nobody`: let it reach its prefix.
  chmodSync(tmp, 0o755);
  chmodSync(dir, 0o755);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf({ dir, ...ports }));
  const t = spawnSync(nginxBin, ['-t', '-c', conf, '-p', `${dir}/`], { encoding: 'utf8', timeout: 10_000 });
  if (t.status !== 0) throw new Error(`nginx -t failed:\n${t.stderr}`);
  const s = spawnServer(children, 'nginx', nginxBin, ['-c', conf, '-p', `${dir}/`], { cwd: dir });
  s.dir = dir;
  await waitPort(ports.alonePort, s);
  await waitPort(ports.wardenPort, s);
  // Master + worker (the worker's pid is remembered so cleanup can kill it if the master dies).
  const deadline = Date.now() + 5000;
  while (childPids(s.pid).length === 0 && Date.now() < deadline) await sleep(20);
  for (const p of childPids(s.pid)) extraPids.add(p);
  return s;
}

async function startUpstream() {
  const port = await freePort();
  const s = spawnServer(children, 'upstream', process.execPath, [join(benchDir, 'openai-upstream.mjs'), String(port)], { cwd: root });
  s.port = port;
  s.url = `http://127.0.0.1:${port}`;
  await waitPort(port, s);
  return s;
}

async function upstreamStats(upstream) {
  const res = await fetch(`${upstream.url}/_bench/stats`, { signal: AbortSignal.timeout(5000) });
  return res.json();
}

async function call(base, path, headers) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: BODY, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** The gate: the Warden block lets the demo token through to the upstream and nothing else. */
async function checkRoutes(bases, upstream) {
  const out = {};
  const expectHits = async (name, fn, wantStatus, wantHits) => {
    const before = (await upstreamStats(upstream)).hits;
    const r = await fn();
    const after = await upstreamStats(upstream);
    const hits = after.hits - before;
    out[name] = { status: r.status, upstreamHits: hits };
    if (r.status !== wantStatus || hits !== wantHits) throw new Error(`gate "${name}": got ${r.status} with ${hits} upstream request(s), want ${wantStatus} with ${wantHits}: ${r.text.slice(0, 300)}`);
    return { r, after };
  };
  {
    const { r } = await expectHits('alone: demo token', () => call(bases.alone, PATH, HEADERS), 200, 1);
    if (JSON.parse(r.text).object !== 'chat.completion') throw new Error(`alone block: not the upstream's answer: ${r.text}`);
  }
  {
    const { r, after } = await expectHits('warden: demo token', () => call(bases.warden, PATH, HEADERS), 200, 1);
    if (JSON.parse(r.text).object !== 'chat.completion') throw new Error(`warden block: not the upstream's answer: ${r.text}`);
    const id = r.headers.get('x-warden-decision-id');
    if (!/^[0-9a-f-]{36}$/.test(id ?? '') || after.lastDecisionId !== id) throw new Error(`warden block: decision id ${id} not seen by the upstream (it saw ${after.lastDecisionId})`);
    out['warden: demo token'].decisionIdAtUpstream = true;
    out['warden: demo token'].regionAtUpstream = after.lastRegion;
  }
  await expectHits('warden: no token', () => call(bases.warden, PATH, {}), 401, 0);
  await expectHits('warden: unknown token', () => call(bases.warden, PATH, { authorization: 'Bearer nobody-knows-me' }), 401, 0);
  await expectHits('warden: route the policy denies', () => call(bases.warden, '/v1/fine_tuning/jobs', HEADERS), 403, 0);
  return out;
}

async function main() {
  const nginxBin = findNginx();
  const nginxVersion = (spawnSync(nginxBin, ['-v'], { encoding: 'utf8' }).stderr || '').trim().replace(/^nginx version:\s*/, '');
  const nginxV = spawnSync(nginxBin, ['-V'], { encoding: 'utf8' }).stderr || '';
  if (!nginxV.includes('--with-http_auth_request_module')) throw new Error(`${nginxBin} is built without the auth_request module`);
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');

  tmp = mkdtempSync(join(tmpdir(), 'warden-nginx-bench-'));
  // Warden's configuration: the demo bearer tokens of the shipped ./warden.yaml, nothing else.
  const shipped = parse(readFileSync(join(root, 'warden.yaml'), 'utf8'));
  const tokens = shipped.resolvers.find((r) => r.name === 'demo-tokens');
  if (tokens?.data?.[TOKEN] === undefined) throw new Error(`./warden.yaml has no demo-tokens resolver with ${TOKEN}`);
  const config = join(tmp, 'warden.yaml');
  writeFileSync(config, stringify({ resolvers: [tokens] }));
  const policies = join(tmp, 'policies');
  cpSync(policyDir, policies, { recursive: true });
  writeFileSync(join(policies, 'resource_policies', 'bench_route.yaml'), ROUTE_POLICY);
  if (WARDEN_WORKERS > 1) db = await createBenchDatabase();

  const upstream = await startUpstream();
  const warden = await startWarden({ children, cwd: tmp, workers: WARDEN_WORKERS, config, env: { WARDEN_POLICY_DIR: policies }, ...(db !== undefined ? { databaseUrl: db.url } : {}) });
  const wardenPids = serverPids(warden, extraPids);
  const [alonePort, wardenPort] = [await freePort(), await freePort()];
  if (alonePort === wardenPort) throw new Error('freePort returned the same port twice');
  const nginx = await startNginx(nginxBin, { alonePort, wardenPort, upstreamPort: upstream.port, pdpPort: Number(new URL(warden.url).port) });
  const nginxPids = [nginx.pid, ...childPids(nginx.pid)];
  const bases = { alone: `http://127.0.0.1:${alonePort}`, warden: `http://127.0.0.1:${wardenPort}` };
  log(`${nginxVersion} (pids ${nginxPids.join(', ')}), Warden ${warden.url} (${WARDEN_WORKERS} worker(s), pids ${wardenPids.join(', ')}), upstream ${upstream.url}`);

  const gate = await checkRoutes(bases, upstream);
  log(`gate passed: ${JSON.stringify(gate)}`);

  const groups = { nginx: nginxPids, warden: wardenPids, upstream: [upstream.pid] };
  const allPids = Object.values(groups).flat();
  const phase = async (block, connections, duration) => {
    const cpu0 = Object.fromEntries(Object.entries(groups).map(([g, ps]) => [g, ps.reduce((s, p) => s + procCpuS(p), 0)]));
    const hits0 = (await upstreamStats(upstream)).hits;
    const t0 = process.hrtime.bigint();
    const r = await loadPhase({ pids: allPids, children, url: `${bases[block]}${PATH}`, body: BODY, headers: HEADERS, connections, duration });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    r.cpuCores = Object.fromEntries(Object.entries(groups).map(([g, ps]) => [g, (ps.reduce((s, p) => s + procCpuS(p), 0) - cpu0[g]) / wallS]));
    r.upstreamHits = (await upstreamStats(upstream)).hits - hits0;
    if (failures(r) > 0) throw new Error(`${block} at ${connections} connections: ${failures(r)} failed requests (status codes ${JSON.stringify(r.statusCodeStats)}); nginx error log:\n${readFileSync(join(nginx.dir, 'error.log'), 'utf8').slice(-3000)}`);
    // Little's law: with N connections and one request in flight on each, the summed latencies
    // cannot exceed N x the run's length. More means responses were timed from the wrong request.
    const sp = r.hist.sparse;
    let latencySumMs = 0;
    for (let i = 0; i < sp.length; i += 2) latencySumMs += ((sp[i] + 0.5) * r.hist.bucketUs * sp[i + 1]) / 1000;
    r.inFlight = latencySumMs / 1000 / r.durationS;
    if (r.inFlight > connections * 1.1 + 0.05) throw new Error(`${block} at ${connections} connections: latencies add up to ${r.inFlight.toFixed(2)} requests in flight; the load generator's timing is broken`);
    // Every answered request reached the upstream (at most `connections` more were in flight when autocannon stopped).
    if (r.upstreamHits < r.requests || r.upstreamHits > r.requests + connections) throw new Error(`${block}: ${r.requests} answered requests but ${r.upstreamHits} upstream hits`);
    return r;
  };

  const measured = [];
  for (const connections of LEVELS) {
    for (const block of BLOCKS) await phase(block, connections, WARMUP);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? BLOCKS : [...BLOCKS].reverse();
      for (const block of order) {
        const r = await phase(block, connections, DURATION);
        measured.push({ connections, block, round: round + 1, result: r });
        const lat = mergeHist([r]);
        log(
          `c=${String(connections).padStart(3)} round ${round + 1}/${ROUNDS} ${block.padEnd(6)} ${fmt(r.rps).padStart(7)} req/s (${r.requests} in ${fmt(r.durationS, 2)} s)  p50 ${fmt(lat.p50, 2)} p99 ${fmt(lat.p99, 2)} ms  ` +
            `cores: nginx ${fmt(r.cpuCores.nginx, 2)} warden ${fmt(r.cpuCores.warden, 2)} upstream ${fmt(r.cpuCores.upstream, 2)} load-gen ${fmt(r.loadgenCpuCores, 2)} others ${fmt(r.otherCpuCores, 2)}`,
        );
      }
    }
  }
  const errorLog = readFileSync(join(nginx.dir, 'error.log'), 'utf8');
  await cleanup();

  const avg = (runs, f) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  const summary = [];
  for (const connections of LEVELS) {
    const row = { connections };
    for (const block of BLOCKS) {
      const runs = measured.filter((m) => m.connections === connections && m.block === block).map((m) => m.result);
      const lat = mergeHist(runs);
      const rps = avg(runs, (r) => r.rps);
      const cpu = { nginx: avg(runs, (r) => r.cpuCores.nginx), warden: avg(runs, (r) => r.cpuCores.warden), upstream: avg(runs, (r) => r.cpuCores.upstream), loadgen: avg(runs, (r) => r.loadgenCpuCores), others: avg(runs, (r) => r.otherCpuCores) };
      row[block] = {
        rps,
        p50Ms: lat.p50,
        p90Ms: lat.p90,
        p99Ms: lat.p99,
        maxMs: lat.max,
        requests: runs.reduce((s, r) => s + r.requests, 0),
        failures: runs.reduce((s, r) => s + failures(r), 0),
        cpuCores: cpu,
        othersRange: [Math.min(...runs.map((r) => r.otherCpuCores)), Math.max(...runs.map((r) => r.otherCpuCores))],
        // CPU the serving side (nginx + Warden + upstream) spends per request, µs.
        serveCpuUsPerRequest: ((cpu.nginx + cpu.warden + cpu.upstream) / rps) * 1e6,
        nginxCpuUsPerRequest: (cpu.nginx / rps) * 1e6,
        wardenCpuUsPerRequest: (cpu.warden / rps) * 1e6,
      };
    }
    const a = row.alone;
    const w = row.warden;
    row.ratio = { throughput: w.rps / a.rps, p50: w.p50Ms / a.p50Ms, p90: w.p90Ms / a.p90Ms, p99: w.p99Ms / a.p99Ms, serveCpuPerRequest: w.serveCpuUsPerRequest / a.serveCpuUsPerRequest };
    row.addedMs = { p50: w.p50Ms - a.p50Ms, p90: w.p90Ms - a.p90Ms, p99: w.p99Ms - a.p99Ms };
    summary.push(row);
  }

  const git = gitState();
  const others = measured.map((m) => m.result.otherCpuCores);
  const othersMin = Math.min(...others);
  const othersMax = Math.max(...others);
  const shared = othersMax >= 0.1;
  const L = [];
  L.push(
    `Measured ${new Date().toISOString()} on ${cpus()[0]?.model?.trim() ?? 'unknown'} (nproc ${availableParallelism()}, ${fmt(totalmem() / 2 ** 30, 1)} GB RAM), Node ${process.version}, ${nginxVersion} (Debian, 1 worker process); ` +
      `Warden code at ${git.head}${git.changedFilesInAppsLibsPolicies ? ` + ${git.changedFilesInAppsLibsPolicies} uncommitted file(s) in apps/libs/policies` : ''}, ${WARDEN_WORKERS} worker(s). ` +
      `autocannon (one process, same machine) with ${LEVELS.join(' and ')} connection(s), ${ROUNDS} rounds x ${DURATION} s per block (alternating, after a ${WARMUP} s warm-up of each). Reproduce: \`npm run bench:nginx\`.`,
  );
  L.push('');
  L.push(
    shared
      ? `**Shared machine:** other processes (not nginx, Warden, the upstream, the load generator or the bench) used ${fmt(othersMin, 2)}–${fmt(othersMax, 2)} of the ${availableParallelism()} cores during the measured runs ("others" below), so absolute numbers are depressed and noisy; the ratios compare runs taken in alternation in the same run.`
      : `Other processes used ${fmt(othersMin, 2)}–${fmt(othersMax, 2)} cores during the measured runs (a quiet machine).`,
  );
  L.push('');
  L.push('| connections | block | req/s | p50 ms | p90 ms | p99 ms | nginx CPU | Warden CPU | upstream CPU | load-gen CPU | others CPU | serving CPU µs / req | failed |');
  L.push('|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const row of summary) {
    for (const block of BLOCKS) {
      const b = row[block];
      L.push(
        `| ${row.connections} | ${BLOCK_LABEL[block]} | ${fmt(b.rps)} | ${fmt(b.p50Ms, 2)} | ${fmt(b.p90Ms, 2)} | ${fmt(b.p99Ms, 2)} | ${fmt(b.cpuCores.nginx, 2)} | ${fmt(b.cpuCores.warden, 2)} | ${fmt(b.cpuCores.upstream, 2)} | ${fmt(b.cpuCores.loadgen, 2)} | ${fmt(b.cpuCores.others, 2)} | ${fmt(b.serveCpuUsPerRequest, 0)} | ${b.failures} |`,
      );
    }
  }
  L.push('');
  L.push('CPU in cores (1.00 = one core busy for the whole run); "serving CPU" = nginx + Warden + upstream CPU per request. Ratios with Warden / nginx alone (throughput: lower means Warden costs more; latency and CPU: higher means Warden costs more), and the latency Warden adds:');
  L.push('');
  L.push('| connections | throughput | p50 | p90 | p99 | serving CPU / req | added p50 ms | added p99 ms |');
  L.push('|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const row of summary) {
    L.push(`| ${row.connections} | ${fmt(row.ratio.throughput, 2)}x | ${fmt(row.ratio.p50, 2)}x | ${fmt(row.ratio.p90, 2)}x | ${fmt(row.ratio.p99, 2)}x | ${fmt(row.ratio.serveCpuPerRequest, 2)}x | ${fmt(row.addedMs.p50, 2)} | ${fmt(row.addedMs.p99, 2)} |`);
  }
  L.push('');
  L.push(
    `Checked before measuring, through the Warden block: \`Bearer ${TOKEN}\` → 200 from the upstream, which received Warden's decision id (and region hint \`${gate['warden: demo token'].regionAtUpstream}\`); no token → ${gate['warden: no token'].status}, an unknown token → ${gate['warden: unknown token'].status}, a route the policy denies (\`/v1/fine_tuning/jobs\`) → ${gate['warden: route the policy denies'].status}, none of them reaching the upstream (its request count unchanged). During the runs every answered request reached the upstream.`,
  );
  L.push(`Status: OK, no failed requests${errorLog.trim() === '' ? '; nginx error log empty' : `; nginx error log: ${errorLog.trim().split('\n').length} line(s)`}.`);
  const md = L.join('\n');
  console.log(md);

  const json = {
    measuredAt: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model?.trim(), nproc: availableParallelism(), totalMemGb: totalmem() / 2 ** 30, node: process.version, nginx: nginxVersion },
    code: git,
    config: { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, connections: LEVELS, wardenWorkers: WARDEN_WORKERS, path: PATH, body: BODY, token: TOKEN, routePolicy: ROUTE_POLICY },
    gate,
    summary,
    runs: measured.map((m) => ({ connections: m.connections, block: m.block, round: m.round, ...m.result, hist: undefined, latency: mergeHist([m.result]) })),
    nginxErrorLog: errorLog,
    reproduce: 'npm run bench:nginx',
  };
  if (!NO_WRITE) {
    mkdirSync(join(benchDir, 'results'), { recursive: true });
    writeFileSync(join(benchDir, 'results', 'nginx-auth.json'), `${JSON.stringify(json, null, 2)}\n`);
    replaceSection(join(benchDir, 'README.md'), '<!-- nginx-auth:start -->', '<!-- nginx-auth:end -->', md, log);
  }
  clearTimeout(watchdog);
}

main().catch(async (err) => {
  if (!interrupted) log(`failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(interrupted ? 130 : 1);
});
