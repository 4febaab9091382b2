// Who had a core while a server's event loop was runnable and waiting for it: `perf sched record`
// on that core during a load run, then `perf sched timehist --state` read back. The event loop
// waits (a) from being switched out while still runnable (state R: preempted) until it runs again,
// and (b) from its wake-up until it runs (the scheduling delay). Every other task's run on the core
// is split over those intervals, so the waiting time is attributed to the threads that had the core.
// Needs Linux perf (Debian's linux-perf) and the right to trace the scheduler (root, or
// kernel.perf_event_paranoid <= -1); bench/audit.bench.mjs skips the phase without them.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Why `perf sched` cannot record here, or undefined when it can (a 0.1 s recording is tried). */
export function perfSchedUnavailable(file) {
  const r = spawnSync('perf', ['sched', 'record', '-o', file, '--', 'sleep', '0.1'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined) return `perf: ${r.error.code ?? r.error.message}`;
  if (r.status !== 0) return `perf sched record exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()}`;
  return undefined;
}

/** Records the scheduler's events on CPU `cpu` for `seconds` into `file`; resolves when perf is done. */
export function recordSched(file, cpu, seconds) {
  return new Promise((resolve, reject) => {
    const p = spawn('perf', ['sched', 'record', '-C', String(cpu), '-o', file, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`perf sched record exited ${code}: ${err.trim().split('\n').pop()}`))));
  });
}

/** The nice value of every thread of `pids` (tid → nice), read from /proc/<pid>/task/<tid>/stat. */
export function threadNices(pids) {
  const out = new Map();
  for (const pid of pids) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        out.set(Number(tid), { pid, nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) });
      } catch {
        /* the thread ended */
      }
    }
  }
  return out;
}

const LINE = /^\s*(\d+\.\d+)\s+\[\d+\]\s+(.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\S)\s*$/;
const TASK = /\[(\d+)(?:\/(\d+))?\]$/;

/** The runs of `perf sched timehist --state` of `file`: task, tid, pid, [start, end] ms, scheduling delay ms, state at switch-out. */
function runsOf(file) {
  const r = spawnSync('perf', ['sched', 'timehist', '-i', file, '--state'], { encoding: 'utf8', maxBuffer: 512 << 20, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`perf sched timehist exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()}`);
  const runs = [];
  for (const line of r.stdout.split('\n')) {
    const m = LINE.exec(line);
    if (m === null) continue;
    const t = TASK.exec(m[2]);
    const end = Number(m[1]) * 1e3;
    const run = Number(m[5]);
    runs.push({ task: m[2], tid: t === null ? -1 : Number(t[1]), pid: t === null ? -1 : Number(t[2] ?? t[1]), start: end - run, end, delay: Number(m[4]), state: m[6] });
  }
  return runs;
}

/**
 * Reads `file` back and attributes the waits of the busiest main thread among `pids` (the serving
 * event loop) to `classOf(run)` of the tasks that ran meanwhile. Returns the waiting time (ms),
 * its split by class, how many waits there were and how many lasted over 1 ms, and the longest
 * wait with the class that held the core longest within it.
 */
export function eventLoopWaits(file, pids, classOf) {
  const runs = runsOf(file);
  const busy = new Map();
  for (const r of runs) if (r.tid === r.pid && pids.includes(r.pid)) busy.set(r.tid, (busy.get(r.tid) ?? 0) + (r.end - r.start));
  const main = [...busy].sort((a, b) => b[1] - a[1])[0]?.[0];
  const waits = [];
  let last;
  for (const r of runs) {
    if (r.tid !== main) continue;
    if (last !== undefined && last.state === 'R') waits.push([last.end, r.start]);
    else if (r.delay > 0) waits.push([r.start - r.delay, r.start]);
    last = r;
  }
  const byClass = new Map();
  const longest = { ms: 0, holders: new Map() };
  let w = 0;
  for (const r of runs) {
    if (r.tid === main) continue;
    // Waits are in time order and do not overlap: skip those that ended before this run started.
    while (w < waits.length && (waits[w][1] <= r.start)) w += 1;
    for (let k = w; k < waits.length && waits[k][0] < r.end; k++) {
      const [a, b] = waits[k];
      const overlap = Math.min(b, r.end) - Math.max(a, r.start);
      if (overlap <= 0) continue;
      const c = classOf(r);
      byClass.set(c, (byClass.get(c) ?? 0) + overlap);
    }
  }
  for (const [a, b] of waits) {
    if (b - a <= longest.ms) continue;
    longest.ms = b - a;
    longest.holders = new Map();
    for (const r of runs) {
      if (r.tid === main || r.end <= a || r.start >= b) continue;
      const c = classOf(r);
      longest.holders.set(c, (longest.holders.get(c) ?? 0) + Math.min(b, r.end) - Math.max(a, r.start));
    }
  }
  const holder = [...longest.holders].sort((x, y) => y[1] - x[1])[0]?.[0];
  return { mainTid: main, waitMs: waits.reduce((s, [a, b]) => s + (b - a), 0), byClass, waits: waits.length, over1ms: waits.filter(([a, b]) => b - a > 1).length, longestMs: longest.ms, longestHolder: holder };
}
