/**
 * The policy set in force, as ONE immutable snapshot that a reload replaces whole. Every request
 * reads `holder.current` once and takes the engine, the version it reports and the planner's
 * `readsRequestExtras` from that same snapshot, so a decision's engine and its `policyVersion`
 * always belong together, whatever reload happens meanwhile.
 *
 * INVARIANT: a snapshot is never modified after it is built (its fields are readonly and the
 * compiled set is not touched by the engine). The swap is a single reference assignment: in one
 * JavaScript thread no request can observe half of it, and a request that started before it
 * finishes with the snapshot it read.
 */
import type { CompiledPolicySet, Engine } from '@warden/decision';

/** Where the active policy set came from. */
export type PolicySourceKind = 'disk' | 'git';

/** One compiled policy set, as requests use it and admins see it. */
export interface ActivePolicies {
  readonly engine: Engine;
  readonly policySet: CompiledPolicySet;
  /**
   * What decisions report as `policyVersion`: the content hash, plus `@<first 12 hex of the
   * commit>` when the set came from git (`sha256:0123456789abcdef@1a2b3c4d5e6f`).
   */
  readonly version: string;
  /** `sha256:<16 hex>` over every policy and schema file (path and text). */
  readonly contentHash: string;
  /** The full git commit the set was read at (git source only). */
  readonly commit: string | undefined;
  /** True when some policy reads `request.context` or `request.delegation` (tool discovery needs it). */
  readonly readsRequestExtras: boolean;
  /** The resource kinds the set has rules for. */
  readonly kinds: readonly string[];
  /** How many policy files the set has. */
  readonly policies: number;
  /** When this set was put in force (epoch ms). */
  readonly loadedAt: number;
  readonly source: PolicySourceKind;
}

/** What request paths hold: read `current` once per request and use only that snapshot. */
export interface PolicySnapshots {
  readonly current: ActivePolicies;
}

/** The version string of a set (see {@link ActivePolicies.version}). */
export function policyVersionOf(contentHash: string, commit: string | undefined): string {
  return commit === undefined ? contentHash : `${contentHash}@${commit.slice(0, 12)}`;
}

/** The literal resource kinds `policySet` has rules for. */
export function resourceKindsOf(policySet: CompiledPolicySet): string[] {
  const kinds = new Set<string>();
  for (const scopes of policySet.rows.values()) for (const rows of scopes.values()) for (const k of rows.resourceKinds) kinds.add(k);
  return [...kinds].sort();
}

/**
 * Holds the active snapshot. Reading is one property access (no allocation); only the reloader
 * calls {@link PolicyHolder.replace}.
 *
 * @example
 * const holder = new PolicyHolder(first);
 * const p = holder.current;               // once per request
 * p.engine.check(inputs); answer.policyVersion = p.version;
 */
export class PolicyHolder implements PolicySnapshots {
  #current: ActivePolicies;

  constructor(initial: ActivePolicies) {
    this.#current = initial;
  }

  get current(): ActivePolicies {
    return this.#current;
  }

  /** Puts `next` in force (atomically: one assignment) and returns the set it replaced. */
  replace(next: ActivePolicies): ActivePolicies {
    const previous = this.#current;
    this.#current = next;
    return previous;
  }
}
