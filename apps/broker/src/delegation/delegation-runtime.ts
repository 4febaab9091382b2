/**
 * Delegation at run time: the signing keys (configured, or shared through the database), the
 * token verifier, the durable store, and this instance's view of the revocations.
 *
 * Revocations reach every instance three ways, fastest first: Redis pub/sub on
 * `warden:revocations` when `REDIS_URL` is set (else Postgres NOTIFY, in-process when embedded),
 * each message making the instance read the new entries from the database by `seq`; and a poll
 * of the database every `revocationPoll`, which also catches what a lost message missed. The
 * state is "fresh" while the pub/sub connection is up or the last successful read is younger
 * than `revocationMaxStaleness`; when it is not, checks of high-capability actions are denied.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRemoteJWKSet } from 'jose';
import { WardenError } from '@warden/core';
import {
  createDelegationVerifier,
  createExternalActorVerifier,
  isExternalToken,
  type ExternalActorVerifier,
  type ExternalIssuer,
  generateDelegationKey,
  loadDelegationKeys,
  RevocationSet,
  type DelegationKeyRing,
  type DelegationPrivateJwk,
  type DelegationStore,
  type DelegationVerifier,
  type Revocation,
  type RevocationRequest,
} from '@warden/delegation';
import { createSqlDelegationStore, ensureDelegationKeys, type SqlDb } from '@warden/persistence';
import type { DelegationConfig } from '../config/broker-config.js';
import { closeRedis, codeOf, REDIS_OPTIONS } from '../redis-connections.js';

const CHANNEL = 'warden:revocations';
const PG_CHANNEL = 'warden_revocations';
const PAGE = 10_000;

/** Options of {@link DelegationRuntime.start}. */
export interface DelegationRuntimeOptions {
  readonly config: DelegationConfig;
  readonly db: SqlDb;
  readonly redisUrl: string | undefined;
  readonly onError: (message: string) => void;
  /** Clock in ms (default `Date.now`). */
  readonly now?: () => number;
}

/** Delegation keys, verifier, store and revocations of one broker instance. */
export class DelegationRuntime {
  readonly revocations = new RevocationSet();
  private lastSyncOk = 0;
  // INVARIANT: every entry up to here has been read in order (entries applied by `revoke` may be
  // newer, with older ones from other instances still unread, so they do not advance it).
  private syncedSeq = 0;
  private syncing: Promise<void> | undefined;
  private again = false;
  private readonly listeners = new Set<(r: Revocation) => void>();
  private readonly closers: Array<() => Promise<unknown>> = [];
  private subscriber: Redis | undefined;
  private publisher: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly externalIssuers: ReadonlyMap<string, ExternalIssuer>;
  /** Verifies RFC 8693 tokens of the configured external issuers. */
  readonly external: ExternalActorVerifier;

  private constructor(
    private readonly options: DelegationRuntimeOptions,
    readonly keys: DelegationKeyRing,
    readonly verifier: DelegationVerifier,
    readonly store: DelegationStore,
  ) {
    const issuers = options.config.externalIssuers.map(
      (e): ExternalIssuer => ({
        issuer: e.issuer,
        keys: createRemoteJWKSet(new URL(e.jwksUri), { timeoutDuration: 2000 }),
        algorithms: e.algorithms,
        ...(e.audience !== undefined ? { audience: e.audience } : {}),
      }),
    );
    this.externalIssuers = new Map(issuers.map((i) => [i.issuer, i]));
    this.external = createExternalActorVerifier(issuers);
  }

  /** True when `token` is an RFC 8693 token of a configured external issuer (not a Warden delegation). */
  isExternal(token: string): boolean {
    return this.externalIssuers.size > 0 && isExternalToken(token, this.externalIssuers);
  }

  /** Loads or creates the keys, reads every revocation and starts following new ones. */
  static async start(options: DelegationRuntimeOptions): Promise<DelegationRuntime> {
    const { config, db } = options;
    const jwks = config.keys !== undefined ? (config.keys as DelegationPrivateJwk[]) : await ensureDelegationKeys(db, () => generateDelegationKey(config.algorithm));
    const keys = await loadDelegationKeys(jwks, config.issuer, config.activeKid);
    const runtime = new DelegationRuntime(options, keys, createDelegationVerifier({ issuer: config.issuer, jwks: keys.jwks }), createSqlDelegationStore(db));
    try {
      await runtime.sync();
      await runtime.follow();
    } catch (err) {
      await runtime.close();
      throw err;
    }
    return runtime;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The deepest chain allowed for `action`. */
  depthLimit(action: string): number {
    return Math.min(this.options.config.maxDepth, this.options.config.maxDepthByAction[action] ?? Infinity);
  }

  /** True when `action` is denied while the revocation state is not fresh. */
  isHighCapability(action: string): boolean {
    return this.options.config.highCapabilityActions.includes(action);
  }

  /** True while this instance can be sure it knows every revocation. */
  isFresh(): boolean {
    if (this.subscriber !== undefined && this.subscriber.status === 'ready') return true;
    return this.now() - this.lastSyncOk <= this.options.config.revocationMaxStalenessMs;
  }

  /** A new delegation id. */
  newId(): string {
    return `dlg_${randomUUID()}`;
  }

  /** Records `request` durably, applies it here at once and tells every other instance. */
  async revoke(request: RevocationRequest): Promise<Revocation> {
    const entry = await this.store.revoke(request);
    this.apply([entry]);
    if (this.publisher !== undefined) {
      await this.publisher.publish(CHANNEL, String(entry.seq)).catch((err: unknown) => this.options.onError(`revocation publish failed (${codeOf(err)}); other instances will read it within ${this.options.config.revocationPollMs} ms`));
    } else {
      await this.options.db.query('select pg_notify($1, $2)', [PG_CHANNEL, String(entry.seq)]).catch((err: unknown) => this.options.onError(`revocation notify failed (${codeOf(err)})`));
    }
    return entry;
  }

  /** Calls `listener` with every revocation this instance learns from now on; returns an unsubscribe. */
  onRevocation(listener: (r: Revocation) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private apply(entries: readonly Revocation[]): void {
    for (const r of this.revocations.add(entries)) {
      for (const l of this.listeners) {
        try {
          l(r);
        } catch (err) {
          this.options.onError(`revocation listener failed: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Reads every revocation after the last one read in order; concurrent calls share one read. */
  sync(): Promise<void> {
    if (this.syncing !== undefined) {
      this.again = true;
      return this.syncing;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const started = this.now();
        for (;;) {
          const page = await this.store.revocationsAfter(this.syncedSeq, PAGE);
          this.apply(page);
          const last = page[page.length - 1];
          if (last !== undefined) this.syncedSeq = last.seq;
          if (page.length < PAGE) break;
        }
        this.lastSyncOk = started;
      } while (this.again);
    };
    this.syncing = run().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async follow(): Promise<void> {
    const { config, redisUrl, onError } = this.options;
    const poll = (): void => {
      this.sync().catch((err: unknown) => onError(`revocation poll failed (${codeOf(err)})`));
    };
    this.timer = setInterval(poll, config.revocationPollMs);
    this.timer.unref();
    if (redisUrl !== undefined) {
      const publisher = new Redis(redisUrl, REDIS_OPTIONS);
      const subscriber = new Redis(redisUrl, { ...REDIS_OPTIONS, enableOfflineQueue: true });
      for (const c of [publisher, subscriber]) c.on('error', (err) => onError(`REDIS_URL: revocation feed: redis error (${codeOf(err)})`));
      this.publisher = publisher;
      this.subscriber = subscriber;
      this.closers.push(() => closeRedis(publisher), () => closeRedis(subscriber));
      subscriber.on('message', (channel: string) => {
        if (channel === CHANNEL) poll();
      });
      // A message published while this subscriber was away is lost: catch up on every (re)connect.
      subscriber.on('ready', poll);
      await subscriber.subscribe(CHANNEL).catch((err: unknown) => onError(`revocation subscribe failed (${codeOf(err)})`));
    } else {
      const unlisten = await this.options.db.listen(PG_CHANNEL, poll);
      this.closers.push(unlisten);
    }
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await Promise.all(this.closers.splice(0).map((c) => c().catch(() => undefined)));
    await this.syncing?.catch(() => undefined);
  }
}

/** A start-up failure as a `WardenError` (coded ones as they are, others as a `delegation` config error). */
export function delegationConfigError(err: unknown): WardenError {
  return err instanceof WardenError ? err : new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`delegation\`: ${(err as Error).message}`, { cause: err });
}
