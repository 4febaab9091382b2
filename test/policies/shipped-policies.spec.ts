/**
 * The shipped policy set must compile and pass its own test suites under both `warden policies
 * test` and the real Cerbos 0.55 binary's `cerbos compile`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/conformance.js';

const policies = join(repoRoot, 'policies');
const cerbos = join(repoRoot, 'node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64');

describe('shipped policies', () => {
  it('pass their test suites under `warden policies test`', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/warden.js'), 'policies', 'test', policies, '--output', 'json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { summary: { overallResult: string; testsCount: number; resultCounts?: { passed?: number } } };
    expect(out.summary.overallResult).toBe('RESULT_PASSED');
    expect(out.summary.testsCount).toBeGreaterThanOrEqual(40);
  });

  it.runIf(existsSync(cerbos))('compile and pass their test suites under the real `cerbos compile`', () => {
    chmodSync(cerbos, 0o755);
    const r = spawnSync(cerbos, ['compile', '--output=json', policies], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, CERBOS_NO_TELEMETRY: '1' } });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = JSON.parse(r.stdout) as { summary: { overallResult: string; testsCount: number } };
    expect(out.summary.overallResult).toBe('RESULT_PASSED');
    expect(out.summary.testsCount).toBeGreaterThanOrEqual(40);
  });
});
