// An open-loop load run at a fixed rate in its own process (spawned by bench/harness.mjs runLoad
// with `script: 'open-load.mjs'`); prints the same JSON line as bench/load.mjs.
//
// Why not autocannon's `overallRate`: autocannon sends as fast as the server answers until a
// connection has made its share of the second's requests, then pauses until the next second. At
// "30% load" the server is saturated for the first 0.3 s of every second and idle after, so the
// latency it records is the saturated, closed-loop latency (32 connections x the CPU per request),
// whatever the rate. Here the requests of each millisecond are due at its start (rate / 1000 per
// millisecond, sent by a 1 ms timer) and each is handed to an undici Pool of keep-alive
// connections at once, whether or not earlier ones were answered (it waits in the pool's queue
// when every connection is busy). Latency runs from that hand-over to the end of the answer, so a
// stalled server shows in full: the requests keep coming and wait. How late the timer sent a
// millisecond's requests (the generator's own stalls) is reported as `maxIssueLagMs`; measuring
// from the due time instead would add the timer's 0-1 ms granularity to every request. The
// generator's own event-loop delay while recording (`loopDelayP99Ms`, perf_hooks at 1 ms
// resolution) is the floor of what it can measure: an answer is timed when its loop gets to it.
//
// argv[2]: JSON { url, body, headers?, rate (req/s), duration (s, recorded), warmupS (s sent first
// and not recorded, 1), connections (most sockets, 64), generator ('node', the default, or 'native':
// bench/open-load.c, the same schedule and timing in C, see bench/open-load-native.mjs) }.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Pool } from 'undici';
import { createLatencyHist, printResult } from './latency-hist.mjs';
import { runNative } from './open-load-native.mjs';

const opts = JSON.parse(process.argv[2]);
if (!(opts.rate > 0)) throw new Error('open-load: rate (req/s) must be > 0');
if (opts.generator === 'native') {
  const result = await runNative(opts);
  printResult(result, result.error === undefined ? 0 : 1);
  await new Promise(() => undefined); // printResult exits
}
const url = new URL(opts.url);
const pool = new Pool(url.origin, { connections: opts.connections ?? 64, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
const request = { path: url.pathname + url.search, method: 'POST', headers: { 'content-type': 'application/json', ...(opts.headers ?? {}) }, body: opts.body };

const hist = createLatencyHist();
const statusCodeStats = {};
let non2xx = 0;
let errors = 0;
let sent = 0;
let inFlight = 0;
let maxIssueLagMs = 0;
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
let recording = false;

const perMs = opts.rate / 1000;
// The first `warmupS` seconds are sent at the same rate but not recorded: the generator's own
// first half second (compiling, opening connections) stalls its timer by up to 15 ms.
const warm = Math.floor(opts.rate * (opts.warmupS ?? 1));
const total = warm + Math.floor(opts.rate * opts.duration);
const cpuStart = process.cpuUsage();
const t0 = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - t0);

function send(measured) {
  const sentAt = now();
  inFlight += 1;
  pool.request(request).then(
    async (res) => {
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode > 299) non2xx += 1;
      if (measured) {
        statusCodeStats[res.statusCode] = { count: (statusCodeStats[res.statusCode]?.count ?? 0) + 1 };
        hist.record((now() - sentAt) / 1e6);
      }
      settle();
    },
    () => {
      errors += 1;
      settle();
    },
  );
}

let finished = false;
function settle() {
  inFlight -= 1;
  if (sent === total && inFlight === 0 && !finished) finish();
}

/** When request i is due (ns since t0): the start of its millisecond. */
const dueNs = (i) => Math.floor(i / perMs) * 1e6;

function tick() {
  const t = now();
  const due = Math.min(total, Math.ceil((Math.floor(t / 1e6) + 1) * perMs));
  if (due > sent && sent >= warm) maxIssueLagMs = Math.max(maxIssueLagMs, (t - dueNs(sent)) / 1e6);
  if (!recording && sent >= warm && due > sent) {
    recording = true;
    loopDelay.enable();
  }
  while (sent < due) {
    send(sent >= warm);
    sent += 1;
  }
  if (sent < total) setTimeout(tick, 1);
}

async function finish() {
  finished = true;
  const wallS = now() / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  loopDelay.disable();
  await pool.close();
  printResult({
    requests: hist.count,
    rps: hist.count / opts.duration,
    durationS: opts.duration,
    non2xx,
    errors,
    timeouts: 0,
    mismatches: 0,
    resets: 0,
    statusCodeStats,
    hist,
    maxIssueLagMs,
    // The histogram holds the timer's whole interval: its 1 ms is not delay.
    loopDelayP99Ms: loopDelay.count > 0 ? Math.max(0, loopDelay.percentile(99) / 1e6 - 1) : NaN,
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
    wallS,
  });
}

tick();

// Bounded: never outlive the run by much, whatever happens to the server.
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: 'open-load watchdog fired' }) + '\n');
  process.exit(1);
}, (opts.duration + (opts.warmupS ?? 1) + 20) * 1000).unref();
