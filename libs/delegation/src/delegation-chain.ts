/**
 * A delegation chain: the human (or service) at its root and one hop per delegation, root first.
 * Each hop names who delegated (`from`: the human for the first hop, else the previous hop's
 * agent), the agent it delegated to (`to`), its grants, whether onward delegation is allowed, the
 * deepest the chain may go through it, its lifetime and a task label.
 *
 * `checkChain` is what every check re-verifies (tokens carry the whole chain): every hop alive,
 * linked to its parent, inside its parent's grants, allowed by its parent to exist, and the depth
 * within every hop's limit. `extendChain` is the minting side: it builds the next hop and refuses
 * anything `checkChain` would reject, with the same reasons.
 */
import { DelegationError, type DelegationReason } from './delegation-error.js';
import { describeGrant, scopeAllows, uncoveredGrant, type Grant, type ScopedRequest } from './grants.js';

/** One delegation. Times are seconds since the epoch (as in JWTs). */
export interface Hop {
  /** The delegation id. */
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly grants: readonly Grant[];
  readonly canSubDelegate: boolean;
  /** Deepest the chain may reach through this hop (the number of hops, this one included). */
  readonly maxDepth: number;
  readonly iat: number;
  readonly exp: number;
  readonly task?: string;
}

/** A whole chain. */
export interface DelegationChain {
  /** The human or service on whose behalf every agent of the chain acts. */
  readonly subject: string;
  /** The subject's session (revoking it revokes the chain), when the parent credential named one. */
  readonly session?: string;
  /** Root first; never empty. */
  readonly hops: readonly Hop[];
}

/** The last hop: the delegation the acting agent holds. */
export function lastHop(chain: DelegationChain): Hop {
  return chain.hops[chain.hops.length - 1] as Hop;
}

/** The agent acting at the end of the chain. */
export function actorOf(chain: DelegationChain): string {
  return lastHop(chain).to;
}

/** Every delegation id of the chain, root first (the last is the chain's own id). */
export function delegationIds(chain: DelegationChain): string[] {
  return chain.hops.map((h) => h.id);
}

/** True when the acting agent's grants cover `request`. */
export function chainAllows(chain: DelegationChain, request: ScopedRequest): boolean {
  return scopeAllows(lastHop(chain).grants, request);
}

/** Clock skew tolerated on `iat`, in seconds (hosts minting and checking may differ slightly). */
const IAT_SKEW_S = 30;

function invalid(reason: DelegationReason, message: string): DelegationError {
  return new DelegationError('ERR_DELEGATION_INVALID', reason, message);
}

/**
 * Throws `ERR_DELEGATION_INVALID` (with the reason) unless every hop of `chain` holds at `nowMs`.
 * @example checkChain(chain, Date.now());
 */
export function checkChain(chain: DelegationChain, nowMs: number): void {
  const now = nowMs / 1000;
  const hops = chain.hops;
  if (hops.length === 0) throw invalid('delegation_chain_broken', 'the delegation chain is empty');
  const seen = new Set<string>();
  for (let i = 0; i < hops.length; i++) {
    const hop = hops[i] as Hop;
    const name = `delegation \`${hop.id}\``;
    if (seen.has(hop.id)) throw invalid('delegation_chain_broken', `${name} appears twice in its chain`);
    seen.add(hop.id);
    if (!(hop.exp > now)) throw invalid('delegation_expired', `${name} (to \`${hop.to}\`) has expired`);
    if (hop.iat > now + IAT_SKEW_S) throw invalid('delegation_invalid', `${name} is issued in the future`);
    if (hops.length > hop.maxDepth) throw invalid('delegation_depth_exceeded', `${name} allows a chain of at most ${hop.maxDepth} delegations; this one has ${hops.length}`);
    if (i === 0) {
      if (hop.from !== chain.subject) throw invalid('delegation_chain_broken', `${name} is not delegated by the chain's subject`);
      continue;
    }
    const parent = hops[i - 1] as Hop;
    if (hop.from !== parent.to) throw invalid('delegation_chain_broken', `${name} is delegated by \`${hop.from}\`, not by \`${parent.to}\` who holds its parent`);
    if (!parent.canSubDelegate) throw invalid('delegation_subdelegation_forbidden', `delegation \`${parent.id}\` does not allow onward delegation`);
    if (hop.maxDepth > parent.maxDepth) throw invalid('delegation_depth_exceeded', `${name} raises the depth limit of its parent`);
    const wider = uncoveredGrant(parent.grants, hop.grants);
    if (wider !== undefined) throw invalid('delegation_scope_exceeded', `${name} grants ${describeGrant(wider)}, which its parent does not`);
  }
}

/** What a new delegation asks for. */
export interface HopRequest {
  readonly id: string;
  readonly to: string;
  readonly grants: readonly Grant[];
  readonly canSubDelegate: boolean;
  readonly maxDepth: number;
  readonly ttlSeconds: number;
  readonly task?: string;
  /** The policy's depth limit for what is delegated (absent: none beyond the hops' own). */
  readonly depthLimit?: number;
}

/** The credential a delegation is minted from: the subject itself, or a chain the caller holds. */
export type DelegationParent = { readonly subject: string; readonly session?: string } | { readonly chain: DelegationChain };

function refused(reason: DelegationReason, message: string): DelegationError {
  return new DelegationError('ERR_DELEGATION_REFUSED', reason, message);
}

/**
 * The chain `parent` extended with the delegation `request` asks for, at `nowMs`. Throws
 * `ERR_DELEGATION_REFUSED` with the reason when the parent does not allow it. Whether the subject
 * may do what is granted is the caller's question (it needs the engine).
 * @example const chain = extendChain({ subject: 'alice' }, { id, to: 'planner', grants, canSubDelegate: true, maxDepth: 3, ttlSeconds: 600 }, Date.now());
 */
export function extendChain(parent: DelegationParent, request: HopRequest, nowMs: number): DelegationChain {
  const iat = Math.floor(nowMs / 1000);
  if (!Number.isInteger(request.maxDepth) || request.maxDepth < 1) throw refused('delegation_depth_exceeded', '`maxDepth` must be a positive integer');
  if (!Number.isInteger(request.ttlSeconds) || request.ttlSeconds < 1) throw refused('delegation_invalid', '`ttlSeconds` must be a positive integer');
  if ('chain' in parent) {
    try {
      checkChain(parent.chain, nowMs);
    } catch (err) {
      if (err instanceof DelegationError) throw refused(err.reason, `the parent delegation is not valid: ${err.message}`);
      throw err;
    }
  }
  const prior = 'chain' in parent ? parent.chain.hops : [];
  const up = prior[prior.length - 1];
  const depth = prior.length + 1;
  if (up !== undefined) {
    if (!up.canSubDelegate) throw refused('delegation_subdelegation_forbidden', `delegation \`${up.id}\` does not allow onward delegation`);
    if (request.maxDepth > up.maxDepth) throw refused('delegation_depth_exceeded', `\`maxDepth\` ${request.maxDepth} exceeds the parent's ${up.maxDepth}`);
    const wider = uncoveredGrant(up.grants, request.grants);
    if (wider !== undefined) throw refused('delegation_scope_exceeded', `the parent delegation does not grant ${describeGrant(wider)}`);
    if (request.to === up.to) throw refused('delegation_chain_broken', 'an agent cannot delegate to itself');
  }
  if (depth > request.maxDepth) throw refused('delegation_depth_exceeded', `this delegation would be number ${depth} of its chain; \`maxDepth\` is ${request.maxDepth}`);
  if (request.depthLimit !== undefined && depth > request.depthLimit) throw refused('delegation_depth_exceeded', `policy allows at most ${request.depthLimit} delegations for this; this would be number ${depth}`);
  // At least the asked lifetime (JWT times are whole seconds), and never past the parent's.
  const exp = Math.min(Math.ceil(nowMs / 1000) + request.ttlSeconds, up?.exp ?? Infinity);
  const hop: Hop = {
    id: request.id,
    from: up?.to ?? (parent as { subject: string }).subject,
    to: request.to,
    grants: request.grants,
    canSubDelegate: request.canSubDelegate,
    maxDepth: request.maxDepth,
    iat,
    exp,
    ...(request.task !== undefined ? { task: request.task } : {}),
  };
  const base = 'chain' in parent ? parent.chain : { subject: parent.subject, ...(parent.session !== undefined ? { session: parent.session } : {}), hops: [] };
  const chain: DelegationChain = { subject: base.subject, ...(base.session !== undefined ? { session: base.session } : {}), hops: [...prior, hop] };
  try {
    checkChain(chain, nowMs);
  } catch (err) {
    if (err instanceof DelegationError) throw refused(err.reason, err.message);
    throw err;
  }
  return chain;
}
