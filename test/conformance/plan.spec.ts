/**
 * Replays Cerbos's query-planner suites (query_planner/suite/**, the lenient ones with lenient
 * scope search) against the planner: globals environment=test, `now` pinned as the conformance
 * README says, auxData.jwt {customInt: 42}, operands compared order-insensitively. A case the
 * planner reports as unsupported counts as not passed (it answers no plan rather than a wrong
 * one); every case it does answer must be right, at least 95% must pass, and the rate is printed.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compilePolicies, DEFAULT_ENGINE_CONFIG, type EngineConfig } from '../../libs/decision/src/index.js';
import { planResources } from '../../libs/decision/src/plan/plan-resources.js';
import { PlanUnsupported } from '../../libs/decision/src/plan/residual.js';
import { celOfOperand } from '../../libs/decision/src/plan/filter-eval.js';
import type { PlanOperand } from '../../libs/decision/src/plan/plan-filter.js';
import { compileCelExpression } from '../../libs/decision/src/cel/index.js';
import { conformanceDir, conformancePresent, readPolicyDir } from '../support/conformance.js';

const NOW = new Date('2024-01-16T10:18:27.395+13:00');
const present = conformancePresent('query_planner');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : f.endsWith('.yaml') ? [join(dir, f)] : []));
}

/** Operands sorted by their JSON, recursively: the suites compare order-insensitively. */
function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  if ('expression' in o) {
    const e = o['expression'] as { operator: string; operands: unknown[] };
    return { expression: { operator: e.operator, operands: (e.operands ?? []).map(canon).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) } };
  }
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canon(o[k])]));
}

const suite = present ? describe : describe.skip;

// A skipped suite's body still runs to collect its tests: without the folder it must read nothing.
suite(present ? 'query planner conformance' : `query planner conformance: SKIPPED, ${conformanceDir} not found`, () => {
  if (!present) {
    it.skip(`skipped: conformance folder ${conformanceDir} is absent (set WARDEN_CONFORMANCE_DIR)`, () => {});
    return;
  }
  const { files, schemas } = readPolicyDir(join(conformanceDir, 'query_planner', 'policies'));
  const { policySet } = compilePolicies(files, { schemas });
  const config: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, globals: { environment: 'test' } };
  const cases: Array<{ name: string; run: () => 'pass' | 'unsupported' | string }> = [];
  const wants: unknown[] = [];
  for (const file of walk(join(conformanceDir, 'query_planner', 'suite'))) {
    const caseConfig = file.includes('lenient_scope_search') ? { ...config, lenientScopeSearch: true } : config;
    const suite = parse(readFileSync(file, 'utf8'), { merge: true }) as { principal: { id: string; roles: string[]; attr?: Record<string, unknown>; policyVersion?: string; scope?: string }; tests: Array<{ action?: string; actions?: string[]; resource: { kind: string; policyVersion?: string; scope?: string; attr?: Record<string, unknown> }; want: unknown }> };
    suite.tests.forEach((t, i) => {
      wants.push(t.want);
      cases.push({
        name: `${file.split('/suite/')[1]} #${i} ${t.action ?? (t.actions ?? []).join('+')}`,
        run: () => {
          try {
            const got = planResources(policySet!, caseConfig, { principal: { id: suite.principal.id, roles: suite.principal.roles, attr: (suite.principal.attr ?? {}) as never, ...(suite.principal.scope ? { scope: suite.principal.scope } : {}) }, resource: { kind: t.resource.kind, ...(t.resource.policyVersion ? { policyVersion: t.resource.policyVersion } : {}), ...(t.resource.scope ? { scope: t.resource.scope } : {}), ...(t.resource.attr ? { attr: t.resource.attr as never } : {}) }, actions: t.actions ?? [t.action as string], auxData: { jwt: { customInt: 42 } } }, NOW);
            const ok = JSON.stringify(canon(got)) === JSON.stringify(canon(t.want));
            return ok ? 'pass' : `got ${JSON.stringify(got)}\n    want ${JSON.stringify(t.want)}`;
          } catch (err) {
            if (err instanceof PlanUnsupported) return `unsupported: ${err.message}`;
            return `error ${(err as Error).stack?.split('\n').slice(0, 4).join(' | ') ?? String(err)}`;
          }
        },
      });
    });
  }

  it('answers every supported case right, and reports the pass rate', () => {
    const results = cases.map((c) => ({ name: c.name, r: c.run() }));
    const passed = results.filter((x) => x.r === 'pass').length;
    const unsupported = results.filter((x) => x.r.startsWith('unsupported')).length;
    const wrong = results.filter((x) => x.r !== 'pass' && !x.r.startsWith('unsupported'));
    const reasons = new Map<string, number>();
    for (const x of results) if (x.r.startsWith('unsupported')) reasons.set(x.r, (reasons.get(x.r) ?? 0) + 1);
    console.log(`[planner] unsupported: ${JSON.stringify([...reasons].sort((a, b) => b[1] - a[1]))}`);
    console.log(`[planner] ${passed}/${results.length} passed, ${unsupported} unsupported, ${wrong.length} wrong`);
    if (process.env['PLAN_VERBOSE']) for (const x of results) if (x.r.startsWith('unsupported')) console.log(`[planner] ${x.name}: ${x.r}`);
    for (const w of wrong) console.log(`[planner] WRONG ${w.name}: ${w.r.slice(0, 1500)}`);
    expect(results.length).toBeGreaterThan(100);
    expect(passed / results.length).toBeGreaterThanOrEqual(0.95);
    expect(wrong.map((w) => w.name)).toEqual([]);
  });

  it('turns every condition Cerbos plans back into CEL the engine compiles', () => {
    const conditions = wants.filter((w): w is { condition: PlanOperand } => typeof w === 'object' && w !== null && 'condition' in w);
    expect(conditions.length).toBeGreaterThan(50);
    const failures = conditions.flatMap((w) => {
      const source = celOfOperand(w.condition);
      try {
        compileCelExpression(source);
        return [];
      } catch (err) {
        return [`${source}: ${(err as Error).message}`];
      }
    });
    expect(failures).toEqual([]);
  });
});
