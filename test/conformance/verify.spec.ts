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
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { classifyPolicyPath, compilePolicies, createEngine } from '@warden/decision';
import type { PolicyFile, SchemaFile } from '@warden/decision';
import { runPolicyTests, type PolicyTestFile } from '../../libs/decision/src/testing/test-suite.runner.js';
import { parseTxtar } from '../../libs/decision/src/testing/txtar.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const conformanceDir = process.env['WARDEN_CONFORMANCE_DIR'] ?? resolve(repoRoot, '../shared/conformance/cerbos');
const casesDir = join(conformanceDir, 'verify', 'cases');
const storeDir = join(conformanceDir, 'store');

interface CaseConfig {
  description?: string;
  wantErr?: boolean;
  config?: { excludedPrincipalPolicyFqns?: string[]; excludedResourcePolicyFqns?: string[]; includedTestNamesRegexp?: string };
}

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
  const storeFiles: PolicyFile[] = walk(storeDir)
    .map((full) => relative(storeDir, full).split('\\').join('/'))
    .filter((path) => classifyPolicyPath(path) === 'policy')
    .map((path) => ({ path, text: readFileSync(join(storeDir, path), 'utf8') }));
  // Schema enforcement is off for these cases; the store's schemas are passed only so that the
  // policies referencing them compile (Warden has no `--ignore-schemas` switch).
  const schemaDir = join(storeDir, '_schemas');
  const schemas: SchemaFile[] = walk(schemaDir)
    .map((full) => relative(schemaDir, full).split('\\').join('/'))
    .filter((path) => classifyPolicyPath(`_schemas/${path}`) === 'schema')
    .map((path) => ({ path, text: readFileSync(join(schemaDir, path), 'utf8') }));
  const known = loadKnownFailures(join(repoRoot, 'test/conformance/known-failures/verify.txt'));
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
