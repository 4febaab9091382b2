/**
 * Revocation. What can be revoked: a delegation (its id; every descendant carries its ancestors'
 * ids, so they fall with it), a subject's session (every chain minted from it), an agent (every
 * check it makes and every chain it appears in) and a subject (every check made for it). Entries
 * are stored durably and numbered (`seq`) by the store; every instance keeps a
 * {@link RevocationSet} and applies new entries in order.
 *
 * Freshness: an instance that cannot be sure it has every entry (its feed is down past a bound)
 * says so, and the broker then fails closed for high-capability actions.
 */
import type { DelegationChain } from './delegation-chain.js';

/** What a revocation names. */
export type RevocationTarget = 'delegation' | 'session' | 'agent' | 'subject';

/** The revocation targets, for validation. */
export const REVOCATION_TARGETS: readonly RevocationTarget[] = ['delegation', 'session', 'agent', 'subject'];

/** One durable revocation. */
export interface Revocation {
  /** Store order, from 1. */
  readonly seq: number;
  readonly target: RevocationTarget;
  readonly id: string;
  /** ISO time. */
  readonly at: string;
  /** Who revoked (an admin, a subject, an agent). */
  readonly by: string;
  readonly reason?: string;
}

/** A revocation to record. */
export type RevocationRequest = Omit<Revocation, 'seq' | 'at'>;

/** A minted delegation, as stored (for revocation rights and the audit). */
export interface DelegationRecord {
  readonly id: string;
  readonly subject: string;
  readonly session?: string;
  /** Who delegated: the subject, or the agent holding the parent. */
  readonly from: string;
  readonly to: string;
  readonly parentId?: string;
  /** Ancestors' ids, root first. */
  readonly ancestors: readonly string[];
  readonly grants: unknown;
  readonly task?: string;
  /** ISO times. */
  readonly issuedAt: string;
  readonly expiresAt: string;
}

/**
 * Durable delegations and revocations, shared by every instance (`libs/persistence` implements it).
 * `revoke` is idempotent per (target, id): revoking twice answers the first entry.
 */
export interface DelegationStore {
  record(delegation: DelegationRecord): Promise<void>;
  get(id: string): Promise<DelegationRecord | undefined>;
  revoke(request: RevocationRequest): Promise<Revocation>;
  /** Entries with `seq` above `after`, in order (at most `limit`). */
  revocationsAfter(after: number, limit?: number): Promise<readonly Revocation[]>;
}

/** Where a check's identities meet revocation. */
export interface RevocationSubject {
  readonly subject?: string;
  /** The subject's session (e.g. the `sid` of its token), when known. */
  readonly session?: string;
  readonly agent?: string;
  readonly chain?: DelegationChain;
}

/** The revocations an instance knows, indexed for checks. */
export class RevocationSet {
  private readonly byTarget: Record<RevocationTarget, Map<string, Revocation>> = {
    delegation: new Map(),
    session: new Map(),
    agent: new Map(),
    subject: new Map(),
  };
  private last = 0;
  private count = 0;

  /** The highest `seq` applied. */
  get seq(): number {
    return this.last;
  }

  /** The number of entries. */
  get size(): number {
    return this.count;
  }

  /** Applies `entries` (any order, duplicates ignored); answers those that were new. */
  add(entries: readonly Revocation[]): Revocation[] {
    const added: Revocation[] = [];
    for (const r of entries) {
      const map = this.byTarget[r.target];
      if (!map.has(r.id)) {
        map.set(r.id, r);
        added.push(r);
        this.count += 1;
      }
      if (r.seq > this.last) this.last = r.seq;
    }
    return added;
  }

  /** The revocation that denies a check with these identities, if any. */
  find(who: RevocationSubject): Revocation | undefined {
    const { delegation, session, agent, subject } = this.byTarget;
    if (who.subject !== undefined) {
      const r = subject.get(who.subject);
      if (r !== undefined) return r;
    }
    if (who.session !== undefined) {
      const r = session.get(who.session);
      if (r !== undefined) return r;
    }
    if (who.agent !== undefined) {
      const r = agent.get(who.agent);
      if (r !== undefined) return r;
    }
    const chain = who.chain;
    if (chain === undefined) return undefined;
    const s = subject.get(chain.subject) ?? (chain.session !== undefined ? session.get(chain.session) : undefined);
    if (s !== undefined) return s;
    for (const hop of chain.hops) {
      const r = delegation.get(hop.id) ?? agent.get(hop.to) ?? agent.get(hop.from);
      if (r !== undefined) return r;
    }
    return undefined;
  }
}
