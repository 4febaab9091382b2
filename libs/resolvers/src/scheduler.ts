/**
 * The enrichment scheduler: runs a registry's resolvers over one request's partial input.
 *
 * Each resolver becomes one node per item (per resource when it touches `resource.*`, else one
 * node for the whole request). A node starts the moment the nodes it depends on have settled, so
 * independent resolvers run in parallel and a chain costs only its critical path, never a sum of
 * stages. Every resolver has one DataLoader for the request: the nodes of all resources that load
 * in the same tick become one `resolveMany` call, and equal keys are loaded once.
 *
 * A node: checks `when`, reads its key (missing or null: skipped, the attributes stay missing),
 * loads, maps the result through every `provides` expression and writes all of them or none.
 * A failure (error, timeout, malformed result, CEL error) follows `onError`: `deny` and `stale`
 * (past its max age, the cache having served what it could) add a `resolver_failed` deny reason
 * to the affected items; `omit` leaves the attributes missing. Nothing here can turn a failure
 * into an ALLOW: a failure only ever removes attributes or adds a denial.
 */
import DataLoader from 'dataloader';
import type { JsonValue } from '@warden/core';
import { cloneJson, getAttribute, setAttribute, type InputDocument, type JsonObject } from './attribute-path.js';
import { stableKey } from './cache/with-cache.js';
import { isResolverError, ResolverError, toResolverError } from './resolver-error.js';
import { celToJson } from './resolver-cel.js';
import type { CompiledProvide, RegisteredResolver, ResolverRegistry } from './resolver-registry.js';
import { isDetailedResolver, type CacheInfo, type DetailedResult, type OnError } from './resolver.types.js';
import { NEVER_ABORTED } from './with-timeout.js';

/** The sparse input of one request: one principal and agent, any number of resources. */
export interface EnrichmentRequest {
  readonly requestId: string;
  readonly principal?: JsonObject;
  readonly agent?: JsonObject;
  readonly context?: JsonObject;
  readonly delegation?: JsonObject;
  readonly subject?: JsonObject;
  /** The resources of the request (a batch or a plan); may be empty. */
  readonly resources: readonly JsonObject[];
  /** Aborts every pending resolver (the request deadline, or the client went away). */
  readonly signal?: AbortSignal;
  /**
   * The caller hands over the request's objects (its roots and each resource, all distinct and
   * used by nothing else): enrichment writes into them instead of into copies. Without it the
   * request is never modified.
   */
  readonly owned?: boolean;
}

/** Where one attribute came from. */
export interface AttributeProvenance {
  readonly resolver: string;
  /** Milliseconds of the `resolveMany` call that produced it (shared by its batch). */
  readonly durationMs: number;
  /** Present when the resolver is cached. */
  readonly cache?: CacheInfo;
}

/**
 * A deny reason caused by a failed resolver. Safe to show to an agent: no key values, no internals.
 * `token_invalid` when a token resolver refused the credential (the message says why), else
 * `resolver_failed`.
 */
export interface ResolverDenial {
  readonly code: 'resolver_failed' | 'token_invalid';
  readonly resolver: string;
  readonly message: string;
}

/** A resolver failure, whatever its `onError` made of it (for explain and the audit entry). */
export interface ResolverFailure {
  readonly resolver: string;
  readonly code: string;
  readonly message: string;
  readonly onError: OnError;
}

/** The enriched input of one resource (or of the request, when it has no resources). */
export interface EnrichedItem {
  readonly input: InputDocument;
  /** Attribute path → provenance, for every attribute a resolver wrote. */
  readonly provenance: Readonly<Record<string, AttributeProvenance>>;
  /** Non-empty means this item must be denied. */
  readonly denials: readonly ResolverDenial[];
  readonly failures: readonly ResolverFailure[];
}

/** One resolver's calls during a request. */
export interface ResolverRun {
  readonly resolver: string;
  /** `resolveMany` calls (batches). */
  readonly calls: number;
  /** Keys loaded by those calls, after de-duplication. */
  readonly keys: number;
  /** Keys answered by the in-process cache without a call. */
  readonly hits: number;
  /** Wall time from the first call's start to the last call's end. */
  readonly durationMs: number;
}

/** What {@link enrich} returns. */
export interface EnrichmentOutcome {
  /** One per resource, in request order; one item with no `resource` when the request has none. */
  readonly items: readonly EnrichedItem[];
  readonly runs: readonly ResolverRun[];
  readonly durationMs: number;
}

/**
 * One resolver's part in one enrichment, as handed to {@link EnrichOptions.onResolverRun} (the
 * broker turns it into a trace span; this lib knows nothing of tracing). Times are readings of
 * the enrichment's clock (`performance.now()` by default).
 */
export interface ResolverRunReport {
  readonly resolver: string;
  /** The resolver's kind (`http`, `postgres`, `jwt`, ...). */
  readonly kind: string;
  /** When its first call started (or, with no call, when the in-process cache first answered it). */
  readonly start: number;
  /** When its last call ended (equal to `start` when no call was made). */
  readonly end: number;
  /** `resolveMany` calls (batches). */
  readonly calls: number;
  /** Keys loaded by those calls. */
  readonly keys: number;
  /** Keys the in-process cache answered without a call. */
  readonly hits: number;
  /** Of the loaded keys, those a cache wrapper answered (Redis, or a stale value served). */
  readonly cachedKeys: number;
  /** Items this resolver failed for (whatever its `onError` made of it). */
  readonly failures: number;
  /** The failure code of its first failure (`ERR_RESOLVER_TIMEOUT`, ...), when it failed. */
  readonly error?: string;
}

/** Options of {@link enrich}. */
export interface EnrichOptions {
  /** Monotonic clock in ms for durations (default `performance.now`). */
  readonly clock?: () => number;
  /**
   * Called once per resolver that ran or failed, in registry order, as the enrichment finishes
   * (before its outcome is returned). Absent (the usual case): nothing extra is measured.
   */
  readonly onResolverRun?: (report: ResolverRunReport) => void;
}

/**
 * One item being enriched. Its provenance is kept as the list of writes (each resolver node's
 * provenance and the provides it wrote) and turned into the path → provenance record only when
 * read (explain, the admin dry run): a warm check that nobody explains builds no record.
 */
class MutableItem implements EnrichedItem {
  denials: ResolverDenial[] = NO_DENIALS;
  failures: ResolverFailure[] = NO_FAILURES;
  /** Pairs: a provenance, then the provides it wrote. */
  private writes: Array<AttributeProvenance | readonly CompiledProvide[]> | undefined;
  private record: Record<string, AttributeProvenance> | undefined;

  constructor(readonly input: InputDocument) {}

  wrote(provenance: AttributeProvenance, provides: readonly CompiledProvide[]): void {
    (this.writes ??= []).push(provenance, provides);
    this.record = undefined;
  }

  get provenance(): Readonly<Record<string, AttributeProvenance>> {
    if (this.record !== undefined) return this.record;
    const record: Record<string, AttributeProvenance> = {};
    const w = this.writes;
    if (w !== undefined) {
      for (let i = 0; i < w.length; i += 2) {
        const p = w[i] as AttributeProvenance;
        for (const provide of w[i + 1] as readonly CompiledProvide[]) record[provide.path.text] = p;
      }
    }
    return (this.record = record);
  }
}

type Loaded = { readonly value: DetailedResult['value']; readonly cache: CacheInfo | undefined; readonly durationMs: number };

// SECURITY: the deny text names the resolver and the kind of failure only (no key values, no upstream
// text); a token failure's message is written by the token kinds to be shown (never the token).
function denialMessage(resolver: string, error: ResolverError): string {
  if (error.code === 'ERR_TOKEN_INVALID') return error.message;
  if (error.code === 'ERR_RESOLVER_TIMEOUT') return `resolver \`${resolver}\` timed out`;
  if (error.code === 'ERR_RESOLVER_RESULT_INVALID') return `resolver \`${resolver}\` returned malformed data`;
  return `resolver \`${resolver}\` failed`;
}

/**
 * Copies of the written roots that every item shares: a root only request-level (shared)
 * resolvers write is copied once per request and written once, so all items see one object (the
 * engine then recognises one principal across a batch). Roots per-resource resolvers write are
 * copied per item.
 */
function newItem(request: EnrichmentRequest, resource: JsonObject | undefined, registry: ResolverRegistry, shared: InputDocument, first: boolean): MutableItem {
  // Every item owns the roots per-resource resolvers write into (items must not see each other's
  // writes); roots no resolver writes are shared with the request, read-only. An owned request
  // lends its objects: its resources, its shared roots and (to the first item) its other roots.
  const owned = request.owned === true;
  const input: InputDocument = {};
  for (const root of REQUEST_ROOTS) {
    const v = request[root];
    if (v === undefined) continue;
    if (registry.perItemRoots.has(root)) input[root] = owned && first ? v : cloneJson(v);
    else if (registry.writtenRoots.has(root)) input[root] = shared[root] ??= owned ? v : cloneJson(v);
    else input[root] = v;
  }
  if (resource !== undefined) input.resource = registry.perItemRoots.has('resource') && !owned ? cloneJson(resource) : resource;
  return new MutableItem(input);
}

// Shared until an item's first failure replaces them (most items never fail).
const NO_DENIALS: ResolverDenial[] = [];
const NO_FAILURES: ResolverFailure[] = [];

const REQUEST_ROOTS = ['principal', 'agent', 'context', 'delegation', 'subject'] as const;

type RunStats = {
  readonly resolver: string;
  calls: number;
  keys: number;
  hits: number;
  first: number;
  last: number;
  /** Only kept with an `onResolverRun` observer: when the first in-process hit came, and keys a cache wrapper answered within calls. */
  hitAt: number;
  cached: number;
};

/** What {@link enrich} derives from a registry once: each resolver's dependencies as registry positions. */
interface Plan {
  readonly deps: readonly (readonly number[])[];
}

const PLANS = new WeakMap<ResolverRegistry, Plan>();

function planOf(registry: ResolverRegistry): Plan {
  let plan = PLANS.get(registry);
  if (plan === undefined) {
    const index = new Map(registry.resolvers.map((r, i) => [r.name, i]));
    // INVARIANT: the registry refuses unknown dependencies and orders dependencies first.
    plan = { deps: registry.resolvers.map((r) => r.dependsOn.map((d) => index.get(d) as number)) };
    PLANS.set(registry, plan);
  }
  return plan;
}

/**
 * Enriches `request` with every resolver of `registry`. Never rejects because of a resolver: each
 * failure is recorded on the items it affects. When every key is answered by the in-process cache
 * the outcome is returned at once (no promise, no tick); otherwise a promise of it.
 * @example
 * const outcome = await enrich(registry, { requestId: 'r-1', principal: { id: 'alice' }, resources: [{ kind: 'tool', id: 'refund', attr: {} }] });
 * if (outcome.items[0]?.denials.length) { ... deny ... }
 */
export function enrich(registry: ResolverRegistry, request: EnrichmentRequest, options: EnrichOptions = {}): EnrichmentOutcome | Promise<EnrichmentOutcome> {
  const run = new Enrichment(registry, request, options.clock ?? defaultClock, options.onResolverRun);
  run.startAll();
  // Every node exists by now (dependants as `then` of their dependencies), so `pending` is complete.
  return run.pending.length === 0 ? run.finish() : run.finishLater();
}

const defaultClock = (): number => performance.now();

type NodeState = Promise<void> | undefined;

/**
 * One request's enrichment. Its steps are methods rather than closures over the request: a warm
 * request (every key a fresh in-process cache hit) then allocates this object, its items and
 * their writes, and no function objects; closures appear only where a step waits.
 */
class Enrichment {
  readonly started: number;
  readonly signal: AbortSignal;
  readonly items: MutableItem[];
  /** Calls and cache hits per resolver, in the order they were first noted. */
  private runs: RunStats[] | undefined;
  /** One DataLoader per resolver for this request, made when the resolver first loads a key. */
  private loaders: Map<string, DataLoader<JsonValue, Loaded, string>> | undefined;
  /** Indexed like `registry.resolvers`: a shared node's state, or (per-resource resolvers) one per item. */
  private readonly shared: NodeState[];
  private readonly perItem: Array<NodeState[] | undefined>;
  /** Each resolver's dependencies as registry positions. */
  private readonly deps: readonly (readonly number[])[];
  readonly pending: Promise<void>[] = [];

  constructor(
    private readonly registry: ResolverRegistry,
    private readonly request: EnrichmentRequest,
    private readonly clock: () => number,
    private readonly observe: ((report: ResolverRunReport) => void) | undefined,
  ) {
    this.started = clock();
    this.signal = request.signal ?? NEVER_ABORTED;
    const sharedRoots: InputDocument = {};
    const resources = request.resources;
    if (resources.length === 0) {
      this.items = [newItem(request, undefined, registry, sharedRoots, true)];
    } else {
      this.items = new Array<MutableItem>(resources.length);
      for (let i = 0; i < resources.length; i++) this.items[i] = newItem(request, resources[i], registry, sharedRoots, i === 0);
    }
    this.shared = new Array<NodeState>(registry.resolvers.length);
    this.perItem = new Array<NodeState[] | undefined>(registry.resolvers.length);
    this.deps = planOf(registry).deps;
  }

  /** Creates every node (registry order is topological, so every dependency's state exists first). */
  startAll(): void {
    const resolvers = this.registry.resolvers;
    const items = this.items;
    const noResources = this.request.resources.length === 0;
    for (let ri = 0; ri < resolvers.length; ri++) {
      const r = resolvers[ri] as RegisteredResolver;
      if (r.perResource) {
        // Without resources there is nothing for a per-resource resolver to enrich (its `when` or
        // key would only fail on the missing resource).
        if (noResources) {
          this.perItem[ri] = [undefined];
          continue;
        }
        // A `when: R.kind == "x"` guard is decided here for each resource: no node for other kinds.
        // Only without dependencies: a resolver that provides `resource.kind` would make this one
        // depend on it, and the kind is then known only once that one has run.
        const kind = r.dependsOn.length === 0 ? r.when?.kindEquals : undefined;
        const states = new Array<NodeState>(items.length);
        for (let i = 0; i < items.length; i++) {
          const item = items[i] as MutableItem;
          const k = item.input.resource?.['kind'];
          // A resource of the admitted kind needs no second look at the guard.
          states[i] = kind === undefined || typeof k !== 'string' ? this.start(r, ri, i, item, [item], false) : k === kind ? this.start(r, ri, i, item, [item], true) : undefined;
        }
        this.perItem[ri] = states;
      } else {
        // INVARIANT: a shared resolver reads nothing that differs between items, so item 0 stands for all.
        this.shared[ri] = this.start(r, ri, undefined, items[0] as MutableItem, items, false);
      }
    }
  }

  /**
   * A node's state: `undefined` once it is done, else the promise of its completion. A node whose
   * dependencies are all done runs at once; the others wait for the pending ones.
   */
  private start(r: RegisteredResolver, ri: number, i: number | undefined, view: MutableItem, targets: readonly MutableItem[], guarded: boolean): NodeState {
    let waits: Promise<void>[] | undefined;
    for (const d of this.deps[ri] as readonly number[]) {
      const states = this.perItem[d];
      const state = i !== undefined && states !== undefined ? states[i] : this.shared[d];
      if (state !== undefined) (waits ??= []).push(state);
    }
    const state = waits === undefined ? this.runNode(r, view, targets, guarded) : Promise.all(waits).then(() => this.runNode(r, view, targets, guarded));
    if (state !== undefined) this.pending.push(state);
    return state;
  }

  finish(): EnrichmentOutcome {
    const runs: ResolverRun[] = [];
    if (this.runs !== undefined) {
      for (const run of this.runs) runs.push({ resolver: run.resolver, calls: run.calls, keys: run.keys, hits: run.hits, durationMs: run.calls > 0 ? run.last - run.first : 0 });
    }
    const end = this.clock();
    if (this.observe !== undefined) this.report(this.observe, end);
    return { items: this.items, runs, durationMs: end - this.started };
  }

  /** Hands each resolver's run (and each resolver that failed without a call) to `observe`, in registry order. */
  private report(observe: (report: ResolverRunReport) => void, end: number): void {
    let failed: Map<string, { count: number; code: string }> | undefined;
    for (const item of this.items) {
      for (const f of item.failures) {
        const known = (failed ??= new Map()).get(f.resolver);
        if (known === undefined) failed.set(f.resolver, { count: 1, code: f.code });
        else known.count += 1;
      }
    }
    for (const r of this.registry.resolvers) {
      let run: RunStats | undefined;
      if (this.runs !== undefined) for (const x of this.runs) if (x.resolver === r.name) run = x;
      const failures = failed?.get(r.name);
      if (run === undefined && failures === undefined) continue;
      const start = run === undefined ? end : run.calls > 0 ? run.first : run.hitAt;
      const report: ResolverRunReport = {
        resolver: r.name,
        kind: r.config.kind,
        start,
        end: run === undefined ? end : run.calls > 0 ? run.last : start,
        calls: run?.calls ?? 0,
        keys: run?.keys ?? 0,
        hits: run?.hits ?? 0,
        cachedKeys: run?.cached ?? 0,
        failures: failures?.count ?? 0,
      };
      observe(failures === undefined ? report : { ...report, error: failures.code });
    }
  }

  finishLater(): Promise<EnrichmentOutcome> {
    return Promise.all(this.pending).then(() => this.finish());
  }

  /** Records one call of `keys` keys from `t0` to `t1`, or (`keys` 0) one key answered from the in-process cache, which takes no time. */
  private noteRun(r: RegisteredResolver, keys: number, t0: number, t1: number): RunStats {
    const runs = (this.runs ??= []);
    let run: RunStats | undefined;
    for (const x of runs) {
      if (x.resolver === r.name) {
        run = x;
        break;
      }
    }
    if (run === undefined) runs.push((run = { resolver: r.name, calls: 0, keys: 0, hits: 0, first: Infinity, last: -Infinity, hitAt: 0, cached: 0 }));
    if (keys === 0) {
      // Only an observer reads when a hit came (a warm check reads no clock for it otherwise).
      if (run.hits === 0 && this.observe !== undefined) run.hitAt = this.clock();
      run.hits += 1;
      return run;
    }
    run.calls += 1;
    run.keys += keys;
    if (t0 < run.first) run.first = t0;
    if (t1 > run.last) run.last = t1;
    return run;
  }

  /** One `resolveMany` call of `r`, timed and recorded; never rejects. */
  private async loadBatch(r: RegisteredResolver, keys: readonly JsonValue[]): Promise<Loaded[]> {
    const resolver = r.resolver;
    const t0 = this.clock();
    const ctx = { requestId: this.request.requestId, signal: this.signal };
    let results: ReadonlyArray<DetailedResult>;
    try {
      results = isDetailedResolver(resolver) ? await resolver.resolveManyDetailed(keys, ctx) : (await resolver.resolveMany(keys, ctx)).map((value) => ({ value }));
    } catch (e) {
      const error = toResolverError(r.name, e);
      results = keys.map(() => ({ value: error }));
    }
    const t1 = this.clock();
    const run = this.noteRun(r, keys.length, t0, t1);
    if (this.observe !== undefined) for (const res of results) if (res.cache?.hit === true) run.cached += 1;
    if (results.length !== keys.length) {
      const error = new ResolverError(r.name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${r.name}\` answered ${results.length} values for ${keys.length} keys`);
      results = keys.map(() => ({ value: error }));
    }
    // INVARIANT: results are plain objects, never Error instances (DataLoader would reject them).
    const durationMs = t1 - t0;
    return results.map((res): Loaded => ({ value: res.value, cache: res.cache, durationMs }));
  }

  private loaderOf(r: RegisteredResolver): DataLoader<JsonValue, Loaded, string> {
    const loaders = (this.loaders ??= new Map());
    let loader = loaders.get(r.name);
    if (loader === undefined) {
      loader = new DataLoader<JsonValue, Loaded, string>((keys) => this.loadBatch(r, keys), { cacheKeyFn: stableKey });
      loaders.set(r.name, loader);
    }
    return loader;
  }

  /**
   * Loads one key. A resolver with one node in this request (shared, or a single resource) has
   * one key: there is nothing to batch or de-duplicate, so it is called directly.
   */
  private async load(r: RegisteredResolver, key: JsonValue): Promise<Loaded> {
    return !r.perResource || this.items.length === 1 ? ((await this.loadBatch(r, [key]))[0] as Loaded) : this.loaderOf(r).load(key);
  }

  private fail(r: RegisteredResolver, targets: readonly MutableItem[], error: ResolverError): void {
    const failure: ResolverFailure = { resolver: r.name, code: error.code, message: error.message, onError: r.config.onError };
    for (const item of targets) {
      if (item.failures === NO_FAILURES) item.failures = [];
      item.failures.push(failure);
      // SECURITY: `deny` and an exhausted `stale` both deny; only `omit` lets the policy decide.
      if (r.config.onError !== 'omit') {
        if (item.denials === NO_DENIALS) item.denials = [];
        item.denials.push({ code: error.code === 'ERR_TOKEN_INVALID' ? 'token_invalid' : 'resolver_failed', resolver: r.name, message: denialMessage(r.name, error) });
      }
    }
  }

  private failWith(r: RegisteredResolver, targets: readonly MutableItem[], e: unknown): void {
    this.fail(r, targets, e instanceof ResolverError ? e : new ResolverError(r.name, 'ERR_RESOLVER_FAILED', `resolver \`${r.name}\`: ${(e as Error).message.split('\n')[0] ?? ''}`, { cause: e }));
  }

  /** Maps a loaded value through `provides` and writes every attribute, or none. */
  private apply(r: RegisteredResolver, doc: InputDocument, targets: readonly MutableItem[], value: Loaded['value'], cache: CacheInfo | undefined, durationMs: number): void {
    try {
      if (isResolverError(value)) {
        this.fail(r, targets, value);
        return;
      }
      if (value === undefined) return;
      const values = mappedValues(r, doc, value);
      const provides = r.provides;
      const provenance: AttributeProvenance = cache !== undefined ? { resolver: r.name, durationMs, cache } : { resolver: r.name, durationMs };
      // Values shared with other requests are never copied (nothing writes inside them); fresh
      // ones go to the first target and copies to the others.
      const shareable = r.mapped !== undefined;
      const perItemRoots = this.registry.perItemRoots;
      for (let i = 0; i < provides.length; i++) {
        const path = (provides[i] as CompiledProvide).path;
        const v = values[i] as JsonValue;
        if (targets.length > 1 && !perItemRoots.has(path.root)) {
          // A root shared by every item: written once, into the one object they all hold.
          const first = targets[0] as MutableItem;
          setAttribute(first.input, path, v);
          const root = first.input[path.root];
          for (const item of targets) item.input[path.root] = root;
          continue;
        }
        for (let t = 0; t < targets.length; t++) {
          const item = targets[t] as MutableItem;
          setAttribute(item.input, path, t === 0 || shareable ? v : cloneJson(v));
        }
      }
      // Every attribute or none: the provenance is noted once all of them are written.
      for (const item of targets) item.wrote(provenance, provides);
    } catch (e) {
      this.failWith(r, targets, e);
    }
  }

  /**
   * Runs one node: `undefined` when it finished synchronously (a cache hit, a skip, a failure),
   * else its promise. `guarded`: its `when` was already found true (see {@link startAll}).
   */
  private runNode(r: RegisteredResolver, view: MutableItem, targets: readonly MutableItem[], guarded: boolean): NodeState {
    const doc = view.input;
    try {
      if (r.when !== undefined && !guarded) {
        const guard = r.when.evaluate(doc);
        if (typeof guard !== 'boolean') throw new Error(`\`when\` evaluated to a non-boolean`);
        if (!guard) return undefined;
      }
      const key = getAttribute(doc, r.config.key);
      if (key === undefined || key === null) return undefined;
      // A fresh in-process cache hit needs no batch, no promise and no I/O.
      const peeked = isDetailedResolver(r.resolver) ? r.resolver.peekDetailed?.(key) : undefined;
      if (peeked !== undefined) {
        this.noteRun(r, 0, 0, 0);
        this.apply(r, doc, targets, peeked.value, peeked.cache, 0);
        return undefined;
      }
      return this.load(r, key).then((loaded) => this.apply(r, doc, targets, loaded.value, loaded.cache, loaded.durationMs));
    } catch (e) {
      this.failWith(r, targets, e);
      return undefined;
    }
  }
}

/**
 * `provides` evaluated over `result`. For a resolver whose expressions read `result` alone the
 * values of one result object are computed once and shared by every request that hits it.
 * INVARIANT: enriched values are never modified after enrichment (the engine, explain and the
 * audit only read them), and no write lands inside one (overlapping provides are refused).
 */
function mappedValues(r: RegisteredResolver, doc: InputDocument, result: unknown): readonly JsonValue[] {
  const memo = r.mapped;
  const key = memo !== undefined && typeof result === 'object' && result !== null ? result : undefined;
  const known = key !== undefined ? memo?.get(key) : undefined;
  if (known !== undefined) return known;
  const values = r.provides.map((p) => {
    try {
      return celToJson(p.expression.evaluate(doc, result));
    } catch (e) {
      throw new ResolverError(r.name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${r.name}\`: provides \`${p.path.text}\`: ${(e as Error).message.split('\n')[0] ?? ''}`, { cause: e });
    }
  });
  if (key !== undefined) memo?.set(key, values);
  return values;
}
