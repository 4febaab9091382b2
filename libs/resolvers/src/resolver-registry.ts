/**
 * The registry: resolver configs checked as a whole and turned into runnable resolvers with their
 * dependency DAG. Built at start and again on every change (build a new one from the new configs;
 * with the same cache store, unchanged resolvers keep their cache entries, changed ones start
 * empty because the store namespace includes a fingerprint of the config).
 *
 * Refused, each with a coded error naming the resolver: config errors of the kind's factory, an
 * unknown kind, an unknown datasource, a duplicate name, two resolvers providing overlapping
 * paths, CEL errors in `provides` or `when`, and dependency cycles. Resolver B depends on A when
 * B's key, its `when` or its `provides` expressions read a path A provides.
 */
import { createHash } from 'node:crypto';
import type { JsonValue, WardenErrorCode } from '@warden/core';
import { pathsOverlap, parseAttributePath, type AttributePath, type AttributeRoot } from './attribute-path.js';
import { createLruCacheStore, type CacheStore } from './cache/cache-store.js';
import { stableKey, withCache } from './cache/with-cache.js';
import { ResolverConfigError } from './resolver-error.js';
import { compileResolverExpression, type ResolverExpression } from './resolver-cel.js';
import {
  parseResolverConfig,
  type ContextResolver,
  type DatasourceConfig,
  type ResolverConfig,
  type ResolverFactory,
} from './resolver.types.js';
import { withTimeout } from './with-timeout.js';

/** One `provides` entry, compiled. */
export interface CompiledProvide {
  readonly path: AttributePath;
  readonly expression: ResolverExpression;
}

/** A resolver ready to run: its config, its wrapped pipeline and its place in the DAG. */
export interface RegisteredResolver {
  readonly name: string;
  readonly config: ResolverConfig;
  /** The kind's resolver under `withTimeout` and (when configured) `withCache`. */
  readonly resolver: ContextResolver;
  readonly provides: readonly CompiledProvide[];
  readonly when?: ResolverExpression;
  /** Names of the resolvers whose output this one reads, in registry order. */
  readonly dependsOn: readonly string[];
  /**
   * True when the resolver runs once per resource (it reads or writes `resource.*`, or depends on
   * one that does); false when it runs once per request.
   */
  readonly perResource: boolean;
  /**
   * Set when every `provides` reads `result` alone: the values mapped from one cached result are
   * the same for every request, so they are computed once per result object and shared.
   */
  readonly mapped?: WeakMap<object, readonly JsonValue[]>;
}

/** A validated set of resolvers. */
export interface ResolverRegistry {
  /** Every resolver, in a topological order (dependencies first, then config order). */
  readonly resolvers: readonly RegisteredResolver[];
  /** The roots some resolver writes to; the others are never modified by enrichment. */
  readonly writtenRoots: ReadonlySet<AttributeRoot>;
  /** The roots some per-resource resolver writes to: each item of a request needs its own copy. */
  readonly perItemRoots: ReadonlySet<AttributeRoot>;
  get(name: string): RegisteredResolver | undefined;
}

/** Options of {@link buildResolverRegistry}. */
export interface ResolverRegistryOptions {
  /** Raw resolver configs (from `warden.yaml` or the admin API). */
  readonly configs: readonly unknown[];
  /** Factories by kind. */
  readonly factories: Readonly<Record<string, ResolverFactory>>;
  /** Datasources by name, as operators define them. */
  readonly datasources?: Readonly<Record<string, DatasourceConfig>>;
  /** Store of the resolvers' caches (default: a fresh in-process LRU). */
  readonly cacheStore?: CacheStore;
  /** Clock in ms (default `Date.now`). */
  readonly now?: () => number;
}

/** The result of {@link buildResolverRegistry}: a registry, or every error found (sorted by resolver). */
export type ResolverRegistryBuild =
  | { readonly registry: ResolverRegistry; readonly errors: readonly [] }
  | { readonly registry?: undefined; readonly errors: readonly ResolverConfigError[] };

interface Candidate {
  readonly index: number;
  readonly config: ResolverConfig;
  readonly factory: ResolverFactory;
  readonly provides: CompiledProvide[];
  readonly when?: ResolverExpression;
  readonly reads: AttributePath[];
}

function err(resolver: string, code: WardenErrorCode, message: string, cause?: unknown): ResolverConfigError {
  return new ResolverConfigError(resolver, code, `resolver \`${resolver}\`: ${message}`, cause === undefined ? undefined : { cause });
}

function nameOf(raw: unknown): string {
  const n = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['name'] : undefined;
  return typeof n === 'string' ? n : '?';
}

const SECRET_SEGMENT = /token|secret|password|passwd|credential|api_?key|session/i;

/**
 * True when a key read from `path` may be a credential, so caches keep only its hash: anything
 * under `subject` or `delegation` (where tokens arrive) or a segment named like a secret.
 */
function mayHoldSecret(path: AttributePath): boolean {
  return path.root === 'subject' || path.root === 'delegation' || path.segments.some((s) => SECRET_SEGMENT.test(s));
}

/**
 * True when a resolver's mapped values may be shared between requests: every expression reads
 * `result` alone, and no path lies under another of the same resolver (across resolvers overlaps
 * are refused), so no write ever lands inside a shared value.
 */
function sharesValues(provides: readonly CompiledProvide[]): boolean {
  if (!provides.every((p) => p.expression.resultOnly === true)) return false;
  return provides.every((a, i) => provides.every((b, j) => i === j || !pathsOverlap(a.path, b.path)));
}

/**
 * A short fingerprint for cache namespaces. SHA-256 because the text includes the datasource,
 * which may hold secrets: only a one-way digest of it may reach a shared cache's key names.
 */
function fingerprint(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

function compileCandidate(raw: unknown, options: ResolverRegistryOptions, index: number): Candidate {
  const base = parseResolverConfig(raw);
  const factory = Object.hasOwn(options.factories, base.kind) ? options.factories[base.kind] : undefined;
  if (factory === undefined) {
    throw err(base.name, 'ERR_RESOLVER_KIND_UNKNOWN', `unknown kind \`${base.kind}\` (known: ${Object.keys(options.factories).sort().join(', ') || 'none'})`);
  }
  const config = factory.parseConfig(raw);
  if (config.datasource !== undefined && !Object.hasOwn(options.datasources ?? {}, config.datasource)) {
    throw err(config.name, 'ERR_RESOLVER_DATASOURCE_UNKNOWN', `unknown datasource \`${config.datasource}\``);
  }
  const compile = (field: string, source: string): ResolverExpression => {
    try {
      return compileResolverExpression(source);
    } catch (e) {
      throw err(config.name, 'ERR_RESOLVER_CEL_INVALID', `field \`${field}\`: ${(e as Error).message}`, e);
    }
  };
  const provides = Object.entries(config.provides).map(([path, source]) => ({
    path: parseAttributePath(path),
    expression: compile(`provides.${path}`, source),
  }));
  const when = config.when === undefined ? undefined : compile('when', config.when);
  const reads = [config.key, ...(when?.reads ?? []), ...provides.flatMap((p) => p.expression.reads)];
  return { index, config, factory, provides, ...(when !== undefined ? { when } : {}), reads };
}

/** Finds one cycle among `edges` (name → dependencies) and returns it as `a -> b -> a`. */
function findCycle(names: readonly string[], edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const d of edges.get(n) ?? []) {
      const s = state.get(d);
      if (s === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (s === undefined) {
        const c = visit(d);
        if (c !== undefined) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of names) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c !== undefined) return c;
    }
  }
  return undefined;
}

/**
 * Checks `options.configs` as a whole and builds the registry, collecting every error instead
 * of stopping at the first (for `warden resolvers validate` and the admin API).
 * @example const { registry, errors } = buildResolverRegistry({ configs, factories: { static: staticResolverFactory } });
 */
export function buildResolverRegistry(options: ResolverRegistryOptions): ResolverRegistryBuild {
  const errors: ResolverConfigError[] = [];
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  options.configs.forEach((raw, index) => {
    try {
      const c = compileCandidate(raw, options, index);
      if (seen.has(c.config.name)) {
        errors.push(err(c.config.name, 'ERR_RESOLVER_NAME_DUPLICATE', 'duplicate resolver name'));
        return;
      }
      seen.add(c.config.name);
      candidates.push(c);
    } catch (e) {
      if (e instanceof ResolverConfigError) errors.push(e);
      else errors.push(err(nameOf(raw), 'ERR_RESOLVER_CONFIG_INVALID', (e as Error).message, e));
    }
  });

  // Two writers of one path (or of a path and its parent) would race: refuse. Unless each is
  // guarded to one resource kind (`when: R.kind == "..."`) and the kinds differ, and nothing
  // provides `resource.kind`: then at most one of them ever runs for a resource (per-kind catalogs
  // that each provide, say, `resource.attr.tenant`).
  const kindProvided = candidates.some((c) => c.provides.some((p) => p.path.root === 'resource' && p.path.segments[0] === 'kind'));
  const exclusive = (a: Candidate, b: Candidate): boolean =>
    !kindProvided && a.when?.kindEquals !== undefined && b.when?.kindEquals !== undefined && a.when.kindEquals !== b.when.kindEquals;
  for (let i = 0; i < candidates.length; i++) {
    for (let j = i + 1; j < candidates.length; j++) {
      const a = candidates[i] as Candidate;
      const b = candidates[j] as Candidate;
      if (exclusive(a, b)) continue;
      for (const pa of a.provides) {
        const pb = b.provides.find((p) => pathsOverlap(pa.path, p.path));
        if (pb !== undefined) {
          errors.push(err(b.config.name, 'ERR_RESOLVER_PROVIDES_CONFLICT', `provides \`${pb.path.text}\`, which overlaps \`${pa.path.text}\` provided by \`${a.config.name}\``));
          break;
        }
      }
    }
  }

  const edges = new Map<string, string[]>();
  for (const b of candidates) {
    const deps: string[] = [];
    for (const a of candidates) {
      if (a === b) continue;
      if (b.reads.some((r) => a.provides.some((p) => pathsOverlap(r, p.path)))) deps.push(a.config.name);
    }
    edges.set(b.config.name, deps);
  }
  const cycle = findCycle(
    candidates.map((c) => c.config.name),
    edges,
  );
  if (cycle !== undefined) {
    errors.push(err(cycle[0] as string, 'ERR_RESOLVER_DEPENDENCY_CYCLE', `dependency cycle \`${cycle.join(' -> ')}\``));
  }
  if (errors.length > 0) {
    errors.sort((x, y) => x.resolver.localeCompare(y.resolver));
    return { errors };
  }

  // Kahn's algorithm; ties keep config order so the registry order is deterministic.
  const remaining = new Map(candidates.map((c) => [c.config.name, new Set(edges.get(c.config.name))]));
  const ordered: Candidate[] = [];
  while (ordered.length < candidates.length) {
    const next = candidates.find((c) => remaining.get(c.config.name)?.size === 0 && !ordered.includes(c));
    if (next === undefined) break; // INVARIANT: unreachable, cycles were refused above.
    ordered.push(next);
    for (const s of remaining.values()) s.delete(next.config.name);
  }

  const now = options.now ?? Date.now;
  const store = options.cacheStore ?? createLruCacheStore({ now });
  const perResource = new Map<string, boolean>();
  const resolvers: RegisteredResolver[] = [];
  try {
    for (const c of ordered) {
      const { config } = c;
      const dependsOn = edges.get(config.name) ?? [];
      const touchesResource =
        c.reads.some((r) => r.root === 'resource') ||
        c.provides.some((p) => p.path.root === 'resource') ||
        dependsOn.some((d) => perResource.get(d) === true);
      perResource.set(config.name, touchesResource);
      const datasource = config.datasource === undefined ? undefined : options.datasources?.[config.datasource];
      let created: ContextResolver;
      try {
        created = c.factory.create(config, { now, ...(datasource !== undefined ? { datasource } : {}) });
      } catch (e) {
        throw err(config.name, 'ERR_RESOLVER_CONFIG_INVALID', `cannot create: ${(e as Error).message}`, e);
      }
      let resolver: ContextResolver = withTimeout(created, config.timeoutMs);
      if (config.cache !== undefined) {
        resolver = withCache(
          resolver,
          {
            ttlMs: config.cache.ttlMs,
            ...(config.cache.negativeTtlMs !== undefined ? { negativeTtlMs: config.cache.negativeTtlMs } : {}),
            // Serving stale is what `onError: stale` asks for; other modes fail on a failed refresh.
            ...(config.onError === 'stale' && config.cache.staleMaxAgeMs !== undefined ? { staleMaxAgeMs: config.cache.staleMaxAgeMs } : {}),
            // The datasource is part of it: pointing a datasource elsewhere must not serve the old upstream's values.
            namespace: `${config.name}:${fingerprint(stableKey({ config, datasource: datasource ?? null }))}`,
            hashKeys: mayHoldSecret(config.key),
            now,
          },
          store,
        );
      }
      resolvers.push({
        name: config.name,
        config,
        resolver,
        provides: c.provides,
        ...(c.when !== undefined ? { when: c.when } : {}),
        dependsOn,
        perResource: touchesResource,
        ...(sharesValues(c.provides) ? { mapped: new WeakMap<object, readonly JsonValue[]>() } : {}),
      });
    }
  } catch (e) {
    return { errors: [e as ResolverConfigError] };
  }
  const byName = new Map(resolvers.map((r) => [r.name, r]));
  const rootsOf = (rs: readonly RegisteredResolver[]): Set<AttributeRoot> => new Set(rs.flatMap((r) => r.provides.map((p) => p.path.root)));
  const writtenRoots = rootsOf(resolvers);
  const perItemRoots = rootsOf(resolvers.filter((r) => r.perResource));
  return { registry: { resolvers, writtenRoots, perItemRoots, get: (name) => byName.get(name) }, errors: [] };
}

/**
 * Like {@link buildResolverRegistry} but throws the first error (for start-up, where any error is fatal).
 * @example const registry = createResolverRegistry({ configs, factories: { static: staticResolverFactory } });
 */
export function createResolverRegistry(options: ResolverRegistryOptions): ResolverRegistry {
  const built = buildResolverRegistry(options);
  if (built.registry === undefined) throw built.errors[0] as ResolverConfigError;
  return built.registry;
}
