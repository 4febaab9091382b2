#!/usr/bin/env node
// Tool discovery benchmark: `POST /v1/plan` over a 1,000-tool catalog.
//
//   npm run bench:plan          (= node bench/plan.bench.mjs; builds first when dist/ is stale)
//
// A throwaway Postgres database on BENCH_PG_URL's server holds the catalog (1,000 tools: risk
// and tenant per tool). One broker (the built dist, BENCH_WARDEN_WORKERS workers, 1 by default so
// the latencies are one process's) with the shipped policies and:
//  - a `kind: catalog` resolver listing the table (`select id from bench_tools`, cached 5m: the
//    catalog, not a per-request cost);
//  - one uncached `postgres` resolver (key resource.id) giving each candidate its risk and tenant,
//    which every plan must call for all 1,000 candidates.
// Sequential plans (a trusted gateway states the subject: a support approver, so the answer has
// allowed, conditional and denied tools) with `limit: 1000` and `explain: true`: client latency
// percentiles (goal p50 < 25 ms), the broker's own stage timings, and the queries the resolver
// made per plan, counted twice: `explain.resolvers[].calls` (batches) and the delta of the
// table's index + sequential scans in pg_stat_user_tables over the measured requests (read once
// the broker's backend has flushed its statistics, up to 10 s after its last query).
//
// Writes bench/results/plan.json and the plan section of bench/README.md. The broker and the
// database are stopped or dropped at the end, on errors and on SIGINT/SIGTERM.
//
// Knobs (env): BENCH_PLAN_REQUESTS (200), BENCH_PLAN_WARMUP (30), BENCH_PLAN_TOOLS (1000),
// BENCH_WARDEN_WORKERS (1), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test), BENCH_NO_WRITE=1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { benchDir, createBenchDatabase, envInt, fmt, gitState, percentile, replaceSection, root, sleep, startWarden, stopProcesses } from './harness.mjs';

const REQUESTS = envInt('BENCH_PLAN_REQUESTS', 200);
const WARMUP = envInt('BENCH_PLAN_WARMUP', 30);
const TOOLS = envInt('BENCH_PLAN_TOOLS', 1000);
const WORKERS = envInt('BENCH_WARDEN_WORKERS', 1);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const GATEWAY_KEY = 'bench-plan-gateway-key-0123456789';
const log = (...a) => console.error('[plan-bench]', ...a);

const children = new Set();
const extraPids = new Set();
let db;
let scratch;
async function cleanup() {
  await stopProcesses(children, extraPids).catch(() => undefined);
  await db?.drop().catch(() => undefined);
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void cleanup().then(() => process.exit(130)));

function ensureBuilt() {
  const r = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

async function scans(client) {
  const r = await client.query("select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) as n from pg_stat_user_tables where relname = 'bench_tools'");
  return Number(r.rows[0]?.n ?? 0);
}

async function main() {
  ensureBuilt();
  db = await createBenchDatabase();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('create table bench_tools (id text primary key, risk text not null, tenant text not null)');
    const risks = ['low', 'low', 'medium', 'high', 'critical'];
    const rows = Array.from({ length: TOOLS }, (_, i) => [`tool_${String(i).padStart(4, '0')}`, risks[i % risks.length], i % 10 === 9 ? 'globex' : 'acme']);
    // Some tools are the refund tool's siblings: conditional on the call's amount.
    rows[0][0] = 'issue_refund';
    rows[0][1] = 'high';
    for (let i = 0; i < rows.length; i += 500) {
      const chunk = rows.slice(i, i + 500);
      await client.query(`insert into bench_tools values ${chunk.map((_, k) => `($${3 * k + 1}, $${3 * k + 2}, $${3 * k + 3})`).join(', ')}`, chunk.flat());
    }
    await client.query('analyze bench_tools');

    scratch = mkdtempSync(join(tmpdir(), 'warden-plan-bench-'));
    const config = join(scratch, 'warden.yaml');
    writeFileSync(
      config,
      [
        'datasources:',
        `  bench: { kind: postgres, url: "${db.url}" }`,
        'gateways:',
        `  - { name: bench, apiKey: "${GATEWAY_KEY}" }`,
        'resolvers:',
        '  - { name: bench-catalog, kind: catalog, resourceKind: tool, source: postgres, datasource: bench, query: "select id from bench_tools", cache: { ttl: 5m } }',
        '  - name: bench-tools',
        '    kind: postgres',
        '    datasource: bench',
        '    key: resource.id',
        '    when: R.kind == "tool"',
        '    query: select id as key, risk, tenant from bench_tools where id = any($1)',
        '    provides: { resource.attr.risk: result.risk, resource.attr.tenant: result.tenant }',
        '    timeout: 2s',
        '',
      ].join('\n'),
    );
    const warden = await startWarden({ children, name: 'warden-plan', cwd: scratch, workers: WORKERS, databaseUrl: db.url, config });
    const body = JSON.stringify({
      subject: { id: 'ray', roles: ['support_agent', 'refund_approver'], attr: { tenant: 'acme', approvalLimit: 500 } },
      kind: 'tool',
      catalog: 'bench-catalog',
      limit: 1000,
      explain: true,
    });
    const plan = async () => {
      const t = performance.now();
      const res = await fetch(`${warden.url}/v1/plan`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-warden-api-key': GATEWAY_KEY }, body });
      const json = await res.json();
      const ms = performance.now() - t;
      if (res.status !== 200) throw new Error(`plan answered ${res.status}: ${JSON.stringify(json)}`);
      return { ms, json };
    };
    log(`warming up (${WARMUP} plans of ${TOOLS} tools)`);
    let sample;
    for (let i = 0; i < WARMUP; i++) sample = (await plan()).json;
    const counted = sample.allowed.length + sample.conditional.length + sample.denied.count;
    if (counted !== TOOLS || sample.truncated) throw new Error(`expected ${TOOLS} tools on one page, got ${counted} (truncated ${sample.truncated})`);
    await sleep(11_000);
    const scansBefore = await scans(client);
    log(`measuring ${REQUESTS} sequential plans`);
    const lat = [];
    const stage = { listMs: [], enrichMs: [], planMs: [], totalMs: [] };
    const calls = new Map();
    for (let i = 0; i < REQUESTS; i++) {
      const { ms, json } = await plan();
      lat.push(ms);
      for (const k of Object.keys(stage)) stage[k].push(json.explain.timings[k]);
      for (const r of json.explain.resolvers) {
        const c = calls.get(r.resolver) ?? { calls: [], keys: [] };
        c.calls.push(r.calls);
        c.keys.push(r.keys);
        calls.set(r.resolver, c);
      }
    }
    log('waiting for Postgres statistics (10 s)');
    await sleep(11_000);
    const scansAfter = await scans(client);
    const result = {
      date: new Date().toISOString(),
      git: gitState(),
      host: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
      tools: TOOLS,
      requests: REQUESTS,
      workers: WORKERS,
      answer: { allowed: sample.allowed.length, conditional: sample.conditional.length, denied: sample.denied, example: sample.conditional[0] },
      latencyMs: { p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99), max: Math.max(...lat) },
      brokerMs: Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, { p50: percentile(v, 50), p99: percentile(v, 99) }])),
      queries: {
        perPlan: Object.fromEntries([...calls].map(([name, c]) => [name, { callsMin: Math.min(...c.calls), callsMax: Math.max(...c.calls), keys: Math.max(...c.keys) }])),
        tableScans: scansAfter - scansBefore,
        tableScansPerPlan: (scansAfter - scansBefore) / REQUESTS,
      },
      goals: { p50Under25ms: percentile(lat, 50) < 25, oneQueryPerResolverPerLevel: [...calls.values()].every((c) => Math.max(...c.calls) === 1) },
    };
    console.log(JSON.stringify(result, null, 2));
    if (!NO_WRITE) {
      writeFileSync(join(benchDir, 'results/plan.json'), `${JSON.stringify(result, null, 2)}\n`);
      const q = result.queries.perPlan['bench-tools'];
      replaceSection(
        join(benchDir, 'README.md'),
        '<!-- plan:start -->',
        '<!-- plan:end -->',
        [
          `Measured ${result.date} on ${result.host.cpus} CPUs (${result.host.model}), Node ${result.host.node}; Warden code at ${result.git.head}${result.git.changedFilesInAppsLibsPolicies > 0 ? ` + ${result.git.changedFilesInAppsLibsPolicies} uncommitted file(s) in apps/libs/policies` : ''}; ${WORKERS} worker, ${REQUESTS} sequential plans after ${WARMUP} warm-up ones. Reproduce: \`npm run bench:plan\`.`,
          '',
          '| measure | value | goal |',
          '|---|---|---|',
          `| \`/v1/plan\` latency over ${TOOLS} tools, p50 / p90 / p99 (client) | ${fmt(result.latencyMs.p50, 1)} / ${fmt(result.latencyMs.p90, 1)} / ${fmt(result.latencyMs.p99, 1)} ms | p50 < 25 ms ${result.goals.p50Under25ms ? '(met)' : '(missed)'} |`,
          `| broker stages, p50: catalog / enrichment / planning / total | ${fmt(result.brokerMs.listMs.p50, 2)} / ${fmt(result.brokerMs.enrichMs.p50, 1)} / ${fmt(result.brokerMs.planMs.p50, 1)} / ${fmt(result.brokerMs.totalMs.p50, 1)} ms | |`,
          `| \`bench-tools\` queries per plan (explain: batches; keys per batch) | ${q === undefined ? 'n/a' : `${q.callsMin}-${q.callsMax} (${q.keys} keys)`} | 1 ${result.goals.oneQueryPerResolverPerLevel ? '(met)' : '(missed)'} |`,
          `| table scans per plan (pg_stat_user_tables) | ${fmt(result.queries.tableScansPerPlan, 2)} | 1 |`,
          `| answer | ${result.answer.allowed} allowed, ${result.answer.conditional} conditional (\`${result.answer.example?.text ?? ''}\`), ${result.answer.denied.count} denied | |`,
        ].join('\n'),
        log,
      );
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

main()
  .then(cleanup)
  .catch(async (err) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  });
