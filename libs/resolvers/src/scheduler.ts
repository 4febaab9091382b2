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
import type { RegisteredResolver, ResolverRegistry } from './resolver-registry.js';
import { isDetailedResolver, type CacheInfo, type DetailedResult, type OnError } from './resolver.types.js';

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

/** Options of {@link enrich}. */
export interface EnrichOptions {
  /** Monotonic clock in ms for durations (default `performance.now`). */
  readonly clock?: () => number;
}

interface MutableItem {
  input: InputDocument;
  provenance: Record<string, AttributeProvenance>;
  denials: ResolverDenial[];
  failures: ResolverFailure[];
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

const NEVER: AbortSignal = new AbortController().signal;

function newItem(request: EnrichmentRequest, resource: JsonObject | undefined, written: ReadonlySet<string>): MutableItem {
  // Every item owns the roots resolvers write into (items must not see each other's writes); the
  // roots no resolver writes are shared with the request, read-only.
  const own = <T extends JsonObject | undefined>(root: string, v: T): T => (v !== undefined && written.has(root) ? cloneJson(v) : v);
  const input: InputDocument = {};
  if (request.principal !== undefined) input.principal = own('principal', request.principal);
  if (request.agent !== undefined) input.agent = own('agent', request.agent);
  if (request.context !== undefined) input.context = own('context', request.context);
  if (request.delegation !== undefined) input.delegation = own('delegation', request.delegation);
  if (request.subject !== undefined) input.subject = own('subject', request.subject);
  if (resource !== undefined) input.resource = own('resource', resource);
  return { input, provenance: {}, denials: [], failures: [] };
}

/**
 * Enriches `request` with every resolver of `registry`. Never rejects because of a resolver: each
 * failure is recorded on the items it affects.
 * @example
 * const outcome = await enrich(registry, { requestId: 'r-1', principal: { id: 'alice' }, resources: [{ kind: 'tool', id: 'refund', attr: {} }] });
 * if (outcome.items[0]?.denials.length) { ... deny ... }
 */
export async function enrich(registry: ResolverRegistry, request: EnrichmentRequest, options: EnrichOptions = {}): Promise<EnrichmentOutcome> {
  const clock = options.clock ?? (() => performance.now());
  const started = clock();
  const signal = request.signal ?? NEVER;
  const written = registry.writtenRoots;
  const items: MutableItem[] = request.resources.length === 0 ? [newItem(request, undefined, written)] : request.resources.map((r) => newItem(request, r, written));
  const runs = new Map<string, { calls: number; keys: number; hits: number; first: number; last: number }>();

  /** Records one call of `keys` keys, or (`keys` 0) one key answered from the in-process cache. */
  function noteRun(r: RegisteredResolver, keys: number, t0: number, t1: number): void {
    const call = keys > 0 ? 1 : 0;
    const run = runs.get(r.name);
    if (run === undefined) runs.set(r.name, { calls: call, keys, hits: 1 - call, first: t0, last: t1 });
    else {
      run.calls += call;
      run.keys += keys;
      run.hits += 1 - call;
      run.first = Math.min(run.first, t0);
      run.last = Math.max(run.last, t1);
    }
  }

  /** One `resolveMany` call of `r`, timed and recorded; never rejects. */
  async function loadBatch(r: RegisteredResolver, keys: readonly JsonValue[]): Promise<Loaded[]> {
    const resolver = r.resolver;
    const t0 = clock();
    const ctx = { requestId: request.requestId, signal };
    let results: ReadonlyArray<DetailedResult>;
    try {
      results = isDetailedResolver(resolver) ? await resolver.resolveManyDetailed(keys, ctx) : (await resolver.resolveMany(keys, ctx)).map((value) => ({ value }));
    } catch (e) {
      const error = toResolverError(r.name, e);
      results = keys.map(() => ({ value: error }));
    }
    const t1 = clock();
    noteRun(r, keys.length, t0, t1);
    if (results.length !== keys.length) {
      const error = new ResolverError(r.name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${r.name}\` answered ${results.length} values for ${keys.length} keys`);
      results = keys.map(() => ({ value: error }));
    }
    // INVARIANT: results are plain objects, never Error instances (DataLoader would reject them).
    const durationMs = t1 - t0;
    return results.map((res): Loaded => ({ value: res.value, cache: res.cache, durationMs }));
  }

  /** A key answered from the cache synchronously, counted like a call of its own. */
  function hit(r: RegisteredResolver, found: DetailedResult): Loaded {
    const t = clock();
    noteRun(r, 0, t, t);
    return { value: found.value, cache: found.cache, durationMs: 0 };
  }

  // One DataLoader per resolver for this request, made when the resolver first loads a key.
  const loaders = new Map<string, DataLoader<JsonValue, Loaded, string>>();
  const loaderOf = (r: RegisteredResolver): DataLoader<JsonValue, Loaded, string> => {
    let loader = loaders.get(r.name);
    if (loader === undefined) {
      loader = new DataLoader<JsonValue, Loaded, string>((keys) => loadBatch(r, keys), { cacheKeyFn: stableKey });
      loaders.set(r.name, loader);
    }
    return loader;
  };
  // A resolver with one node in this request (shared, or a single resource) has one key: there is
  // nothing to batch or de-duplicate, so it is called directly.
  const load = async (r: RegisteredResolver, key: JsonValue): Promise<Loaded> =>
    !r.perResource || items.length === 1 ? ((await loadBatch(r, [key]))[0] as Loaded) : loaderOf(r).load(key);

  function fail(r: RegisteredResolver, targets: readonly MutableItem[], error: ResolverError): void {
    const failure: ResolverFailure = { resolver: r.name, code: error.code, message: error.message, onError: r.config.onError };
    for (const item of targets) {
      item.failures.push(failure);
      // SECURITY: `deny` and an exhausted `stale` both deny; only `omit` lets the policy decide.
      if (r.config.onError !== 'omit') {
        item.denials.push({ code: error.code === 'ERR_TOKEN_INVALID' ? 'token_invalid' : 'resolver_failed', resolver: r.name, message: denialMessage(r.name, error) });
      }
    }
  }

  async function runNode(r: RegisteredResolver, view: MutableItem, targets: readonly MutableItem[]): Promise<void> {
    const doc = view.input;
    try {
      if (r.when !== undefined) {
        const guard = r.when.evaluate(doc);
        if (typeof guard !== 'boolean') throw new Error(`\`when\` evaluated to a non-boolean`);
        if (!guard) return;
      }
      const key = getAttribute(doc, r.config.key);
      if (key === undefined || key === null) return;
      // A fresh in-process cache hit needs no batch, no promise and no I/O.
      const peeked = isDetailedResolver(r.resolver) ? r.resolver.peekDetailed?.(key) : undefined;
      const loaded: Loaded = peeked !== undefined ? hit(r, peeked) : await load(r, key);
      if (isResolverError(loaded.value)) {
        fail(r, targets, loaded.value);
        return;
      }
      if (loaded.value === undefined) return;
      const writes = r.provides.map((p) => {
        try {
          return { path: p.path, value: celToJson(p.expression.evaluate(doc, loaded.value)) };
        } catch (e) {
          throw new ResolverError(r.name, 'ERR_RESOLVER_RESULT_INVALID', `resolver \`${r.name}\`: provides \`${p.path.text}\`: ${(e as Error).message.split('\n')[0] ?? ''}`, { cause: e });
        }
      });
      const provenance: AttributeProvenance = { resolver: r.name, durationMs: loaded.durationMs, ...(loaded.cache !== undefined ? { cache: loaded.cache } : {}) };
      for (let t = 0; t < targets.length; t++) {
        const item = targets[t] as MutableItem;
        for (const w of writes) {
          // `writes` are fresh values; the first target takes them, the others get copies.
          setAttribute(item.input, w.path, t === 0 ? w.value : cloneJson(w.value));
          item.provenance[w.path.text] = provenance;
        }
      }
    } catch (e) {
      fail(r, targets, e instanceof ResolverError ? e : new ResolverError(r.name, 'ERR_RESOLVER_FAILED', `resolver \`${r.name}\`: ${(e as Error).message.split('\n')[0] ?? ''}`, { cause: e }));
    }
  }

  // Registry order is topological, so every dependency's promises exist when a node is created.
  const shared = new Map<string, Promise<void>>();
  const perItem = new Map<string, Promise<void>[]>();
  // A node without dependencies starts at once (its first await is the load, so every node of one
  // resolver still reaches its DataLoader in the same tick); the others wait for their dependencies.
  const start = (r: RegisteredResolver, i: number | undefined, run: () => Promise<void>): Promise<void> =>
    r.dependsOn.length === 0
      ? run()
      : Promise.all(r.dependsOn.map((d) => (i !== undefined ? (perItem.get(d)?.[i] ?? shared.get(d)) : shared.get(d)))).then(run);
  const done = Promise.resolve();
  for (const r of registry.resolvers) {
    if (r.perResource) {
      // A `when: R.kind == "x"` guard is decided here for each resource: no node for other kinds.
      // Only without dependencies: a resolver that provides `resource.kind` would make this one
      // depend on it, and the kind is then known only once that one has run.
      const kind = r.dependsOn.length === 0 ? r.when?.kindEquals : undefined;
      perItem.set(
        r.name,
        items.map((item, i) => {
          const k = item.input.resource?.['kind'];
          return kind !== undefined && typeof k === 'string' && k !== kind ? done : start(r, i, () => runNode(r, item, [item]));
        }),
      );
    } else {
      // INVARIANT: a shared resolver reads nothing that differs between items, so item 0 stands for all.
      shared.set(
        r.name,
        start(r, undefined, () => runNode(r, items[0] as MutableItem, items)),
      );
    }
  }
  await Promise.all([...shared.values(), ...[...perItem.values()].flat()]);

  return {
    items,
    runs: [...runs].map(([resolver, run]) => ({ resolver, calls: run.calls, keys: run.keys, hits: run.hits, durationMs: run.last - run.first })),
    durationMs: clock() - started,
  };
}
