/**
 * Replays Cerbos's engine conformance cases (engine/, engine_strict_scope_search/,
 * engine_lenient_scope_search/, engine_schema_enforcement/{warn,reject}/) against the compiled
 * `store/` policies, configured as Cerbos configures each group. Compares effects, matched
 * policies and scopes, effective derived roles, outputs and validation errors (order-insensitive
 * where Cerbos's order is not defined). Evaluation-error texts and decision logs are not compared.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compilePolicies, createEngine, DEFAULT_ENGINE_CONFIG, type EngineConfig } from '../../libs/decision/src/index.js';
import type { CheckInput } from '../../libs/core/src/index.js';
import { conformanceDir, conformancePresent, knownFailures, readPolicyDir } from '../support/conformance.js';

interface EngineCase {
  description?: string;
  inputs: CheckInput[];
  wantOutputs: Record<string, unknown>[];
}

const groups: { dir: string; config: Partial<EngineConfig> }[] = [
  { dir: 'engine', config: {} },
  { dir: 'engine_strict_scope_search', config: {} },
  { dir: 'engine_lenient_scope_search', config: { lenientScopeSearch: true } },
  { dir: 'engine_schema_enforcement/warn', config: { schemaEnforcement: 'warn' } },
  { dir: 'engine_schema_enforcement/reject', config: { schemaEnforcement: 'reject' } },
];

const present = conformancePresent('store');
const suite = present ? describe : describe.skip;

function sortedJson(list: unknown[] | undefined): string[] {
  return (list ?? []).map((x) => JSON.stringify(x, Object.keys(x as object).sort())).sort();
}

function normalise(out: Record<string, unknown>): Record<string, unknown> {
  const actions: Record<string, unknown> = {};
  for (const [a, e] of Object.entries((out['actions'] ?? {}) as Record<string, Record<string, unknown>>)) {
    actions[a] = { effect: e['effect'], policy: e['policy'] ?? '', scope: e['scope'] ?? '' };
  }
  return {
    requestId: out['requestId'] ?? '',
    resourceId: out['resourceId'] ?? '',
    actions,
    effectiveDerivedRoles: [...((out['effectiveDerivedRoles'] ?? out['effective_derived_roles']) as string[] | undefined ?? [])].sort(),
    outputs: sortedJson(out['outputs'] as unknown[] | undefined),
    validationErrors: sortedJson(out['validationErrors'] as unknown[] | undefined),
  };
}

suite(present ? `cerbos engine conformance (${conformanceDir})` : `cerbos engine conformance: SKIPPED, ${conformanceDir} not found`, () => {
  if (!present) {
    it.skip(`skipped: conformance folder ${conformanceDir} is absent (set WARDEN_CONFORMANCE_DIR)`, () => {});
    return;
  }
  const skips = knownFailures('engine');
  const { files, schemas } = readPolicyDir(join(conformanceDir, 'store'));
  const compiled = compilePolicies(files, { schemas });

  it('compiles the store without errors', () => {
    expect(compiled.errors).toEqual([]);
  });

  for (const group of groups) {
    const dir = join(conformanceDir, group.dir);
    const names = conformancePresent(group.dir) ? readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort() : [];
    describe(group.dir, () => {
      for (const name of names) {
        const id = `${group.dir}/${name}`;
        const c = parse(readFileSync(join(dir, name), 'utf8')) as EngineCase;
        const reason = skips.get(id);
        const test = reason !== undefined ? it.skip : it;
        test(`${name}: ${c.description ?? ''}${reason !== undefined ? ` (known failure: ${reason})` : ''}`, () => {
          expect(compiled.policySet, 'store must compile').toBeDefined();
          const engine = createEngine(compiled.policySet!, {
            ...DEFAULT_ENGINE_CONFIG,
            globals: { environment: 'test' },
            ...group.config,
          });
          const got = engine.check(c.inputs);
          expect(got.map((o) => normalise(o as unknown as Record<string, unknown>))).toEqual(c.wantOutputs.map(normalise));
        });
      }
    });
  }
});
