#!/usr/bin/env node
// Enrichment benchmark: what the resolvers in front of the engine cost.
//
//   npm run bench:enrichment          (= node bench/enrichment.mjs)
//
// Starts everything on 127.0.0.1: tiny node:http upstreams (one worker thread each, answering
// after BENCH_UPSTREAM_MS, 20 ms), a throwaway Postgres database on BENCH_PG_URL's server
// (Warden's DATABASE_URL and the resolvers' tables), and one broker per scenario (2 node:cluster
// workers, its own warden.yaml). Measures:
//
//  1. fan-out: four independent uncached `http` resolvers, each on its own upstream, in front of
//     the tool policy; and a two-level chain (B's key is an attribute A provides). Sequential
//     `POST /v1/check` requests after a warm-up, `explain: false`: client latency percentiles; then
//     checks with `explain: true`: the engine's time (explain.timings.evaluateMs). Beside them a
//     no-resolver baseline, a direct GET to one upstream and a bare Node proxy doing the same
//     four GETs (bench/fanout-proxy.mjs, the floor).
//  2. batching: one `/v1/check` with 50 resources that all need one uncached `postgres` resolver
//     (key resource.id). Queries counted twice: explain.resolvers[].calls, and the delta of
//     seq_scan + idx_scan of the (index-less) table in pg_stat_user_tables, read once the
//     backends have flushed their statistics (at most PGSTAT_IDLE_INTERVAL, 10 s, after a query).
//  3. warm cache: autocannon (the connections and alternation of bench/run.mjs; 5 rounds of 6 s, the
//     verdict on the median of the per-round ratios, each pairing two endpoints run back to back)
//     on `/v1/check` with a token subject and sparse resources, every attribute coming from cached
//     (ttl 5m), warmed resolvers, against the Cerbos API `/api/check/resources` with the full
//     attributes on an identical broker without resolvers (engine only), and, to split the cost,
//     `/v1/check` on that broker with everything stated directly (v1-direct); then both loaded at
//     once (side by side). One worker per broker, every thread pinned to CPU 1, the load
//     generators on CPU 0. Effects are compared first. Then a short CPU profile of one worker per endpoint (BENCH_PROFILE=0 skips
//     it).
//
// Writes bench/results/enrichment.json and the enrichment section of bench/README.md. Every child
// process, upstream and the database are stopped or dropped at the end, on errors, on
// SIGINT/SIGTERM and by a global watchdog.
//
// Knobs (env): BENCH_DURATION (6), BENCH_WARMUP (3), BENCH_ROUNDS (5), BENCH_CONNECTIONS (48),
// BENCH_WARDEN_WORKERS (2), BENCH_LATENCY_REQUESTS (300), BENCH_LATENCY_WARMUP_S (3), BENCH_UPSTREAM_MS (20),
// BENCH_BATCH_REQUESTS (20), BENCH_PROFILE (1; 0 skips the CPU profiles), BENCH_PROFILE_S (8), BENCH_PROFILE_SHAPE (1x1),
// BENCH_PROFILE_KEEP (a directory to copy the .cpuprofile files to), BENCH_PG_URL
// (postgres://postgres@127.0.0.1:5432/test), BENCH_ONLY (comma list of fanout, batch, warm,
// profile: run only those; implies BENCH_NO_WRITE), BENCH_NO_WRITE=1, BENCH_PIN (1; 0: the warm
// cache's brokers and load generators are not pinned), BENCH_WARM_WORKERS (1 when pinned, else
// BENCH_WARDEN_WORKERS).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import {
  allCpus,
  benchDir,
  canPin,
  createBenchDatabase,
  envInt,
  failures,
  fmt,
  gitState,
  loadPhase,
  median,
  mergeHist,
  percentile,
  pinToCpu,
  replaceSection,
  root,
  serverPids as pidsOf,
  sleep,
  startWarden,
  stopProcesses,
  threadPerRequest,
} from './harness.mjs';
import { shapes } from './shapes.mjs';

const DURATION = envInt('BENCH_DURATION', 6);
const WARMUP = envInt('BENCH_WARMUP', 3);
const ROUNDS = envInt('BENCH_ROUNDS', 5);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 48);
const WORKERS = envInt('BENCH_WARDEN_WORKERS', 2);
const LATENCY_N = envInt('BENCH_LATENCY_REQUESTS', 300);
const UPSTREAM_MS = envInt('BENCH_UPSTREAM_MS', 20);
const BATCH_REQUESTS = envInt('BENCH_BATCH_REQUESTS', 20);
const PROFILE = process.env.BENCH_PROFILE !== '0' && (process.env.BENCH_ONLY === undefined || process.env.BENCH_ONLY.includes('profile'));
const PROFILE_S = envInt('BENCH_PROFILE_S', 8);
const PROFILE_SHAPE = process.env.BENCH_PROFILE_SHAPE ?? '1x1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => x.trim())) : undefined;
const runs = (part) => ONLY === undefined || ONLY.has(part);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1' || ONLY !== undefined;
const PROFILE_KEEP = process.env.BENCH_PROFILE_KEEP;
const LATENCY_WARMUP = 20;
/** Seconds of concurrent warm-up before each latency row (the throughput runs warm up for BENCH_WARMUP s too). */
const LATENCY_WARMUP_S = envInt('BENCH_LATENCY_WARMUP_S', 3);
const LATENCY_WARMUP_CLIENTS = 8;
/** Checks with `explain: true` after each measured row: the engine's time and the resolvers' durations. */
const EXPLAIN_N = 100;
const BATCH_SIZE = 50;
const BATCH_ROWS = 60;
/** PGSTAT_IDLE_INTERVAL (10 s) plus a margin: by then every backend has flushed its table counters. */
const STATS_FLUSH_WAIT_MS = 11_500;
const GOAL_FANOUT_FACTOR = 1.15;
const GOAL_WARM_RATIO = 0.8;
const GATEWAY_KEY = 'bench-gateway-key-0123456789abcdef';
const SAMPLE_MS = 200;
/**
 * Warm cache: both brokers (every thread) on CPU 1, the load generators on CPU 0 (BENCH_PIN=0:
 * not pinned), with one worker per broker unless BENCH_WARM_WORKERS says otherwise.
 */
const PIN = process.env.BENCH_PIN !== '0' && canPin();
const BROKER_CPU = 1;
const WARM_WORKERS = envInt('BENCH_WARM_WORKERS', PIN ? 1 : WORKERS);

const log = (msg) => process.stderr.write(`bench:enrichment: ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Process bookkeeping and cleanup

const children = new Set();
const extraPids = new Set();
const upstreams = [];
let tmp;
let db;
let cleaning;

async function stopUpstreams() {
  await Promise.all(
    upstreams.splice(0).map(async (u) => {
      u.worker.postMessage('close');
      await Promise.race([new Promise((r) => u.worker.once('exit', r)), sleep(2000)]);
      await u.worker.terminate();
    }),
  );
}

async function cleanup() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    await stopProcesses(children, extraPids);
    await stopUpstreams();
    agent.destroy();
    if (db !== undefined) await db.drop().catch((e) => log(`could not drop database ${db.name}: ${e.message}`));
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    void cleanup().then(() => process.exit(130));
  });
}

const WARM_SHAPES = ['1x1', '1x5', '10x2'];
const budgetS =
  240 +
  WARM_SHAPES.length * 3 * (WARMUP + ROUNDS * DURATION + 4) +
  WARM_SHAPES.length * ROUNDS * (DURATION + 4) +
  ((LATENCY_N + EXPLAIN_N) * (4 * UPSTREAM_MS + 10)) / 1000 +
  4 * (LATENCY_WARMUP_S + 5) +
  BATCH_REQUESTS * 0.5 +
  (PROFILE ? 3 * (PROFILE_S + 30) : 0);
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${Math.round(budgetS)}s, stopping`);
  void cleanup().then(() => process.exit(2));
}, budgetS * 1000);

// ---------------------------------------------------------------------------------------------
// HTTP client (keep-alive, sequential use) and upstream servers

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** One request; `ms` is the wall time until the whole response body arrived. */
function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const t0 = process.hrtime.bigint();
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        agent,
        timeout: 10_000,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}), ...headers },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          resolve({ status: res.statusCode, ms, text: Buffer.concat(chunks).toString('utf8') });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function postJson(url, body, headers) {
  const res = await request('POST', url, JSON.stringify(body), headers);
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.text.slice(0, 500)}`);
  return { ms: res.ms, json: JSON.parse(res.text) };
}

/**
 * A tiny JSON API on 127.0.0.1 in its own worker thread (bench/upstream.worker.mjs) that answers
 * every request after `delayMs` with `answer.body`, or `answer.byPath[path]` (others: 404).
 * `u.requests` counts the requests it received.
 */
function startUpstream(name, delayMs, answer) {
  const counter = new SharedArrayBuffer(4);
  const count = new Int32Array(counter);
  const worker = new Worker(new URL('./upstream.worker.mjs', import.meta.url), { workerData: { delayMs, ...answer, counter } });
  const u = {
    name,
    worker,
    get requests() {
      return Atomics.load(count, 0);
    },
  };
  upstreams.push(u);
  return new Promise((resolve, reject) => {
    worker.on('error', (err) => {
      log(`upstream ${name}: ${err.message}`);
      reject(err);
    });
    worker.once('message', ({ port }) => {
      u.url = `http://127.0.0.1:${port}`;
      resolve(u);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Brokers

let brokerCount = 0;

/** Starts a broker with `config` (a warden.yaml as an object; JSON is YAML). */
async function startBroker(name, config, { workers = WORKERS, nodeArgs = [], env = {} } = {}) {
  brokerCount += 1;
  const file = join(tmp, `warden-${brokerCount}-${name}.yaml`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const t0 = Date.now();
  const s = await startWarden({ children, name, cwd: tmp, workers, databaseUrl: db.url, config: file, nodeArgs, env });
  log(`${name}: broker up in ${Date.now() - t0} ms (pids ${pidsOf(s, extraPids).join(',')}) at ${s.url}`);
  return s;
}

async function stopBroker(s) {
  const pids = pidsOf(s, extraPids);
  const own = new Set([s.child]);
  await stopProcesses(own, new Set(pids.slice(1)));
  children.delete(s.child);
}

// ---------------------------------------------------------------------------------------------
// Requests

const alice = shapes['1x1'].principal;
const tool = { kind: 'tool', id: 'search_docs' }; // low risk, tenant acme: `tenant-low-risk` allows alice
const gatewayHeaders = { 'x-warden-api-key': GATEWAY_KEY };
const gateways = [{ name: 'bench', apiKey: GATEWAY_KEY }];

const fanoutBody = {
  subject: { id: alice.id, roles: alice.roles, attr: {} },
  action: 'invoke',
  resource: { ...tool, attr: {} },
  explain: true,
};
const chainBody = {
  subject: { id: alice.id, roles: alice.roles, attr: {} },
  action: 'invoke',
  resource: { ...tool, attr: { risk: 'low', tenant: 'acme' } },
  explain: true,
};
const baselineBody = {
  subject: { id: alice.id, roles: alice.roles, attr: { tenant: 'acme' } },
  action: 'invoke',
  resource: { ...tool, attr: { risk: 'low', tenant: 'acme' } },
  explain: true,
};

/**
 * Brings a server to its steady state before a latency row, as the throughput runs do: V8
 * optimises a function only after it has run a while, so the first few hundred checks after a
 * start are slower than the rest. LATENCY_WARMUP_S seconds of LATENCY_WARMUP_CLIENTS concurrent
 * clients, then LATENCY_WARMUP sequential requests. Answers the number of requests sent.
 */
async function warmUp(send) {
  let sent = 0;
  const end = performance.now() + LATENCY_WARMUP_S * 1000;
  await Promise.all(
    Array.from({ length: LATENCY_WARMUP_CLIENTS }, async () => {
      while (performance.now() < end) {
        await send();
        sent += 1;
      }
    }),
  );
  for (let i = 0; i < LATENCY_WARMUP; i++) await send();
  return sent + LATENCY_WARMUP;
}

const stats = (xs) => ({ p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99), max: Math.max(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length });

/**
 * After a warm-up, `n` sequential `/v1/check` requests as a gateway sends them (`explain: false`):
 * the client latency. Then EXPLAIN_N more with `explain: true`: the stage timings (the engine's
 * time among them) and each resolver's duration. Every answer must be `expect`.
 */
async function latencyRun(name, server, body, expect, n = LATENCY_N) {
  const url = `${server.url}/v1/check`;
  const plain = { ...body, explain: false };
  const explained = { ...body, explain: true };
  let wrong = 0;
  const answered = (json) => {
    if (json.decision === expect) return;
    wrong += 1;
    if (wrong === 1) log(`${name}: unexpected answer: ${JSON.stringify(json).slice(0, 800)}`);
  };
  let checks = await warmUp(async () => answered((await postJson(url, plain, gatewayHeaders)).json));
  const client = [];
  for (let i = 0; i < n; i++) {
    const { ms, json } = await postJson(url, plain, gatewayHeaders);
    client.push(ms);
    answered(json);
  }
  const timings = { parseMs: [], enrichMs: [], evaluateMs: [], totalMs: [] };
  const resolvers = {};
  const explainedClient = [];
  for (let i = 0; i < EXPLAIN_N; i++) {
    const { ms, json } = await postJson(url, explained, gatewayHeaders);
    explainedClient.push(ms);
    answered(json);
    for (const k of Object.keys(timings)) timings[k].push(json.explain.timings[k]);
    for (const r of json.explain.resolvers) {
      const acc = (resolvers[r.resolver] ??= { calls: [], keys: [], durationMs: [] });
      acc.calls.push(r.calls);
      acc.keys.push(r.keys);
      acc.durationMs.push(r.durationMs);
    }
  }
  checks += n + EXPLAIN_N;
  if (wrong > 0) throw new Error(`${name}: ${wrong} of ${checks} answers were not ${expect}`);
  const out = {
    requests: n,
    checks,
    clientMs: stats(client),
    explainedClientMs: stats(explainedClient),
    timings: Object.fromEntries(Object.entries(timings).map(([k, xs]) => [k, stats(xs)])),
    resolvers: Object.fromEntries(
      Object.entries(resolvers).map(([r, a]) => [r, { callsPerRequest: stats(a.calls).mean, keysPerRequest: stats(a.keys).mean, durationMs: stats(a.durationMs) }]),
    ),
  };
  log(
    `${name}: client p50 ${fmt(out.clientMs.p50, 2)} ms, p99 ${fmt(out.clientMs.p99, 2)} ms (explain: true p50 ${fmt(out.explainedClientMs.p50, 2)} ms); enrich p50 ${fmt(out.timings.enrichMs.p50, 2)} ms; evaluate p50 ${fmt(out.timings.evaluateMs.p50, 3)} ms, p99 ${fmt(out.timings.evaluateMs.p99, 3)} ms`,
  );
  return out;
}

/**
 * The same exchange through bench/fanout-proxy.mjs (a bare Node server: parse, four GETs, answer),
 * warmed up and measured like a Warden row: the floor any Node server pays here.
 */
async function proxyRun(targets, n = LATENCY_N) {
  const child = spawn(process.execPath, [join(benchDir, 'fanout-proxy.mjs'), ...targets], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`fanout-proxy exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}/`;
    const send = async () => {
      const res = await request('POST', url, JSON.stringify(fanoutBody));
      if (res.status !== 200) throw new Error(`fanout-proxy answered ${res.status}: ${res.text.slice(0, 200)}`);
      return res.ms;
    };
    await warmUp(send);
    const xs = [];
    for (let i = 0; i < n; i++) xs.push(await send());
    const out = stats(xs);
    log(`bare fan-out proxy: client p50 ${fmt(out.p50, 2)} ms, p99 ${fmt(out.p99, 2)} ms`);
    return out;
  } finally {
    child.kill('SIGTERM');
    children.delete(child);
  }
}

/** Sequential GETs straight to one upstream: what 20 ms costs with this client on this machine. */
async function directUpstream(u, n = LATENCY_N) {
  for (let i = 0; i < LATENCY_WARMUP; i++) await request('GET', `${u.url}/probe`);
  const xs = [];
  for (let i = 0; i < n; i++) xs.push((await request('GET', `${u.url}/probe`)).ms);
  return { p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99), max: Math.max(...xs) };
}

// ---------------------------------------------------------------------------------------------
// 1. Fan-out and chain

async function fanoutScenarios(plain) {
  const up = async (name, body) => startUpstream(name, UPSTREAM_MS, { body });
  const [u1, u2, u3, u4, ca, cb] = [
    await up('users', { tenant: 'acme' }),
    await up('groups', { groups: ['eng'] }),
    await up('tool-risk', { risk: 'low' }),
    await up('tool-tenant', { tenant: 'acme' }),
    await up('chain-users', { orgId: 'org-7' }),
    await up('chain-orgs', { tenant: 'acme' }),
  ];
  const direct = await directUpstream(u1);
  log(`direct GET to a ${UPSTREAM_MS} ms upstream: p50 ${fmt(direct.p50, 2)} ms, p99 ${fmt(direct.p99, 2)} ms`);

  const floor = await proxyRun([`${u1.url}/users/alice`, `${u2.url}/groups/alice`, `${u3.url}/tools/search_docs/risk`, `${u4.url}/tools/search_docs/tenant`]);
  const baseline = await latencyRun('no resolvers', plain, baselineBody, 'ALLOW');

  const httpResolver = (name, datasource, key, path, provides) => ({ name, kind: 'http', datasource, key, path, provides });
  const fanout = await startBroker('fanout', {
    gateways,
    datasources: Object.fromEntries([u1, u2, u3, u4].map((u) => [u.name, { kind: 'http', url: u.url }])),
    resolvers: [
      httpResolver('fan-user-tenant', 'users', 'principal.id', '/users/{key}', { 'principal.attr.tenant': 'result.tenant' }),
      httpResolver('fan-user-groups', 'groups', 'principal.id', '/groups/{key}', { 'principal.attr.groups': 'result.groups' }),
      httpResolver('fan-tool-risk', 'tool-risk', 'resource.id', '/tools/{key}/risk', { 'resource.attr.risk': 'result.risk' }),
      httpResolver('fan-tool-tenant', 'tool-tenant', 'resource.id', '/tools/{key}/tenant', { 'resource.attr.tenant': 'result.tenant' }),
    ],
  });
  const before = [u1, u2, u3, u4].map((u) => u.requests);
  const fan = await latencyRun('fan-out (4 x http)', fanout, fanoutBody, 'ALLOW');
  fan.upstreamRequestsPerCheck = [u1, u2, u3, u4].map((u, i) => (u.requests - before[i]) / fan.checks);
  await stopBroker(fanout);

  const chain = await startBroker('chain', {
    gateways,
    datasources: { [ca.name]: { kind: 'http', url: ca.url }, [cb.name]: { kind: 'http', url: cb.url } },
    resolvers: [
      httpResolver('chain-org', ca.name, 'principal.id', '/users/{key}', { 'principal.attr.orgId': 'result.orgId' }),
      httpResolver('chain-tenant', cb.name, 'principal.attr.orgId', '/orgs/{key}', { 'principal.attr.tenant': 'result.tenant' }),
    ],
  });
  const ch = await latencyRun('chain (A -> B)', chain, chainBody, 'ALLOW');
  await stopBroker(chain);
  await stopUpstreams();

  const verdict = (r, levels) => {
    const boundP50 = GOAL_FANOUT_FACTOR * levels * UPSTREAM_MS + r.timings.evaluateMs.p50;
    const boundP99 = GOAL_FANOUT_FACTOR * levels * UPSTREAM_MS + r.timings.evaluateMs.p99;
    return { boundP50Ms: boundP50, boundP99Ms: boundP99, p50Met: r.clientMs.p50 <= boundP50, p99Met: r.clientMs.p99 <= boundP99 };
  };
  return { upstreamMs: UPSTREAM_MS, directUpstreamMs: direct, floorMs: floor, baseline, fanout: { ...fan, goal: verdict(fan, 1) }, chain: { ...ch, goal: verdict(ch, 2) } };
}

// ---------------------------------------------------------------------------------------------
// 2. Batching: 50 resources, one postgres resolver, one query

async function batchScenario() {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    // No index on purpose: every query of the resolver is exactly one sequential scan.
    await c.query('create table bench_batch_items (id text not null, risk text not null, tenant text not null)');
    const ids = Array.from({ length: BATCH_ROWS }, (_, i) => `item-${String(i + 1).padStart(3, '0')}`);
    await c.query(
      `insert into bench_batch_items (id, risk, tenant) select id, case when n % 3 = 0 then 'medium' else 'low' end, 'acme' from unnest($1::text[]) with ordinality as t(id, n)`,
      [ids],
    );
    const scans = async () => {
      await c.query('select pg_stat_clear_snapshot()');
      const r = await c.query(`select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) as n from pg_stat_user_tables where relname = 'bench_batch_items'`);
      return Number(r.rows[0]?.n ?? NaN);
    };
    const broker = await startBroker('batch', {
      gateways,
      datasources: { benchdb: { kind: 'postgres', url: db.url } },
      resolvers: [
        {
          name: 'batch-items',
          kind: 'postgres',
          datasource: 'benchdb',
          key: 'resource.id',
          query: 'select id as key, risk, tenant from bench_batch_items where id = any($1)',
          provides: { 'resource.attr.risk': 'result.risk', 'resource.attr.tenant': 'result.tenant' },
        },
      ],
    });
    const body = {
      subject: { id: alice.id, roles: alice.roles, attr: { tenant: 'acme' } },
      action: 'invoke',
      resources: ids.slice(0, BATCH_SIZE).map((id) => ({ kind: 'tool', id })),
      explain: true,
    };
    const before = await scans();
    const perRequest = [];
    const latencies = [];
    let allowed = 0;
    for (let i = 0; i < BATCH_REQUESTS; i++) {
      const { ms, json } = await postJson(`${broker.url}/v1/check`, body, gatewayHeaders);
      const run = json.explain.resolvers.find((r) => r.resolver === 'batch-items') ?? { calls: 0, keys: 0, durationMs: NaN };
      perRequest.push({ calls: run.calls, keys: run.keys, resolverMs: run.durationMs, enrichMs: json.explain.timings.enrichMs, totalMs: json.explain.timings.totalMs });
      latencies.push(ms);
      allowed = json.results.filter((r) => r.decision === 'ALLOW').length;
      if (json.results.length !== BATCH_SIZE) throw new Error(`batch: ${json.results.length} results for ${BATCH_SIZE} resources`);
      if (json.reasons.some((r) => r.code !== 'policy_denied')) throw new Error(`batch: unexpected reasons ${JSON.stringify(json.reasons.slice(0, 3))}`);
    }
    log(`batch: ${BATCH_REQUESTS} requests sent; waiting ${STATS_FLUSH_WAIT_MS / 1000} s for Postgres to flush table statistics`);
    const t0 = Date.now();
    const seen = [];
    while (Date.now() - t0 < STATS_FLUSH_WAIT_MS) {
      await sleep(1000);
      seen.push(await scans());
    }
    const after = await scans();
    await stopBroker(broker);
    const scanDelta = after - before;
    const calls = perRequest.reduce((s, r) => s + r.calls, 0);
    const out = {
      resources: BATCH_SIZE,
      tableRows: BATCH_ROWS,
      requests: BATCH_REQUESTS,
      allowedPerRequest: allowed,
      tableScans: { before, after, delta: scanDelta, perRequest: scanDelta / BATCH_REQUESTS, progression: seen },
      explain: {
        callsTotal: calls,
        callsPerRequest: { min: Math.min(...perRequest.map((r) => r.calls)), max: Math.max(...perRequest.map((r) => r.calls)) },
        keysPerRequest: { min: Math.min(...perRequest.map((r) => r.keys)), max: Math.max(...perRequest.map((r) => r.keys)) },
        resolverMs: { p50: percentile(perRequest.map((r) => r.resolverMs), 50), max: Math.max(...perRequest.map((r) => r.resolverMs)) },
        totalMs: { p50: percentile(perRequest.map((r) => r.totalMs), 50) },
      },
      clientMs: { p50: percentile(latencies, 50), max: Math.max(...latencies) },
    };
    out.goalMet = scanDelta === BATCH_REQUESTS && out.explain.callsPerRequest.min === 1 && out.explain.callsPerRequest.max === 1;
    log(`batch: table scans ${before} -> ${after} (${fmt(out.tableScans.perRequest, 2)} per request), explain calls per request ${out.explain.callsPerRequest.min}..${out.explain.callsPerRequest.max}, keys ${out.explain.keysPerRequest.min}`);
    return out;
  } finally {
    await c.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Warm cache: /v1/check with cached resolvers vs the engine-only Cerbos API

/** Catalog columns per resource kind: what the cached resolvers provide; the rest stays in the request. */
const CATALOG = {
  tool: { table: 'bench_tools', fields: { risk: 'text', tenant: 'text', owner: 'text' } },
  model: { table: 'bench_models', fields: { provider: 'text', tier: 'text', maxTokens: 'integer', dataClassification: 'text' } },
  mcp_tool: { table: 'bench_mcp_tools', fields: { server: 'text', name: 'text', readOnly: 'boolean', writerGroups: 'text[]' } },
};

/** The warm-cache shapes: name -> { principal, actions, resources } (one action list for all resources, as /v1/check has). */
function warmShapes() {
  const out = {
    '1x1': { principal: shapes['1x1'].principal, actions: ['invoke'], resources: shapes['1x1'].resources.map((r) => r.resource) },
    '1x5': { principal: shapes['1x5'].principal, actions: shapes['1x5'].resources[0].actions, resources: shapes['1x5'].resources.map((r) => r.resource) },
    // bench/run.mjs's 10x1 asks `invoke` of tools and models and `call` of MCP tools; /v1/check has
    // one action list per request, so both endpoints get both actions on all ten resources.
    '10x2': { principal: shapes['10x1'].principal, actions: ['invoke', 'call'], resources: shapes['10x1'].resources.map((r) => r.resource) },
  };
  for (const [name, s] of Object.entries(out)) {
    s.cerbosBody = { requestId: `bench-${name}`, principal: s.principal, resources: s.resources.map((resource) => ({ actions: s.actions, resource })) };
    s.v1Body = {
      subject: { token: `tok-${s.principal.id}` },
      actions: s.actions,
      resources: s.resources.map((r) => {
        const fields = CATALOG[r.kind].fields;
        const attr = Object.fromEntries(Object.entries(r.attr).filter(([k]) => !(k in fields)));
        return { kind: r.kind, id: r.id, attr, ...(r.scope !== undefined ? { scope: r.scope } : {}) };
      }),
    };
    // The same check with everything stated directly (trusted gateway): /v1/check without resolvers.
    s.v1DirectBody = {
      subject: { id: s.principal.id, roles: s.principal.roles, attr: s.principal.attr },
      actions: s.actions,
      resources: s.resources.map((r) => ({ kind: r.kind, id: r.id, attr: r.attr, ...(r.scope !== undefined ? { scope: r.scope } : {}) })),
    };
    s.actionsPerRequest = s.actions.length * s.resources.length;
  }
  return out;
}

/** What the token upstream answers: `/subjects/tok-<id>` -> the principal. */
const idpPaths = (ws) => Object.fromEntries(Object.values(ws).map((s) => [`/subjects/tok-${s.principal.id}`, s.principal]));

async function seedCatalog(ws) {
  const rows = { tool: new Map(), model: new Map(), mcp_tool: new Map() };
  for (const s of Object.values(ws)) {
    for (const r of s.resources) {
      const fields = Object.keys(CATALOG[r.kind].fields);
      const row = Object.fromEntries(fields.map((f) => [f, r.attr[f] ?? null]));
      const prev = rows[r.kind].get(r.id);
      if (prev !== undefined && JSON.stringify(prev) !== JSON.stringify(row)) throw new Error(`catalog: ${r.kind} ${r.id} has two different catalog rows`);
      rows[r.kind].set(r.id, row);
    }
  }
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    for (const [kind, { table, fields }] of Object.entries(CATALOG)) {
      const cols = Object.entries(fields).map(([f, t]) => `"${f}" ${t}`);
      await c.query(`create table ${table} (id text primary key, ${cols.join(', ')})`);
      for (const [id, row] of rows[kind]) {
        const names = Object.keys(fields);
        await c.query(`insert into ${table} (id, ${names.map((f) => `"${f}"`).join(', ')}) values ($1, ${names.map((_, i) => `$${i + 2}`).join(', ')})`, [id, ...names.map((f) => row[f])]);
      }
    }
  } finally {
    await c.end();
  }
  return Object.fromEntries(Object.entries(rows).map(([k, m]) => [k, m.size]));
}

function warmConfig(idp) {
  const catalog = (kind) => {
    const { table, fields } = CATALOG[kind];
    const names = Object.keys(fields);
    return {
      name: `${kind.replace('_', '-')}-catalog`,
      kind: 'postgres',
      datasource: 'catalog',
      key: 'resource.id',
      when: `R.kind == "${kind}"`,
      query: `select id as key, ${names.map((f) => `"${f}"`).join(', ')} from ${table} where id = any($1)`,
      provides: Object.fromEntries(names.map((f) => [`resource.attr.${f}`, `result.${f}`])),
      cache: { ttl: '5m' },
    };
  };
  return {
    gateways,
    datasources: { idp: { kind: 'http', url: idp.url }, catalog: { kind: 'postgres', url: db.url } },
    resolvers: [
      {
        name: 'subject',
        kind: 'http',
        datasource: 'idp',
        key: 'subject.token',
        path: '/subjects/{key}',
        provides: { 'principal.id': 'result.id', 'principal.roles': 'result.roles', 'principal.attr': 'result.attr' },
        cache: { ttl: '5m' },
      },
      catalog('tool'),
      catalog('model'),
      catalog('mcp_tool'),
    ],
  };
}

const canon = (v) =>
  Array.isArray(v) ? v.map(canon) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;

/** Both endpoints must give every action of every resource the same effect. */
async function warmAgreement(ws, plain, warm) {
  const report = {};
  for (const [name, s] of Object.entries(ws)) {
    const { json: c } = await postJson(`${plain.url}/api/check/resources`, s.cerbosBody);
    const { json: v } = await postJson(`${warm.url}/v1/check`, s.v1Body);
    const { json: d } = await postJson(`${plain.url}/v1/check`, s.v1DirectBody, gatewayHeaders);
    const ce = c.results.map((r) => ({ id: r.resource.id, actions: Object.fromEntries(Object.entries(r.actions).map(([a, e]) => [a, e === 'EFFECT_ALLOW' ? 'ALLOW' : 'DENY'])) }));
    const v1Effects = (resp) => resp.results.map((r) => ({ id: r.resource.id, actions: Object.fromEntries(Object.entries(r.actions)) }));
    for (const [label, resp] of [['/v1/check (resolvers)', v], ['/v1/check (no resolvers)', d]]) {
      if (JSON.stringify(canon(ce)) !== JSON.stringify(canon(v1Effects(resp)))) {
        throw new Error(`warm cache: effects differ for ${name}:\n  engine only: ${JSON.stringify(canon(ce))}\n  ${label}: ${JSON.stringify(canon(v1Effects(resp)))}\n  reasons: ${JSON.stringify(resp.reasons)}`);
      }
    }
    const outputsEqual = JSON.stringify(canon(c.results.map((r) => r.outputs ?? []))) === JSON.stringify(canon(v.results.map((r) => r.outputs ?? [])));
    if (!outputsEqual) log(`note: outputs differ for ${name} (effects agree)`);
    const effects = ce.flatMap((r) => Object.values(r.actions));
    report[name] = {
      actions: s.actionsPerRequest,
      allow: effects.filter((e) => e === 'ALLOW').length,
      deny: effects.filter((e) => e === 'DENY').length,
      outputsEqual,
      cerbosBodyBytes: Buffer.byteLength(JSON.stringify(s.cerbosBody)),
      v1BodyBytes: Buffer.byteLength(JSON.stringify(s.v1Body)),
      // Answers re-serialised in their own key order: the bytes each endpoint wrote.
      cerbosAnswerBytes: Buffer.byteLength(JSON.stringify(c)),
      v1AnswerBytes: Buffer.byteLength(JSON.stringify(v)),
    };
  }
  return report;
}

/** After warm-up every attribute must come from the cache. */
async function cacheCheck(ws, warm) {
  const out = {};
  for (const [name, s] of Object.entries(ws)) {
    // Several requests: each worker has its own in-process cache.
    let hits = 0;
    let misses = 0;
    for (let i = 0; i < 4 * WARM_WORKERS; i++) {
      const { json } = await postJson(`${warm.url}/v1/check`, { ...s.v1Body, explain: true });
      for (const item of json.explain.items) {
        for (const p of Object.values(item.attributes)) {
          if (p.cache?.hit === true) hits += 1;
          else misses += 1;
        }
      }
    }
    out[name] = { attributesFromCache: hits, attributesNotFromCache: misses };
  }
  return out;
}

/** A run's server CPU per request on the event loops and on the other threads, and its context switches per request. */
function threadsPerRequest(r) {
  const main = threadPerRequest(r, 'main');
  const other = threadPerRequest(r, 'other');
  return `µs/req main ${fmt(main.cpuUs)}, other threads ${fmt(other.cpuUs)}; switches/req main ${fmt(main.ctx, 2)}, other ${fmt(other.ctx, 2)}`;
}

async function warmScenario(ws, catalogRows) {
  const idp = await startUpstream('idp', UPSTREAM_MS, { byPath: idpPaths(ws) });
  const plain = await startBroker('warm-engine-only', { gateways }, { workers: WARM_WORKERS });
  const warm = await startBroker('warm-cache', warmConfig(idp), { workers: WARM_WORKERS });
  if (PIN) {
    for (const s of [plain, warm]) for (const pid of pidsOf(s, extraPids)) pinToCpu(pid, BROKER_CPU);
    // This thread only (the upstreams' threads keep both CPUs): the load generators it spawns inherit CPU 0.
    pinToCpu(process.pid, 0, false);
    log(`warm cache: brokers pinned to CPU ${BROKER_CPU}, load generators to CPU 0`);
  }
  const agreement = await warmAgreement(ws, plain, warm);
  log(`warm cache: effects agree: ${JSON.stringify(agreement)}`);

  const servers = {
    'engine-only': { server: plain, path: '/api/check/resources', body: (s) => s.cerbosBody },
    enriched: { server: warm, path: '/v1/check', body: (s) => s.v1Body },
    // Decomposition only (no goal): /v1/check itself, with no resolver to run.
    'v1-direct': { server: plain, path: '/v1/check', body: (s) => s.v1DirectBody, headers: gatewayHeaders },
  };
  const phase = async (which, shape, duration, connections = CONNECTIONS) =>
    loadPhase({
      pids: pidsOf(servers[which].server, extraPids),
      sampleMs: SAMPLE_MS,
      children,
      url: `${servers[which].server.url}${servers[which].path}`,
      body: JSON.stringify(servers[which].body(ws[shape])),
      ...(servers[which].headers !== undefined ? { headers: servers[which].headers } : {}),
      connections,
      duration,
    });
  const names = Object.keys(servers);
  const runs = [];
  log(`warm cache: warm-up ${WARMUP} s per endpoint and shape`);
  for (const shape of WARM_SHAPES) {
    for (const which of names) {
      const r = await phase(which, shape, WARMUP);
      runs.push({ kind: 'warmup', shape, endpoint: which, result: { ...r, hist: undefined } });
      if (failures(r) > 0) throw new Error(`warm-up ${which} ${shape}: ${failures(r)} failed requests (${JSON.stringify(r.statusCodeStats)})`);
    }
  }
  const cache = await cacheCheck(ws, warm);
  log(`warm cache: ${JSON.stringify(cache)}`);
  const idpBefore = idp.requests;
  const measured = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const shape of WARM_SHAPES) {
      for (const which of order) {
        const r = await phase(which, shape, DURATION);
        measured.push({ round, shape, endpoint: which, result: r });
        log(
          `round ${round + 1}/${ROUNDS} ${shape.padEnd(4)} ${which.padEnd(11)} ${fmt(r.rps).padStart(7)} req/s  non2xx ${r.non2xx} errors ${r.errors} timeouts ${r.timeouts}  srv ${fmt(r.serverCpuCores, 2)} cores, gen ${fmt(r.loadgenCpuCores, 2)}, others ${fmt(r.otherCpuCores, 2)}; ${threadsPerRequest(r)}`,
        );
      }
    }
  }
  // Side by side: engine-only and enriched loaded at the same time, half the connections each,
  // so that whatever speed the machine has at that moment, both have it. Their throughputs then
  // compare what a request costs each, on the same cores at the same instant.
  const sideBySide = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const shape of WARM_SHAPES) {
      const half = (which) => phase(which, shape, DURATION, Math.max(1, CONNECTIONS >> 1));
      const [o, e] = await Promise.all([half('engine-only'), half('enriched')]);
      if (failures(o) + failures(e) > 0) throw new Error(`side by side ${shape}: ${failures(o) + failures(e)} failed requests`);
      sideBySide.push({ round, shape, engineOnly: { ...o, hist: undefined }, enriched: { ...e, hist: undefined } });
      log(`side by side ${round + 1}/${ROUNDS} ${shape.padEnd(4)} engine-only ${fmt(o.rps).padStart(7)} req/s, enriched ${fmt(e.rps).padStart(7)} req/s: ${fmt(e.rps / o.rps, 2)}; engine-only ${threadsPerRequest(o)}; enriched ${threadsPerRequest(e)}`);
    }
  }
  const idpDuringMeasurement = idp.requests - idpBefore;
  await stopBroker(warm);
  await stopBroker(plain);
  if (PIN) pinToCpu(process.pid, allCpus(), false);

  const table = {};
  for (const shape of WARM_SHAPES) {
    table[shape] = {};
    for (const which of names) {
      const rs = measured.filter((m) => m.shape === shape && m.endpoint === which).map((m) => m.result);
      const lat = mergeHist(rs);
      const rps = rs.reduce((s, r) => s + r.rps, 0) / rs.length;
      table[shape][which] = {
        rps,
        rpsPerRound: rs.map((r) => r.rps),
        actionsPerS: rps * ws[shape].actionsPerRequest,
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        serverCpuCores: rs.reduce((s, r) => s + r.serverCpuCores, 0) / rs.length,
        // Server CPU time per request (all Warden processes), the measure least sensitive to other load.
        cpuUsPerRequest: rs.reduce((s, r) => s + (r.serverCpuCores * 1e6) / r.rps, 0) / rs.length,
        loadgenCpuCores: rs.reduce((s, r) => s + r.loadgenCpuCores, 0) / rs.length,
        otherCpuCores: rs.reduce((s, r) => s + r.otherCpuCores, 0) / rs.length,
        failures: rs.reduce((s, r) => s + failures(r), 0),
      };
    }
    const e = table[shape].enriched;
    const o = table[shape]['engine-only'];
    table[shape].ratio = e.rps / o.rps;
    // Throughput per server core: the same comparison with the load generator's share factored out.
    table[shape].ratioPerCore = e.rps / e.serverCpuCores / (o.rps / o.serverCpuCores);
    // Paired by round: the two endpoints of a shape run back to back, so a drift of the machine's
    // speed (up to 1.7x between minutes here) hits both alike; the median of those pairs is the verdict.
    table[shape].roundRatios = e.rpsPerRound.map((x, i) => x / (o.rpsPerRound[i] ?? NaN));
    table[shape].medianRoundRatio = median(table[shape].roundRatios);
    const side = sideBySide.filter((x) => x.shape === shape);
    table[shape].sideRatios = side.map((x) => x.enriched.rps / x.engineOnly.rps);
    table[shape].sideMedian = median(table[shape].sideRatios);
    table[shape].goalMet = table[shape].medianRoundRatio >= GOAL_WARM_RATIO;
    table[shape].sideGoalMet = table[shape].sideMedian >= GOAL_WARM_RATIO;
    const d = table[shape]['v1-direct'];
    table[shape].routeRatio = d.rps / o.rps;
    table[shape].resolverRatio = e.rps / d.rps;
  }
  return {
    shapes: Object.fromEntries(Object.entries(ws).map(([n, s]) => [n, { principal: s.principal.id, actions: s.actions, resources: s.resources.length, v1Body: s.v1Body }])),
    catalogRows,
    agreement,
    cache,
    idpRequestsDuringMeasurement: idpDuringMeasurement,
    table,
    runs: [...runs, ...measured.map((m) => ({ kind: 'measured', ...m, result: { ...m.result, hist: undefined } }))],
    sideBySide,
  };
}

// ---------------------------------------------------------------------------------------------
// CPU profiles (one worker per endpoint, shape BENCH_PROFILE_SHAPE, default 1x1)

function areaOf(url, functionName) {
  if (url === '' || url === undefined) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return functionName;
    return 'V8/native builtins';
  }
  if (url.startsWith('node:')) return 'node internals';
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1];
  const app = /\/dist\/apps\/broker\/(apps\/broker\/src\/[^/]+|libs\/[^/]+\/src(?:\/[^/]+)?)/.exec(url);
  if (app) return `warden ${app[1].replace(/\.js$/, '').replace('apps/broker/src/', 'app/').replace(/^libs\/([^/]+)\/src/, 'libs/$1')}`;
  return url.replace(/^file:\/\//, '').replace(root, '.');
}

function summarizeProfile(profile, top = 15) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // The profiler's own frames (the preload stopping it and serialising the profile) are not the broker's.
  const excluded = new Set();
  const exclude = (id) => {
    excluded.add(id);
    for (const c of byId.get(id).children ?? []) exclude(c);
  };
  for (const n of profile.nodes) if ((n.callFrame.url ?? '').endsWith('cpu-profile.preload.mjs') && !excluded.has(n.id)) exclude(n.id);
  const self = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (excluded.has(profile.samples[i])) continue;
    const dt = Math.max(0, profile.timeDeltas[i] ?? 0);
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
    total += dt;
  }
  const keyOf = (n) => {
    const cf = n.callFrame;
    const file = (cf.url ?? '').replace(/^file:\/\//, '').replace(`${root}/`, '');
    return `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : cf.functionName.startsWith('(') ? '' : ' (native)'}`;
  };
  const selfByFn = new Map();
  const areas = new Map();
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    if (us === 0) continue;
    const key = keyOf(n);
    selfByFn.set(key, (selfByFn.get(key) ?? 0) + us);
    const area = areaOf(n.callFrame.url, n.callFrame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const idle = selfByFn.get('(idle)') ?? 0;
  const busy = total - idle;
  const pct = (us) => (busy > 0 ? (100 * us) / busy : NaN);
  const sorted = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    sampledMs: total / 1000,
    busyMs: busy / 1000,
    idlePct: total > 0 ? (100 * idle) / total : NaN,
    topSelf: sorted(selfByFn, top + 1).filter(([k]) => k !== '(idle)').map(([k, us]) => ({ fn: k, selfPct: pct(us) })),
    areas: sorted(areas, 40).filter(([k]) => k !== '(idle)').map(([k, us]) => ({ area: k, selfPct: pct(us) })),
  };
}

async function profileEndpoints(ws) {
  const preload = join(benchDir, 'cpu-profile.preload.mjs');
  const profDir = join(tmp, 'profiles');
  mkdirSync(profDir, { recursive: true });
  const idp = await startUpstream('idp-prof', UPSTREAM_MS, { byPath: idpPaths(ws) });
  const targets = [
    { name: 'engine-only', config: { gateways }, path: '/api/check/resources', body: ws[PROFILE_SHAPE].cerbosBody },
    { name: 'v1-direct', config: { gateways }, path: '/v1/check', body: ws[PROFILE_SHAPE].v1DirectBody, headers: gatewayHeaders },
    { name: 'enriched', config: warmConfig(idp), path: '/v1/check', body: ws[PROFILE_SHAPE].v1Body },
  ];
  const out = {};
  // Pinned like the warm-cache runs: the broker on CPU 1, the load generator on CPU 0.
  if (PIN) pinToCpu(process.pid, 0, false);
  for (const t of targets) {
    const prefix = join(profDir, t.name);
    const s = await startBroker(`profile-${t.name}`, t.config, { workers: 1, nodeArgs: ['--import', preload], env: { BENCH_CPU_PROFILE_OUT: prefix } });
    if (PIN) for (const pid of pidsOf(s, extraPids)) pinToCpu(pid, BROKER_CPU);
    const load = (duration) =>
      loadPhase({ pids: [s.pid], children, url: `${s.url}${t.path}`, body: JSON.stringify(t.body), ...(t.headers ? { headers: t.headers } : {}), connections: CONNECTIONS, duration });
    await load(WARMUP);
    process.kill(s.pid, 'SIGWINCH');
    const r = await load(PROFILE_S);
    process.kill(s.pid, 'SIGWINCH');
    if (failures(r) > 0) throw new Error(`profile ${t.name}: ${failures(r)} failed requests (${JSON.stringify(r.statusCodeStats)})`);
    const file = `${prefix}.${s.pid}.cpuprofile`;
    const deadline = Date.now() + 15_000;
    while (!existsSync(file) && Date.now() < deadline) await sleep(200);
    await sleep(300);
    if (!existsSync(file)) throw new Error(`no CPU profile written for ${t.name}`);
    if (PROFILE_KEEP !== undefined) {
      mkdirSync(PROFILE_KEEP, { recursive: true });
      copyFileSync(file, join(PROFILE_KEEP, `${t.name}.cpuprofile`));
    }
    out[t.name] = { rpsWhileProfiled: r.rps, cpuUsPerRequest: (r.serverCpuCores * 1e6) / r.rps, ...summarizeProfile(JSON.parse(readFileSync(file, 'utf8'))) };
    log(`profile ${t.name}: ${fmt(r.rps)} req/s on 1 worker while profiled, idle ${fmt(out[t.name].idlePct, 1)}%; top: ${out[t.name].topSelf.slice(0, 5).map((x) => `${x.fn} ${fmt(x.selfPct, 1)}%`).join('; ')}`);
    await stopBroker(s);
  }
  await stopUpstreams();
  if (PIN) pinToCpu(process.pid, allCpus(), false);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reporting

function markdown(res) {
  const { machine, fanout: f, batch: b, warm: w, profile: p } = res;
  const L = [];
  const dirty = machine.git.changedFilesInAppsLibsPolicies;
  const yes = (ok) => (ok ? '**met**' : '**missed**');
  L.push(
    `Measured ${res.date} on ${machine.cpuModel} (nproc ${machine.nproc}, ${fmt(machine.memGb, 1)} GB RAM), Node ${machine.node}; Warden code at ${machine.git.head}${dirty > 0 ? ` + ${dirty} uncommitted file(s) in apps/libs/policies` : ''}. Warden ${res.config.wardenWorkers} workers (warm cache: ${res.config.warmWorkers}${res.config.warmPinned ? ', pinned to CPU 1' : ''}), DATABASE_URL on a throwaway database. Reproduce: \`npm run bench:enrichment\`.`,
  );
  L.push('');
  L.push(`### 1. Fan-out and chain (uncached \`http\` resolvers, upstreams answering after ${f.upstreamMs} ms)`);
  L.push('');
  L.push(
    `Each row: a warm-up (${LATENCY_WARMUP_S} s of ${LATENCY_WARMUP_CLIENTS} concurrent clients, then ${LATENCY_WARMUP} sequential checks), then ${f.fanout.requests} sequential \`POST /v1/check\` as a gateway sends them (\`explain: false\`): the client columns; then ${EXPLAIN_N} more with \`explain: true\`: the \`enrichMs\` and \`evaluateMs\` columns ("engine" in the goal is \`explain.timings.evaluateMs\`) and the per-resolver durations below. Alice invokes \`search_docs\` (ALLOW every time).`,
  );
  L.push('');
  L.push('| scenario | client p50 ms | client p90 ms | client p99 ms | max ms | enrichMs p50 | evaluateMs p50 / p99 | goal (p50 / p99) | met? |');
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|---|');
  const row = (name, r, goal) =>
    L.push(
      `| ${name} | ${fmt(r.clientMs.p50, 2)} | ${fmt(r.clientMs.p90, 2)} | ${fmt(r.clientMs.p99, 2)} | ${fmt(r.clientMs.max, 2)} | ${fmt(r.timings.enrichMs.p50, 2)} | ${fmt(r.timings.evaluateMs.p50, 3)} / ${fmt(r.timings.evaluateMs.p99, 3)} | ${goal ? `≤ ${fmt(goal.boundP50Ms, 2)} / ≤ ${fmt(goal.boundP99Ms, 2)}` : '–'} | ${goal ? `p50 ${yes(goal.p50Met)}, p99 ${yes(goal.p99Met)}` : '–'} |`,
    );
  L.push(`| bare Node proxy, same four GETs (\`bench/fanout-proxy.mjs\`; the floor) | ${fmt(f.floorMs.p50, 2)} | ${fmt(f.floorMs.p90, 2)} | ${fmt(f.floorMs.p99, 2)} | ${fmt(f.floorMs.max, 2)} | – | – | – | – |`);
  row('no resolvers (baseline)', f.baseline);
  row('fan-out: 4 independent resolvers', f.fanout, f.fanout.goal);
  row('chain: A -> B (B keyed on what A provides)', f.chain, f.chain.goal);
  L.push('');
  L.push(
    `Goals: fan-out ≤ ${GOAL_FANOUT_FACTOR} × ${f.upstreamMs} ms + engine; chain "about 2 × ${f.upstreamMs} ms", checked here as ≤ ${GOAL_FANOUT_FACTOR} × 2 × ${f.upstreamMs} ms + engine. For scale: a GET straight from the bench to one of these upstreams takes p50 ${fmt(f.directUpstreamMs.p50, 2)} ms, p99 ${fmt(f.directUpstreamMs.p99, 2)} ms (the upstream's ${f.upstreamMs} ms plus the local round trip and the wake-ups of the threads involved). The upstreams run in worker threads of the bench process, one event loop each. Per resolver (p50 of its \`explain.resolvers[].durationMs\`): fan-out ${Object.entries(f.fanout.resolvers).map(([n, r]) => `${n} ${fmt(r.durationMs.p50, 2)} ms`).join(', ')}; chain ${Object.entries(f.chain.resolvers).map(([n, r]) => `${n} ${fmt(r.durationMs.p50, 2)} ms`).join(', ')}. Each fan-out upstream saw ${f.fanout.upstreamRequestsPerCheck.map((x) => fmt(x, 2)).join(' / ')} requests per check (no cache). The floor: a bare Node server (\`bench/fanout-proxy.mjs\`: parse the body, the same four GETs with \`node:http\`, answer; warmed up and measured the same way) takes p50 ${fmt(f.floorMs.p50, 2)} ms for this exchange, so Warden's fan-out adds ${fmt(f.fanout.clientMs.p50 - f.floorMs.p50, 2)} ms at p50 to what any Node server pays here; with \`explain: true\` its p50 is ${fmt(f.fanout.explainedClientMs.p50, 2)} ms. Measured against the real upstream instead of the nominal ${f.upstreamMs} ms: fan-out p50 = ${fmt(f.fanout.clientMs.p50 / f.directUpstreamMs.p50, 2)} × the direct GET's p50 (${fmt(f.fanout.clientMs.p50 - f.directUpstreamMs.p50, 2)} ms more), chain p50 = ${fmt(f.chain.clientMs.p50 / f.directUpstreamMs.p50, 2)} × (${fmt(f.chain.clientMs.p50 - 2 * f.directUpstreamMs.p50, 2)} ms more than two direct GETs).`,
  );
  L.push('');
  L.push(`### 2. Batching (one uncached \`postgres\` resolver, ${b.resources} resources per request)`);
  L.push('');
  L.push(
    `${b.requests} sequential \`/v1/check\` requests, each with ${b.resources} \`tool\` resources whose \`risk\` and \`tenant\` come from a ${b.tableRows}-row table (no index, so one query is one sequential scan) through one resolver keyed on \`resource.id\`.`,
  );
  L.push('');
  L.push('| measure | value |');
  L.push('|---|--:|');
  L.push(`| table scans (pg_stat_user_tables seq_scan + idx_scan), before → after | ${b.tableScans.before} → ${b.tableScans.after} |`);
  L.push(`| table scans per request | ${fmt(b.tableScans.perRequest, 2)} |`);
  L.push(`| \`explain.resolvers[].calls\` per request (min..max) | ${b.explain.callsPerRequest.min}..${b.explain.callsPerRequest.max} |`);
  L.push(`| keys per call | ${b.explain.keysPerRequest.min} |`);
  L.push(`| resolver time p50 (\`durationMs\`) | ${fmt(b.explain.resolverMs.p50, 2)} ms |`);
  L.push(`| \`/v1/check\` client latency p50 (50 resources) | ${fmt(b.clientMs.p50, 2)} ms |`);
  L.push(`| decisions | ${b.allowedPerRequest} ALLOW, ${b.resources - b.allowedPerRequest} DENY per request |`);
  L.push('');
  L.push(`Goal: one query per resolver for the whole request: ${yes(b.goalMet)}.`);
  L.push('');
  L.push('### 3. Warm cache: `/v1/check` with cached resolvers vs the engine-only Cerbos API');
  L.push('');
  L.push(
    `Enriched: \`/v1/check\` with \`subject.token\` and sparse resources; the principal (id, roles, attr) comes from an \`http\` resolver and the resources' catalog attributes from three \`postgres\` resolvers (one per kind, \`when: R.kind == ...\`), all with \`cache: {ttl: 5m}\` and warmed (check after warm-up: ${Object.entries(w.cache).map(([n, c]) => `${n} ${c.attributesFromCache} attributes from cache, ${c.attributesNotFromCache} not`).join('; ')}; the token upstream saw ${w.idpRequestsDuringMeasurement} requests during the measured runs). Engine only: \`/api/check/resources\` with the full principal and attributes on an identical broker with no resolvers. ${res.config.warmWorkers} worker${res.config.warmWorkers === 1 ? '' : 's'} per broker${res.config.warmPinned ? '; both brokers, every thread, pinned to CPU 1 and the load generators to CPU 0 (taskset), so a broker never shares its core with the load generator and the ratio is one of what a request costs on one core' : ', not pinned (BENCH_PIN=0): brokers and load generators share both cores'}. autocannon ${res.config.connections} connections, ${res.config.rounds} rounds × ${res.config.durationS} s per endpoint and shape, the endpoints of a shape back to back (order reversed every round), after ${res.config.warmupS} s warm-ups; the goal is judged on the median of the per-round ratios (each pairs two runs a few seconds apart, so the machine's drift between minutes cancels out). \`10x2\`: the ten resources of \`10x1\` with \`invoke\` and \`call\` each (\`/v1/check\` has one action list per request), on both endpoints. \`v1-direct\` (no goal, to split the cost): \`/v1/check\` on the engine-only broker with the subject and all attributes stated directly (gateway API key), so no resolver runs: enriched / v1-direct is what the resolvers cost, v1-direct / engine-only what the \`/v1/check\` route costs over the Cerbos route.`,
  );
  L.push('');
  L.push('| shape | endpoint | req/s | actions/s | p50 ms | p99 ms | server CPU (cores) | server CPU µs / request | load-gen CPU | other processes CPU | failed |');
  L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const shape of WARM_SHAPES) {
    for (const which of ['engine-only', 'v1-direct', 'enriched']) {
      const r = w.table[shape][which];
      L.push(`| ${shape} | ${which} | ${fmt(r.rps)} | ${fmt(r.actionsPerS)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.serverCpuCores, 2)} | ${fmt(r.cpuUsPerRequest)} | ${fmt(r.loadgenCpuCores, 2)} | ${fmt(r.otherCpuCores, 2)} | ${r.failures} |`);
    }
  }
  L.push('');
  L.push(`| shape | enriched / engine-only throughput, each round | median of the rounds | goal ≥ ${GOAL_WARM_RATIO} (on the median) | mean req/s ratio | same, per server core (inverse ratio of CPU per request) | v1-direct / engine-only | enriched / v1-direct |`);
  L.push('|---|--:|--:|---|--:|--:|--:|--:|');
  for (const shape of WARM_SHAPES) {
    const t = w.table[shape];
    L.push(`| ${shape} | ${t.roundRatios.map((x) => fmt(x, 2)).join(' / ')} | ${fmt(t.medianRoundRatio, 2)} | ${yes(t.goalMet)} | ${fmt(t.ratio, 2)} | ${fmt(t.ratioPerCore, 2)} | ${fmt(t.routeRatio, 2)} | ${fmt(t.resolverRatio, 2)} |`);
  }
  L.push('');
  L.push(
    `Side by side: engine-only and enriched loaded at the same time (${Math.max(1, res.config.connections >> 1)} connections each, ${res.config.rounds} rounds × ${res.config.durationS} s per shape), so both see the machine at the same speed; the ratio of their throughputs is the inverse ratio of what a request costs each on the same ${res.config.warmPinned ? 'core (both brokers take turns on CPU 1)' : 'cores'}.`,
  );
  L.push('');
  L.push(`| shape | enriched / engine-only, each round | median | goal ≥ ${GOAL_WARM_RATIO} (on the median) |`);
  L.push('|---|--:|--:|---|');
  for (const shape of WARM_SHAPES) {
    const t = w.table[shape];
    L.push(`| ${shape} | ${t.sideRatios.map((x) => fmt(x, 2)).join(' / ')} | ${fmt(t.sideMedian, 2)} | ${yes(t.sideGoalMet)} |`);
  }
  L.push('');
  L.push(
    `Effects identical on both endpoints (checked before measuring): ${Object.entries(w.agreement).map(([n, a]) => `${n}: ${a.allow} ALLOW / ${a.deny} DENY${a.outputsEqual ? '' : ' (outputs differ)'}, request ${a.cerbosBodyBytes} B vs ${a.v1BodyBytes} B, answer ${a.cerbosAnswerBytes} B vs ${a.v1AnswerBytes} B`).join('; ')} (engine-only vs enriched).`,
  );
  if (p !== undefined) {
    L.push('');
    L.push(`#### CPU profile, shape ${PROFILE_SHAPE} (one worker per endpoint${res.config.warmPinned ? ', pinned to CPU 1' : ''}, ${PROFILE_S} s under the same load, V8 sampling every 100 µs)`);
    L.push('');
    const names = ['engine-only', 'v1-direct', 'enriched'];
    L.push(
      `One single-worker broker per endpoint: ${names.map((n) => `${n} ${fmt(p[n].rpsWhileProfiled)} req/s at ${fmt(p[n].cpuUsPerRequest)} µs of CPU per request`).join(', ')} (process CPU time / requests, profiler overhead included). Self time by area, as a share of the worker's busy (non-idle) samples converted to µs of CPU per request:`,
    );
    L.push('');
    L.push('| area (self time) | engine-only µs / req | v1-direct µs / req | enriched µs / req | v1-direct − engine-only | enriched − v1-direct |');
    L.push('|---|--:|--:|--:|--:|--:|');
    const share = (prof, area) => prof.areas.find((a) => a.area === area)?.selfPct ?? 0;
    const us = (prof, area) => (share(prof, area) / 100) * prof.cpuUsPerRequest;
    const signed = (x) => `${x >= 0 ? '+' : ''}${fmt(x)}`;
    const [eo, vd, en] = names.map((n) => p[n]);
    const areaNames = [...new Set(names.flatMap((n) => p[n].areas.map((a) => a.area)))]
      .map((a) => ({ a, weight: Math.abs(us(vd, a) - us(eo, a)) + Math.abs(us(en, a) - us(vd, a)) + us(eo, a) / 4 }))
      .sort((x, y) => y.weight - x.weight)
      .slice(0, 16);
    for (const { a } of areaNames) {
      L.push(`| ${a} | ${fmt(us(eo, a))} | ${fmt(us(vd, a))} | ${fmt(us(en, a))} | ${signed(us(vd, a) - us(eo, a))} | ${signed(us(en, a) - us(vd, a))} |`);
    }
    L.push(`| **total** | ${fmt(eo.cpuUsPerRequest)} | ${fmt(vd.cpuUsPerRequest)} | ${fmt(en.cpuUsPerRequest)} | ${signed(vd.cpuUsPerRequest - eo.cpuUsPerRequest)} | ${signed(en.cpuUsPerRequest - vd.cpuUsPerRequest)} |`);
    for (const n of ['v1-direct', 'enriched']) {
      L.push('');
      L.push(`Top functions of the ${n} worker by self time:`);
      L.push('');
      L.push('| function | self % | µs / req |');
      L.push('|---|--:|--:|');
      for (const x of p[n].topSelf.slice(0, 12)) L.push(`| \`${x.fn}\` | ${fmt(x.selfPct, 1)} | ${fmt((x.selfPct / 100) * p[n].cpuUsPerRequest)} |`);
    }
  }
  L.push('');
  if (res.noise.busy) {
    L.push(
      `**Noisy machine:** processes outside the bench used on average ${fmt(res.noise.meanOtherCpuCores, 2)} of ${machine.nproc} cores during the measured throughput runs (load average at start ${res.noise.loadavgAtStart}); absolute numbers are depressed and ratios less reliable.`,
    );
    L.push('');
  }
  L.push(`Status: ${res.ok ? 'OK, no failed requests' : `FAILED (${res.failureReason})`}.`);
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  log('building the broker if needed (scripts/ensure-built.mjs)');
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');
  const loadavgAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  tmp = mkdtempSync(join(tmpdir(), 'warden-bench-enrichment-'));
  db = await createBenchDatabase();
  log(`created database ${db.name}`);

  const ws = warmShapes();
  const catalogRows = await seedCatalog(ws);
  let fanout;
  let batch;
  let warm;
  if (runs('fanout')) {
    log('1. fan-out and chain');
    const plain = await startBroker('engine-only', { gateways });
    fanout = await fanoutScenarios(plain);
    await stopBroker(plain);
  }
  if (runs('batch')) {
    log('2. batching');
    batch = await batchScenario();
  }
  if (runs('warm')) {
    log('3. warm cache');
    warm = await warmScenario(ws, catalogRows);
  }
  await stopUpstreams();

  let profile;
  if (PROFILE) {
    log(`CPU profiles (${PROFILE_SHAPE}, one worker each)`);
    profile = await profileEndpoints(ws);
  }
  if (ONLY !== undefined) {
    console.log(JSON.stringify({ fanout, batch, warm: warm && { ...warm, runs: undefined }, profile }, null, 2));
    return;
  }

  const measuredRuns = warm.runs.filter((r) => r.kind === 'measured');
  const meanOther = measuredRuns.reduce((s, r) => s + r.result.otherCpuCores, 0) / measuredRuns.length;
  const totalFailures = measuredRuns.reduce((s, r) => s + failures(r.result), 0);
  const results = {
    date: new Date().toISOString(),
    ok: totalFailures === 0,
    failureReason: totalFailures === 0 ? undefined : `${totalFailures} non-2xx responses, errors or timeouts`,
    command: 'npm run bench:enrichment',
    machine: {
      git: gitState(),
      nproc: availableParallelism(),
      cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
      memGb: totalmem() / 2 ** 30,
      node: process.version,
    },
    config: { connections: CONNECTIONS, durationS: DURATION, warmupS: WARMUP, rounds: ROUNDS, wardenWorkers: WORKERS, warmWorkers: WARM_WORKERS, warmPinned: PIN, latencyRequests: LATENCY_N, upstreamMs: UPSTREAM_MS, batchRequests: BATCH_REQUESTS },
    noise: { loadavgAtStart, meanOtherCpuCores: meanOther, busy: meanOther > 0.15 },
    goals: {
      fanoutP50: fanout.fanout.goal.p50Met,
      fanoutP99: fanout.fanout.goal.p99Met,
      chainP50: fanout.chain.goal.p50Met,
      chainP99: fanout.chain.goal.p99Met,
      batchOneQuery: batch.goalMet,
      warmRatio: Object.fromEntries(WARM_SHAPES.map((s) => [s, { ratio: warm.table[s].ratio, medianRoundRatio: warm.table[s].medianRoundRatio, met: warm.table[s].goalMet, sideBySideMedian: warm.table[s].sideMedian, sideBySideMet: warm.table[s].sideGoalMet }])),
    },
    fanout,
    batch,
    warm,
    profile,
  };
  console.log(JSON.stringify(results.goals, null, 2));
  if (!NO_WRITE) {
    mkdirSync(join(benchDir, 'results'), { recursive: true });
    writeFileSync(join(benchDir, 'results/enrichment.json'), JSON.stringify(results, null, 2) + '\n');
    replaceSection(join(benchDir, 'README.md'), '<!-- enrichment:start -->', '<!-- enrichment:end -->', markdown(results), log);
    log('wrote bench/results/enrichment.json and bench/README.md');
  } else {
    console.log(markdown(results));
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
