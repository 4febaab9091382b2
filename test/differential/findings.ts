/**
 * Minimal repros of the Cerbos/Warden differences the differential test found (see FINDINGS.md).
 * Each is replayed by findings.spec.ts against a fresh Cerbos server and Warden; the spec fails
 * while the difference exists.
 */
import type { CaseRequest } from './run-both.js';

export interface Finding {
  id: string;
  title: string;
  kind: 'decision' | 'load';
  files: Record<string, string>;
  request: CaseRequest;
}

const H = 'apiVersion: api.cerbos.dev/v1\n';
const docRp = (version: string, scope?: string, mode?: string) =>
  H +
  `resourcePolicy:\n  resource: doc\n  version: ${version}\n` +
  (scope ? `  scope: ${scope}\n` : '') +
  (mode ? `  scopePermissions: ${mode}\n` : '') +
  '  rules: [{actions: [view], effect: EFFECT_ALLOW, roles: [user]}]\n';
const alicePp = (scope?: string, mode?: string) =>
  H +
  'principalPolicy:\n  principal: alice\n  version: default\n' +
  (scope ? `  scope: ${scope}\n` : '') +
  (mode ? `  scopePermissions: ${mode}\n` : '') +
  '  rules: [{resource: doc, actions: [{action: view, effect: EFFECT_ALLOW}]}]\n';

export const FINDINGS: Finding[] = [
  {
    id: 'F1',
    title: 'principal policy applied although resource.policyVersion differs from the principal policy version',
    kind: 'decision',
    files: {
      'principal_policies/alice.yaml':
        H + 'principalPolicy:\n  principal: alice\n  version: v2\n  rules:\n    - resource: doc\n      actions:\n        - action: view\n          effect: EFFECT_ALLOW\n',
      'resource_policies/doc.yaml': H + 'resourcePolicy:\n  resource: doc\n  version: default\n  rules:\n    - actions: [edit]\n      effect: EFFECT_ALLOW\n      roles: [user]\n',
    },
    request: {
      principal: { id: 'alice', roles: ['user'], attr: {}, policyVersion: 'v2' },
      resources: [
        { resource: { kind: 'doc', id: 'no-version', attr: {} }, actions: ['view'] },
        { resource: { kind: 'doc', id: 'v9', attr: {}, policyVersion: 'v9' }, actions: ['view'] },
        { resource: { kind: 'doc', id: 'v2', attr: {}, policyVersion: 'v2' }, actions: ['view'] },
      ],
    },
  },
  {
    id: 'F2',
    title: 'output src of an unnamed role-policy rule',
    kind: 'decision',
    files: {
      'role_policies/mgr.yaml':
        H + 'rolePolicy:\n  role: mgr\n  version: default\n  rules:\n    - resource: doc\n      allowActions: [view]\n      output:\n        when:\n          ruleActivated: P.id\n',
      'resource_policies/doc.yaml': H + 'resourcePolicy:\n  resource: doc\n  version: default\n  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [mgr]\n',
    },
    request: { principal: { id: 'alice', roles: ['mgr'], attr: {} }, resources: [{ resource: { kind: 'doc', id: '1', attr: {} }, actions: ['view'] }] },
  },
  {
    id: 'F3',
    title: 'scopePermissions conflict in one scope (Cerbos refuses to load, Warden accepts)',
    kind: 'load',
    files: {
      'resource_policies/doc.yaml': docRp('default'),
      'resource_policies/doc_acme.yaml': docRp('default', 'acme', 'SCOPE_PERMISSIONS_OVERRIDE_PARENT'),
      'resource_policies/doc_v2.yaml': docRp('v2'),
      'resource_policies/doc_v2_acme.yaml': docRp('v2', 'acme', 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS'),
      'principal_policies/alice.yaml': alicePp(),
      'principal_policies/alice_acme.yaml': alicePp('acme', 'SCOPE_PERMISSIONS_OVERRIDE_PARENT'),
    },
    request: { principal: { id: 'alice', roles: ['user'], attr: {} }, resources: [{ resource: { kind: 'doc', id: '1', attr: {}, scope: 'acme' }, actions: ['view'] }] },
  },
];
