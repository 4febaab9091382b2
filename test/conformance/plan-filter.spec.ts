/**
 * Replays Cerbos's query-planner filter cases (query_planner_filter/case_*.yaml): a raw plan filter
 * is normalised (constants folded, trivial branches removed, membership in literal containers
 * rewritten, shorthands expanded) and printed as `meta.filterDebug`; both must equal Cerbos's.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { filterDebug, normalizeFilter, type PlanFilter } from '../../libs/decision/src/plan/plan-filter.js';
import { conformanceDir } from '../support/conformance.js';

const dir = join(conformanceDir, 'query_planner_filter');
const present = existsSync(dir);
const cases = present ? readdirSync(dir).filter((f) => /^case_\d+\.yaml$/.test(f)).sort() : [];

describe.runIf(present)('query_planner_filter conformance', () => {
  it('has the cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(19);
  });
  it.each(cases)('%s', (file) => {
    const c = parse(readFileSync(join(dir, file), 'utf8')) as { description: string; input: PlanFilter; wantFilter: PlanFilter; wantString: string };
    const got = normalizeFilter(c.input);
    expect(got, c.description).toEqual(c.wantFilter);
    expect(filterDebug(got), c.description).toBe(c.wantString);
  });
});
