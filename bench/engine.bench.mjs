#!/usr/bin/env node
// In-process cost of Warden's decision engine (no HTTP, no JSON): compilePolicies + createEngine
// from the built dist output on the shipped ./policies, then tinybench on engine.check([...]) for
// the same three shapes as the HTTP bench (bench/shapes.mjs). Reports µs per check call and µs
// per action (the project's goal: < 2 µs per action).
//
//   node bench/engine.bench.mjs [--no-write]      (run by `npm run bench` too)
//
// Each tinybench sample runs BATCH calls (timer overhead amortised). Two input variants:
//  - reused: the same CheckInput objects on every call (best case for any per-object caching);
//  - fresh:  a pool of distinct deep copies cycled through, as the broker sees them (a new
//            object graph per request, JSON parsing itself not included).
// Writes bench/results/engine.json and the engine section of bench/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { actionCount, shapes } from './shapes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const NO_WRITE = process.argv.includes('--no-write') || process.env.BENCH_NO_WRITE === '1';
const BATCH = 100;
const POOL = 256;
const TIME_MS = Number(process.env.BENCH_ENGINE_TIME_MS ?? 1500);
const GOAL_US_PER_ACTION = 2;

const built =
  process.env.BENCH_SKIP_BUILD === '1'
    ? { status: 0 }
    : spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
if (built.status !== 0) {
  process.stderr.write('engine bench: scripts/ensure-built.mjs failed\n');
  process.exit(1);
}
const dist = join(root, 'dist/apps/broker');
const { compilePolicies, createEngine } = await import(pathToFileURL(join(dist, 'libs/decision/src/index.js')).href);
const { readPolicyDir } = await import(pathToFileURL(join(dist, 'apps/broker/src/policy-source/read-policy-dir.js')).href);

// Compile once, as the broker does at boot (timed for information).
const source = readPolicyDir(join(root, 'policies'));
const c0 = performance.now();
const { policySet, errors } = compilePolicies(source.policies, { schemas: source.schemas });
const compileMs = performance.now() - c0;
if (errors.length > 0 || policySet === undefined) {
  process.stderr.write(`engine bench: policies failed to compile:\n${errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.message}`).join('\n')}\n`);
  process.exit(1);
}
const engine = createEngine(policySet, {});

/** CheckInputs of a shape: one per resource entry, as the HTTP adapter builds them. */
function inputsOf(name) {
  const s = shapes[name];
  return s.resources.map((r) => ({ requestId: `bench-${name}`, principal: s.principal, resource: r.resource, actions: r.actions }));
}

const names = Object.keys(shapes);
const effects = {};
for (const name of names) {
  const out = engine.check(inputsOf(name));
  const all = out.flatMap((o) => Object.values(o.actions).map((a) => a.effect));
  effects[name] = { allow: all.filter((e) => e === 'EFFECT_ALLOW').length, deny: all.filter((e) => e === 'EFFECT_DENY').length };
  if (all.length !== actionCount(name)) throw new Error(`shape ${name}: expected ${actionCount(name)} effects, got ${all.length}`);
}

const bench = new Bench({ time: TIME_MS, warmupTime: 300, warmupIterations: 20 });
let sink = 0;
// As the broker calls it for a request without includeMeta: one `now` per call, no effective
// derived roles unless a policy reads `runtime`. The `meta` variant asks for them (includeMeta).
const brokerOptions = () => ({ now: new Date(), includeEffectiveDerivedRoles: false });
const metaOptions = () => ({ now: new Date(), includeEffectiveDerivedRoles: true });
for (const name of names) {
  const reused = inputsOf(name);
  bench.add(`${name} reused`, () => {
    for (let i = 0; i < BATCH; i++) sink += engine.check(reused, brokerOptions()).length;
  });
  const text = JSON.stringify(reused);
  const pool = Array.from({ length: POOL }, () => JSON.parse(text));
  let k = 0;
  bench.add(`${name} fresh`, () => {
    for (let i = 0; i < BATCH; i++) {
      sink += engine.check(pool[k], brokerOptions()).length;
      k = (k + 1) % POOL;
    }
  });
  bench.add(`${name} meta`, () => {
    for (let i = 0; i < BATCH; i++) sink += engine.check(reused, metaOptions()).length;
  });
}
// The CEL floor: how many CEL evaluations one check of each shape runs, and what single
// expressions of the shipped policies cost in @marcbachmann/cel-js.
const cel = await import(pathToFileURL(join(dist, 'libs/decision/src/cel/index.js')).href);
const celProto = Object.getPrototypeOf(cel.compileCelExpression('true'));
const celEvaluate = celProto.evaluate;
const celCounts = {};
for (const name of names) {
  let n = 0;
  celProto.evaluate = function (ctx) {
    n++;
    return celEvaluate.call(this, ctx);
  };
  engine.check(inputsOf(name), brokerOptions());
  celProto.evaluate = celEvaluate;
  celCounts[name] = n;
}
const celCtx = cel.createCelContext({
  request: { principal: shapes['1x1'].principal, resource: shapes['1x1'].resources[0].resource },
  constants: { userToolRisk: ['low', 'medium'] },
  variables: {},
  globals: {},
  effectiveDerivedRoles: [],
  now: new Date(),
});
const celExprs = [
  'R.attr.risk == "critical"',
  'R.attr.risk in C.userToolRisk',
  'has(P.attr.tenant) && has(R.attr.tenant) && P.attr.tenant == R.attr.tenant',
];
for (const src of celExprs) {
  const program = cel.compileCelExpression(src);
  bench.add(`cel ${src}`, () => {
    for (let i = 0; i < BATCH; i++) sink += program.evaluate(celCtx) ? 1 : 2;
  });
}

await bench.run();
if (sink === 0) throw new Error('unreachable');
const celRows = [];
for (const task of [...bench.tasks]) {
  if (!task.name.startsWith('cel ')) continue;
  celRows.push({ expression: task.name.slice(4), nsPerEval: (task.result.latency.mean * 1e6) / BATCH });
  bench.remove(task.name);
}

const rows = [];
const results = {};
for (const task of bench.tasks) {
  const [name, variant] = task.name.split(' ');
  const r = task.result;
  const lat = r.latency;
  const usPerCheckMean = (lat.mean * 1000) / BATCH;
  const usPerCheckP50 = (lat.p50 * 1000) / BATCH;
  const usPerCheckP99 = (lat.p99 * 1000) / BATCH;
  const actions = actionCount(name);
  const row = {
    shape: name,
    variant,
    actions,
    usPerCheckMean,
    usPerCheckP50,
    usPerCheckP99,
    usPerActionMean: usPerCheckMean / actions,
    usPerActionP50: usPerCheckP50 / actions,
    checksPerS: 1e6 / usPerCheckMean,
    rmePct: lat.rme,
    samples: lat.samples?.length ?? r.samples?.length,
  };
  (results[name] ??= {})[variant] = row;
  rows.push(row);
}

const fmt = (n, d = 2) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');
console.table(
  rows.map((r) => ({
    shape: r.shape,
    inputs: r.variant,
    'µs/check (mean)': fmt(r.usPerCheckMean),
    'µs/check (p50)': fmt(r.usPerCheckP50),
    'µs/action (mean)': fmt(r.usPerActionMean),
    'checks/s': fmt(r.checksPerS, 0),
    '±%': fmt(r.rmePct, 1),
  })),
);
console.table(celRows.map((r) => ({ expression: r.expression, 'ns/eval': fmt(r.nsPerEval, 0) })));
console.log(`CEL evaluations per check: ${names.map((n) => `${n} ${celCounts[n]}`).join(', ')}`);
const worst = Math.max(...rows.map((r) => r.usPerActionMean));
console.log(`policy compile: ${fmt(compileMs, 1)} ms; goal < ${GOAL_US_PER_ACTION} µs/action: ${worst < GOAL_US_PER_ACTION ? 'met' : 'NOT met'} (worst mean ${fmt(worst)} µs/action)`);

const git = (...args) => spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
const machine = {
  git: { head: git('rev-parse', '--short', 'HEAD') || 'unknown', changedFilesInAppsLibsPolicies: git('status', '--porcelain', '--', 'apps', 'libs', 'policies').split('\n').filter(Boolean).length },
  nproc: availableParallelism(),
  cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
  node: process.version,
  loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
};
const out = {
  date: new Date().toISOString(),
  command: 'node bench/engine.bench.mjs',
  machine,
  config: { batch: BATCH, pool: POOL, timeMsPerTask: TIME_MS, tinybench: '5' },
  compileMs,
  effects,
  goalUsPerAction: GOAL_US_PER_ACTION,
  goalMet: worst < GOAL_US_PER_ACTION,
  results,
  celEvaluationsPerCheck: celCounts,
  celNsPerEvaluation: celRows,
};

if (!NO_WRITE) {
  mkdirSync(join(benchDir, 'results'), { recursive: true });
  writeFileSync(join(benchDir, 'results/engine.json'), JSON.stringify(out, null, 2) + '\n');
  const L = [];
  L.push(`Measured ${out.date} on ${machine.cpuModel} (nproc ${machine.nproc}, load average at start ${machine.loadavgAtStart}), code at ${machine.git.head}${machine.git.changedFilesInAppsLibsPolicies > 0 ? ` + ${machine.git.changedFilesInAppsLibsPolicies} uncommitted file(s)` : ''}, Node ${machine.node}; tinybench, ${BATCH} calls per sample, ${TIME_MS} ms per task. Reproduce: \`node bench/engine.bench.mjs\` (also part of \`npm run bench\`).`);
  L.push('');
  L.push('| shape | inputs | µs per check (mean) | µs per check (p50) | µs per action (mean) | checks/s | ± % |');
  L.push('|---|---|--:|--:|--:|--:|--:|');
  for (const r of rows) L.push(`| ${r.shape} | ${r.variant} | ${fmt(r.usPerCheckMean)} | ${fmt(r.usPerCheckP50)} | ${fmt(r.usPerActionMean)} | ${fmt(r.checksPerS, 0)} | ${fmt(r.rmePct, 1)} |`);
  L.push('');
  L.push(
    `Goal < ${GOAL_US_PER_ACTION} µs per action: **${out.goalMet ? 'met' : 'not met'}** (worst mean ${fmt(worst)} µs per action). One-off policy compile of the shipped set: ${fmt(compileMs, 1)} ms. Effects: ${names.map((n) => `${n} ${effects[n].allow} ALLOW / ${effects[n].deny} DENY`).join('; ')}.`,
  );
  L.push('');
  L.push(`The CEL floor. CEL evaluations one check runs: ${names.map((n) => `${n} ${celCounts[n]}`).join(', ')}. Cost of one evaluation in @marcbachmann/cel-js (same run):`);
  L.push('');
  L.push('| expression (from the shipped policies) | ns per evaluation |');
  L.push('|---|--:|');
  for (const r of celRows) L.push(`| \`${r.expression}\` | ${fmt(r.nsPerEval, 0)} |`);
  const file = join(benchDir, 'README.md');
  const start = '<!-- engine-results:start -->';
  const end = '<!-- engine-results:end -->';
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  writeFileSync(file, i < 0 || j < i ? `${text}\n${start}\n${L.join('\n')}\n${end}\n` : `${text.slice(0, i + start.length)}\n${L.join('\n')}\n${text.slice(j)}`);
  process.stderr.write('engine bench: wrote bench/results/engine.json and bench/README.md\n');
}
