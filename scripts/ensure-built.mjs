#!/usr/bin/env node
// Runs before `npm start`: builds the broker with `nest build broker` when its compiled entry is
// missing or older than any source it is built from, so `npm ci && npm start` works on a fresh
// clone and never serves stale code.
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist/apps/broker/apps/broker/src/main.js');
const sourceDirs = ['apps/broker/src', 'libs'];
const sourceFiles = ['tsconfig.json', 'apps/broker/tsconfig.app.json', 'nest-cli.json', 'package-lock.json'];

function newestMtime(dir) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === 'node_modules' || entry.name === 'testdata') continue;
      newest = Math.max(newest, newestMtime(full));
    } else if ((entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts')) || entry.name.endsWith('.proto')) {
      newest = Math.max(newest, statSync(full).mtimeMs);
    }
  }
  return newest;
}

function isStale() {
  if (!existsSync(entry)) return 'no build found';
  const built = statSync(entry).mtimeMs;
  let newest = 0;
  for (const d of sourceDirs) newest = Math.max(newest, newestMtime(join(root, d)));
  for (const f of sourceFiles) if (existsSync(join(root, f))) newest = Math.max(newest, statSync(join(root, f)).mtimeMs);
  return newest > built ? 'sources changed since the last build' : undefined;
}

const reason = isStale();
if (reason !== undefined) {
  process.stderr.write(`warden: building the broker (${reason}) ...\n`);
  const nest = join(root, 'node_modules/.bin/nest');
  const res = spawnSync(nest, ['build', 'broker'], { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    // tsc emits even when it reports errors, which would leave a fresh-looking entry behind: mark
    // it older than every source so the next run builds again instead of serving that output.
    if (existsSync(entry)) utimesSync(entry, 0, 0);
    process.stderr.write('warden: `nest build broker` failed\n');
    process.exit(res.status ?? 1);
  }
}
