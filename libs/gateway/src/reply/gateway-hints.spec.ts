import { describe, expect, it } from 'vitest';
import { gatewayHints } from './gateway-hints.js';

const headers = (outputs: { val?: unknown }[]) => Object.fromEntries(gatewayHints(outputs).hints.map((h) => [h.header, h.value]));

describe(gatewayHints.name, () => {
  it('maps the well-known outputs to their headers and typed values', () => {
    const sut = gatewayHints([{ val: { regions: ['eu-west-1', 'eu-central-1'], maxTokens: 1024, model: 'gpt-4o-mini', contentRestrictions: ['no-pii', 'no-code'] } }]);
    expect(sut.invalid).toEqual([]);
    expect(sut.hints).toEqual([
      { header: 'x-warden-allowed-regions', value: 'eu-west-1,eu-central-1', key: 'allowedRegions', typed: ['eu-west-1', 'eu-central-1'] },
      { header: 'x-warden-max-tokens', value: '1024', key: 'maxTokens', typed: 1024 },
      { header: 'x-warden-model', value: 'gpt-4o-mini', key: 'model', typed: 'gpt-4o-mini' },
      { header: 'x-warden-content-restrictions', value: 'no-pii,no-code', key: 'contentRestrictions', typed: ['no-pii', 'no-code'] },
    ]);
    expect(headers([{ val: { allowedRegions: 'eu-west-1' } }])).toEqual({ 'x-warden-allowed-regions': 'eu-west-1' });
  });

  it('keeps other keys generic, lower-cased; a later output wins for the same header', () => {
    expect(headers([{ val: { Tier: 'gold', max_tokens: 10, stream: false, tags: ['a', 'b'] } }, { val: { tier: 'silver' } }, { val: 'not an object' }, {}])).toEqual({
      'x-warden-tier': 'silver',
      'x-warden-max_tokens': '10',
      'x-warden-stream': 'false',
      'x-warden-tags': 'a,b',
    });
  });

  it('drops generic values and keys that could inject or impersonate a header', () => {
    expect(
      headers([
        {
          val: {
            bad: 'a\r\nx-injected: 1',
            nul: 'a\u0000b',
            long: 'x'.repeat(513),
            'decision-id': 'forged',
            'policy-version': 'forged',
            agent: 'someone',
            'max-tokens': 999999,
            'Allowed-Regions': 'us-east-1',
            'has space': 'x',
            nested: { a: 1 },
            mixed: ['a', 1],
            ok: 'fine',
          },
        },
      ]),
    ).toEqual({ 'x-warden-ok': 'fine' });
  });

  it('reports a well-known output it cannot carry (so the caller denies), and sends none of it', () => {
    for (const val of [{ maxTokens: '1024' }, { maxTokens: 0 }, { maxTokens: 1.5 }, { regions: [] }, { regions: ['eu,us'] }, { regions: ['eu\r\nx: 1'] }, { model: 'a b\n' }, { contentRestrictions: [1] }]) {
      const sut = gatewayHints([{ val }]);
      expect(sut.invalid).toEqual(Object.keys(val));
      expect(sut.hints).toEqual([]);
    }
    expect(gatewayHints([{ val: { maxTokens: 10 } }, { val: { maxTokens: -1 } }]).hints).toEqual([]);
  });
});
