import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { loadPolicySetOrThrow } from './load-policy-set.js';
import { readPolicyDir } from './read-policy-dir.js';

const GOOD = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: ["invoke"]
      effect: EFFECT_ALLOW
      roles: ["user"]
`;

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function policyDir(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'warden-policies-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe(readPolicyDir.name, () => {
  it('walks recursively and separates policies from schemas, skipping hidden files', () => {
    const sut = readPolicyDir(
      policyDir({
        'resource_policies/deep/tool.yaml': GOOD,
        '_schemas/resources/tool.json': '{"type":"object"}',
        '.git/config.yaml': 'x: 1',
        'README.md': '# not a policy',
      }),
    );
    expect(sut.policies.map((p) => p.path)).toEqual(['resource_policies/deep/tool.yaml']);
    expect(sut.schemas).toEqual([{ path: 'resources/tool.json', text: '{"type":"object"}' }]);
  });

  it('fails on a missing directory', () => {
    expect(() => readPolicyDir('/nonexistent/warden-policies')).toThrow(WardenError);
  });
});

describe(loadPolicySetOrThrow.name, () => {
  it('compiles a valid directory', () => {
    expect(loadPolicySetOrThrow(policyDir({ 'tool.yaml': GOOD }))).toBeDefined();
  });

  it('refuses to start listing every error as file:line:col message', () => {
    const dir = policyDir({
      'a.yaml': GOOD.replace('roles: ["user"]', 'roles: ["user"]\n      condition:\n        match:\n          expr: R.attr.x =='),
      'b.yaml': 'resourcePolicy: [\n',
    });
    let err: unknown;
    try {
      loadPolicySetOrThrow(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WardenError);
    const message = (err as WardenError).message;
    expect((err as WardenError).code).toBe('ERR_POLICY_COMPILE');
    expect(message).toContain('(2 errors)');
    expect(message).toMatch(/^a\.yaml:\d+:\d+ .+$/m);
    expect(message).toMatch(/^b\.yaml:\d+:\d+ .+$/m);
  });
});
