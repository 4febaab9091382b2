// One autocannon run in its own process (spawned by bench/run.mjs), so the load generator is a
// single process whose CPU use is measured and the orchestrator's sampling timers never stall it.
// argv[2]: JSON { url, body, connections, duration (s), headers? (added to content-type),
// overallRate? (req/s over all connections; default: as fast as answered) }. Prints one JSON line
// on stdout.
//
// Latency: autocannon's own histogram has 1 ms resolution, too coarse for sub-millisecond
// servers, so every response time (float ms from process.hrtime) is also recorded here in a
// 10 µs-bucket histogram; the orchestrator merges these across rounds.
import autocannon from 'autocannon';

const BUCKET_US = 10;
const MAX_BUCKETS = 200_000; // 2 s; slower responses land in the last bucket

const opts = JSON.parse(process.argv[2]);
const hist = new Uint32Array(MAX_BUCKETS);
let recorded = 0;
let maxMs = 0;

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
    // A fixed offered load (requests per second over all connections) instead of saturation.
    ...(opts.overallRate !== undefined ? { overallRate: opts.overallRate } : {}),
  },
  (err, result) => {
    if (err) {
      process.stdout.write(JSON.stringify({ error: String(err?.stack ?? err) }) + '\n');
      process.exit(1);
    }
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpu = process.cpuUsage(cpuStart);
    const sparse = [];
    for (let i = 0; i < MAX_BUCKETS; i++) if (hist[i] !== 0) sparse.push(i, hist[i]);
    process.stdout.write(
      JSON.stringify({
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
        hist: { bucketUs: BUCKET_US, sparse, count: recorded, maxMs },
        loadgenCpuS: (cpu.user + cpu.system) / 1e6,
        wallS: wallMs / 1000,
      }) + '\n',
    );
    process.exit(0);
  },
);

instance.on('response', (_client, _statusCode, _resBytes, responseTime) => {
  const b = Math.min(MAX_BUCKETS - 1, Math.floor((responseTime * 1000) / BUCKET_US));
  hist[b] += 1;
  recorded += 1;
  if (responseTime > maxMs) maxMs = responseTime;
});

// Bounded: never outlive the run by much, whatever happens to the server.
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: 'load generator watchdog fired' }) + '\n');
  process.exit(1);
}, (opts.duration + 20) * 1000).unref();
