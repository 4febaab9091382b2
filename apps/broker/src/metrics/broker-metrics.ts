/**
 * Warden's own Prometheus metrics, in a registry of its own (never prom-client's global one).
 *
 * Why not prom-client's `Counter` / `Histogram` on the hot path: their `inc` / `observe`, even on
 * a child from `labels()`, hash the label set into a string and build an object per call. The warm
 * check is tuned to allocate nothing needless (v1-check.routes.ts), so the counters here are plain
 * number cells created once per label set (a `Map` lookup finds them), and histograms are
 * `Float64Array` buckets: recording is an addition. prom-client only reads them at scrape time,
 * through metric objects whose `get()` has the shape its registry (and the cluster aggregator)
 * expect, so the exposition format and cross-worker aggregation stay prom-client's.
 *
 * Cardinality is bounded: resource kinds not in the policy set are counted as `other`, and so are
 * actions beyond {@link MAX_ACTIONS_PER_KIND} distinct ones per kind, resolvers beyond
 * {@link MAX_RESOLVERS}; routes are the registered ones only (a request matching none is not timed).
 */
import { Registry } from 'prom-client';
import type { EnrichmentOutcome } from '@warden/resolvers';

/** Distinct actions counted per resource kind; the rest are `other` (actions come from requests). */
export const MAX_ACTIONS_PER_KIND = 64;
/** Distinct resolver names counted; the rest are `other` (the admin API can add resolvers). */
export const MAX_RESOLVERS = 256;
/** The label value of anything beyond a cap or unknown. */
export const OTHER = 'other';

/** Seconds; from 100 us (a warm in-process check) to 2.5 s (a slow upstream). */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

type Labels = Readonly<Record<string, string>>;

/** One counter value (a label set of a family). */
export interface CounterCell {
  value: number;
}

/** One value as prom-client's registry formats and aggregates it. */
interface MetricValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** What prom-client's `Registry` reads from a metric (`name`, `get()`; `aggregator` for the cluster). */
interface ExportedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram' | 'gauge';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }>;
}

class CounterFamily implements ExportedMetric {
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  private readonly cells: Array<{ labels: Labels; cell: CounterCell }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** A new cell for `labels` (callers keep it; call once per label set). */
  cell(labels: Labels): CounterCell {
    const cell = { value: 0 };
    this.cells.push({ labels, cell });
    return cell;
  }

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    const values = this.cells.map((c) => ({ value: c.cell.value, labels: c.labels }));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }
}

/**
 * A gauge whose label sets come and go (the active policy version). Summed across cluster workers
 * like everything here: a per-process `1` becomes the number of workers in that state.
 */
class GaugeFamily implements ExportedMetric {
  readonly type = 'gauge' as const;
  readonly aggregator = 'sum' as const;
  private values: MetricValue[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** Replaces every series with `values`. */
  set(values: MetricValue[]): void {
    this.values = values;
  }

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: [...this.values], aggregator: this.aggregator });
  }
}

/** A family whose values are read when scraped (state that lives elsewhere: the decision log's writer). */
class ReadFamily implements ExportedMetric {
  readonly aggregator = 'sum' as const;
  read: () => MetricValue[] = () => [];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator });
  }
}

/** What the decision log reports to `/metrics` (read at scrape time). */
export interface AuditLogStats {
  written: number;
  spilled: number;
  replayed: number;
  dropped: number;
  queued: number;
  spillBytes: number;
  yields: number;
  writerYields: number;
}

/** How a policy reload attempt (after boot) ended. */
export type PolicyReloadResult = 'ok' | 'refused' | 'error';

/** Why the set in force may be older than the source's. */
export type PolicyStaleReason = 'refused' | 'error';

/** One histogram series: per-bucket (not cumulative) counts, the sum and the count. */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count += 1;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        (this.counts as Float64Array)[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
}

class HistogramFamily implements ExportedMetric {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly cells: Array<{ labels: Labels; cell: HistogramCell }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[] = LATENCY_BUCKETS,
  ) {}

  cell(labels: Labels): HistogramCell {
    const cell = new HistogramCell(this.bounds);
    this.cells.push({ labels, cell });
    return cell;
  }

  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    const values: MetricValue[] = [];
    for (const { labels, cell } of this.cells) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += cell.counts[i] as number;
        values.push({ value: cumulative, labels: { ...labels, le: String(this.bounds[i]) }, metricName: `${this.name}_bucket` });
      }
      values.push({ value: cell.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: cell.sum, labels, metricName: `${this.name}_sum` });
      values.push({ value: cell.count, labels, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }
}

/** The ALLOW and DENY cells of one (kind, action). */
type EffectCells = readonly [allow: CounterCell, deny: CounterCell];

/** The cells of one resolver. */
interface ResolverCells {
  calls: CounterCell;
  keys: CounterCell;
  hits: CounterCell;
  errors: CounterCell;
  duration: HistogramCell;
}

/** The decision paths whose stages are timed (`/v1/check` with its adapters; the Cerbos APIs). */
export type DecisionApi = 'v1' | 'cerbos';

/**
 * The broker's metrics. One per app (tests run several brokers in one process). Recording methods
 * allocate nothing once a label set has been seen.
 */
export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly decisions = new CounterFamily('warden_decisions_total', 'Decisions per action, by effect, resource kind and action');
  private readonly requestDuration = new HistogramFamily('warden_request_duration_seconds', 'HTTP request duration as Fastify measures it, by route');
  private readonly stageDuration = new HistogramFamily('warden_stage_duration_seconds', 'Duration of a decision stage (parse, enrich, evaluate, total), by decision API');
  private readonly resolverCalls = new CounterFamily('warden_resolver_calls_total', 'resolveMany calls (batches), by resolver');
  private readonly resolverKeys = new CounterFamily('warden_resolver_keys_total', 'Keys loaded by resolveMany calls, by resolver');
  private readonly resolverHits = new CounterFamily('warden_resolver_cache_hits_total', 'Keys answered by the in-process cache without a call, by resolver');
  private readonly resolverErrors = new CounterFamily('warden_resolver_errors_total', 'Resolver failures (per enriched item), by resolver');
  private readonly resolverDuration = new HistogramFamily('warden_resolver_duration_seconds', 'Wall time of a resolver within one request (first call start to last call end), by resolver');
  private readonly policyLoads = new CounterFamily('warden_policy_loads_total', 'Policy set loads, by result (success, failure)');
  private readonly policyReloads = new CounterFamily('warden_policy_reloads_total', 'Policy reload attempts after boot that found a change, by result (ok: in force; refused: compile errors; error: the source could not be read)');
  private readonly policyInfo = new GaugeFamily('warden_policy_info', 'The policy version in force (value: 1 per process serving it; summed across workers)');
  private readonly policyStale = new GaugeFamily('warden_policy_stale', 'Processes whose source holds a change not in force, by reason (refused: it did not compile; error: the source cannot be read)');
  private readonly auditEntries = new ReadFamily('warden_audit_entries_total', 'Decision-log entries, by outcome (written: accepted by the sink, replays included; spilled: appended to the spill file; replayed: read back from it into the sink; dropped: lost, the sink and the spill file both failing while the queue was full)', 'counter');
  private readonly auditQueue = new ReadFamily('warden_audit_queue_depth', 'Decision-log entries waiting in memory for the sink', 'gauge');
  private readonly auditSpill = new ReadFamily('warden_audit_spill_bytes', 'Size of the decision log\'s spill file (entries waiting for the sink to return)', 'gauge');
  private readonly auditYields = new ReadFamily('warden_audit_event_loop_yields_total', 'Times the event loop paused (up to 2 ms each) to give its core to the decision log\'s writer thread, starved of CPU with a backlog', 'counter');
  private readonly auditWriterYields = new ReadFamily('warden_audit_writer_yields_total', 'Times the decision log\'s writer thread slept (about 0.1 ms) to give the event loop, waiting for the core it had, that core', 'counter');

  private knownKinds = new Set<string>();
  private readonly byKind = new Map<string, Map<string, EffectCells>>();
  private readonly byRoute = new Map<string, HistogramCell>();
  private readonly byResolver = new Map<string, ResolverCells>();
  private readonly enrichByApi: Record<DecisionApi, HistogramCell>;
  private readonly v1Stages: { parse: HistogramCell; evaluate: HistogramCell; total: HistogramCell };
  private readonly loadsOk: CounterCell;
  private readonly loadsFailed: CounterCell;
  private readonly reloadCells: Record<PolicyReloadResult, CounterCell>;

  constructor() {
    for (const m of [this.decisions, this.requestDuration, this.stageDuration, this.resolverCalls, this.resolverKeys, this.resolverHits, this.resolverErrors, this.resolverDuration, this.policyLoads, this.policyReloads, this.policyInfo, this.policyStale, this.auditEntries, this.auditQueue, this.auditSpill, this.auditYields, this.auditWriterYields]) {
      // prom-client's Registry takes any object with its metric shape.
      this.registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
    }
    this.enrichByApi = { v1: this.stageDuration.cell({ api: 'v1', stage: 'enrich' }), cerbos: this.stageDuration.cell({ api: 'cerbos', stage: 'enrich' }) };
    this.v1Stages = { parse: this.stageDuration.cell({ api: 'v1', stage: 'parse' }), evaluate: this.stageDuration.cell({ api: 'v1', stage: 'evaluate' }), total: this.stageDuration.cell({ api: 'v1', stage: 'total' }) };
    this.loadsOk = this.policyLoads.cell({ result: 'success' });
    this.loadsFailed = this.policyLoads.cell({ result: 'failure' });
    this.reloadCells = { ok: this.policyReloads.cell({ result: 'ok' }), refused: this.policyReloads.cell({ result: 'refused' }), error: this.policyReloads.cell({ result: 'error' }) };
    this.policyStaleState(undefined);
  }

  /** Reports the decision log's counters, queue depth and spill size at every scrape (call once, when the log is on). */
  auditLog(read: () => AuditLogStats): void {
    this.auditEntries.read = () => {
      const s = read();
      return [
        { value: s.written, labels: { result: 'written' } },
        { value: s.spilled, labels: { result: 'spilled' } },
        { value: s.replayed, labels: { result: 'replayed' } },
        { value: s.dropped, labels: { result: 'dropped' } },
      ];
    };
    this.auditQueue.read = () => [{ value: read().queued, labels: {} }];
    this.auditSpill.read = () => [{ value: read().spillBytes, labels: {} }];
    this.auditYields.read = () => [{ value: read().yields, labels: {} }];
    this.auditWriterYields.read = () => [{ value: read().writerYields, labels: {} }];
  }

  /** Counts a reload attempt after boot. */
  policyReload(result: PolicyReloadResult): void {
    this.reloadCells[result].value += 1;
  }

  /** The policy version now in force, with where it came from (`disk` or `git`). */
  policyActive(version: string, source: string): void {
    this.policyInfo.set([{ value: 1, labels: { version, source } }]);
  }

  /** Whether the source holds a change that is not in force, and why (undefined: it does not). */
  policyStaleState(reason: PolicyStaleReason | undefined): void {
    this.policyStale.set([
      { value: reason === 'refused' ? 1 : 0, labels: { reason: 'refused' } },
      { value: reason === 'error' ? 1 : 0, labels: { reason: 'error' } },
    ]);
  }

  /** A policy set was loaded: `kinds` are its resource kinds (the `kind` label's allowed values). */
  policiesLoaded(kinds: Iterable<string>): void {
    this.loadsOk.value += 1;
    this.knownKinds = new Set(kinds);
  }

  /** Loading a policy set failed (the previous one, if any, stays in force). */
  policyLoadFailed(): void {
    this.loadsFailed.value += 1;
  }

  /** Counts one action's decision. */
  decision(kind: string, action: string, allowed: boolean): void {
    const cells = this.effectCells(kind, action);
    (allowed ? cells[0] : cells[1]).value += 1;
  }

  private effectCells(kind: string, action: string): EffectCells {
    const k = this.knownKinds.has(kind) ? kind : OTHER;
    let actions = this.byKind.get(k);
    if (actions === undefined) {
      actions = new Map();
      this.byKind.set(k, actions);
    }
    let cells = actions.get(action);
    if (cells !== undefined) return cells;
    const a = actions.size < MAX_ACTIONS_PER_KIND ? action : OTHER;
    cells = actions.get(a);
    if (cells === undefined) {
      cells = [this.decisions.cell({ effect: 'ALLOW', kind: k, action: a }), this.decisions.cell({ effect: 'DENY', kind: k, action: a })];
      actions.set(a, cells);
    }
    return cells;
  }

  /** The duration cell of a registered route (by its URL; one per URL, whatever the method). */
  routeDuration(route: string): HistogramCell {
    let cell = this.byRoute.get(route);
    if (cell === undefined) {
      cell = this.requestDuration.cell({ route });
      this.byRoute.set(route, cell);
    }
    return cell;
  }

  /** Reads one enrichment's outcome: its duration and each resolver's runs and failures. */
  /** Times the stages of a `/v1/check` (ms stamps of performance.now()): parse, evaluate and the whole check. */
  checkStages(stamps: { start: number; parsed: number; enriched: number; evaluated: number }): void {
    this.v1Stages.parse.observe((stamps.parsed - stamps.start) / 1000);
    this.v1Stages.evaluate.observe((stamps.evaluated - stamps.enriched) / 1000);
    this.v1Stages.total.observe((stamps.evaluated - stamps.start) / 1000);
  }

  enrichment(api: DecisionApi, outcome: EnrichmentOutcome): void {
    this.enrichByApi[api].observe(outcome.durationMs / 1000);
    const runs = outcome.runs;
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i] as EnrichmentOutcome['runs'][number];
      const c = this.resolverCells(run.resolver);
      c.calls.value += run.calls;
      c.keys.value += run.keys;
      c.hits.value += run.hits;
      if (run.calls > 0) c.duration.observe(run.durationMs / 1000);
    }
    const items = outcome.items;
    for (let i = 0; i < items.length; i++) {
      const failures = (items[i] as EnrichmentOutcome['items'][number]).failures;
      for (let j = 0; j < failures.length; j++) this.resolverCells((failures[j] as (typeof failures)[number]).resolver).errors.value += 1;
    }
  }

  private resolverCells(name: string): ResolverCells {
    let cells = this.byResolver.get(name);
    if (cells !== undefined) return cells;
    const n = this.byResolver.size < MAX_RESOLVERS ? name : OTHER;
    cells = this.byResolver.get(n);
    if (cells === undefined) {
      const labels = { resolver: n };
      cells = {
        calls: this.resolverCalls.cell(labels),
        keys: this.resolverKeys.cell(labels),
        hits: this.resolverHits.cell(labels),
        errors: this.resolverErrors.cell(labels),
        duration: this.resolverDuration.cell(labels),
      };
      this.byResolver.set(n, cells);
    }
    return cells;
  }
}
