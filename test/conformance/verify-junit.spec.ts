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
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { classifyPolicyPath, compilePolicies, createEngine } from '@warden/decision';
import type { PolicyFile } from '@warden/decision';
import { runPolicyTests } from '../../libs/decision/src/testing/test-suite.runner.js';
import { renderJunit } from '../../libs/decision/src/testing/junit.format.js';
import { parseTxtar } from '../../libs/decision/src/testing/txtar.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const conformanceDir = process.env['WARDEN_CONFORMANCE_DIR'] ?? resolve(repoRoot, '../shared/conformance/cerbos');
const casesDir = join(conformanceDir, 'verify_junit', 'cases');
const storeDir = join(conformanceDir, 'verify_junit', 'store');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

function loadKnownFailures(file: string): Map<string, string> {
  const known = new Map<string, string>();
  if (!existsSync(file)) return known;
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    known.set(m?.[1] ?? line, m?.[2] ?? '');
  }
  return known;
}

if (!existsSync(casesDir)) {
  describe.skip(`Cerbos verify JUnit conformance (folder ${casesDir} not found; set WARDEN_CONFORMANCE_DIR)`, () => {
    it('skipped', () => undefined);
  });
  console.warn(`[verify-junit conformance] skipped: ${casesDir} does not exist (set WARDEN_CONFORMANCE_DIR)`);
} else {
  const storeFiles: PolicyFile[] = walk(storeDir)
    .map((full) => relative(storeDir, full).split('\\').join('/'))
    .filter((path) => classifyPolicyPath(path) === 'policy')
    .map((path) => ({ path, text: readFileSync(join(storeDir, path), 'utf8') }));
  const known = loadKnownFailures(join(repoRoot, 'test/conformance/known-failures/verify-junit.txt'));
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
