/**
 * Metrics across `node:cluster` workers (`WARDEN_WORKERS` > 1). The workers share the listening
 * socket, so a scrape of `/metrics` reaches any one of them; that worker asks the primary, which
 * collects every worker's registry with prom-client's `AggregatorRegistry` (counters and histogram
 * buckets summed) and sends the text back. One scrape therefore always shows the whole process
 * group, whichever worker answered. With one worker (no cluster) the registry is served directly.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client';

const REQUEST = 'warden:metrics-request';
const RESPONSE = 'warden:metrics-response';
/** How long a worker waits for the primary's aggregate (prom-client's own per-worker limit is 5 s). */
const TIMEOUT_MS = 6000;

interface MetricsResponse {
  type: typeof RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

const isMessage = (msg: unknown, type: string): boolean => typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === type;

let aggregator: AggregatorRegistry<PrometheusContentType> | undefined;

/**
 * In a worker: makes `registry` the one the primary aggregates (prom-client answers the primary's
 * requests for it), and returns how to read the aggregate of all workers.
 */
export function joinClusterMetrics(registry: Registry): () => Promise<string> {
  // Constructing an AggregatorRegistry installs prom-client's worker-side listener.
  aggregator ??= new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  let next = 0;
  process.on('message', (msg: unknown) => {
    if (!isMessage(msg, RESPONSE)) return;
    const res = msg as MetricsResponse;
    const p = pending.get(res.id);
    if (p === undefined) return;
    pending.delete(res.id);
    clearTimeout(p.timer);
    if (res.text !== undefined) p.resolve(res.text);
    else p.reject(new Error(res.error ?? 'no metrics'));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('the primary did not answer'));
      }, TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      process.send?.({ type: REQUEST, id });
    });
}

/** In the primary: answers a worker's request for the aggregated metrics (call on each worker message). */
export function answerClusterMetrics(worker: Worker, msg: unknown): void {
  if (!isMessage(msg, REQUEST) || !cluster.isPrimary) return;
  aggregator ??= new AggregatorRegistry();
  const id = (msg as { id: number }).id;
  aggregator.clusterMetrics().then(
    (text: string) => worker.send({ type: RESPONSE, id, text } satisfies MetricsResponse),
    (err: unknown) => worker.send({ type: RESPONSE, id, error: (err as Error).message } satisfies MetricsResponse),
  );
}
