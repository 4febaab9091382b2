/**
 * The broker's live set of resolvers: the ones in `warden.yaml` plus the ones admins registered
 * (the {@link ResolverStore}), built into one registry. A change from any instance arrives through
 * `store.subscribe` and swaps the registry atomically; requests already running keep the registry
 * they started with.
 *
 * SECURITY (fail closed): when the stored set cannot be built (say a datasource it names was
 * removed from `warden.yaml`), `current()` reports the errors instead of a registry and every
 * enriched decision is DENY until an admin fixes it; the admin API keeps working to do so.
 */
import {
  buildResolverRegistry,
  ResolverConfigError,
  enrich,
  type CacheStore,
  type DatasourceConfig,
  type EnrichmentOutcome,
  type EnrichmentRequest,
  type ResolverFactory,
  type ResolverRegistry,
  type ResolverStore,
  type StoredResolver,
} from '@warden/resolvers';

/** What {@link ResolverRuntime.current} returns. */
export type RuntimeState =
  | { readonly registry: ResolverRegistry; readonly errors?: undefined }
  | { readonly registry?: undefined; readonly errors: readonly ResolverConfigError[] };

/** Options of {@link ResolverRuntime.start}. */
export interface ResolverRuntimeOptions {
  /** `resolvers:` of `warden.yaml` (read-only through the admin API). */
  readonly fileConfigs: readonly unknown[];
  readonly datasources: Readonly<Record<string, DatasourceConfig>>;
  readonly factories: Readonly<Record<string, ResolverFactory>>;
  readonly cacheStore: CacheStore;
  /** Admin-registered resolvers; absent: only the file's. */
  readonly store?: ResolverStore;
  readonly onError?: (message: string) => void;
}

/** The result of a dry run (`POST /v1/admin/resolvers/{name}/test`). */
export interface DryRun {
  readonly outcome: EnrichmentOutcome;
}

export class ResolverRuntime {
  private state: RuntimeState;
  private stored: readonly StoredResolver[] = [];
  private unsubscribe: (() => Promise<void>) | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;

  private constructor(private readonly options: ResolverRuntimeOptions) {
    this.state = { errors: [] };
  }

  /**
   * Builds the registry from the file and the store and follows the store's changes. Throws when
   * the file's own resolvers are invalid (a start-up error, like a bad policy).
   */
  static async start(options: ResolverRuntimeOptions): Promise<ResolverRuntime> {
    const runtime = new ResolverRuntime(options);
    const fileOnly = runtime.build([]);
    if (fileOnly.registry === undefined) throw fileOnly.errors[0] as ResolverConfigError;
    if (options.store !== undefined) {
      runtime.unsubscribe = await options.store.subscribe(() => void runtime.reload());
      runtime.stored = await options.store.list();
    }
    runtime.state = runtime.build(runtime.stored);
    if (runtime.state.errors !== undefined) {
      options.onError?.(`stored resolvers are invalid; enriched decisions deny until fixed: ${runtime.state.errors.map((e) => e.message).join('; ')}`);
    }
    return runtime;
  }

  /** The registry requests should use now, or why there is none. */
  current(): RuntimeState {
    return this.state;
  }

  /** The admin-registered resolvers as last loaded. */
  storedResolvers(): readonly StoredResolver[] {
    return this.stored;
  }

  /** True when a resolver of this name comes from `warden.yaml`. */
  isFileResolver(name: string): boolean {
    return this.options.fileConfigs.some((c) => typeof c === 'object' && c !== null && (c as { name?: unknown }).name === name);
  }

  /** Throws the first error the file's resolvers plus `next` would have (the admin API's check). */
  validate(next: readonly StoredResolver[]): void {
    const built = this.build(next);
    if (built.registry === undefined) throw built.errors[0] as ResolverConfigError;
  }

  /** Re-reads the store and swaps the registry. Concurrent calls coalesce into one more reload. */
  reload(): Promise<void> {
    if (this.reloading !== undefined) {
      this.reloadAgain = true;
      return this.reloading;
    }
    const run = async (): Promise<void> => {
      do {
        this.reloadAgain = false;
        const store = this.options.store;
        if (store === undefined) return;
        try {
          this.stored = await store.list();
          this.state = this.build(this.stored);
          if (this.state.errors !== undefined) this.options.onError?.(`stored resolvers are invalid: ${this.state.errors.map((e) => e.message).join('; ')}`);
        } catch (err) {
          // Keep serving the last good registry; the next notification or reload retries.
          this.options.onError?.(`resolver reload failed: ${(err as Error).message}`);
        }
      } while (this.reloadAgain);
    };
    this.reloading = run().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  /** Runs one resolver config on a sample input, uncached, without touching the live set. */
  async dryRun(config: Readonly<Record<string, unknown>>, sample: EnrichmentRequest): Promise<DryRun> {
    const { cache: _cache, ...uncached } = config;
    const built = buildResolverRegistry({
      configs: [uncached],
      factories: this.options.factories,
      datasources: this.options.datasources,
    });
    if (built.registry === undefined) throw built.errors[0] as ResolverConfigError;
    return { outcome: await enrich(built.registry, sample) };
  }

  async close(): Promise<void> {
    await this.unsubscribe?.();
  }

  private build(stored: readonly StoredResolver[]): RuntimeState {
    const configs = [...this.options.fileConfigs, ...stored.map((s) => ({ ...s.config, name: s.name }))];
    const built = buildResolverRegistry({
      configs,
      factories: this.options.factories,
      datasources: this.options.datasources,
      cacheStore: this.options.cacheStore,
    });
    if (built.registry !== undefined) return { registry: built.registry };
    // INVARIANT: a failed build reports at least one error, so `errors[0]` always exists.
    return { errors: built.errors.length > 0 ? built.errors : [new ResolverConfigError('?', 'ERR_INTERNAL', 'BUG: registry build failed without errors')] };
  }
}
