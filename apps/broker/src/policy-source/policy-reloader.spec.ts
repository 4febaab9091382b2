import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import type { DiskPolicyStorageConfig, GitPolicyStorageConfig } from '../config/broker-config.js';
import { createWardenLogger } from '../logging/warden-logger.js';
import { BrokerMetrics } from '../metrics/broker-metrics.js';
import { PolicyReloader, type PolicyReloaderOptions } from './policy-reloader.js';

const toolPolicy = (effect: 'EFFECT_ALLOW' | 'EFFECT_DENY') => `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: ["invoke"]
      effect: ${effect}
      roles: ["user"]
`;
/** A YAML syntax error on line 3 (an unclosed flow sequence). */
const BROKEN = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: [model
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a reloader whose log lines and metrics the test reads. */
async function start(storage: PolicyReloaderOptions['storage']): Promise<{ sut: PolicyReloader; logs: Array<Record<string, unknown>>; metrics: BrokerMetrics }> {
  const logs: Array<Record<string, unknown>> = [];
  const metrics = new BrokerMetrics();
  const log = createWardenLogger({ levels: ['log', 'warn', 'error'], destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const sut = await PolicyReloader.start({ storage, engine: {}, metrics, log });
  cleanup.push(() => sut.close());
  return { sut, logs, metrics };
}

const effect = (sut: PolicyReloader): string | undefined =>
  sut.holder.current.engine.check([{ principal: { id: 'alice', roles: ['user'], attr: {} }, resource: { kind: 'tool', id: 't', attr: {} }, actions: ['invoke'] }])[0]?.actions['invoke']?.effect;

async function sample(metrics: BrokerMetrics, series: string): Promise<number | undefined> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const disk = (directory: string, watch = false): DiskPolicyStorageConfig => ({ driver: 'disk', directory, watchForChanges: watch, watchDebounceMs: 50, pollIntervalMs: 200 });

describe(`${PolicyReloader.name} (disk)`, () => {
  it('refuses a set with errors: the old one keeps serving, the refusal lists file, line and column, and is logged and counted once', async () => {
    const dir = tempDir('warden-reload-');
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_ALLOW'));
    const { sut, logs, metrics } = await start(disk(dir));
    const first = sut.holder.current.version;
    expect(first).toMatch(/^sha256:[0-9a-f]{16}$/);

    writeFileSync(join(dir, 'model.yaml'), BROKEN);
    expect(await sut.reload()).toEqual({ result: 'refused', version: first });
    expect(effect(sut)).toBe('EFFECT_ALLOW');
    const status = sut.status();
    expect(status.active.version).toBe(first);
    expect(status.lastRefused).toMatchObject({ version: expect.stringMatching(/^sha256:/), errorCount: expect.any(Number) });
    expect(status.lastRefused?.version).not.toBe(first);
    const [error] = status.lastRefused?.errors ?? [];
    expect(error).toEqual({ file: 'model.yaml', line: expect.any(Number), column: expect.any(Number), message: expect.any(String), code: expect.any(String) });
    expect(error?.line).toBeGreaterThanOrEqual(3);
    expect(error?.column).toBeGreaterThan(0);
    expect(status).toMatchObject({ reloads: 0, failures: 1, lastError: null });
    const refusals = logs.filter((l) => String(l['msg']).startsWith('policy change refused'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level: 'warn', serving: first, errors: [expect.objectContaining({ file: 'model.yaml', line: error?.line, column: error?.column })] });
    expect(String(refusals[0]?.['msg'])).toContain(`model.yaml:${error?.line}:${error?.column} `);
    expect(await sample(metrics, 'warden_policy_reloads_total{result="refused"}')).toBe(1);
    expect(await sample(metrics, 'warden_policy_stale{reason="refused"}')).toBe(1);
    expect(await sample(metrics, 'warden_policy_loads_total{result="failure"}')).toBe(1);

    // The same refused set again: nothing new to report.
    expect((await sut.reload()).result).toBe('refused');
    expect(sut.status().failures).toBe(1);
    expect(logs.filter((l) => String(l['msg']).startsWith('policy change refused'))).toHaveLength(1);

    // A good change: in force, the refusal cleared.
    unlinkSync(join(dir, 'model.yaml'));
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_DENY'));
    const ok = await sut.reload();
    expect(ok.result).toBe('ok');
    expect(ok.version).not.toBe(first);
    expect(effect(sut)).toBe('EFFECT_DENY');
    expect(sut.status()).toMatchObject({ active: { version: ok.version, source: 'disk', policies: 1, kinds: ['tool'] }, lastRefused: null, reloads: 1, failures: 1 });
    expect(await sample(metrics, 'warden_policy_reloads_total{result="ok"}')).toBe(1);
    expect(await sample(metrics, 'warden_policy_stale{reason="refused"}')).toBe(0);
    expect(await sample(metrics, `warden_policy_info{version="${ok.version}",source="disk"}`)).toBe(1);
    expect(await sample(metrics, `warden_policy_info{version="${first}",source="disk"}`)).toBeUndefined();
  });

  it('clears a refusal when the source goes back to the set in force, and reports nothing for an unchanged one', async () => {
    const dir = tempDir('warden-reload-');
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_ALLOW'));
    const { sut } = await start(disk(dir));
    expect((await sut.reload()).result).toBe('unchanged');
    writeFileSync(join(dir, 'model.yaml'), BROKEN);
    expect((await sut.reload()).result).toBe('refused');
    unlinkSync(join(dir, 'model.yaml'));
    expect((await sut.reload()).result).toBe('unchanged');
    expect(sut.status()).toMatchObject({ lastRefused: null, reloads: 0, failures: 1 });
  });

  it('keeps serving when the directory disappears, reports it once, and recovers', async () => {
    const dir = tempDir('warden-reload-');
    const policies = join(dir, 'policies');
    mkdirSync(policies);
    writeFileSync(join(policies, 'tool.yaml'), toolPolicy('EFFECT_ALLOW'));
    const { sut, logs, metrics } = await start(disk(policies));
    renameSync(policies, join(dir, 'moved'));
    expect((await sut.reload()).result).toBe('error');
    expect((await sut.reload()).result).toBe('error');
    expect(effect(sut)).toBe('EFFECT_ALLOW');
    expect(sut.status().lastError).toMatchObject({ code: 'ERR_POLICY_SET_INVALID', message: expect.stringContaining('policy directory not found') });
    expect(logs.filter((l) => String(l['msg']).startsWith('policy source unavailable'))).toHaveLength(1);
    expect(await sample(metrics, 'warden_policy_reloads_total{result="error"}')).toBe(2);
    expect(await sample(metrics, 'warden_policy_stale{reason="error"}')).toBe(1);
    renameSync(join(dir, 'moved'), policies);
    expect((await sut.reload()).result).toBe('unchanged');
    expect(sut.status().lastError).toBeNull();
    expect(await sample(metrics, 'warden_policy_stale{reason="error"}')).toBe(0);
  });

  it('never runs two attempts at once: calls before an attempt starts share it, and the change is put in force once', async () => {
    const dir = tempDir('warden-reload-');
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_ALLOW'));
    const { sut } = await start(disk(dir));
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_DENY'));
    const a = sut.reload();
    const b = sut.reload();
    expect(b).toBe(a);
    expect((await a).result).toBe('ok');
    expect((await sut.reload()).result).toBe('unchanged');
    expect(sut.status().reloads).toBe(1);
  });

  it('follows the directory by itself when watching', async () => {
    const dir = tempDir('warden-reload-');
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_ALLOW'));
    const { sut } = await start(disk(dir, true));
    const first = sut.holder.current.version;
    writeFileSync(join(dir, 'tool.yaml'), toolPolicy('EFFECT_DENY'));
    const t0 = Date.now();
    while (sut.holder.current.version === first) {
      if (Date.now() - t0 > 2000) throw new Error('not reloaded within 2 s');
      await sleep(20);
    }
    expect(effect(sut)).toBe('EFFECT_DENY');
  });

  it('refuses to start on a set with errors, listing them, and counts the failed load', async () => {
    const dir = tempDir('warden-reload-');
    writeFileSync(join(dir, 'model.yaml'), BROKEN);
    const metrics = new BrokerMetrics();
    const err = await PolicyReloader.start({ storage: disk(dir), engine: {}, metrics }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_POLICY_COMPILE');
    expect((err as WardenError).message).toMatch(/^model\.yaml:\d+:\d+ .+$/m);
    expect(await sample(metrics, 'warden_policy_loads_total{result="failure"}')).toBe(1);
  });
});

/** Runs git in `cwd` as a committer of its own (no global config needed). */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Warden Test', '-c', 'user.email=test@warden.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8', env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } }).trim();
}

/** A bare "remote" and a working clone that commits and pushes `files` under `policies/`. */
function gitRemote(): { origin: string; commit(files: Record<string, string | null>, message: string): string } {
  const root = tempDir('warden-git-');
  const origin = join(root, 'origin.git');
  const work = join(root, 'work');
  git(root, 'init', '--quiet', '--bare', origin);
  git(root, 'init', '--quiet', work);
  mkdirSync(join(work, 'policies'));
  writeFileSync(join(work, 'README.md'), 'not a policy\n');
  return {
    origin,
    commit(files, message) {
      for (const [name, text] of Object.entries(files)) {
        if (text === null) rmSync(join(work, 'policies', name));
        else writeFileSync(join(work, 'policies', name), text);
      }
      git(work, 'add', '--all');
      git(work, 'commit', '--quiet', '-m', message);
      git(work, 'push', '--quiet', origin, 'HEAD:main');
      return git(work, 'rev-parse', 'HEAD');
    },
  };
}

const gitStorage = (url: string, checkoutDir: string, pollMs = 0): GitPolicyStorageConfig => ({ driver: 'git', url, branch: undefined, subDir: 'policies', checkoutDir, updatePollIntervalMs: pollMs, operationTimeoutMs: 20_000 });

describe(`${PolicyReloader.name} (git)`, () => {
  it('follows a branch: a good commit, a bad one refused (the good one keeps serving), a good one again; the version names the commit', async () => {
    const remote = gitRemote();
    const c1 = remote.commit({ 'tool.yaml': toolPolicy('EFFECT_ALLOW') }, 'allow');
    const checkoutDir = tempDir('warden-checkout-');
    const { sut, metrics } = await start(gitStorage(remote.origin, checkoutDir));
    const v1 = sut.holder.current.version;
    expect(v1).toMatch(new RegExp(`^sha256:[0-9a-f]{16}@${c1.slice(0, 12)}$`));
    expect(sut.status()).toMatchObject({ source: { driver: 'git', branch: 'main', subDir: 'policies' }, active: { commit: c1, source: 'git' } });

    const c2 = remote.commit({ 'model.yaml': BROKEN }, 'broken');
    expect(await sut.reload()).toEqual({ result: 'refused', version: v1 });
    expect(effect(sut)).toBe('EFFECT_ALLOW');
    expect(sut.status().lastRefused).toMatchObject({ commit: c2, version: expect.stringContaining(`@${c2.slice(0, 12)}`), errors: [expect.objectContaining({ file: 'model.yaml', line: expect.any(Number), column: expect.any(Number) })] });
    // The same head: not read again, still refused.
    expect((await sut.reload()).result).toBe('refused');
    expect(sut.status().failures).toBe(1);

    const c3 = remote.commit({ 'model.yaml': null, 'tool.yaml': toolPolicy('EFFECT_DENY') }, 'deny');
    const ok = await sut.reload();
    expect(ok.result).toBe('ok');
    expect(ok.version).toMatch(new RegExp(`@${c3.slice(0, 12)}$`));
    expect(effect(sut)).toBe('EFFECT_DENY');
    expect(sut.status()).toMatchObject({ active: { commit: c3 }, lastRefused: null, reloads: 1, failures: 1 });
    expect(await sample(metrics, 'warden_policy_reloads_total{result="refused"}')).toBe(1);
    expect(await sample(metrics, 'warden_policy_reloads_total{result="ok"}')).toBe(1);
    // Each checkout is removed once read: only the clone remains in this process's directory.
    const [own] = readdirSync(checkoutDir);
    expect(readdirSync(join(checkoutDir, own as string))).toEqual(['repo.git']);
  });

  it('keeps serving while the remote is unreachable, reports it once, and picks up what was pushed meanwhile', async () => {
    const remote = gitRemote();
    remote.commit({ 'tool.yaml': toolPolicy('EFFECT_ALLOW') }, 'allow');
    const { sut, logs } = await start(gitStorage(remote.origin, tempDir('warden-checkout-')));
    const v1 = sut.holder.current.version;
    const c2 = remote.commit({ 'tool.yaml': toolPolicy('EFFECT_DENY') }, 'deny');
    renameSync(remote.origin, `${remote.origin}.away`);
    expect(await sut.reload()).toEqual({ result: 'error', version: v1 });
    expect((await sut.reload()).result).toBe('error');
    expect(effect(sut)).toBe('EFFECT_ALLOW');
    expect(sut.status().lastError).toMatchObject({ code: 'ERR_POLICY_SOURCE_UNAVAILABLE', message: expect.stringContaining('git fetch') });
    expect(logs.filter((l) => String(l['msg']).startsWith('policy source unavailable'))).toHaveLength(1);
    renameSync(`${remote.origin}.away`, remote.origin);
    expect((await sut.reload()).result).toBe('ok');
    expect(sut.status()).toMatchObject({ active: { commit: c2 }, lastError: null });
  });

  it('polls the branch by itself every updatePollInterval', async () => {
    const remote = gitRemote();
    remote.commit({ 'tool.yaml': toolPolicy('EFFECT_ALLOW') }, 'allow');
    const { sut } = await start(gitStorage(remote.origin, tempDir('warden-checkout-'), 100));
    const c2 = remote.commit({ 'tool.yaml': toolPolicy('EFFECT_DENY') }, 'deny');
    const t0 = Date.now();
    while (sut.holder.current.commit !== c2) {
      if (Date.now() - t0 > 5000) throw new Error('not reloaded within 5 s');
      await sleep(20);
    }
    expect(effect(sut)).toBe('EFFECT_DENY');
  });

  it('refuses to start when the repository cannot be cloned, and leaves no directory behind', async () => {
    const checkoutDir = tempDir('warden-checkout-');
    const err = await PolicyReloader.start({ storage: gitStorage(join(checkoutDir, 'nothing-here.git'), checkoutDir), engine: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_POLICY_SOURCE_UNAVAILABLE');
    expect((err as WardenError).message).toContain('git clone');
    expect(readdirSync(checkoutDir)).toEqual([]);
  });

  it('removes its working directory when closed', async () => {
    const remote = gitRemote();
    remote.commit({ 'tool.yaml': toolPolicy('EFFECT_ALLOW') }, 'allow');
    const checkoutDir = tempDir('warden-checkout-');
    const sut = await PolicyReloader.start({ storage: gitStorage(remote.origin, checkoutDir), engine: {} });
    expect(readdirSync(checkoutDir)).toHaveLength(1);
    await sut.close();
    expect(readdirSync(checkoutDir)).toEqual([]);
    expect(existsSync(checkoutDir)).toBe(true);
  });
});
