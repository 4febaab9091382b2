import { describe, expect, it } from 'vitest';
import { denialStatus } from './denial-status.js';

describe(denialStatus.name, () => {
  it('answers 429 / RESOURCE_EXHAUSTED when a budget is used up', () => {
    expect(denialStatus(['budget_exhausted'])).toEqual({ http: 429, grpc: 8 });
    expect(denialStatus(['policy_denied', 'budget_exhausted'])).toEqual({ http: 429, grpc: 8 });
  });

  it('answers 401 / UNAUTHENTICATED for credential problems, before a budget', () => {
    for (const code of ['subject_unresolved', 'agent_unresolved', 'credentials_missing', 'token_expired', 'delegation_expired', 'delegation_signature']) {
      expect(denialStatus([code])).toEqual({ http: 401, grpc: 16 });
    }
    expect(denialStatus(['budget_exhausted', 'subject_unresolved'])).toEqual({ http: 401, grpc: 16 });
  });

  it('answers 403 / PERMISSION_DENIED for anything else, and for no reason at all', () => {
    expect(denialStatus(['policy_denied'])).toEqual({ http: 403, grpc: 7 });
    expect(denialStatus(['delegation_scope'])).toEqual({ http: 403, grpc: 7 });
    expect(denialStatus(['budget_exhausted_soon'])).toEqual({ http: 403, grpc: 7 });
    expect(denialStatus([])).toEqual({ http: 403, grpc: 7 });
  });
});
