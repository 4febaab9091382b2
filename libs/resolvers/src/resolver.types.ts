/**
 * The resolver contract (STYLE 3) and the configuration shape of DESIGN.md section 8. A resolver
 * config is parsed before anything is built: {@link parseResolverConfig} checks the fields every
 * kind shares and hands the rest (`options`) to the kind's {@link ResolverFactory}.
 */
import type { JsonValue } from '@warden/core';
import { parseAttributePath, type AttributePath } from './attribute-path.js';
import { parseDurationMs } from './duration.js';
import { ResolverConfigError, type ResolverError } from './resolver-error.js';

/** What a resolver failure does to the decision. */
export type OnError = 'deny' | 'omit' | 'stale';

/** Cache settings of one resolver, in milliseconds. */
export interface ResolverCacheConfig {
  /** How long a found value is fresh. */
  readonly ttlMs: number;
  /** How long past its ttl a value may still be served when a refresh fails (`onError: stale`). */
  readonly staleMaxAgeMs?: number;
  /** How long a not-found (`undefined`) answer is remembered; 0 or absent: not at all. */
  readonly negativeTtlMs?: number;
}

/** The fields every resolver config shares, parsed and checked. */
export interface ResolverConfig {
  readonly name: string;
  readonly kind: string;
  readonly datasource?: string;
  /** Path of the batch key in the partially built input. */
  readonly key: AttributePath;
  /** Attribute path (as written) to a CEL expression over `result`. */
  readonly provides: Readonly<Record<string, string>>;
  /** CEL guard; the resolver runs for an item only when it is true. */
  readonly when?: string;
  readonly cache?: ResolverCacheConfig;
  readonly timeoutMs: number;
  readonly onError: OnError;
  /** The kind-specific fields, unchecked (the factory parses them). */
  readonly options: Readonly<Record<string, unknown>>;
}

/** What a resolver sees while it runs. */
export interface ResolveContext {
  /** Aborts at the resolver's timeout or when the request is abandoned. */
  readonly signal: AbortSignal;
  readonly requestId: string;
}

/**
 * A source of attributes. `resolveMany` returns one entry per key, in order: the value, `undefined`
 * for not found, or a {@link ResolverError} for that key. It should not reject; a rejection fails
 * every key of the batch.
 */
export interface ContextResolver<K = JsonValue, V = unknown> {
  readonly name: string;
  resolveMany(keys: readonly K[], ctx: ResolveContext): Promise<ReadonlyArray<V | undefined | ResolverError>>;
  /**
   * Wall-clock ms after which `value` must not be served from a cache (a token's `exp`), or
   * undefined when only the resolver's ttl bounds it.
   */
  expiresAt?(value: V): number | undefined;
}

/** Where a value came from when a cache served it. */
export interface CacheInfo {
  readonly hit: boolean;
  /** Milliseconds since the value was fetched (0 for a miss). */
  readonly ageMs: number;
  /** True when served past its ttl because the refresh failed. */
  readonly stale: boolean;
}

/** One key's answer with its cache information. */
export interface DetailedResult<V = unknown> {
  readonly value: V | undefined | ResolverError;
  readonly cache?: CacheInfo;
}

/** A resolver that also reports cache information per key (what cache wrappers return). */
export interface DetailedContextResolver<K = JsonValue, V = unknown> extends ContextResolver<K, V> {
  resolveManyDetailed(keys: readonly K[], ctx: ResolveContext): Promise<ReadonlyArray<DetailedResult<V>>>;
  /**
   * A fresh cached answer for `key`, found synchronously (no I/O, no promise), or undefined: then
   * `resolveManyDetailed` must be asked. Lets the scheduler skip batching for warm keys.
   */
  peekDetailed?(key: K): DetailedResult<V> | undefined;
}

/** True when `r` reports cache information. */
export function isDetailedResolver<K, V>(r: ContextResolver<K, V>): r is DetailedContextResolver<K, V> {
  return typeof (r as Partial<DetailedContextResolver<K, V>>).resolveManyDetailed === 'function';
}

/** A datasource as operators define it in `warden.yaml` (the kinds with I/O read their fields). */
export interface DatasourceConfig {
  readonly kind: string;
  readonly [field: string]: unknown;
}

/** What a factory may use to build a resolver. */
export interface ResolverDeps {
  /** The named datasource, when the config names one. */
  readonly datasource?: DatasourceConfig;
  /** Wall clock in ms (injected so tests can move time). */
  readonly now: () => number;
}

/** Builds resolvers of one kind. Registered by an explicit map; no import-time side effects. */
export interface ResolverFactory<C extends ResolverConfig = ResolverConfig> {
  readonly kind: string;
  /** Parses and checks a raw config; throws `ERR_RESOLVER_CONFIG_INVALID` naming the resolver and field. */
  parseConfig(raw: unknown): C;
  create(config: C, deps: ResolverDeps): ContextResolver;
}

const NAME = /^[a-z0-9][a-z0-9_.:-]{0,62}$/i;
const SHARED_FIELDS = new Set(['name', 'kind', 'datasource', 'key', 'provides', 'when', 'cache', 'timeout', 'onError']);
const DEFAULT_TIMEOUT_MS = 1000;

/** A config error naming the resolver and the field. */
export function configError(name: string, field: string, why: string): ResolverConfigError {
  return new ResolverConfigError(name, 'ERR_RESOLVER_CONFIG_INVALID', `resolver \`${name}\`: field \`${field}\`: ${why}`);
}

/** A kind's optional integer field in 1..`max` (`fallback` when absent); else a config error naming it. */
export function positiveIntField(name: string, field: string, raw: unknown, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > max) throw configError(name, field, `expected an integer from 1 to ${max}`);
  return raw;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function durationField(name: string, field: string, v: unknown): number {
  const ms = typeof v === 'string' ? parseDurationMs(v) : undefined;
  if (ms === undefined) throw configError(name, field, `expected a duration such as \`200ms\`, \`30s\` or \`5m\``);
  return ms;
}

function parseCache(name: string, raw: unknown): ResolverCacheConfig {
  if (!isRecord(raw)) throw configError(name, 'cache', 'expected a map with `ttl`');
  for (const k of Object.keys(raw)) {
    if (k !== 'ttl' && k !== 'staleMaxAge' && k !== 'negativeTtl') throw configError(name, `cache.${k}`, 'unknown field');
  }
  const ttlMs = durationField(name, 'cache.ttl', raw['ttl']);
  const out: { ttlMs: number; staleMaxAgeMs?: number; negativeTtlMs?: number } = { ttlMs };
  if (raw['staleMaxAge'] !== undefined) out.staleMaxAgeMs = durationField(name, 'cache.staleMaxAge', raw['staleMaxAge']);
  if (raw['negativeTtl'] !== undefined) out.negativeTtlMs = durationField(name, 'cache.negativeTtl', raw['negativeTtl']);
  return out;
}

/**
 * Parses the fields every kind shares; everything else lands in `options`. Throws
 * `ERR_RESOLVER_CONFIG_INVALID` (or `ERR_RESOLVER_PATH_INVALID` re-coded as a config error)
 * naming the resolver and the field.
 * @example parseResolverConfig({ name: 'a', kind: 'static', key: 'principal.id', provides: {}, data: {} })
 */
export function parseResolverConfig(raw: unknown): ResolverConfig {
  if (!isRecord(raw)) throw configError('?', '(root)', 'expected a map');
  const rawName = raw['name'];
  if (typeof rawName !== 'string' || !NAME.test(rawName)) {
    throw configError(typeof rawName === 'string' ? rawName : '?', 'name', 'expected 1-63 letters, digits or `_.:-`');
  }
  const name = rawName;
  const kind = raw['kind'];
  if (typeof kind !== 'string' || kind === '') throw configError(name, 'kind', 'expected a string');
  const datasource = raw['datasource'];
  if (datasource !== undefined && (typeof datasource !== 'string' || datasource === '')) {
    throw configError(name, 'datasource', 'expected a datasource name');
  }
  const rawKey = raw['key'];
  if (typeof rawKey !== 'string') throw configError(name, 'key', 'expected an attribute path such as `principal.id`');
  let key: AttributePath;
  try {
    key = parseAttributePath(rawKey);
  } catch (err) {
    throw configError(name, 'key', (err as Error).message);
  }
  const rawProvides = raw['provides'];
  if (!isRecord(rawProvides) || Object.keys(rawProvides).length === 0) {
    throw configError(name, 'provides', 'expected a non-empty map of attribute path to CEL expression');
  }
  const provides: Record<string, string> = {};
  for (const [path, expr] of Object.entries(rawProvides)) {
    try {
      parseAttributePath(path);
    } catch (err) {
      throw configError(name, `provides.${path}`, (err as Error).message);
    }
    if (typeof expr !== 'string' || expr.trim() === '') throw configError(name, `provides.${path}`, 'expected a CEL expression');
    provides[path] = expr;
  }
  const when = raw['when'];
  if (when !== undefined && (typeof when !== 'string' || when.trim() === '')) throw configError(name, 'when', 'expected a CEL expression');
  const cache = raw['cache'] === undefined ? undefined : parseCache(name, raw['cache']);
  const timeoutMs = raw['timeout'] === undefined ? DEFAULT_TIMEOUT_MS : durationField(name, 'timeout', raw['timeout']);
  if (timeoutMs <= 0) throw configError(name, 'timeout', 'must be positive');
  const onError = raw['onError'] ?? 'deny';
  if (onError !== 'deny' && onError !== 'omit' && onError !== 'stale') throw configError(name, 'onError', 'expected `deny`, `omit` or `stale`');
  if (onError === 'stale' && cache?.staleMaxAgeMs === undefined) {
    throw configError(name, 'cache.staleMaxAge', '`onError: stale` needs a cache with `staleMaxAge`');
  }
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (!SHARED_FIELDS.has(k)) options[k] = v;
  return {
    name,
    kind,
    ...(datasource !== undefined ? { datasource } : {}),
    key,
    provides,
    ...(when !== undefined ? { when } : {}),
    ...(cache !== undefined ? { cache } : {}),
    timeoutMs,
    onError,
    options,
  };
}
