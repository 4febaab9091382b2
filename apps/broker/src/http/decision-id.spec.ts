import { describe, expect, it } from 'vitest';
import { newDecisionId } from './decision-id.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe(newDecisionId.name, () => {
  it('makes version 4 UUIDs in the canonical lowercase form', () => {
    for (let i = 0; i < 1000; i++) expect(newDecisionId()).toMatch(UUID_V4);
  });

  it('never repeats, across refills of its random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(newDecisionId());
    expect(seen.size).toBe(5000);
  });

  it('returns independent strings (the scratch buffer is reused)', () => {
    const a = newDecisionId();
    const copy = `${a}`;
    newDecisionId();
    expect(a).toBe(copy);
  });
});
