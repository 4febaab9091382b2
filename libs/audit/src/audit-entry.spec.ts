import { describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { createInputMask, maskInput, MASKED } from './audit-entry.js';

describe('maskInput', () => {
  it('never keeps credential values: subject, agent and delegation tokens', () => {
    const input: Record<string, JsonValue> = { subject: { token: 'eyJ.secret' }, agent: { id: 'bot', token: 'agent-secret' }, delegation: 'eyJ.deleg', actions: ['invoke'] };
    const out = maskInput(input, createInputMask());
    expect(out).toEqual({ subject: { token: MASKED }, agent: { id: 'bot', token: MASKED }, delegation: MASKED, actions: ['invoke'] });
    expect(JSON.stringify(out)).not.toMatch(/secret|eyJ/);
  });

  it('masks configured paths, with `*` over object keys and array elements, without touching the input', () => {
    const input: Record<string, JsonValue> = {
      context: { prompt: 'my ssn is 123', model: 'gpt' },
      resources: [
        { kind: 'doc', id: 'a', attr: { ssn: '123', owner: 'alice' } },
        { kind: 'doc', id: 'b', attr: { owner: 'bob' } },
      ],
    };
    const before = structuredClone(input);
    const out = maskInput(input, createInputMask(['context.prompt', 'resources.*.attr.ssn']));
    expect(out).toEqual({
      context: { prompt: MASKED, model: 'gpt' },
      resources: [
        { kind: 'doc', id: 'a', attr: { ssn: MASKED, owner: 'alice' } },
        { kind: 'doc', id: 'b', attr: { owner: 'bob' } },
      ],
    });
    expect(input).toEqual(before);
    // Untouched branches are shared, not copied.
    expect((out['resources'] as JsonValue[])[1]).toBe((input['resources'] as JsonValue[])[1]);
  });

  it('returns the input itself when nothing is masked', () => {
    const input: Record<string, JsonValue> = { actions: ['read'], context: { a: 1 } };
    expect(maskInput(input, createInputMask(['context.b']))).toBe(input);
  });
});
