import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { createInputMask, maskedJson, maskInput, MASKED } from './mask.js';

/**
 * Masking as first written, one path at a time over the result of the last: the reference that
 * the compiled tree (all paths in one walk) is checked against.
 */
function maskOnePathAtATime(input: JsonValue, paths: readonly string[][]): JsonValue {
  const maskPath = (v: JsonValue, path: readonly string[], i: number): JsonValue => {
    if (v === null || typeof v !== 'object') return v;
    const key = path[i] as string;
    const last = i === path.length - 1;
    if (Array.isArray(v)) {
      if (key !== '*' && !/^\d+$/.test(key)) return v;
      return v.map((e, k) => (key === '*' || String(k) === key ? (last ? MASKED : maskPath(e, path, i + 1)) : e));
    }
    const out = { ...v };
    for (const k of key === '*' ? Object.keys(v) : Object.hasOwn(v, key) ? [key] : []) out[k] = last ? MASKED : maskPath(v[k] as JsonValue, path, i + 1);
    return out;
  };
  return paths.reduce((v, p) => maskPath(v, p, 0), input);
}

const KEYS = ['a', 'b', '0', '1', '01', 'token', 'x'];
const key = fc.constantFrom(...KEYS);
const value: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 3 }), fc.integer(), fc.constant(null), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 4 })),
})).v;
const path = fc.array(fc.constantFrom(...KEYS, '*'), { minLength: 1, maxLength: 3 }).map((p) => p.join('.'));

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

describe('the compiled mask', () => {
  it('masks what the paths, applied one at a time, mask: overlapping paths, `*` and array indexes', () => {
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 4 }), fc.array(path, { maxLength: 4 }), (input, extra) => {
        const mask = createInputMask(extra);
        const before = structuredClone(input);
        expect(maskInput(input, mask)).toEqual(maskOnePathAtATime(input, mask.paths as string[][]));
        expect(input).toEqual(before);
      }),
      { numRuns: 3_000 },
    );
  });

  it('writes as JSON text exactly what JSON.stringify of the masked copy is', () => {
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 4 }), fc.array(path, { maxLength: 4 }), (input, extra) => {
        const mask = createInputMask(extra);
        expect(maskedJson(input, mask.root)).toBe(JSON.stringify(maskInput(input, mask)));
      }),
      { numRuns: 3_000 },
    );
  });

  it('masks a path whose value is absent from neither side, and keeps undefined members out of the text', () => {
    const mask = createInputMask(['context.gone', 'context.list.*', 'context.other.*.x']);
    const input = { context: { gone: undefined, kept: undefined, list: [1, undefined], other: [undefined, { x: 1 }] } } as unknown as Record<string, JsonValue>;
    expect(maskedJson(input, mask.root)).toBe(JSON.stringify(maskInput(input, mask)));
    expect(maskedJson(input, mask.root)).toBe('{"context":{"gone":"[masked]","list":["[masked]","[masked]"],"other":[null,{"x":"[masked]"}]}}');
  });
});

