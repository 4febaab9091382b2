/**
 * The policy-repository CI example (`examples/policy-ci`): both pipelines run the same script,
 * and the script, run here with this checkout's `warden`, passes the shipped policies with a
 * JUnit report of every test, fails (exit 4) with the failing case in the report when a test
 * expectation is wrong, and fails (exit 3) with `file:line:col` when a policy does not compile.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from '../support/conformance.js';

const example = join(repoRoot, 'examples/policy-ci');
const script = join(example, 'run-policy-tests.sh');
const dirs: string[] = [];

/** A copy of the shipped policies in a fresh directory (the script runs in it, like a CI checkout). */
function policyRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-policy-ci-'));
  dirs.push(dir);
  cpSync(join(repoRoot, 'policies'), join(dir, 'policies'), { recursive: true });
  return dir;
}

function runScript(cwd: string): { status: number | null; stdout: string; stderr: string; report: string | undefined } {
  const r = spawnSync('sh', [script], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, WARDEN: `${process.execPath} ${join(repoRoot, 'bin/warden.js')}`, POLICY_DIR: 'policies', REPORT: 'reports/policies.junit.xml' },
  });
  const reportPath = join(cwd, 'reports/policies.junit.xml');
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, report: existsSync(reportPath) ? readFileSync(reportPath, 'utf8') : undefined };
}

/** The root element's counters. */
function totals(report: string): { tests: number; failures: number; errors: number } {
  const root = /<testsuites\b([^>]*)>/.exec(report)?.[1] ?? '';
  const n = (name: string): number => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(root)?.[1] ?? NaN);
  return { tests: n('tests'), failures: n('failures'), errors: n('errors') };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('examples/policy-ci', () => {
  it('both pipelines run the script with the same variables', () => {
    const gh = parse(readFileSync(join(example, 'github-actions.yml'), 'utf8')) as { jobs: { test: { steps: Array<{ run?: string; env?: Record<string, string> }> } } };
    const step = gh.jobs.test.steps.find((s) => s.run?.includes('run-policy-tests.sh'));
    expect(step?.env).toMatchObject({ POLICY_DIR: 'policies', REPORT: 'reports/policies.junit.xml' });
    const gl = parse(readFileSync(join(example, 'gitlab-ci.yml'), 'utf8')) as Record<string, { variables?: Record<string, string>; script?: string[]; artifacts?: { reports?: { junit?: string } } }>;
    const job = gl['policy-tests'];
    expect(job?.script?.some((l) => l.includes('run-policy-tests.sh'))).toBe(true);
    expect(job?.artifacts?.reports?.junit).toBe(job?.variables?.['REPORT']);
  });

  it('passes the shipped policies with a JUnit report of every test', () => {
    const r = runScript(policyRepo());
    expect(r.status, r.stderr).toBe(0);
    const json = spawnSync(process.execPath, [join(repoRoot, 'bin/warden.js'), 'policies', 'test', join(repoRoot, 'policies'), '--output', 'json'], { encoding: 'utf8', timeout: 60_000 });
    const count = (JSON.parse(json.stdout) as { summary: { testsCount: number } }).summary.testsCount;
    expect(totals(r.report ?? '')).toEqual({ tests: count, failures: 0, errors: 0 });
    expect((r.report ?? '').match(/<testcase\b/g)?.length).toBe(count);
  });

  it('fails with exit 4 and the failing case in the report when an expectation is wrong', () => {
    const dir = policyRepo();
    const suite = join(dir, 'policies/tests/tool_test.yaml');
    const text = readFileSync(suite, 'utf8');
    const broken = text.replace(/(\binvoke:\s*)EFFECT_ALLOW/, '$1EFFECT_DENY');
    expect(broken).not.toBe(text);
    writeFileSync(suite, broken);
    const r = runScript(dir);
    expect(r.status).toBe(4);
    const t = totals(r.report ?? '');
    expect(t.failures).toBeGreaterThanOrEqual(1);
    expect(r.report).toContain('<failure');
  });

  it('fails with exit 3 and file:line:col when a policy does not compile', () => {
    const dir = policyRepo();
    writeFileSync(join(dir, 'policies/resource_policies/broken.yaml'), 'apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: [\n');
    const r = runScript(dir);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/resource_policies\/broken\.yaml:\d+:\d+ /);
  });
});
