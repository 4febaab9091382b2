import { describe, expect, it } from 'vitest';
import { BoundedMemo } from './bounded-memo.js';

describe(BoundedMemo.name, () => {
  it('computes once per key and returns the stored value afterwards', () => {
    const sut = new BoundedMemo<string>(10);
    let calls = 0;
    const compute = () => `v${++calls}`;
    expect(sut.get3('a', 'b', 'c', compute)).toBe('v1');
    expect(sut.get3('a', 'b', 'c', compute)).toBe('v1');
    expect(sut.get3('a', 'b', 'd', compute)).toBe('v2');
    expect(calls).toBe(2);
  });

  it('never holds more than its limit: it starts over when full', () => {
    const sut = new BoundedMemo<number>(3);
    let calls = 0;
    for (let i = 0; i < 4; i++) sut.get2(`k${i}`, 'x', () => ++calls);
    expect(calls).toBe(4);
    // the table was cleared when the 4th entry arrived: the first key is computed again
    sut.get2('k0', 'x', () => ++calls);
    expect(calls).toBe(5);
    // the 4th entry survived the reset
    sut.get2('k3', 'x', () => ++calls);
    expect(calls).toBe(5);
  });
});
