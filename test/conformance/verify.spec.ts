/**
 * Replays Cerbos's policy-test-suite cases (`verify/cases`) against Warden's test runner and engine.
 * Each case is a txtar archive of suites and fixtures; the policies are `store/` alone (its own test
 * suites excluded). Schemas are ignored as the README says: schema
 * enforcement stays `none`, the store's schemas are only loaded so references to them compile. The result
 * tree must equal the `.golden` JSON.
 *
 * Compared loosely (documented because Cerbos fills these from Go maps, so their order is random):
 * the `outputs` lists of successes and failures are sorted by `src` (then `action`) on both sides.
 * Nothing else is ignored: Cerbos's golden files carry no environment-specific fields (no traces,
 * timings or paths).
 *
 * Folder: `WARDEN_CONFORMANCE_DIR` or `<repo>/../shared/conformance/cerbos`; absent → skipped with a
 * message. Known failures: `known-failures/verify.txt` (`case_name  reason`), skipped and printed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conformanceDir, knownFailures, readPolicyDir } from '../support/conformance.js';
import { parse as parseYaml } from 'yaml';
import { compilePolicies, createEngine } from '@warden/decision';
import { runPolicyTests, type PolicyTestFile } from '../../libs/decision/src/testing/test-suite.runner.js';
import { parseTxtar } from '../../libs/decision/src/testing/txtar.js';

const casesDir = join(conformanceDir, 'verify', 'cases');
const storeDir = join(conformanceDir, 'store');

interface CaseConfig {
  description?: string;
  wantErr?: boolean;
  config?: { excludedPrincipalPolicyFqns?: string[]; excludedResourcePolicyFqns?: string[]; includedTestNamesRegexp?: string };
}

/** Sorts the order-free lists (see the module comment) so two result trees compare structurally. */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'outputs' && Array.isArray(v)) {
      out[k] = [...v]
        .map(normalise)
        .sort((a, b) => JSON.stringify([(a as { src?: string }).src, (a as { action?: string }).action]).localeCompare(JSON.stringify([(b as { src?: string }).src, (b as { action?: string }).action])));
    } else {
      out[k] = normalise(v);
    }
  }
  return out;
}

if (!existsSync(casesDir)) {
  describe.skip(`Cerbos verify conformance (folder ${casesDir} not found; set WARDEN_CONFORMANCE_DIR)`, () => {
    it('skipped', () => undefined);
  });
  console.warn(`[verify conformance] skipped: ${casesDir} does not exist (set WARDEN_CONFORMANCE_DIR)`);
} else {
  // Schema enforcement is off for these cases; the store's schemas are passed only so that the
  // policies referencing them compile (Warden has no `--ignore-schemas` switch).
  const { files: storeFiles, schemas } = readPolicyDir(storeDir);
  const known = knownFailures('verify');
  const cases = readdirSync(casesDir)
    .filter((f) => f.endsWith('.yaml.input'))
    .map((f) => f.slice(0, -'.yaml.input'.length))
    .sort();
  if (known.size > 0) {
    console.info(`[verify conformance] known failures skipped:\n${[...known].map(([name, reason]) => `  ${name}  ${reason}`).join('\n')}`);
  }

  describe('Cerbos verify conformance', () => {
    // As in Cerbos's own harness the engine is built from the store alone; policy files inside an
    // archive (case_037 has one) are not compiled.
    const { policySet, errors } = compilePolicies(storeFiles, { schemas });
    it('compiles the store without errors', () => {
      expect(errors).toEqual([]);
    });
    for (const name of cases) {
      const config = (parseYaml(readFileSync(join(casesDir, `${name}.yaml`), 'utf8')) ?? {}) as CaseConfig;
      const title = `${name}: ${config.description ?? ''}`;
      const test = known.has(name) ? it.skip : it;
      test(title, () => {
        const archive = parseTxtar(readFileSync(join(casesDir, `${name}.yaml.input`), 'utf8'));
        const files: PolicyTestFile[] = archive.map((f) => ({ path: f.name, text: f.text }));
        const results = runPolicyTests(files, {
          createChecker: (engineConfig) => {
            if (policySet === undefined) throw new Error('the store did not compile');
            return createEngine(policySet, engineConfig);
          },
          ...(config.config?.includedTestNamesRegexp !== undefined ? { includedTestNamesRegexp: config.config.includedTestNamesRegexp } : {}),
          ...(config.config?.excludedResourcePolicyFqns !== undefined ? { excludedResourcePolicyFqns: config.config.excludedResourcePolicyFqns } : {}),
          ...(config.config?.excludedPrincipalPolicyFqns !== undefined ? { excludedPrincipalPolicyFqns: config.config.excludedPrincipalPolicyFqns } : {}),
        });
        const golden: unknown = JSON.parse(readFileSync(join(casesDir, `${name}.yaml.golden`), 'utf8'));
        expect(normalise(JSON.parse(JSON.stringify(results)))).toEqual(normalise(golden));
      });
    }
  });
}
