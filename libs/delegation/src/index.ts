/**
 * `@warden/delegation`: agents acting for people (DESIGN.md section 6). Grants and their
 * attenuation, delegation chains (checked again at every use), delegation tokens signed by Warden
 * (RFC 8693 `act` nesting, jose) and their signing keys. Pure but for the crypto: no I/O, no Nest.
 */
export { parseScope, grantCovers, uncoveredGrant, scopeAllows, describeGrant, cappedValue } from './grants.js';
export type { Grant, Scope, ScopedRequest } from './grants.js';
export { DelegationError, isDelegationError } from './delegation-error.js';
export type { DelegationReason } from './delegation-error.js';
export { checkChain, extendChain, lastHop, actorOf, delegationIds, chainAllows } from './delegation-chain.js';
export type { Hop, DelegationChain, HopRequest, DelegationParent } from './delegation-chain.js';
export { DELEGATION_TOKEN_TYPE, actClaim, signDelegation, createDelegationVerifier } from './delegation-token.js';
export type { DelegationAlg, DelegationSigner, ActClaim, DelegationVerifier, DelegationVerifierOptions } from './delegation-token.js';
export { generateDelegationKey, publicJwk, loadDelegationKeys } from './signing-keys.js';
export type { DelegationPrivateJwk, DelegationKeyRing } from './signing-keys.js';
export { RevocationSet, REVOCATION_TARGETS } from './revocations.js';
export type { Revocation, RevocationRequest, RevocationTarget, DelegationRecord, DelegationStore, RevocationSubject } from './revocations.js';
export { createExternalActorVerifier, isExternalToken } from './external-actors.js';
export type { ExternalActors, ExternalIssuer, ExternalActorVerifier } from './external-actors.js';
