#!/usr/bin/env node
// The decision log's cost on /v1/check, in one run: the built broker (one worker) with `audit`
// off, with the Postgres sink (its own database on the machine's Postgres), with the NDJSON file
// sink and with the NATS JetStream sink (the machine's NATS), the same policies and the same body (a trusted gateway
// stating the subject; no resolvers), driven by a load generator in a child process: autocannon
// at saturation, bench/open-load.mjs (open loop) at fixed rates. With taskset and 2 CPUs or more,
// the brokers run on CPU 1 and the load generators on CPU 0 (see `pinToCpu` in bench/harness.mjs; BENCH_PIN=0 turns it off).
//
//   npm run bench:audit
//
// Three phases, the servers in alternation within each:
//   1. peak: each broker saturated (BENCH_CONNECTIONS connections): req/s. Then each audit-on
//      broker saturated side by side with the audit-off one (half the connections each): the
//      ratio of their throughputs, and the CPU per check of their event loops and other threads.
//   2. latency: each broker at the same fixed offered loads, BENCH_LOAD_SHARES (default 30% and
//      60%) of the audit-off broker's peak, arriving at an even rate whatever the answers
//      (bench/open-load.mjs): p50 / p99 of the check path. The goal: p99 on <= 1.10 x p99 off.
//      Once per placement of the brokers' threads (BENCH_PLACEMENTS, see `PLACEMENTS`): all on the
//      brokers' CPU, then the event loop alone there and the other threads on the generators' CPU.
//   3. keeping up: each audit-on broker saturated for BENCH_KEEPUP_S seconds while its /metrics is
//      read every 250 ms: the writer's queue depth and the spill file's size must not grow (the
//      goal: spill file 0 bytes throughout), and after the load every answered decision is in the
//      sink (rows counted in Postgres, messages in the stream).
//
// Knobs (env): BENCH_DURATION (s per run, 8), BENCH_ROUNDS (2), BENCH_FIXED_DURATION (s per fixed-load run, 5),
// BENCH_FIXED_ROUNDS (6), BENCH_FIXED_WARMUP_S (3), BENCH_CONNECTIONS (32),
// BENCH_LOAD_SHARES (percents, "30,60"), BENCH_PLACEMENTS (where the brokers' threads run at the fixed loads, "shared,apart", see
// `place`), BENCH_KEEPUP_S (15), BENCH_LOADGEN (the fixed loads' generator: native, the default, or node; see LOADGEN), BENCH_KEEPUP_SETTLE_S (120, see the keeping-up phase), BENCH_NATS_URL (nats://127.0.0.1:4222),
// BENCH_NODE_ARGS (the brokers' node options, "--min-semi-space-size=16", see below), BENCH_PIN (1; 0: no taskset), BENCH_SINK_IDLE (1; 0: the machine's servers stay out of the idle cgroup during the fixed loads, see `idleSinkServers`), BENCH_SCHED (1; 0: no scheduler trace, see phase 2b), BENCH_SETTLE_S (10: how long a broker's log may take to write every decision before the next phase stops the broker, see `settle`), BENCH_SINKS (the brokers beside audit off, "postgres,ndjson,nats,control";
// `control` is a second broker with the log off, an A/A comparison; also `ndjson-main`: the NDJSON
// sink with its writer in the event loop's thread; `<sink>@base`: that sink from the build in
// BENCH_BASELINE, a checkout of another commit with its broker built, e.g. `git worktree add
// /tmp/base HEAD~1 && cd /tmp/base && npm ci && npm run build`, beside the same sink from this
// checkout: a change's A/B in one run), BENCH_NO_WRITE=1
// (print only; an empty BENCH_LOAD_SHARES skips the fixed loads).
// Writes the table between the audit-bench markers of bench/README.md.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import pg from 'pg';
import {
  allCpus,
  benchDir,
  BROKER_NODE_ARGS,
  canPin,
  createBenchDatabase,
  envInt,
  failures,
  fmt,
  gitState,
  loadPhase,
  median,
  mergeHist,
  pinToCpu,
  replaceSection,
  root,
  serverPids,
  sleep,
  startWarden,
  stopProcesses,
  threadPerRequest,
} from './harness.mjs';
import { nativeGenerator } from './open-load-native.mjs';
import { eventLoopWaits, perfSchedUnavailable, recordSched, threadNices } from './sched-wait.mjs';

const DURATION = envInt('BENCH_DURATION', 8);
// A fixed-load round's p99 is 1% of its checks: whether one stall of the machine (or one full
// collection) fell in a round decides that round's p99, and this machine's speed drifts over
// minutes, and by half within seconds on some hosts. So the fixed loads run many short rounds, the
// servers in alternation (order rotated every round, audit off between every two others, see
// `pairedOrder`): the goal is judged on the p99 of a server's checks of all rounds merged against
// that of the runs of audit off next to its runs, beside the median of those pairs' ratios.
// Each round first sends its rate for BENCH_FIXED_WARMUP_S unrecorded: a broker resumed after
// the others' rounds (SIGSTOP) runs V8's deferred collections then, full ones included (in a
// steady 60 s load at 2,624 checks/s the NDJSON broker's event loop ran none, audit off's 4; in
// 5 s rounds alternating with a 1 s warm-up, 4-7 against 2-3: bench/README.md).
const FIXED_DURATION = envInt('BENCH_FIXED_DURATION', 5);
const FIXED_ROUNDS = envInt('BENCH_FIXED_ROUNDS', 6);
const FIXED_WARMUP_S = envInt('BENCH_FIXED_WARMUP_S', 3);
const ROUNDS = envInt('BENCH_ROUNDS', 2);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 32);
const LOAD_SHARES = (process.env.BENCH_LOAD_SHARES ?? '30,60').split(',').filter((x) => x !== '').map((x) => Number(x) / 100);
const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
// The fixed loads' generator (bench/open-load.mjs): `native`, its C twin (bench/open-load.c,
// compiled with the machine's `cc` at the start of the run), whose own lateness at p99 is about a
// third of the Node generator's on this host (bench/open-load-native.mjs says why it exists), and
// which times each answer at the kernel's receipt (its socket's stamp), so that a wake-up of the
// generator delayed by whatever shares CPU 0 with it is not counted as the broker's latency; or `node`.
const LOADGEN = process.env.BENCH_LOADGEN || 'native';
if (LOADGEN !== 'native' && LOADGEN !== 'node') throw new Error(`BENCH_LOADGEN: unknown generator \`${LOADGEN}\` (native or node)`);
const KEEPUP_S = envInt('BENCH_KEEPUP_S', 15);
const KEEPUP_SETTLE_S = envInt('BENCH_KEEPUP_SETTLE_S', 120);
const NATS_URL = process.env.BENCH_NATS_URL || 'nats://127.0.0.1:4222';
const PIN = process.env.BENCH_PIN !== '0' && canPin();
// Every broker runs with V8's young generation held at 16 MB. A broker paused between its rounds
// (SIGSTOP, below) looks idle to V8 when it resumes, and V8 shrinks an idle isolate's young
// generation towards 1 MB; it grows back only slowly under load. Small, it is collected every
// 15-20 ms, request objects that live across two collections are promoted, and the old generation
// fills until a full collection stalls the event loop (10-18 ms pause plus 20-40 ms of incremental
// steps). Probes at 30% load (18 rounds of 8 s per run, --trace-gc): without the option, 380-580
// scavenges per round in most rounds (65-120 where the young generation had grown back), and the
// brokers with the log on stalled so in 2 of 6 rounds each; with it, the old generation grew by at
// most 0.7 MB in any round, and 1 round in 18 stalled (the control's, right after a resume). A
// broker under steady load keeps the 16 MB anyway; the option takes the pauses' effect out.
// (`--single-threaded-gc`, what the broker is started with, comes first for every bench: BROKER_NODE_ARGS in bench/harness.mjs.)
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '--min-semi-space-size=16').split(' ').filter((x) => x !== '');
const BROKER_CPU = 1;
/** The load generators' CPU, and with the `apart` placement that of the brokers' threads other than their event loops. */
const HELPER_CPU = 0;
/**
 * Where each broker's threads run at the fixed loads, each placement a latency phase of its own
 * in the same run (BENCH_PLACEMENTS):
 * - `shared`: every thread of the broker on CPU 1, as in every other phase: the event loop shares
 *   its core with the decision log's writer thread, V8's compiler threads and libuv's pool.
 * - `apart`: the event loop alone on CPU 1, the broker's other threads on CPU 0 with the load
 *   generators and the sink servers. Audit off's helper threads move as well. This is the case
 *   the writer's thread is for: a deployment whose event loops do not take every core leaves the
 *   log's work (and V8's compilations) to a core the check path is not waiting for; `shared`
 *   forces both onto one core, as a broker with a worker on every core of a busy machine has them.
 * Keeping up (phase 3) and the peak (phase 1) run `shared`: their question is the log's throughput
 * on the broker's own core.
 */
const PLACEMENTS = (process.env.BENCH_PLACEMENTS ?? 'shared,apart').split(',').filter((x) => x !== '');
for (const x of PLACEMENTS) if (x !== 'shared' && x !== 'apart') throw new Error(`BENCH_PLACEMENTS: unknown placement \`${x}\` (shared or apart)`);
const KEY = 'bench-gateway-key-0123456789abcdef';
const RUN = randomBytes(4).toString('hex');
const STREAM = `WARDEN_AUDIT_BENCH_${RUN}`;
const SUBJECT = `warden.audit.bench.${RUN}`;
const dir = mkdtempSync(join(tmpdir(), 'warden-audit-bench-'));
const children = new Set();
const extraPids = new Set();
const log = (m) => process.stderr.write(`${m}\n`);

const body = JSON.stringify({ subject: { id: 'alice', roles: ['user'], attr: { tenant: 'acme' } }, agent: { id: 'bot' }, action: 'invoke', resource: { kind: 'tool', id: 'web_search', attr: { risk: 'low', tenant: 'acme' } }, context: { model: 'gpt-4o' } });
const headers = { 'x-warden-api-key': KEY };

async function start(name, audit, entry) {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, JSON.stringify({ gateways: [{ name: 'gw', apiKey: KEY }], ...(audit !== undefined ? { audit: { ...audit, spillDir: join(dir, `spill-${name}`) } } : {}) }));
  const db = await createBenchDatabase();
  const s = await startWarden({ children, name, cwd: dir, workers: 1, databaseUrl: db.url, config, nodeArgs: NODE_ARGS, entry });
  const pids = serverPids(s, extraPids);
  if (PIN) for (const pid of pids) pinToCpu(pid, BROKER_CPU);
  return { name, s, db, pids };
}

/** The decision-log series of a broker's /metrics. */
async function auditMetrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const v = (re) => Number(re.exec(text)?.[1] ?? NaN);
  let decisions = 0;
  for (const m of text.matchAll(/^warden_decisions_total\{[^}]*\} (\S+)$/gm)) decisions += Number(m[1]);
  return { decisions, queued: v(/^warden_audit_queue_depth (\S+)$/m), spillBytes: v(/^warden_audit_spill_bytes (\S+)$/m), written: v(/^warden_audit_entries_total\{result="written"\} (\S+)$/m), spilled: v(/^warden_audit_entries_total\{result="spilled"\} (\S+)$/m), dropped: v(/^warden_audit_entries_total\{result="dropped"\} (\S+)$/m), yields: v(/^warden_audit_event_loop_yields_total (\S+)$/m) };
}

/** Reads a broker's decision-log metrics every `pollMs` until `done` holds or `timeoutMs` ran out: the last reading and how long it took. */
async function metricsUntil(url, done, timeoutMs, pollMs) {
  const t0 = Date.now();
  let m = await auditMetrics(url);
  while (!done(m) && Date.now() - t0 < timeoutMs) {
    await sleep(pollMs);
    m = await auditMetrics(url);
  }
  return { m, ms: Date.now() - t0 };
}

async function pgRows(db) {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query('select count(*)::int as n from warden_audit_log')).rows[0].n;
  } finally {
    await c.end();
  }
}

let nc;
async function streamMessages(stream) {
  nc ??= await connect({ servers: NATS_URL });
  const jsm = await nc.jetstreamManager();
  return (await jsm.streams.info(stream)).state.messages;
}

/**
 * Runs `fn` with every broker but `running` stopped (SIGSTOP, then SIGCONT), and before the
 * others resume (unless `settled` is false) waits until the running brokers' logs have written
 * everything ({@link settle}). Pinned, all brokers share CPU 1, and an idle one is not idle: its
 * timers, and V8's collections some seconds after
 * its load ended, take CPU 1 from whichever broker is being measured. (This was not what set the
 * 40-70 ms tails of the fixed-load rounds: those are the measured broker's own full collections,
 * see bench/README.md.)
 */
async function alone(running, fn, { settled = true } = {}) {
  const others = brokers.filter((x) => !running.includes(x)).flatMap((x) => x.pids);
  for (const pid of others) process.kill(pid, 'SIGSTOP');
  try {
    const result = await fn();
    if (settled) for (const b of running) await settle(b);
    return result;
  } finally {
    for (const pid of others) process.kill(pid, 'SIGCONT');
  }
}

/**
 * Waits (at most SETTLE_MS) until broker `b`'s decision log has written every decision the broker
 * made (`warden_audit_entries_total{result="written"}` plus dropped ones up to the sum of
 * `warden_decisions_total`: one action per check here) with its queue and spill file empty, so
 * that the next phase stops it (SIGSTOP) with no sink write in flight. A write in flight across a
 * stop times out when the broker resumes (its expired 5 s timer runs before the answer is read):
 * the batch is spilled and replayed, with the entries recorded meanwhile appended behind it, all
 * in the first seconds of the broker's next round: work only the audit-on brokers had, and that
 * a deployment never stopped so does not have. The wait is outside every measured window; how
 * often it ran out is reported.
 */
async function settle(b) {
  if (SINK_CONFIGS[b.name] === undefined) return;
  const done = (x) => x.written + x.dropped >= x.decisions && x.queued === 0 && x.spillBytes === 0;
  const { m, ms } = await metricsUntil(b.s.url, done, SETTLE_MS, 20);
  if (!done(m)) {
    settleTimeouts.set(b.name, (settleTimeouts.get(b.name) ?? 0) + 1);
    log(`settle ${b.name}: its decision log had not written every decision ${SETTLE_MS} ms after the load (${m.written + m.dropped} of ${m.decisions})`);
  }
  settleMs.set(b.name, Math.max(settleMs.get(b.name) ?? 0, ms));
}
const SETTLE_MS = envInt('BENCH_SETTLE_S', 10) * 1000;
/** Per broker: times {@link settle} ran out, and its longest wait (ms). */
const settleTimeouts = new Map();
const settleMs = new Map();

/**
 * Per check offered at `rate` during a fixed-load run (its unrecorded start included, as the
 * server's counters are): CPU µs of the event loop, µs it spent runnable but waiting for its core
 * (schedstat: the log's own threads, V8's helpers or anything else on that CPU had it), and CPU µs
 * of the broker's other threads.
 */
function threadsPerOffered(r, rate) {
  const per = (s) => ((s ?? Number.NaN) / r.phaseWallS / rate) * 1e6;
  return { mainCpu: per(r.serverThreads?.main?.cpuS), mainWait: per(r.serverThreads?.main?.waitS), otherCpu: per(r.serverThreads?.other?.cpuS) };
}

/**
 * Places broker `b`'s threads (see {@link PLACEMENTS}). Again before every run: threads started
 * since (libuv's pool at its first use, a restarted writer's thread) take their creator's CPUs.
 */
function place(b, placement) {
  if (!PIN) return;
  for (const pid of b.pids) {
    if (placement === 'apart') {
      pinToCpu(pid, HELPER_CPU);
      pinToCpu(pid, BROKER_CPU, false);
    } else pinToCpu(pid, BROKER_CPU);
    idleHelperThreads(pid, placement === 'apart');
  }
}

/**
 * With the `apart` placement the broker's threads other than its event loop (the log's writer
 * among them) share CPU 0 with the load generator, which in a deployment is another machine: like
 * the sink servers ({@link idleSinkServers}), they go into the idle cgroup then, so the generator
 * takes CPU 0 from them the moment it wakes and its timing of the answers is its own. At nice 19
 * the writer's thread still ran out its slice first: in the run of 2026-12-01 06:54 the
 * generator's event-loop delay, p99, was 1.35-1.50 ms beside the audit-on brokers against
 * 1.07-1.09 beside audit off and the control (bench/README.md). Every broker's helper threads
 * alike, audit off's and the control's too. Needs cgroup v1's `cpu` hierarchy (one thread moves by
 * its id in `tasks`; v2 would need a threaded subtree). `idle` false moves them back.
 */
function idleHelperThreads(pid, idle) {
  const dir = sinkServersIdle.dir;
  if (dir === undefined || !sinkServersIdle.perThread) return;
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => tid !== pid);
  } catch {
    return; // the broker has exited
  }
  for (const tid of tids) {
    try {
      writeFileSync(join(idle ? dir : sinkServersIdle.root, 'tasks'), String(tid));
    } catch (err) {
      if (err.code !== 'ESRCH') log(`broker ${pid}: thread ${tid} not moved ${idle ? 'to' : 'from'} the idle cgroup: ${err.code ?? err.message}`);
    }
  }
}

const run = (b, extra = {}) => alone([b], () => loadPhase({ children, pids: b.pids, url: `${b.s.url}/v1/check`, body, headers, connections: CONNECTIONS, duration: DURATION, ...extra }));

function check(name, r) {
  if (failures(r) > 0) throw new Error(`${name}: ${failures(r)} failed requests (${JSON.stringify(r.statusCodeStats)})`);
}

const NDJSON_PATH = join(dir, 'audit.ndjson');
const NDJSON_MAIN_PATH = join(dir, 'audit-main.ndjson');

/**
 * The audit-on brokers (BENCH_SINKS, default the three sinks). `ndjson-main` is the NDJSON sink
 * with its writer in the broker's thread (`audit.thread: main`), the others run it in a worker
 * thread (the default): the two side by side show what the thread changes.
 */
const SINK_CONFIGS = {
  postgres: { enabled: true, sink: 'postgres' },
  ndjson: { enabled: true, sink: 'ndjson', path: NDJSON_PATH },
  'ndjson-main': { enabled: true, sink: 'ndjson', path: NDJSON_MAIN_PATH, thread: 'main' },
  nats: { enabled: true, sink: 'nats', nats: { url: NATS_URL, subject: SUBJECT, stream: STREAM } },
  // A second broker with the log off, measured like the others: what its ratios to audit off show
  // is the method's own resolution on this machine (an A/A comparison).
  control: undefined,
};
const SINKS = (process.env.BENCH_SINKS || 'postgres,ndjson,nats,control').split(',').filter((x) => x !== '');
/** BENCH_BASELINE: a checkout of another commit with its broker built, for the `<sink>@base` brokers. */
const BASELINE = process.env.BENCH_BASELINE || undefined;
const BASE = '@base';
/** The sink a broker's name stands for (`nats` for `nats@base`). */
const kindOf = (name) => (name.endsWith(BASE) ? name.slice(0, -BASE.length) : name);
const baselineEntry = BASELINE === undefined ? undefined : join(BASELINE, 'dist/apps/broker/apps/broker/src/main.js');
for (const name of SINKS) {
  if (!(kindOf(name) in SINK_CONFIGS)) throw new Error(`BENCH_SINKS: unknown sink \`${name}\` (one of ${Object.keys(SINK_CONFIGS).join(', ')}, each also as \`<sink>${BASE}\`)`);
  if (!name.endsWith(BASE)) continue;
  if (baselineEntry === undefined || !existsSync(baselineEntry)) throw new Error(`BENCH_SINKS: \`${name}\` needs BENCH_BASELINE, a checkout with its broker built (${baselineEntry ?? 'unset'})`);
  // Its own file, subject and stream: the entries of the two builds are counted apart.
  const c = SINK_CONFIGS[kindOf(name)];
  SINK_CONFIGS[name] = c === undefined ? undefined : { ...c, ...(c.path !== undefined ? { path: join(dir, `audit-base-${kindOf(name)}.ndjson`) } : {}), ...(c.nats !== undefined ? { nats: { ...c.nats, subject: `${SUBJECT}.base`, stream: `${STREAM}_BASE` } } : {}) };
}

/** Entries in the NDJSON sink's file (one per line). */
async function ndjsonLines(path) {
  let n = 0;
  try {
    for await (const chunk of createReadStream(path)) for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) n += 1;
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  return n;
}

const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The decision logs' own messages (`audit: ...`, e.g. why a batch was spilled), per broker, counted. */
function auditMessages() {
  const out = [];
  for (const b of brokers) {
    const counts = new Map();
    for (const line of b.s.log().split('\n')) {
      const m = /"msg":"(audit: [^"]*)"/.exec(line) ?? /(audit: .*)$/.exec(line);
      if (m !== null) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
    }
    for (const [msg, n] of counts) out.push(`${b.name}: ${n} x \`${msg.slice(0, 200)}\``);
  }
  return out.length === 0 ? 'none.' : out.join('; ');
}

/**
 * Round `round`'s order: the list rotated by `round`, so every server takes every place and none
 * runs twice in a row. (Reversing the order every other round, as before, ran the first and the
 * last server twice in a row, 8-16 s of load after a resume, and only they drew full collections in
 * the second of the two runs: audit off and the control, never the brokers between them.)
 */
const rotated = (xs, round) => xs.map((_, i) => xs[(i + round) % xs.length]);

/**
 * Round `round`'s order at a fixed load: the other servers rotated by `round`, with a run of audit
 * off between every two of them ([A, off, B, C, off, D] for four), each paired with the run of
 * audit off next to it: `{ b, pair }`, `pair` the index in the order of that run (undefined for
 * audit off's own runs). Its p99 is compared with that run's, seconds away, not with audit off's
 * run of the same round, which was up to a cycle (40 s) away: this machine's speed drifts by
 * half within that (in the run of 07:50 on 2026-11-30 audit off saturated at 11,765 checks/s in
 * one round and 7,674 in the next), which decided the ratios more than the log did. With the
 * rotation each server runs before its run of audit off in some rounds and after it in others.
 */
function pairedOrder(round) {
  const others = rotated(brokers.slice(1), round);
  const order = [];
  for (let i = 0; i < others.length; i += 2) {
    const offAt = order.length + 1;
    order.push({ b: others[i], pair: offAt }, { b: brokers[0], pair: undefined });
    if (i + 1 < others.length) order.push({ b: others[i + 1], pair: offAt });
  }
  return order;
}

/** `pid`'s parent, or undefined when it is gone. */
function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * The machine's servers: every process that is not a kernel thread, not this bench's (the
 * orchestrator and everything it started: brokers, load generators, perf) and not one of the
 * bench's ancestors (the shells that started it, the machine's init). That is Postgres and NATS,
 * which the sinks write to, and whatever else the machine runs: on the machine of 2026-12-01,
 * RabbitMQ (whose Erlang schedulers spin), Redis, MariaDB and Mosquitto, which until then ran
 * unpinned and took the brokers' core at random (RabbitMQ's `beam.smp` alone 9.4 µs per check of
 * the Postgres broker's event loop's wait in one probe, .tmp/who.mjs). None is part of Warden, and
 * in a deployment none shares the broker's machine.
 */
function machineServerPids() {
  const parents = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentOf(Number(name));
    if (ppid !== undefined) parents.set(Number(name), ppid);
  }
  const excluded = new Set([1, 2]);
  for (let p = process.pid; p !== undefined && p > 1; p = parents.get(p)) excluded.add(p);
  const ours = (pid) => {
    for (let p = pid; p !== undefined && p > 1; p = parents.get(p)) if (p === process.pid) return true;
    return false;
  };
  // Kernel threads are kthreadd's (2) children.
  return [...parents].filter(([pid, ppid]) => ppid !== 2 && !excluded.has(pid) && !ours(pid)).map(([pid]) => pid);
}

/**
 * Pins the machine's servers ({@link machineServerPids}) to `cpu`; returns how many it could
 * (taskset may not touch them: the report says so). During the fixed loads they share the load
 * generators' CPU: in a deployment they run on other machines, and unpinned the sink servers' work
 * on the log's batches lands on the broker's core, where it counts as the log's cost on the check
 * path, and the others' work on either broker's core is noise the A/A control reads too. Not at saturation: there the load generator
 * takes its whole CPU, and a Postgres starved beside it is not what keeping up is about.
 */
function pinSinkServers(cpu) {
  const pinned = [];
  for (const pid of machineServerPids()) {
    try {
      pinToCpu(pid, cpu);
      pinned.push(pid);
    } catch (err) {
      log(`machine's servers: ${err.message}`);
    }
  }
  return pinned.length;
}
let sinkServersPinned = 0;
/** Whether they are pinned now (restored after the fixed loads, or on the way out). */
let sinkServersHeld = false;

/**
 * On CPU 0 beside the load generator, the sink servers' work on each batch still made the
 * generator late: its own event loop's delay, p99, was 3.1-4.2 ms with the Postgres broker against
 * 0.8-1.0 with audit off, and the check's p99 followed it (bench/README.md). Nice 19, SCHED_IDLE
 * and their autogroup's nice did not change that in probes (my reading: under EEVDF the running
 * task finishes its slice before a waking one in another autogroup gets the CPU); a cgroup whose
 * `cpu.idle` is 1 did (1.1-1.5 ms). So during the fixed loads the sink servers, and with them the
 * machine's other servers ({@link machineServerPids}), run in such a cgroup
 * (`warden-bench-sinks`, made for the run): they get all the CPU the generator leaves (most of
 * CPU 0 at 30% and 60%), and the generator's timing is its own again. Returns how many processes it
 * moved and how to move them back (to the cgroup each came from; processes forked meanwhile, such
 * as new Postgres backends, go to the first one's), or why it could not (cgroup v1's `cpu`
 * hierarchy or v2's with `cpu.idle` and write access are needed; BENCH_SINK_IDLE=0 skips it).
 */
function idleSinkServers() {
  const v1 = '/sys/fs/cgroup/cpu';
  const v2 = '/sys/fs/cgroup';
  const hierarchy = existsSync(join(v1, 'cpu.shares')) ? { root: v1, line: (l) => /^\d+:([^:]*\bcpu\b[^:]*):(.*)$/.exec(l) } : existsSync(join(v2, 'cgroup.controllers')) ? { root: v2, line: (l) => /^0:():(.*)$/.exec(l) } : undefined;
  if (hierarchy === undefined) return { moved: 0, why: 'no cgroup cpu hierarchy' };
  const dir = join(hierarchy.root, 'warden-bench-sinks');
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cpu.idle'), '1');
  } catch (err) {
    return { moved: 0, why: `cannot make an idle cgroup (${err.code ?? err.message})` };
  }
  const from = new Map();
  for (const pid of machineServerPids()) {
    try {
      const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').map(hierarchy.line).find((m) => m !== null && m !== undefined);
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      from.set(pid, line?.[2] ?? '/');
    } catch (err) {
      log(`machine's servers: not moved to the idle cgroup: ${pid}: ${err.code ?? err.message}`);
    }
  }
  const restore = () => {
    const fallback = from.values().next().value ?? '/';
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter((x) => x !== '').map(Number)) {
      try {
        writeFileSync(join(hierarchy.root, from.get(pid) ?? fallback, 'cgroup.procs'), String(pid));
      } catch (err) {
        if (err.code !== 'ESRCH') log(`machine's servers: not moved back from the idle cgroup: ${pid}: ${err.code ?? err.message}`);
      }
    }
    try {
      rmdirSync(dir);
    } catch (err) {
      log(`machine's servers: idle cgroup left behind (${dir}): ${err.code ?? err.message}`);
    }
  };
  // cgroup v1 moves one thread by its id in `tasks` (v2 would need a threaded subtree).
  return { moved: from.size, restore, dir, root: hierarchy.root, perThread: hierarchy.root === v1 };
}
const SINK_IDLE = process.env.BENCH_SINK_IDLE !== '0';
const SCHED = process.env.BENCH_SCHED !== '0';
/** The decision-log writer thread's nice value (`AUDIT_THREAD_NICE` in apps/broker/src/audit/audit-worker.ts): how phase 2b tells it from the broker's other threads. */
const WRITER_NICE = 19;
/** What {@link idleSinkServers} did for the fixed loads (`restore` set while they are in the cgroup). */
let sinkServersIdle = { moved: 0, why: 'not tried' };

let brokers = [];
// Stopped by a signal (Ctrl-C, a timeout's SIGTERM), the run's `finally` never runs: give the
// machine's servers back their CPUs and cgroup, and end the brokers (some stopped with SIGSTOP) and
// load generators, before exiting. (Their databases and the NATS stream are left behind.)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    log(`${signal}: restoring the machine's servers and ending the brokers`);
    if (sinkServersHeld) {
      pinSinkServers(allCpus());
      sinkServersIdle.restore?.();
    }
    for (const pid of [...[...children].map((c) => c.pid), ...extraPids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}
try {
  log('building the broker if needed (scripts/ensure-built.mjs)');
  const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
  if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');
  if (PIN) pinToCpu(process.pid, 0);
  if (LOADGEN === 'native' && LOAD_SHARES.length > 0) log(`fixed loads' generator: ${nativeGenerator()}`);
  brokers = [await start('off', undefined)];
  for (const name of SINKS) brokers.push(await start(name, SINK_CONFIGS[name], name.endsWith(BASE) ? baselineEntry : undefined));
  for (const b of brokers) await loadPhase({ children, pids: b.pids, url: `${b.s.url}/v1/check`, body, headers, connections: CONNECTIONS, duration: 2 }); // warm-up
  for (const b of brokers) await settle(b);

  // 1. peak
  const peak = new Map(brokers.map((b) => [b.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const b of rotated(brokers, round)) {
      const r = await run(b);
      check(b.name, r);
      peak.get(b.name).push(r);
      log(`peak ${b.name}: ${fmt(r.rps)} req/s, warden ${fmt(r.serverCpuCores, 2)} cores (${fmt((r.serverCpuCores / r.rps) * 1e6)} µs per check), others ${fmt(r.otherCpuCores, 2)}`);
    }
  }
  const offPeak = avg(peak.get('off').map((r) => r.rps));

  // 1b. side by side: audit off and one audit-on broker saturated at once (half the connections
  // each). Pinned, both take turns on CPU 1, so the ratio of their throughputs is the inverse
  // ratio of their CPU per check at the same instants, whatever the machine's speed then.
  const sideBySide = new Map();
  const off = brokers[0];
  for (const b of brokers.slice(1)) {
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      const half = (x) => loadPhase({ children, pids: x.pids, url: `${x.s.url}/v1/check`, body, headers, connections: Math.max(1, CONNECTIONS >> 1), duration: DURATION });
      const [o, a] = await alone([off, b], () => Promise.all([half(off), half(b)]));
      check(`side by side ${b.name}`, a);
      check('side by side off', o);
      const perCheck = (r, thread) => threadPerRequest(r, thread).cpuUs;
      rounds.push({ ratio: a.rps / o.rps, offMain: perCheck(o, 'main'), onMain: perCheck(a, 'main'), offOther: perCheck(o, 'other'), onOther: perCheck(a, 'other') });
      const x = rounds[rounds.length - 1];
      log(`side by side ${b.name}: ${fmt(a.rps)} vs off ${fmt(o.rps)} req/s (${fmt(x.ratio, 2)}); event loop ${fmt(x.onMain)} vs ${fmt(x.offMain)} µs per check, other threads ${fmt(x.onOther)} vs ${fmt(x.offOther)}`);
    }
    sideBySide.set(b.name, rounds);
  }

  // 2. latency at fixed offered loads (shares of the audit-off broker's peak)
  if (PIN && LOAD_SHARES.length > 0) {
    sinkServersPinned = pinSinkServers(0);
    sinkServersHeld = true;
    sinkServersIdle = SINK_IDLE ? idleSinkServers() : { moved: 0, why: 'BENCH_SINK_IDLE=0' };
    if (sinkServersIdle.why !== undefined) log(`machine's servers: not in an idle cgroup: ${sinkServersIdle.why}`);
  }
  /** Per placement and load share (`${placement} ${share}`): the runs. */
  const fixed = new Map();
  for (const placement of PIN ? PLACEMENTS : ['shared']) for (const share of LOAD_SHARES) {
    const rate = Math.round(offPeak * share);
    const byServer = new Map(brokers.map((b) => [b.name, []]));
    /** Per server, the run of audit off next to each of its runs (in the same order). */
    const offBeside = new Map(brokers.map((b) => [b.name, []]));
    fixed.set(`${placement} ${share}`, { placement, share, rate, byServer, offBeside });
    for (let round = 0; round < FIXED_ROUNDS; round++) {
      const order = pairedOrder(round);
      const results = [];
      for (const { b } of order) {
        place(b, placement);
        const logged = SINK_CONFIGS[b.name] !== undefined;
        const y0 = logged ? (await auditMetrics(b.s.url)).yields : 0;
        const r = await run(b, { script: 'open-load.mjs', connections: 64, duration: FIXED_DURATION, extra: { rate, warmupS: FIXED_WARMUP_S, generator: LOADGEN } });
        // The event loop's pauses for a starved writer's thread in this round (warm-up included).
        r.yields = logged ? (await auditMetrics(b.s.url)).yields - y0 : 0;
        check(b.name, r);
        byServer.get(b.name).push(r);
        results.push(r);
        const h = mergeHist([r]);
        const t = threadsPerOffered(r, rate);
        log(`fixed ${placement} ${fmt(rate)} req/s ${b.name}: served ${fmt(r.rps)} req/s, p50 ${fmt(h.p50, 2)} ms, p99 ${fmt(h.p99, 2)} ms, max ${fmt(h.max, 1)} ms, load-gen lag max ${fmt(r.maxIssueLagMs ?? NaN, 1)} ms, its own delay p99 ${fmt(r.loopDelayP99Ms ?? NaN, 2)} ms${r.readLagP99Ms === undefined ? '' : `, read the answers late by ${fmt(r.readLagP99Ms, 2)} ms at p99 (max ${fmt(r.maxReadLagMs, 1)}; ${fmt(r.stamped)} of ${fmt(r.hist.count)} timed by the kernel's stamp)`}, warden ${fmt(r.serverCpuCores, 2)} cores (per check: event loop ${fmt(t.mainCpu)} µs, waiting for its core ${fmt(t.mainWait)} µs, other threads ${fmt(t.otherCpu)} µs), others ${fmt(r.otherCpuCores, 2)}`);
      }
      order.forEach(({ b, pair }, i) => {
        if (pair !== undefined) offBeside.get(b.name).push(results[pair]);
        else offBeside.get(b.name).push(results[i]);
      });
    }
  }

  for (const b of brokers) place(b, 'shared');

  // 2b. who had the event loop's core while it waited: one more round per broker at the first
  // fixed load, with the scheduler's events on the brokers' CPU recorded (bench/sched-wait.mjs).
  const sched = { rows: [], why: undefined };
  if (!PIN || LOAD_SHARES.length === 0) sched.why = 'needs the brokers pinned and a fixed load';
  else if (!SCHED) sched.why = 'BENCH_SCHED=0';
  else sched.why = perfSchedUnavailable(join(dir, 'sched-probe.data'));
  if (sched.why === undefined) {
    const { rate } = [...fixed.values()][0];
    const seconds = FIXED_WARMUP_S + FIXED_DURATION;
    for (const b of brokers) {
      const file = join(dir, `sched-${b.name}.data`);
      const [r] = await alone([b], () => Promise.all([loadPhase({ children, pids: b.pids, url: `${b.s.url}/v1/check`, body, headers, script: 'open-load.mjs', connections: 64, duration: FIXED_DURATION, extra: { rate, warmupS: FIXED_WARMUP_S, generator: LOADGEN } }), recordSched(file, BROKER_CPU, seconds)]));
      check(b.name, r);
      const nices = threadNices(b.pids);
      const classOf = (run) => {
        const t = nices.get(run.tid);
        return t === undefined || !b.pids.includes(t.pid) ? 'others' : t.nice === WRITER_NICE ? 'writer' : 'broker';
      };
      const w = eventLoopWaits(file, b.pids, classOf);
      const offered = rate * seconds;
      const us = (ms) => (ms * 1000) / offered;
      const row = { name: b.name, rate, p99: mergeHist([r]).p99, wait: us(w.waitMs), writer: us(w.byClass.get('writer') ?? 0), broker: us(w.byClass.get('broker') ?? 0), others: us(w.byClass.get('others') ?? 0), waits: w.waits, over1ms: w.over1ms, longestMs: w.longestMs, longestHolder: w.longestHolder };
      sched.rows.push(row);
      rmSync(file, { force: true });
      log(`sched ${b.name}: event loop waited ${fmt(row.wait, 1)} µs per check offered (writer ${fmt(row.writer, 1)}, broker's other threads ${fmt(row.broker, 1)}, other processes ${fmt(row.others, 1)}); ${w.waits} waits, ${w.over1ms} over 1 ms, longest ${fmt(w.longestMs, 2)} ms (${w.longestHolder ?? 'nobody'})`);
    }
  } else log(`sched: no scheduler trace (${sched.why})`);

  if (sinkServersHeld) {
    pinSinkServers(allCpus());
    sinkServersIdle.restore?.();
    sinkServersHeld = false;
  }

  // 3. keeping up at saturation
  const keepUp = [];
  for (const b of brokers.filter((x) => SINK_CONFIGS[x.name] !== undefined)) {
    const kind = kindOf(b.name);
    const count = kind === 'postgres' ? () => pgRows(b.db) : kind === 'nats' ? () => streamMessages(SINK_CONFIGS[b.name].nats.stream) : () => ndjsonLines(SINK_CONFIGS[b.name].path);
    // A broker stopped (SIGSTOP) with a sink write in flight (its `settle` ran out) finds that
    // write's 5 s timeout run out when it resumes, spills the batch and replays it (the `audit:`
    // messages in the report), and a broker the fixed loads overloaded may still hold a spill file. While one is replayed, new
    // entries are appended behind it (they stay in order), so the window would measure that
    // replay, not keeping up: wait (at most KEEPUP_SETTLE_S) until the spill file and the queue
    // are empty before the counters are read.
    await sleep(1000);
    const { m: m0, ms: settleMs } = await metricsUntil(b.s.url, (m) => m.spillBytes === 0 && m.queued === 0, KEEPUP_SETTLE_S * 1000, 250);
    const settle = { ms: settleMs, spillBytes: m0.spillBytes, queued: m0.queued };
    log(`keep-up ${b.name}: before the window, waited ${settle.ms} ms for the spill file and queue to empty (left: ${settle.spillBytes} B spilled, ${settle.queued} queued)`);
    const rows0 = await count();
    const samples = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await auditMetrics(b.s.url));
        await sleep(250);
      }
    })();
    // Not settled here: how long the queue and the spill file take to empty after the load is
    // this phase's own measure (below), and the next phase's window opens only once they have.
    const r = await alone([b], () => loadPhase({ children, pids: b.pids, url: `${b.s.url}/v1/check`, body, headers, connections: CONNECTIONS, duration: KEEPUP_S }), { settled: false });
    sampling = false;
    await sampler;
    check(b.name, r);
    // The sink's count is read once the queue and the spill file are empty: entries spilled in the
    // window are in the sink only after their replay (before, the count fell short by what was
    // still spilled, 30,330 entries for NATS in one run, and read as if lost).
    const { m: m1, ms: drainMs } = await metricsUntil(b.s.url, (m) => m.queued === 0 && m.spillBytes === 0, KEEPUP_SETTLE_S * 1000, 50);
    await sleep(300); // the last batch's insert or publish
    const rows1 = await count();
    const answered = r.requests;
    const half = Math.floor(samples.length / 2);
    const res = {
      sink: b.name,
      rps: r.rps,
      answered,
      logged: rows1 - rows0,
      writtenDelta: m1.written - m0.written,
      maxQueue: Math.max(...samples.map((s) => s.queued)),
      queueFirstHalfMax: Math.max(...samples.slice(0, half).map((s) => s.queued)),
      queueSecondHalfMax: Math.max(...samples.slice(half).map((s) => s.queued)),
      maxSpillBytes: Math.max(...samples.map((s) => s.spillBytes), m1.spillBytes),
      spilled: m1.spilled - m0.spilled,
      dropped: m1.dropped - m0.dropped,
      yields: m1.yields - m0.yields,
      drainMs,
      settle,
      serverCpuCores: r.serverCpuCores,
      otherCpuCores: r.otherCpuCores,
    };
    keepUp.push(res);
    log(`keep-up ${b.name}: ${fmt(r.rps)} req/s for ${KEEPUP_S} s; answered ${fmt(answered)}, in the sink ${fmt(res.logged)}; queue max ${res.maxQueue} (first half ${res.queueFirstHalfMax}, second ${res.queueSecondHalfMax}); spill max ${res.maxSpillBytes} B; queue and spill file empty ${drainMs} ms after the load`);
  }

  // Report
  const git = gitState();
  const label = { off: 'audit off', postgres: 'Postgres sink', ndjson: 'NDJSON file sink', 'ndjson-main': 'NDJSON, writer in the event loop\'s thread', nats: 'NATS JetStream sink', control: 'audit off, a second broker (control)' };
  const baseline = BASELINE === undefined ? undefined : gitState(BASELINE);
  for (const name of SINKS) if (name.endsWith(BASE)) label[name] = `${label[kindOf(name)]}, baseline build (${baseline?.head})`;
  const cpuUs = (runs) => (avg(runs.map((r) => r.serverCpuCores)) / avg(runs.map((r) => r.rps))) * 1e6;
  const offCpu = cpuUs(peak.get('off'));
  const peakRows = brokers.map((b) => {
    const p = peak.get(b.name);
    return `| ${label[b.name]} | ${p.map((r) => fmt(r.rps)).join(' / ')} | ${fmt(avg(p.map((r) => r.rps)) / offPeak, 2)}x | ${fmt(avg(p.map((r) => r.serverCpuCores)), 2)} | ${fmt(cpuUs(p))} (${fmt(cpuUs(p) / offCpu, 2)}x) | ${fmt(Math.max(...p.map((r) => r.otherCpuCores)), 2)} |`;
  });
  const latencyRows = [];
  // Each round's own p99, and their median: one slow round of one server (the machine's speed
  // drifts) moves the merged p99 by 2x, the median of the rounds much less.
  const roundP99s = (runs) => runs.map((r) => mergeHist([r]).p99);
  const placementLabel = { shared: 'shared: all on CPU 1', apart: 'apart: event loop alone on CPU 1' };
  for (const { placement, share, rate, byServer, offBeside } of fixed.values()) {
    for (const b of brokers) {
      const runs = byServer.get(b.name);
      const h = mergeHist(runs);
      const rounds = roundP99s(runs);
      // Each run against the run of audit off next to it (seconds away; audit off: itself).
      const beside = offBeside.get(b.name);
      const off = mergeHist(beside);
      const offRounds = roundP99s(beside);
      const paired = rounds.map((x, i) => x / offRounds[i]);
      const t = runs.map((r) => threadsPerOffered(r, rate));
      latencyRows.push(
        `| ${placementLabel[placement]} | ${Math.round(share * 100)}% (${fmt(rate)} req/s) | ${label[b.name]} | ${fmt(avg(runs.map((r) => r.rps)))} | ${fmt(h.p50, 2)} | ${fmt(h.p99, 2)} | ${fmt(off.p99, 2)} | **${fmt(h.p99 / off.p99, 2)}x** | ${rounds.map((x) => fmt(x, 1)).join(' / ')} | ${fmt(median(paired), 2)}x | ${fmt(median(t.map((x) => x.mainCpu)))} / ${fmt(median(t.map((x) => x.mainWait)))} / ${fmt(median(t.map((x) => x.otherCpu)))} | ${fmt(Math.max(...runs.map((r) => r.maxIssueLagMs ?? NaN)), 1)} / ${fmt(median(runs.map((r) => r.loopDelayP99Ms ?? NaN)), 2)}${LOADGEN === 'native' ? ` / ${fmt(median(runs.map((r) => r.readLagP99Ms ?? NaN)), 2)}` : ''} | ${fmt(Math.max(...runs.map((r) => r.otherCpuCores)), 2)} | ${runs.reduce((n, r) => n + r.yields, 0)} |`,
      );
    }
  }
  const md = [
    `Measured ${new Date().toISOString()} on ${cpus()[0]?.model ?? 'unknown CPU'} (nproc ${cpus().length}), Node ${process.version}; Warden code at ${git.head}${git.changedFilesInAppsLibsPolicies > 0 ? ` (+${git.changedFilesInAppsLibsPolicies} uncommitted files)` : ''}${baseline !== undefined ? `; the baseline build (\`@base\`) at ${baseline.head}${baseline.changedFilesInAppsLibsPolicies > 0 ? ` (+${baseline.changedFilesInAppsLibsPolicies} uncommitted files)` : ''}` : ''}. One broker worker each (node ${[...BROKER_NODE_ARGS, ...NODE_ARGS].join(' ')})${PIN ? ', pinned to CPU 1, load generators to CPU 0' : ', not pinned'}; the machine's servers (Postgres 15, NATS and every other process not the bench's: \`machineServerPids\`) ${sinkServersPinned > 0 ? `pinned to CPU 0 during the fixed loads (${sinkServersPinned} processes${sinkServersIdle.moved > 0 ? `, ${sinkServersIdle.moved} of them in a cgroup with cpu.idle 1, so the load generator preempts them` : `; not in an idle cgroup: ${sinkServersIdle.why}`}), not pinned otherwise` : 'not pinned'}; fixed loads open-loop (bench/open-load.mjs, ${LOADGEN === 'native' ? 'its C generator bench/open-load.c' : 'the Node generator'}), ${FIXED_ROUNDS} rounds x ${FIXED_DURATION} s per load and server, each after ${FIXED_WARMUP_S} s at its rate not recorded; ${CONNECTIONS} connections at peak; ${ROUNDS} rounds x ${DURATION} s per other phase and server; servers in alternation, the order rotated by one every round; at the fixed loads a run of audit off between every two others, each compared with the run of audit off next to it. Reproduce: \`npm run bench:audit\`.`,
    '',
    'Peak (saturated):',
    '',
    '| server | req/s (rounds) | / audit off | Warden cores | Warden CPU µs per check (/ off) | others (cores, max) |',
    '|---|--:|--:|--:|--:|--:|',
    ...peakRows,
    '',
    `Side by side: audit off and each audit-on broker saturated at the same time (${Math.max(1, CONNECTIONS >> 1)} connections each${PIN ? ', both on CPU 1' : ''}); the throughput ratio is the inverse ratio of their CPU per check. CPU per check of the event loop (main thread) and of the other threads (V8's GC helpers, libuv's pool: the NDJSON sink's writes and fsyncs), medians of the rounds:`,
    '',
    '| sink | throughput / audit off, each round | median | event loop µs per check, on / off | other threads µs per check, on / off |',
    '|---|--:|--:|--:|--:|',
    ...[...sideBySide].map(([name, rounds]) => `| ${label[name]} | ${rounds.map((x) => fmt(x.ratio, 2)).join(' / ')} | ${fmt(median(rounds.map((x) => x.ratio)), 2)} | ${fmt(median(rounds.map((x) => x.onMain)))} / ${fmt(median(rounds.map((x) => x.offMain)))} | ${fmt(median(rounds.map((x) => x.onOther)))} / ${fmt(median(rounds.map((x) => x.offOther)))} |`),
    '',
    `Latency at fixed offered loads (shares of the audit-off peak), with each broker's threads placed ${PIN ? PLACEMENTS.map((x) => `\`${x}\``).join(' and then ') : '`shared` (not pinned)'} (see \`PLACEMENTS\` in bench/audit.bench.mjs: \`shared\`, every thread of the broker on CPU 1 as in the other phases; \`apart\`, the event loop alone on CPU 1 and the broker's other threads, the log's writer among them, on CPU 0 with the load generators):`,
    '',
    '| threads | load | server | served req/s | p50 ms | p99 ms (rounds merged) | p99 ms of the runs of audit off beside them (merged) | p99 / audit off (the goal: <= 1.10x) | p99 ms of each round | median of the rounds\' p99 / the run of audit off beside it | µs per check offered: event loop on CPU / event loop waiting for its core / other threads on CPU (median of the rounds) | load generator: late by, max ms / ' + (LOADGEN === 'native' ? 'its lateness handing requests over, p99 ms / how late it read the answers after the kernel received them (not in the latencies), p99 ms' : 'its event loop\'s delay, p99 ms') + ' (median of the rounds) | others (cores, max) | the event loop\'s pauses for a starved writer thread (all rounds) |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...latencyRows,
    '',
    ...(sched.why === undefined
      ? [
          `Who had the event loop's core while it waited: one more round per broker at ${fmt(sched.rows[0]?.rate)} req/s (${FIXED_WARMUP_S} s + ${FIXED_DURATION} s), every thread of the broker on CPU 1 (\`shared\`), the scheduler's events on CPU 1 recorded (\`perf sched record\`, bench/sched-wait.mjs). The event loop waits when it was preempted while runnable, and between its wake-up and its run; each task that ran on the core meanwhile is charged its share. µs per check offered:`,
          '',
          "| server | p99 ms of this round | event loop waiting for its core | the decision log's writer thread had it | the broker's other threads (V8's helpers, libuv's pool) | other processes | waits (over 1 ms) | longest wait ms (who had the core most of it) |",
          '|---|--:|--:|--:|--:|--:|--:|--:|',
          ...sched.rows.map((x) => `| ${label[x.name]} | ${fmt(x.p99, 2)} | ${fmt(x.wait, 1)} | ${fmt(x.writer, 1)} | ${fmt(x.broker, 1)} | ${fmt(x.others, 1)} | ${fmt(x.waits)} (${fmt(x.over1ms)}) | ${fmt(x.longestMs, 2)} (${x.longestHolder === 'writer' ? 'the writer' : x.longestHolder === 'broker' ? "the broker's other threads" : x.longestHolder === 'others' ? 'another process' : 'nobody'}) |`),
          '',
        ]
      : [`Who had the event loop's core while it waited: not measured (${sched.why}).`, '']),
    `Keeping up: each audit-on broker saturated for ${KEEPUP_S} s, its /metrics read every 250 ms.`,
    '',
    '| sink | before the window: waited for an empty spill file and queue (left) | req/s | decisions answered | entries in the sink after | queue depth max (1st half / 2nd half) | spill file max | spilled / dropped | queue and spill file empty after the load in | the event loop\'s pauses for a starved writer thread |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...keepUp.map((k) => `| ${label[k.sink]} | ${fmt(k.settle.ms / 1000, 1)} s (${fmt(k.settle.spillBytes)} B, ${fmt(k.settle.queued)} entries) | ${fmt(k.rps)} | ${fmt(k.answered)} | ${fmt(k.logged)} | ${fmt(k.maxQueue)} (${fmt(k.queueFirstHalfMax)} / ${fmt(k.queueSecondHalfMax)}) | ${fmt(k.maxSpillBytes)} B | ${k.spilled} / ${k.dropped} | ${k.drainMs} ms | ${fmt(k.yields)} |`),
    '',
    `Before each phase stopped an audit-on broker, its log was given up to ${SETTLE_MS / 1000} s to write every decision it had made (see \`settle\`): longest wait ${brokers.filter((b) => SINK_CONFIGS[b.name] !== undefined).map((b) => `${b.name} ${fmt(settleMs.get(b.name) ?? 0)} ms`).join(', ')}; ran out ${brokers.filter((b) => SINK_CONFIGS[b.name] !== undefined).map((b) => `${b.name} ${settleTimeouts.get(b.name) ?? 0} times`).join(', ')}.`,
    '',
    `What the decision logs reported (their \`audit:\` messages in the brokers' last 20 KB of output): ${auditMessages()}`,
  ].join('\n');
  console.log(md);
  if (!NO_WRITE) replaceSection(join(benchDir, 'README.md'), '<!-- audit-bench:start -->', '<!-- audit-bench:end -->', md, log);
} finally {
  if (sinkServersHeld) {
    pinSinkServers(allCpus());
    sinkServersIdle.restore?.();
  }
  await stopProcesses(children, extraPids);
  for (const b of brokers) await b.db.drop().catch(() => undefined);
  if (nc !== undefined) {
    const jsm = await nc.jetstreamManager();
    // This run's streams: the NATS sinks' (the baseline build's has its own).
    for (const stream of new Set(SINKS.map((name) => SINK_CONFIGS[name]?.nats?.stream).filter((x) => x !== undefined))) await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
