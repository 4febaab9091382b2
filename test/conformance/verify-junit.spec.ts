/**
 * Replays Cerbos's JUnit report cases (`verify_junit/cases`): each txtar archive of suites runs
 * against the policies of `verify_junit/store` and the JUnit XML must equal the `.golden` file.
 * Cerbos produced the goldens with `--verbose` (skipped suites carry a `<skipped>` element), so the
 * report is rendered verbose. Compared exactly except for surrounding whitespace; the goldens hold
 * nothing environment specific.
 *
 * Folder: `WARDEN_CONFORMANCE_DIR` or `<repo>/../shared/conformance/cerbos`; absent → skipped with a
 * message. Known failures: `known-failures/verify-junit.txt` (`case_name  reason`), skipped and printed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conformanceDir, knownFailures, readPolicyDir } from '../support/conformance.js';
import { parse as parseYaml } from 'yaml';
import { compilePolicies, createEngine } from '@warden/decision';
import { runPolicyTests } from '../../libs/decision/src/testing/test-suite.runner.js';
import { renderJunit } from '../../libs/decision/src/testing/junit.format.js';
import { parseTxtar } from '../../libs/decision/src/testing/txtar.js';

const casesDir = join(conformanceDir, 'verify_junit', 'cases');
const storeDir = join(conformanceDir, 'verify_junit', 'store');

if (!existsSync(casesDir)) {
  describe.skip(`Cerbos verify JUnit conformance (folder ${casesDir} not found; set WARDEN_CONFORMANCE_DIR)`, () => {
    it('skipped', () => undefined);
  });
  console.warn(`[verify-junit conformance] skipped: ${casesDir} does not exist (set WARDEN_CONFORMANCE_DIR)`);
} else {
  const storeFiles = readPolicyDir(storeDir).files;
  const known = knownFailures('verify-junit');
  const cases = readdirSync(casesDir)
    .filter((f) => f.endsWith('.yaml.input'))
    .map((f) => f.slice(0, -'.yaml.input'.length))
    .sort();
  if (known.size > 0) {
    console.info(`[verify-junit conformance] known failures skipped:\n${[...known].map(([name, reason]) => `  ${name}  ${reason}`).join('\n')}`);
  }

  describe('Cerbos verify JUnit conformance', () => {
    const { policySet, errors } = compilePolicies(storeFiles, { schemas: [] });
    it('compiles the store without errors', () => {
      expect(errors).toEqual([]);
    });
    for (const name of cases) {
      const config = (parseYaml(readFileSync(join(casesDir, `${name}.yaml`), 'utf8')) ?? {}) as { description?: string };
      const test = known.has(name) ? it.skip : it;
      test(`${name}: ${config.description ?? ''}`, () => {
        const files = parseTxtar(readFileSync(join(casesDir, `${name}.yaml.input`), 'utf8')).map((f) => ({ path: f.name, text: f.text }));
        const results = runPolicyTests(files, {
          createChecker: (engineConfig) => {
            if (policySet === undefined) throw new Error('the store did not compile');
            return createEngine(policySet, engineConfig);
          },
        });
        const golden = readFileSync(join(casesDir, `${name}.yaml.golden`), 'utf8');
        expect(renderJunit(results, { verbose: true }).trim()).toBe(golden.trim());
      });
    }
  });
}
