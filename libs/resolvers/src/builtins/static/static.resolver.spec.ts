import { describe, expect, it } from 'vitest';
import { staticResolverFactory } from './static.resolver.js';

const ctx = { requestId: 'r', signal: new AbortController().signal };
const raw = { name: 'depts', kind: 'static', key: 'principal.id', data: { alice: { dept: 'sales' }, '42': 'answer' }, provides: { 'principal.attr.dept': 'result.dept' } };

describe('staticResolverFactory', () => {
  it('answers one entry per key, in order, undefined when absent', async () => {
    const sut = staticResolverFactory.create(staticResolverFactory.parseConfig(raw), { now: Date.now });
    expect(await sut.resolveMany(['bob', 'alice', 42, { x: 1 }], ctx)).toEqual([undefined, { dept: 'sales' }, 'answer', undefined]);
    expect(await sut.resolveMany([], ctx)).toEqual([]);
  });

  it('refuses a missing data map and unknown fields, naming the resolver and field', () => {
    const { data: _data, ...noData } = raw;
    expect(() => staticResolverFactory.parseConfig(noData)).toThrow('resolver `depts`: field `data`');
    expect(() => staticResolverFactory.parseConfig({ ...raw, data: [] })).toThrow('field `data`');
    expect(() => staticResolverFactory.parseConfig({ ...raw, query: 'x' })).toThrow('field `query`: unknown field');
  });
});
