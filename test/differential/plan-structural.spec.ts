/**
 * Structural agreement of plans with the real Cerbos 0.55 PDP on Cerbos's own query-planner
 * policies: every principal of the planner suites asks for every resource (kind, version, scope,
 * known attributes) of the suites and every action the policies name, one at a time and all of
 * them together (a fixed eighth of the 54,000 combinations by default; all with
 * WARDEN_PLAN_STRUCT_STRIDE=1); Warden's filter must equal Cerbos's (operands compared
 * order-insensitively, as the suites compare; and/or nesting and repeats may follow the PDP's map
 * order, see canonLoose). Cases whose plans read `now()` are left out (the two servers' clocks
 * differ). Skips when the conformance data is absent.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compilePolicies, createEngine, DEFAULT_ENGINE_CONFIG, filterDebug, type PlanFilter } from '../../libs/decision/src/index.js';
import { conformanceDir, conformancePresent, readPolicyDir } from '../support/conformance.js';
import { startCerbos, type CerbosServer } from '../support/cerbos-process.js';

const present = conformancePresent('query_planner');
const QP = join(conformanceDir, 'query_planner');
const CLAIMS = { customInt: 42 };
const STRIDE = Number(process.env['WARDEN_PLAN_STRUCT_STRIDE'] ?? 8);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : f.endsWith('.yaml') ? [join(dir, f)] : []));
}

/** Operands sorted by their JSON, recursively. */
function canon(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  if ('expression' in o) {
    const e = o['expression'] as { operator: string; operands?: unknown[] };
    return { expression: { operator: e.operator, operands: (e.operands ?? []).map(canon).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) } };
  }
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canon(o[k])]));
}

/**
 * The same, with nested `and`/`or` flattened and repeated operands kept once. Cerbos joins the
 * plans of a rule's derived roles in Go map order, which differs from one PDP process to the next
 * (`(or (or a b) a)` in one, `(or a b)` in another for the same request); such plans are equal up
 * to associativity and idempotence, and only that is allowed beyond operand order.
 */
function canonLoose(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonLoose);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  if ('expression' in o) {
    const e = o['expression'] as { operator: string; operands?: unknown[] };
    let ops = (e.operands ?? []).map(canonLoose);
    if (e.operator === 'and' || e.operator === 'or') {
      ops = ops.flatMap((x) => {
        const inner = (x as { expression?: { operator: string; operands: unknown[] } }).expression;
        return inner?.operator === e.operator ? inner.operands : [x];
      });
      ops = [...new Map(ops.map((x) => [JSON.stringify(x), x])).values()];
    }
    return { expression: { operator: e.operator, operands: ops.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) } };
  }
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canonLoose(o[k])]));
}

/** An unsigned JWT carrying the suites' claims (the Cerbos server here does not verify tokens). */
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const TOKEN = `${b64({ alg: 'ES384', typ: 'JWT' })}.${b64({ ...CLAIMS, exp: 4102444800 })}.${Buffer.from('sig').toString('base64url')}`;

interface Suite {
  principal: { id: string; roles: string[]; attr?: Record<string, unknown>; policyVersion?: string; scope?: string };
  tests: Array<{ action?: string; actions?: string[]; resource: { kind: string; policyVersion?: string; scope?: string; attr?: Record<string, unknown> } }>;
}

const state = { cases: 0, skippedNow: 0, unstable: 0, mapOrder: 0, mismatches: [] as string[], server: undefined as CerbosServer | undefined, dir: '' };

describe.runIf(present)('plans equal Cerbos PDP plans on the query-planner policies', () => {
  beforeAll(async () => {
    state.dir = mkdtempSync(join(tmpdir(), 'warden-plan-structural-'));
    const globals = { environment: 'test' };
    state.server = await startCerbos({ storeDir: join(QP, 'policies'), workDir: state.dir, globals, config: { auxData: { jwt: { disableVerification: true } } } });
    const { files, schemas } = readPolicyDir(join(QP, 'policies'));
    const { policySet } = compilePolicies(files, { schemas });
    const engine = createEngine(policySet!, { ...DEFAULT_ENGINE_CONFIG, globals });
    const suites = walk(join(QP, 'suite'))
      .filter((f) => !f.includes('lenient_scope_search'))
      .map((f) => parse(readFileSync(f, 'utf8'), { merge: true }) as Suite);
    // Actions the policies name (no globs), per resource kind where the rule says it.
    const actions = new Set<string>();
    for (const f of files) {
      for (const m of f.text.matchAll(/^\s*(?:-\s*)?(?:actions|allowActions):\s*\[([^\]]*)\]/gm)) for (const a of (m[1] ?? '').split(',')) actions.add(a.trim().replace(/^["']|["']$/g, ''));
      for (const m of f.text.matchAll(/^\s*-\s*action:\s*["']?([^"'\n]+)["']?\s*$/gm)) actions.add((m[1] ?? '').trim());
      for (const m of f.text.matchAll(/(?:actions|allowActions):\s*\n((?:\s*-\s*[^\n]+\n)+)/g)) for (const a of (m[1] ?? '').split('\n')) {
        const t = a.replace(/^\s*-\s*/, '').trim().replace(/^["']|["']$/g, '');
        if (t !== '' && !t.includes(':') === !t.includes(':')) actions.add(t);
      }
    }
    for (const s of suites) for (const t of s.tests) for (const a of t.actions ?? [t.action as string]) actions.add(a);
    const actionList = [...actions].filter((a) => a !== '' && !a.includes('*'));
    const resources = new Map<string, Suite['tests'][number]['resource']>();
    for (const s of suites) for (const t of s.tests) resources.set(JSON.stringify(t.resource), t.resource);
    const principals = new Map<string, Suite['principal']>();
    for (const s of suites) principals.set(JSON.stringify(s.principal), s.principal);

    const now = new Date();
    for (const principal of principals.values()) {
      for (const resource of resources.values()) {
        const asks = [...actionList.map((a) => [a]), actionList.slice(0, 3)];
        for (const acts of asks) {
          // A fixed, spread-out sample keeps the run short (set WARDEN_PLAN_STRUCT_STRIDE=1 for all).
          if (createHash('sha256').update(`${principal.id}|${JSON.stringify(resource)}|${acts.join('+')}`).digest()[0]! % STRIDE !== 0) continue;
          const body = { requestId: 'x', includeMeta: true, actions: acts, principal, resource, auxData: { jwt: { token: TOKEN } } };
          const res = await fetch(`${state.server.url}/api/plan/resources`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
          const json = (await res.json()) as { filter?: PlanFilter };
          if (json.filter === undefined) {
            state.mismatches.push(`Cerbos failed: ${JSON.stringify(json)} for ${JSON.stringify({ principal: principal.id, resource, acts })}`);
            continue;
          }
          let w: PlanFilter;
          try {
            w = engine.plan({ principal: principal as never, resource: resource as never, actions: acts, auxData: { jwt: CLAIMS } }, { now }).filter;
          } catch (err) {
            state.mismatches.push(`${principal.id} ${JSON.stringify(resource)} ${acts.join('+')}\n  cerbos: ${filterDebug(json.filter)}\n  warden: threw ${(err as Error).message}`);
            continue;
          }
          const cd = filterDebug(json.filter);
          if (/timestamp|now/.test(cd) || /timestamp|now/.test(filterDebug(w))) {
            state.skippedNow++;
            continue;
          }
          state.cases++;
          if (JSON.stringify(canon(w)) !== JSON.stringify(canon(json.filter))) {
            // Asked again (both sides, a fresh clock): a difference that does not repeat is noise
            // of a loaded machine (a boundary of now()), not a planner difference.
            const again = (await (await fetch(`${state.server.url}/api/plan/resources`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { filter?: PlanFilter };
            const w2 = engine.plan({ principal: principal as never, resource: resource as never, actions: acts, auxData: { jwt: CLAIMS } }, { now: new Date() }).filter;
            if (JSON.stringify(canon(w2)) === JSON.stringify(canon(again.filter))) state.unstable++;
            else if (JSON.stringify(canonLoose(w)) === JSON.stringify(canonLoose(json.filter))) state.mapOrder++;
            else state.mismatches.push(`${principal.id} ${JSON.stringify(resource)} ${acts.join('+')}\n  cerbos: ${cd}\n  warden: ${filterDebug(w)}`);
          }
        }
      }
    }
    console.log(`[plan-structural] ${state.cases} plans compared, ${state.skippedNow} reading now() left out, ${state.unstable} differed once but not when asked again, ${state.mapOrder} equal up to nesting and repeats of and/or operands (the PDP's map order), ${state.mismatches.length} differ`);
    for (const m of state.mismatches.slice(0, Number(process.env["PLAN_STRUCT_SHOW"] ?? 15))) console.log(`[plan-structural] ${m}`);
  }, 300_000);

  afterAll(async () => {
    await state.server?.stop();
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
  });

  it('compares hundreds of plans, and every one equals the PDP\'s', () => {
    expect(state.cases).toBeGreaterThan(3000);
    expect(state.mismatches).toEqual([]);
  });
});
