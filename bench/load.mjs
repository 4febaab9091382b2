// One autocannon run in its own process (spawned by bench/run.mjs), so the load generator is a
// single process whose CPU use is measured and the orchestrator's sampling timers never stall it.
// argv[2]: JSON { url, body, connections, duration (s), headers? (added to content-type) }: as
// fast as answered (fixed rates: bench/open-load.mjs). Prints one JSON line on stdout.
//
// Latency: every response time (float ms from process.hrtime) is also recorded in the 10 µs
// histogram of bench/latency-hist.mjs, which the orchestrator merges across rounds.
import autocannon from 'autocannon';
import { createLatencyHist, printResult } from './latency-hist.mjs';

const opts = JSON.parse(process.argv[2]);
const hist = createLatencyHist();

const cpuStart = process.cpuUsage();
const t0 = process.hrtime.bigint();
const instance = autocannon(
  {
    url: opts.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(opts.headers ?? {}) },
    body: opts.body,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.duration,
    timeout: 10,
  },
  (err, result) => {
    if (err) return printResult({ error: String(err?.stack ?? err) }, 1);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(cpuStart);
    printResult({
      requests: result.requests.total,
      rps: result.requests.average,
      durationS: result.duration,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      mismatches: result.mismatches,
      resets: result.resets,
      statusCodeStats: result.statusCodeStats,
      autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
      hist,
      loadgenCpuS: (cpu.user + cpu.system) / 1e6,
      wallS: wallMs / 1000,
    });
  },
);

instance.on('response', (_client, _statusCode, _resBytes, responseTime) => hist.record(responseTime));

// Bounded: never outlive the run by much, whatever happens to the server.
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: 'load generator watchdog fired' }) + '\n');
  process.exit(1);
}, (opts.duration + 20) * 1000).unref();
