import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprintPolicyDir, fingerprintPolicyDirAsync } from './read-policy-dir.js';
import { watchPolicyDir, type PolicyDirWatch, type WatchPolicyDirOptions } from './watch-policy-dir.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dirs: string[] = [];
const watches: PolicyDirWatch[] = [];

afterEach(() => {
  for (const w of watches.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function policyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-watch-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'tool.yaml'), 'a: 1\n');
  return dir;
}

/** Starts a watch counting its calls. */
function watchCounting(options: Omit<WatchPolicyDirOptions, 'onChange'>): { calls: () => number; watch: PolicyDirWatch } {
  let n = 0;
  const watch = watchPolicyDir({ ...options, onChange: () => (n += 1) });
  watches.push(watch);
  return { calls: () => n, watch };
}

async function until(cond: () => boolean, limitMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error(`not met within ${limitMs} ms`);
    await sleep(10);
  }
}

describe(watchPolicyDir.name, () => {
  it('turns a burst of writes into one call, once the directory has been quiet for the debounce', async () => {
    const dir = policyDir();
    const sut = watchCounting({ dir, debounceMs: 150, pollIntervalMs: 0 });
    mkdirSync(join(dir, 'nested'));
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(dir, 'nested', `p${i}.yaml`), `n: ${i}\n`);
      await sleep(10);
    }
    // The last write was just now: still waiting for quiet.
    expect(sut.calls()).toBe(0);
    await until(() => sut.calls() > 0);
    await sleep(400);
    expect(sut.calls()).toBe(1);
  });

  it('ignores hidden files and folders (.git, editor swap files)', async () => {
    const dir = policyDir();
    const sut = watchCounting({ dir, debounceMs: 20, pollIntervalMs: 0 });
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(dir, '.tool.yaml.swp'), 'x');
    await sleep(400);
    expect(sut.calls()).toBe(0);
    writeFileSync(join(dir, 'tool.yaml'), 'a: 2\n');
    await until(() => sut.calls() === 1);
  });

  it('polls the files\' fingerprint when events are not used: a change is seen, a quiet directory never calls', async () => {
    const dir = policyDir();
    const sut = watchCounting({ dir, debounceMs: 20, pollIntervalMs: 100, useWatcher: false });
    await sleep(350);
    expect(sut.calls()).toBe(0);
    // Same size, new content: the modification time differs.
    writeFileSync(join(dir, 'tool.yaml'), 'a: 3\n');
    await until(() => sut.calls() === 1);
    await sleep(350);
    expect(sut.calls()).toBe(1);
    // A test suite file is not served: it changes nothing.
    writeFileSync(join(dir, 'tool_test.yaml'), 'name: t\n');
    await sleep(350);
    expect(sut.calls()).toBe(1);
  });

  it('calls nothing once closed', async () => {
    const dir = policyDir();
    const sut = watchCounting({ dir, debounceMs: 20, pollIntervalMs: 100 });
    sut.watch.close();
    writeFileSync(join(dir, 'tool.yaml'), 'a: 4\n');
    await sleep(400);
    expect(sut.calls()).toBe(0);
  });
});

describe(fingerprintPolicyDirAsync.name, () => {
  it('equals the synchronous fingerprint, nested folders and schemas included, and follows a change', async () => {
    const dir = policyDir();
    mkdirSync(join(dir, 'b', 'c'), { recursive: true });
    mkdirSync(join(dir, '_schemas'));
    writeFileSync(join(dir, 'b', 'c', 'model.yaml'), 'm: 1\n');
    writeFileSync(join(dir, 'b', 'agent.yml'), 'g: 1\n');
    writeFileSync(join(dir, '_schemas', 'tool.json'), '{}');
    writeFileSync(join(dir, 'notes.txt'), 'not a policy');
    const before = await fingerprintPolicyDirAsync(dir);
    expect(before).toBe(fingerprintPolicyDir(dir));
    writeFileSync(join(dir, 'b', 'c', 'model.yaml'), 'm: 22\n');
    const after = await fingerprintPolicyDirAsync(dir);
    expect(after).not.toBe(before);
    expect(after).toBe(fingerprintPolicyDir(dir));
  });

  it('is `missing` for a directory that cannot be read, as the synchronous one', async () => {
    const gone = join(tmpdir(), `warden-no-such-dir-${process.pid}-${Date.now()}`);
    expect(await fingerprintPolicyDirAsync(gone)).toBe('missing');
    expect(fingerprintPolicyDir(gone)).toBe('missing');
  });
});
