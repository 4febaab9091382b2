/**
 * Warden's own policies for its admin API, compiled once at boot with the same engine as every
 * other decision. Resource kinds `warden:resolver`, `warden:revocation`, `warden:audit` and
 * `warden:policy`; roles `admin` / `warden-admin` may do anything, `warden-viewer` may list and read
 * resolvers, revocations and the policy set's status (not reload it), `warden-auditor` may list the
 * decision log.
 */
import { WardenError } from '@warden/core';
import { compilePolicies, createEngine, type Engine } from '@warden/decision';

const RESOLVER_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: "warden:resolver"
  version: default
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin, warden-admin]
    - actions: [list, read]
      effect: EFFECT_ALLOW
      roles: [warden-viewer]
`;

const REVOCATION_POLICY = RESOLVER_POLICY.replace('"warden:resolver"', '"warden:revocation"');

// The policy set's status (version, refusals with file positions) is for operators: viewers read
// it; forcing a reload is an admin's.
const POLICY_POLICY = RESOLVER_POLICY.replace('"warden:resolver"', '"warden:policy"');

// The decision log holds inputs and attributes: readable by admins and auditors, not by viewers.
const AUDIT_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: "warden:audit"
  version: default
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin, warden-admin]
    - actions: [list]
      effect: EFFECT_ALLOW
      roles: [warden-auditor]
`;

/** The engine deciding admin calls. */
export function createAdminEngine(): Engine {
  const { policySet, errors } = compilePolicies([
    { path: 'warden_resolver.yaml', text: RESOLVER_POLICY },
    { path: 'warden_revocation.yaml', text: REVOCATION_POLICY },
    { path: 'warden_audit.yaml', text: AUDIT_POLICY },
    { path: 'warden_policy.yaml', text: POLICY_POLICY },
  ]);
  if (policySet === undefined || errors.length > 0) throw new WardenError('ERR_INTERNAL', `BUG: admin policies do not compile: ${errors.map((e) => e.message).join('; ')}`);
  return createEngine(policySet);
}
