import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { GitPolicySource, redactUrl } from './git-policy-source.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A port of 127.0.0.1 nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe(redactUrl.name, () => {
  it('removes user and password from a URL, and leaves other forms alone', () => {
    expect(redactUrl('https://bot:ghp_secret@github.com/acme/policies.git')).toBe('https://***@github.com/acme/policies.git');
    expect(redactUrl('https://github.com/acme/policies.git')).toBe('https://github.com/acme/policies.git');
    expect(redactUrl('git@github.com:acme/policies.git')).toBe('git@github.com:acme/policies.git');
    expect(redactUrl('/srv/policies.git')).toBe('/srv/policies.git');
  });
});

describe(GitPolicySource.name, () => {
  it('fails to open with ERR_POLICY_SOURCE_UNAVAILABLE naming git\'s reason, never the credential in the URL', async () => {
    const checkoutDir = mkdtempSync(join(tmpdir(), 'warden-git-open-'));
    dirs.push(checkoutDir);
    const url = `http://bot:s3cr3t-token@127.0.0.1:${await closedPort()}/policies.git`;
    const err = await GitPolicySource.open({ url, branch: 'main', subDir: '', checkoutDir, operationTimeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_POLICY_SOURCE_UNAVAILABLE');
    expect((err as WardenError).message).toMatch(/^`git clone` failed: /);
    expect((err as WardenError).message).not.toContain('s3cr3t-token');
    expect(readdirSync(checkoutDir)).toEqual([]);
  });
});
