import { describe, expect, it } from 'vitest';
import { jsonToStruct, refusal, refusalCode } from './ext-mcp-grpc.answer.js';

const r = (code: string) => ({ code, message: `internal detail of ${code}` });

describe('refusalCode', () => {
  it('maps policy, delegation, revocation and identity denials to PERMISSION_DENIED', () => {
    for (const code of ['policy_denied', 'delegation_out_of_scope', 'agent_revoked', 'subject_unresolved', 'token_invalid']) expect(refusalCode([r(code)])).toBe('PERMISSION_DENIED');
    expect(refusalCode([])).toBe('PERMISSION_DENIED');
  });

  it('maps only-budget denials to RESOURCE_EXHAUSTED, but a policy denial beside one stays PERMISSION_DENIED', () => {
    expect(refusalCode([r('budget_exhausted')])).toBe('RESOURCE_EXHAUSTED');
    expect(refusalCode([r('budget_exhausted'), r('budget_exhausted')])).toBe('RESOURCE_EXHAUSTED');
    expect(refusalCode([r('budget_exhausted'), r('policy_denied')])).toBe('PERMISSION_DENIED');
  });

  it('maps Warden-side failures to UNKNOWN whatever else was denied', () => {
    for (const code of ['resolver_failed', 'resolvers_unavailable', 'revocation_state_stale', 'internal']) expect(refusalCode([r('policy_denied'), r(code)])).toBe('UNKNOWN');
  });
});

describe('refusal', () => {
  it('names the kind of refusal and the reason code, never the internal message', () => {
    const msg = refusal([r('budget_exhausted')], 'call tool `gpt`', 'dec-1');
    expect(msg).toEqual({
      error: {
        code: 'RESOURCE_EXHAUSTED',
        reason: 'Warden denied this request (call tool `gpt`): the budget for this is exhausted',
        mcpError: jsonToStruct({ reason: 'budget_exhausted', decisionId: 'dec-1' }),
      },
    });
    const denied = refusal([r('budget_exhausted'), r('policy_denied')], 'call tool `x`') as { error: { reason: string } };
    expect(denied.error.reason).toBe('Warden denied this request (call tool `x`): the user or agent is not allowed to do this (with these arguments)');
    expect(JSON.stringify(denied)).not.toContain('internal detail');
  });
});
