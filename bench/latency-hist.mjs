// What every load generator (bench/load.mjs, bench/open-load.mjs, bench/grpc-load.mjs) records
// latencies into and how it hands its result to the orchestrator: a histogram of 10 µs buckets
// (autocannon's own has 1 ms resolution, too coarse for sub-millisecond servers), printed sparse
// and merged across rounds by bench/harness.mjs `mergeHist`.

const BUCKET_US = 10;
const MAX_BUCKETS = 200_000; // 2 s; slower responses land in the last bucket

/** A latency histogram: `record(ms)`, `count`, and `toJSON()` for the result line. */
export function createLatencyHist() {
  const hist = new Uint32Array(MAX_BUCKETS);
  let count = 0;
  let maxMs = 0;
  return {
    record(ms) {
      hist[Math.min(MAX_BUCKETS - 1, Math.floor((ms * 1000) / BUCKET_US))] += 1;
      count += 1;
      if (ms > maxMs) maxMs = ms;
    },
    get count() {
      return count;
    },
    toJSON() {
      const sparse = [];
      for (let i = 0; i < MAX_BUCKETS; i++) if (hist[i] !== 0) sparse.push(i, hist[i]);
      return { bucketUs: BUCKET_US, sparse, count, maxMs };
    },
  };
}

/**
 * Prints the one JSON result line and exits once stdout has taken all of it: with a wide
 * histogram the line runs to hundreds of KB, and an exit right after the write cut it short.
 */
export function printResult(result, code = 0) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}
