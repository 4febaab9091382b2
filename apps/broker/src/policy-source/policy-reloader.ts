/**
 * Keeps the policy set in force current with its source (`storage.*`): a directory watched for
 * changes, or a git branch polled with `git fetch`. A change is read, validated and compiled
 * completely before the {@link PolicyHolder} swaps it in; a set with errors is refused, the set in
 * force keeps serving, and the refusal (every error with file, line, column and code) is logged,
 * counted and kept for `GET /v1/admin/policies` until a newer set is in force. A source that
 * cannot be read (a git remote down) is handled the same way: the set in force keeps serving.
 *
 * Attempts never overlap: a change noticed during an attempt queues exactly one more. What is
 * read is identified by its version (content hash, plus the commit for git); reading the version
 * in force, or the one last refused, changes nothing and reports nothing again.
 *
 * Each process (each `node:cluster` worker too) runs its own reloader over the same source, so
 * instances converge on their own, within the watch debounce (disk) or one poll interval (git)
 * of a change; nothing is coordinated through the primary or the database.
 */
import { createEngine, type CompileDiagnostic, type EngineConfig } from '@warden/decision';
import { isWardenError } from '@warden/core';
import type { DiskPolicyStorageConfig, GitPolicyStorageConfig, PolicyStorageConfig } from '../config/broker-config.js';
import type { WardenLogger } from '../logging/warden-logger.js';
import type { BrokerMetrics } from '../metrics/broker-metrics.js';
import { GitPolicySource, redactUrl } from './git-policy-source.js';
import { compileReadPolicies, formatDiagnostic, policyCompileError, readPolicies, type ReadPolicies } from './load-policy-set.js';
import { PolicyHolder, policyVersionOf, resourceKindsOf, type ActivePolicies, type PolicySourceKind } from './policy-holder.js';
import { watchPolicyDir, type PolicyDirWatch } from './watch-policy-dir.js';

/** One compile error of a refused set, as the admin API shows it. */
export interface PolicyErrorView {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
  readonly code: string;
}

/** The newest change that was refused (cleared once a newer set is in force, or the source is back to the set in force). */
export interface PolicyRefusal {
  /** ISO time of the attempt. */
  readonly at: string;
  /** The refused set's version (content hash, `@commit` for git). */
  readonly version: string;
  readonly contentHash: string;
  readonly commit?: string;
  /** How many errors it had; `errors` lists at most {@link MAX_ERRORS_SHOWN}. */
  readonly errorCount: number;
  readonly errors: readonly PolicyErrorView[];
}

/** The source could not be read (cleared at the next successful read). */
export interface PolicySourceFailure {
  /** ISO time of the first failure of this kind in a row. */
  readonly since: string;
  /** ISO time of the latest failed attempt. */
  readonly at: string;
  readonly code: string;
  readonly message: string;
}

/** How one attempt ended. `unchanged`: the source holds the set in force (or the one refused last). */
export type ReloadResult = 'ok' | 'unchanged' | 'refused' | 'error';

/** The answer of {@link PolicyReloader.reload}. */
export interface ReloadOutcome {
  readonly result: ReloadResult;
  /** The version in force after the attempt. */
  readonly version: string;
}

/** What `GET /v1/admin/policies` shows. */
export interface PolicyStatus {
  readonly source: Readonly<Record<string, unknown>>;
  readonly active: {
    readonly version: string;
    readonly contentHash: string;
    readonly commit?: string;
    readonly loadedAt: string;
    readonly source: PolicySourceKind;
    readonly policies: number;
    readonly kinds: readonly string[];
  };
  readonly lastRefused: PolicyRefusal | null;
  readonly lastError: PolicySourceFailure | null;
  /** Sets put in force after boot. */
  readonly reloads: number;
  /** Attempts after boot that were refused or could not read the source. */
  readonly failures: number;
}

/** How long closing waits for a running attempt. */
const CLOSE_WAIT_MS = 2_000;

/** Refusals list this many errors (the count says how many there were). */
export const MAX_ERRORS_SHOWN = 100;

/** What a source gives the reloader. */
interface ReadSet {
  readonly read: ReadPolicies;
  readonly commit: string | undefined;
}

/** A policy source: reads its newest state, and says when it may have changed. */
interface SourceDriver {
  readonly kind: PolicySourceKind;
  /** The newest state, or undefined when it is known to be the one read last (git: same commit). */
  read(): Promise<ReadSet | undefined>;
  /** Starts calling `changed` when the source may have changed. */
  watch(changed: () => Promise<unknown>, log: WardenLogger | undefined): void;
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

class DiskDriver implements SourceDriver {
  readonly kind = 'disk' as const;
  private watcher: PolicyDirWatch | undefined;

  constructor(private readonly config: DiskPolicyStorageConfig) {}

  read(): Promise<ReadSet> {
    return Promise.resolve({ read: readPolicies(this.config.directory), commit: undefined });
  }

  watch(changed: () => Promise<unknown>, log: WardenLogger | undefined): void {
    if (!this.config.watchForChanges) return;
    this.watcher = watchPolicyDir({
      dir: this.config.directory,
      debounceMs: this.config.watchDebounceMs,
      pollIntervalMs: this.config.pollIntervalMs,
      onChange: () => void changed(),
      onWatchError: (err) => log?.warn({ context: 'Policies', code: (err as NodeJS.ErrnoException).code }, `watching \`${this.config.directory}\` failed (${err.message}); polling every ${this.config.pollIntervalMs} ms instead`),
    });
  }

  describe(): Record<string, unknown> {
    const c = this.config;
    return { driver: 'disk', directory: c.directory, watchForChanges: c.watchForChanges, watchDebounceMs: c.watchDebounceMs, pollIntervalMs: c.pollIntervalMs };
  }

  close(): Promise<void> {
    this.watcher?.close();
    return Promise.resolve();
  }
}

class GitDriver implements SourceDriver {
  readonly kind = 'git' as const;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The commit read last (in force or refused): the same head is not read again. */
  private lastRead: string | undefined;

  private constructor(
    private readonly config: GitPolicyStorageConfig,
    private readonly git: GitPolicySource,
  ) {}

  static async open(config: GitPolicyStorageConfig): Promise<GitDriver> {
    const git = await GitPolicySource.open({ url: config.url, branch: config.branch, subDir: config.subDir, checkoutDir: config.checkoutDir, operationTimeoutMs: config.operationTimeoutMs });
    return new GitDriver(config, git);
  }

  /** The first read, right after the clone (no fetch needed). */
  async readHead(): Promise<ReadSet> {
    return this.readCommit(await this.git.head());
  }

  async read(): Promise<ReadSet | undefined> {
    const head = await this.git.fetchHead();
    return head === this.lastRead ? undefined : this.readCommit(head);
  }

  private async readCommit(commit: string): Promise<ReadSet> {
    const read = await this.git.withCheckout(commit, (dir) => readPolicies(dir));
    this.lastRead = commit;
    return { read, commit };
  }

  watch(changed: () => Promise<unknown>): void {
    const every = this.config.updatePollIntervalMs;
    if (every === 0) return;
    // A chain of timeouts, not an interval: a slow fetch never overlaps the next one.
    const next = (): void => {
      if (this.closed) return;
      this.timer = setTimeout(() => void changed().finally(next), every);
      this.timer.unref();
    };
    next();
  }

  describe(): Record<string, unknown> {
    const c = this.config;
    return { driver: 'git', url: redactUrl(c.url), branch: this.git.branch, subDir: c.subDir, updatePollIntervalMs: c.updatePollIntervalMs, ...(this.lastRead !== undefined ? { lastReadCommit: this.lastRead } : {}) };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.git.close();
  }
}

/** Options of {@link PolicyReloader.start}. */
export interface PolicyReloaderOptions {
  readonly storage: PolicyStorageConfig;
  readonly engine: Partial<EngineConfig>;
  readonly metrics?: BrokerMetrics | undefined;
  readonly log?: WardenLogger | undefined;
  /** The clock (epoch ms); tests may fix it. */
  readonly now?: () => number;
  /** Told of every change after boot: a set put in force, or one refused (the decision log records both). */
  readonly onChange?: ((change: PolicyChange) => void) | undefined;
}

/** A reload after boot that found a change: put in force, or refused with its errors. */
export interface PolicyChange {
  readonly result: 'ok' | 'refused';
  /** The version of the set read. */
  readonly version: string;
  /** The version in force before. */
  readonly previous: string;
  readonly source: PolicySourceKind;
  readonly commit: string | undefined;
  /** The first errors of a refused set (`file:line:col message`). */
  readonly errors: readonly string[];
  /** Epoch ms. */
  readonly at: number;
}

const errorView = (d: CompileDiagnostic): PolicyErrorView => ({ file: d.file, line: d.line, column: d.column, message: d.message, code: d.code });

/** Watches the policy source and swaps in every good change; see the module comment. */
export class PolicyReloader {
  /** The set in force; request paths read `holder.current`. */
  readonly holder: PolicyHolder;
  private refused: PolicyRefusal | null = null;
  private failure: PolicySourceFailure | null = null;
  private reloads = 0;
  private failures = 0;
  /** The attempt queued behind the running one (joined by every trigger until it starts). */
  private queued: Promise<ReloadOutcome> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly options: PolicyReloaderOptions,
    private readonly driver: SourceDriver,
    first: ActivePolicies,
  ) {
    this.holder = new PolicyHolder(first);
  }

  /**
   * Reads and compiles the source once, and starts following it. Throws like the boot always did
   * (`ERR_POLICY_COMPILE` listing every error as `file:line:col message`; `ERR_POLICY_SET_INVALID`
   * for a missing directory; `ERR_POLICY_SOURCE_UNAVAILABLE` when git cannot clone): there is no
   * older set to fall back on.
   */
  static async start(options: PolicyReloaderOptions): Promise<PolicyReloader> {
    const now = options.now ?? Date.now;
    let driver: SourceDriver | undefined;
    try {
      let first: ReadSet;
      if (options.storage.driver === 'disk') {
        const disk = new DiskDriver(options.storage);
        driver = disk;
        first = await disk.read();
      } else {
        const git = await GitDriver.open(options.storage);
        driver = git;
        first = await git.readHead();
      }
      const compiled = compileReadPolicies(first.read);
      if (!compiled.ok) throw policyCompileError(options.storage.driver === 'disk' ? options.storage.directory : `${redactUrl(options.storage.url)} at ${first.commit ?? ''}`, compiled.errors);
      const active = activeOf(compiled.loaded, first, options.engine, driver.kind, now());
      const reloader = new PolicyReloader(options, driver, active);
      options.metrics?.policiesLoaded(active.kinds);
      options.metrics?.policyActive(active.version, active.source);
      driver.watch(() => reloader.reload(), options.log);
      return reloader;
    } catch (err) {
      options.metrics?.policyLoadFailed();
      await driver?.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Reads the source now and puts a good change in force. Never rejects: a refused set or an
   * unreadable source is reported in the outcome, the log, the metrics and {@link status}.
   */
  reload(): Promise<ReloadOutcome> {
    if (this.queued !== undefined) return this.queued;
    const attempt = this.chain.then(async () => {
      this.queued = undefined;
      try {
        return await this.attempt();
      } catch (err) {
        // INVARIANT: nothing in an attempt should throw (source failures are caught where they
        // happen); should something, the set in force keeps serving and it is reported like one.
        return this.sourceFailed(err);
      }
    });
    this.queued = attempt;
    this.chain = attempt;
    return attempt;
  }

  private outcome(result: ReloadResult): ReloadOutcome {
    return { result, version: this.holder.current.version };
  }

  private async attempt(): Promise<ReloadOutcome> {
    if (this.closed) return this.outcome('unchanged');
    let set: ReadSet | undefined;
    try {
      set = await this.driver.read();
    } catch (err) {
      return this.sourceFailed(err);
    }
    this.sourceRecovered();
    if (set === undefined) return this.outcome(this.refused !== null ? 'refused' : 'unchanged');
    const version = policyVersionOf(set.read.contentHash, set.commit);
    const current = this.holder.current;
    if (version === current.version) {
      // The source is back to the set in force (a bad change reverted): nothing is pending.
      if (this.refused !== null) this.clearRefusal();
      return this.outcome('unchanged');
    }
    if (this.refused?.version === version) return this.outcome('refused');
    const compiled = compileReadPolicies(set.read);
    const now = this.options.now ?? Date.now;
    if (!compiled.ok) return this.refuse(set, version, compiled.errors, now());
    const next = activeOf(compiled.loaded, set, this.options.engine, this.driver.kind, now());
    if (this.closed) return this.outcome('unchanged');
    this.holder.replace(next);
    this.reloads += 1;
    this.refused = null;
    const m = this.options.metrics;
    m?.policiesLoaded(next.kinds);
    m?.policyReload('ok');
    m?.policyActive(next.version, next.source);
    m?.policyStaleState(undefined);
    this.options.log?.info({ context: 'Policies', version: next.version, previous: current.version, policies: next.policies, ...(next.commit !== undefined ? { commit: next.commit } : {}) }, `policies reloaded: ${next.version} in force (was ${current.version})`);
    this.options.onChange?.({ result: 'ok', version: next.version, previous: current.version, source: next.source, commit: next.commit, errors: [], at: next.loadedAt });
    return this.outcome('ok');
  }

  private refuse(set: ReadSet, version: string, errors: readonly CompileDiagnostic[], at: number): ReloadOutcome {
    this.failures += 1;
    this.refused = {
      at: new Date(at).toISOString(),
      version,
      contentHash: set.read.contentHash,
      ...(set.commit !== undefined ? { commit: set.commit } : {}),
      errorCount: errors.length,
      errors: errors.slice(0, MAX_ERRORS_SHOWN).map(errorView),
    };
    const m = this.options.metrics;
    m?.policyLoadFailed();
    m?.policyReload('refused');
    m?.policyStaleState('refused');
    const serving = this.holder.current.version;
    const listed = errors.slice(0, 10).map(formatDiagnostic).join('; ');
    this.options.onChange?.({ result: 'refused', version, previous: serving, source: this.holder.current.source, commit: set.commit, errors: errors.slice(0, MAX_ERRORS_SHOWN).map(formatDiagnostic), at });
    this.options.log?.warn(
      { context: 'Policies', version, serving, errorCount: errors.length, errors: this.refused.errors, ...(set.commit !== undefined ? { commit: set.commit } : {}) },
      `policy change refused (${errors.length} error${errors.length === 1 ? '' : 's'}), still serving ${serving}: ${listed}${errors.length > 10 ? '; …' : ''}`,
    );
    return this.outcome('refused');
  }

  private sourceFailed(err: unknown): ReloadOutcome {
    this.failures += 1;
    const code = isWardenError(err) ? err.code : 'ERR_INTERNAL';
    const message = err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err);
    const at = new Date((this.options.now ?? Date.now)()).toISOString();
    const same = this.failure !== null && this.failure.code === code && this.failure.message === message;
    this.failure = { since: same && this.failure !== null ? this.failure.since : at, at, code, message };
    const m = this.options.metrics;
    m?.policyLoadFailed();
    m?.policyReload('error');
    m?.policyStaleState('error');
    // Logged once per failure in a row (a remote down for an hour is one line, not one per poll).
    if (!same) this.options.log?.warn({ context: 'Policies', code, serving: this.holder.current.version }, `policy source unavailable, still serving ${this.holder.current.version}: ${message}`);
    return this.outcome('error');
  }

  private sourceRecovered(): void {
    if (this.failure === null) return;
    this.options.log?.warn({ context: 'Policies', since: this.failure.since }, 'policy source readable again');
    this.failure = null;
    this.options.metrics?.policyStaleState(this.refused !== null ? 'refused' : undefined);
  }

  private clearRefusal(): void {
    this.refused = null;
    this.options.metrics?.policyStaleState(undefined);
  }

  /** The source, the set in force, the last refusal and source failure, and the counts. */
  status(): PolicyStatus {
    const a = this.holder.current;
    return {
      source: this.driver.describe(),
      active: {
        version: a.version,
        contentHash: a.contentHash,
        ...(a.commit !== undefined ? { commit: a.commit } : {}),
        loadedAt: new Date(a.loadedAt).toISOString(),
        source: a.source,
        policies: a.policies,
        kinds: a.kinds,
      },
      lastRefused: this.refused,
      lastError: this.failure,
      reloads: this.reloads,
      failures: this.failures,
    };
  }

  /**
   * Stops following the source and removes a git working directory. A running attempt is waited
   * for, at most {@link CLOSE_WAIT_MS} (a git fetch may hang up to its timeout; its result is
   * dropped anyway once closed).
   */
  async close(): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.chain.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    await this.driver.close();
  }
}

function activeOf(
  loaded: { policySet: ActivePolicies['policySet']; readsRequestExtras: boolean; policies: number },
  set: ReadSet,
  engine: Partial<EngineConfig>,
  source: PolicySourceKind,
  at: number,
): ActivePolicies {
  return {
    engine: createEngine(loaded.policySet, engine),
    policySet: loaded.policySet,
    version: policyVersionOf(set.read.contentHash, set.commit),
    contentHash: set.read.contentHash,
    commit: set.commit,
    readsRequestExtras: loaded.readsRequestExtras,
    kinds: resourceKindsOf(loaded.policySet),
    policies: loaded.policies,
    loadedAt: at,
    source,
  };
}
