import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/warden.js');
const dirs: string[] = [];

const policy = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
`;

function suite(effect: string): string {
  return `name: DocSuite
principals:
  alice: { id: alice, roles: [user] }
resources:
  doc1: { kind: doc, id: d1 }
tests:
  - name: alice views
    input: { principals: [alice], resources: [doc1], actions: [view, edit] }
    expected:
      - principal: alice
        resource: doc1
        actions: { view: ${effect}, edit: EFFECT_DENY }
`;
}

function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-cli-'));
  dirs.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function warden(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('warden CLI', () => {
  it('exits 0 when policies compile and every test passes', () => {
    const dir = policyDir({ 'doc.yaml': policy, 'tests/doc_test.yaml': suite('EFFECT_ALLOW') });
    const r = warden('policies', 'test', dir);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('└──DocSuite (tests/doc_test.yaml) [2 OK]');
    expect(r.stdout).toContain('2 tests executed [2 OK]');
  });

  it('exits 4 when a test fails and shows the failing action', () => {
    const dir = policyDir({ 'doc.yaml': policy, 'doc_test.yaml': suite('EFFECT_DENY') });
    const r = warden('policies', 'test', dir);
    expect(r.status).toBe(4);
    expect(r.stdout).toContain('view [FAILED]');
    expect(r.stdout).toContain('OUTCOME: expected: EFFECT_DENY, actual: EFFECT_ALLOW');
    expect(r.stderr).toContain('tests failed');
  });

  it('exits 4 for a suite that cannot be loaded', () => {
    const dir = policyDir({ 'doc.yaml': policy, 'doc_test.yaml': 'name: Broken\n' });
    const r = warden('policies', 'test', dir, '--output', 'json');
    expect(r.status).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({ suites: [{ name: 'Unknown', error: 'failed to load test suite:\ntests: value is required' }] });
  });

  it('exits 3 and prints file:line:col when a policy does not compile', () => {
    const dir = policyDir({ 'doc.yaml': policy.replace('roles: [user]', 'roles: [user]\n      bogus: 1') });
    const r = warden('policies', 'validate', dir);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^doc\.yaml:\d+:\d+ /m);
  });

  it('exits 0 from validate on a valid tree and writes JUnit on request', () => {
    const dir = policyDir({ 'doc.yaml': policy, 'doc_test.yaml': suite('EFFECT_ALLOW') });
    expect(warden('policies', 'validate', dir).status).toBe(0);
    const r = warden('policies', 'test', dir, '--output=junit');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('<testsuites errors="0" failures="0" skipped="0" tests="2">');
  });

  it('exits 80 on bad usage and 1 on a missing directory', () => {
    expect(warden('policies', 'frobnicate', '.').status).toBe(80);
    expect(warden('policies', 'test', '.', '--output', 'yaml').status).toBe(80);
    expect(warden('policies', 'test', join(tmpdir(), 'warden-no-such-dir')).status).toBe(1);
  });
});
