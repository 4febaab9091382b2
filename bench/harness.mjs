// Helpers shared by the HTTP benches (bench/run.mjs, bench/enrichment.mjs): /proc sampling, free
// ports, starting servers and Warden, the throwaway Postgres database Warden's workers need, one
// autocannon run in a child process (bench/load.mjs) with CPU and RSS sampling, latency
// histograms, reporting helpers. Every child process is tracked in a caller-owned set so the
// caller can stop it by pid.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const benchDir = join(root, 'bench');
export const policyDir = join(root, 'policies');
export const wardenEntry = join(root, 'dist/apps/broker/apps/broker/src/main.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function envInt(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
}

export const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');
export const mb = (kb) => kb / 1024;

// ---------------------------------------------------------------------------------------------
// /proc helpers

export function procStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

let clkTck = 100;
try {
  clkTck = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
} catch {
  /* default */
}

/** utime+stime of a process in seconds. */
export function procCpuS(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clkTck; // fields 14 and 15 of stat(5)
  } catch {
    return 0;
  }
}

/**
 * CPU seconds, context switches (voluntary + involuntary) and seconds spent runnable but waiting
 * for a CPU (`waitS`, from schedstat: another thread or process had the core) of `pid`'s main
 * thread (`main`: the event loop) and of all its other threads together (`other`: V8's GC and
 * compiler helpers, the libuv thread pool; Node names them all `node`): what a server spends
 * outside its event loop, how often it is switched out, and how long its event loop waited for
 * its core.
 */
export function procThreads(pid) {
  const out = {};
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = tid === String(pid) ? 'main' : 'other';
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const ctx = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const t = (out[comm] ??= noThreads());
      t.cpuS += (Number(f[11]) + Number(f[12])) / clkTck;
      t.ctx += ctx;
      t.waitS += schedWaitS(pid, tid);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** A thread group's counters before anything is added. */
const noThreads = () => ({ cpuS: 0, ctx: 0, waitS: 0 });

/** Seconds thread `tid` of `pid` has waited on a run queue (0 where the kernel keeps no schedstat). */
function schedWaitS(pid, tid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e9 || 0;
  } catch {
    return 0;
  }
}

/** What `procThreads` of `pids` grew by since `before` (same shape, summed over the pids). */
function threadsDelta(pids, before) {
  const out = {};
  pids.forEach((pid, i) => {
    const now = procThreads(pid);
    for (const [comm, t] of Object.entries(now)) {
      const b = before[i][comm] ?? noThreads();
      const o = (out[comm] ??= noThreads());
      o.cpuS += t.cpuS - b.cpuS;
      o.ctx += t.ctx - b.ctx;
      o.waitS += t.waitS - b.waitS;
    }
  });
  return out;
}

/**
 * Per request of a load run (see {@link loadPhase}): the CPU µs and the context switches of the
 * servers' `main` or `other` threads.
 */
export function threadPerRequest(r, thread) {
  const t = r.serverThreads?.[thread];
  return { cpuUs: ((t?.cpuS ?? 0) * 1e6) / r.requests, ctx: (t?.ctx ?? 0) / r.requests };
}

/** Every CPU of the machine, as a taskset list (to undo {@link pinToCpu}). */
export const allCpus = () => `0-${cpus().length - 1}`;

/** Busy CPU seconds of the whole machine (all cores) from /proc/stat. */
export function systemBusyS() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
    return (total - f[3] - f[4]) / clkTck;
  } catch {
    return NaN;
  }
}

/** Direct children of pid (scan of /proc/<n>/stat ppid). */
export function childPids(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      /* raced with exit */
    }
  }
  return out;
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns a server process, tracked in `children`, keeping the last 20 kB of its output. */
export function spawnServer(children, name, cmd, args, options) {
  const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (d) => {
    out += d.toString();
    if (out.length > 20000) out = out.slice(-20000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (e) => (out += `\nspawn error: ${e.message}`));
  return { name, child, pid: child.pid, log: () => out };
}

export async function waitHealthy(server, url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`${server.name} exited during startup:\n${server.log()}`);
    }
    try {
      const res = await fetch(`${url}/_cerbos/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${server.name} did not become healthy in ${timeoutMs} ms:\n${server.log()}`);
    await sleep(100);
  }
}

/** taskset can pin processes here (2 CPUs or more, util-linux's taskset installed). */
export const canPin = () => cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;

/**
 * Pins a process and all its threads (`taskset -a`; with `allThreads` false only the thread whose
 * id is `pid`) to `cpus` (a CPU number or a taskset list such as `0-1`). The benches that pin put
 * their own process (and so every load generator it spawns) on CPU 0 and the servers under test,
 * with their GC and libuv threads, on CPU 1, so a server and the load generator never take turns
 * on one core.
 */
export function pinToCpu(pid, cpus, allThreads = true) {
  const r = spawnSync('taskset', [...(allThreads ? ['-a'] : []), '-p', '-c', String(cpus), String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset ${pid}: ${r.stderr || r.error?.message}`);
}

/**
 * Starts the built broker on a free 127.0.0.1 port and waits until every worker listens.
 * `config`: path of a warden.yaml (absent: defaults only; `cwd` should then hold no warden.yaml).
 * An inherited REDIS_URL is never passed on (in-process caches only) unless `redisUrl` is given,
 * nor an inherited WARDEN_CONFIG.
 */
/** The node options the broker is started with (`npm start`, the Dockerfile): every bench runs it so. */
export const BROKER_NODE_ARGS = ['--single-threaded-gc'];

export async function startWarden({ children, name = 'warden', cwd, workers, databaseUrl, redisUrl, config, env: extraEnv = {}, nodeArgs = [], entry = wardenEntry }) {
  const port = await freePort();
  const env = { ...process.env, WARDEN_HTTP_ADDR: `127.0.0.1:${port}`, WARDEN_GRPC_ADDR: '127.0.0.1:0', WARDEN_POLICY_DIR: policyDir, WARDEN_WORKERS: String(workers), ...extraEnv };
  delete env.WARDEN_CONFIG;
  delete env.REDIS_URL;
  delete env.DATABASE_URL;
  if (config !== undefined) env.WARDEN_CONFIG = config;
  if (databaseUrl !== undefined) env.DATABASE_URL = databaseUrl;
  if (redisUrl !== undefined) env.REDIS_URL = redisUrl;
  const s = spawnServer(children, name, process.execPath, [...BROKER_NODE_ARGS, ...nodeArgs, entry], { cwd, env });
  s.kind = 'warden';
  s.url = `http://127.0.0.1:${port}`;
  await waitHealthy(s, s.url);
  // The primary answers nothing itself; wait until every worker is listening.
  const deadline = Date.now() + 30_000;
  while (!s.log().includes('broker listening')) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) throw new Error(`${name} exited during startup:\n${s.log()}`);
    if (Date.now() > deadline) throw new Error(`${name} workers did not all start:\n${s.log()}`);
    await sleep(100);
  }
  return s;
}

/** pids that make up a server (Warden: primary + cluster workers, remembered in `extraPids`). */
export function serverPids(s, extraPids) {
  if (s.kind !== 'warden') return [s.pid];
  const kids = childPids(s.pid);
  for (const k of kids) extraPids.add(k);
  return [s.pid, ...kids];
}

/** SIGTERM to `children`, then SIGKILL to whatever (children or `extraPids`) is left after `graceMs`. */
export async function stopProcesses(children, extraPids, graceMs = 5000) {
  const running = (c) => c.exitCode === null && c.signalCode === null;
  for (const c of children) if (running(c)) c.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && ([...children].some(running) || [...extraPids].some(alive))) await sleep(100);
  for (const c of children) if (running(c)) c.kill('SIGKILL');
  for (const pid of extraPids) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The throwaway database (Warden needs DATABASE_URL when it runs more than one worker)

/** Admin connection used to create and drop bench databases (`BENCH_PG_URL`). */
export const PG_ADMIN_URL = process.env.BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Creates `warden_bench_<random>` on the admin URL's server; returns its URL and `drop()` (idempotent,
 * `with (force)` so connections left behind do not block it).
 */
export async function createBenchDatabase(adminUrl = PG_ADMIN_URL) {
  const name = `warden_bench_${randomBytes(5).toString('hex')}`;
  const admin = async (sql) => {
    const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000, statement_timeout: 30_000 });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  await admin(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped;
  return {
    name,
    url: url.toString(),
    drop: () => (dropped ??= admin(`drop database if exists ${name} with (force)`)),
  };
}

// ---------------------------------------------------------------------------------------------
// Load runs

/**
 * One load run in a child process: autocannon (bench/load.mjs) by default, or another generator
 * printing the same JSON line (`script`, e.g. bench/grpc-load.mjs, with its own options in
 * `extra`); resolves its JSON result.
 */
export function runLoad({ children, url, body, headers, connections, duration, script = 'load.mjs', extra = {} }) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(benchDir, script), JSON.stringify({ url, body, connections, duration, ...(headers ? { headers } : {}), ...extra })], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    child.stderr.on('data', (d) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        const res = JSON.parse(line);
        if (res.error !== undefined) return reject(new Error(`load generator: ${res.error}`));
        if (code !== 0) return reject(new Error(`load generator exited ${code}: ${err}`));
        resolve(res);
      } catch {
        reject(new Error(`load generator (exit ${code}) printed no result: ${out}\n${err}`));
      }
    });
  });
}

/**
 * Runs one load phase (see {@link runLoad}) while sampling the server processes `pids` every
 * `sampleMs`: adds server (also main thread and other threads, with context switches), load-generator, orchestrator and "other processes" CPU (cores) and the
 * peak summed RSS to the result.
 */
export async function loadPhase({ pids, sampleMs = 200, ...load }) {
  const cpu0 = pids.reduce((s, p) => s + procCpuS(p), 0);
  const threads0 = pids.map(procThreads);
  const sys0 = systemBusyS();
  const self0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let peakKb = 0;
  const sampler = setInterval(() => {
    const sum = pids.reduce((s, p) => s + (procStatus(p)?.rssKb ?? 0), 0);
    if (sum > peakKb) peakKb = sum;
  }, sampleMs);
  try {
    const res = await runLoad(load);
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = pids.reduce((s, p) => s + procCpuS(p), 0);
    // Per thread name: CPU seconds and context switches during the run.
    res.serverThreads = threadsDelta(pids, threads0);
    const self = process.cpuUsage(self0);
    res.serverCpuCores = (cpu1 - cpu0) / wallS;
    res.phaseWallS = wallS;
    res.loadgenCpuCores = res.loadgenCpuS / res.wallS;
    res.orchestratorCpuCores = (self.user + self.system) / 1e6 / wallS;
    res.machineBusyCores = (systemBusyS() - sys0) / wallS;
    // CPU used by processes that are not part of the bench (other workloads on the machine).
    res.otherCpuCores = Math.max(0, res.machineBusyCores - res.serverCpuCores - res.loadgenCpuCores - res.orchestratorCpuCores);
    res.peakRssKb = peakKb;
    return res;
  } finally {
    clearInterval(sampler);
  }
}

export function failures(r) {
  return (r.non2xx ?? 0) + (r.errors ?? 0) + (r.timeouts ?? 0) + (r.mismatches ?? 0);
}

/** Merges the 10 µs histograms of load runs; percentiles in ms (bucket midpoints). */
export function mergeHist(runs) {
  const m = new Map();
  let count = 0;
  for (const r of runs) {
    const sp = r.hist.sparse;
    for (let i = 0; i < sp.length; i += 2) m.set(sp[i], (m.get(sp[i]) ?? 0) + sp[i + 1]);
    count += r.hist.count;
  }
  const bucketUs = runs[0].hist.bucketUs;
  const keys = [...m.keys()].sort((a, b) => a - b);
  const pct = (p) => {
    const target = Math.ceil((p / 100) * count);
    let acc = 0;
    for (const k of keys) {
      acc += m.get(k);
      if (acc >= target) return ((k + 0.5) * bucketUs) / 1000; // bucket midpoint, ms
    }
    return NaN;
  };
  return { p50: pct(50), p90: pct(90), p99: pct(99), max: Math.max(...runs.map((r) => r.hist.maxMs)), count };
}

/** Median of an unsorted list of numbers (the mean of the middle two for an even count). */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile of an unsorted list of numbers. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// ---------------------------------------------------------------------------------------------
// Reporting

/** Replaces the text between two marker comments of `file` (appends the markers when missing). */
export function replaceSection(file, start, end, content, log = () => undefined) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) {
    log(`${file} has no ${start} ... ${end} markers; appending them`);
    writeFileSync(file, `${text}\n${start}\n${content}\n${end}\n`);
    return;
  }
  writeFileSync(file, `${text.slice(0, i + start.length)}\n${content}\n${text.slice(j)}`);
}

/** The code under test (this checkout, or the checkout `dir`): HEAD and how many files differ from it (the bench measures the working tree). */
export function gitState(dir = root) {
  const git = (...args) => spawnSync('git', args, { cwd: dir, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const head = git('rev-parse', '--short', 'HEAD');
  const dirty = git('status', '--porcelain', '--', 'apps', 'libs', 'policies').split('\n').filter(Boolean).length;
  return { head: head || 'unknown', changedFilesInAppsLibsPolicies: dirty };
}
