/**
 * What `GET /api/server_info` reports: the package version, the git commit of the checkout the
 * broker runs from (when there is one) and when the running code was built. Read once at boot.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerInfo } from './http/cerbos-api.routes.js';

function findUp(start: string, name: string): string | undefined {
  let dir = start;
  for (;;) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function gitCommit(root: string): string {
  try {
    const head = readFileSync(join(root, '.git', 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const refFile = join(root, '.git', ref);
    if (existsSync(refFile)) return readFileSync(refFile, 'utf8').trim();
    const packed = readFileSync(join(root, '.git', 'packed-refs'), 'utf8');
    const line = packed.split('\n').find((l) => l.endsWith(` ${ref}`));
    return line?.split(' ')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Reads the build info of the running broker. */
export function readBuildInfo(): ServerInfo {
  const here = fileURLToPath(import.meta.url);
  const pkgPath = findUp(dirname(here), 'package.json');
  let version = '0.0.0';
  let commit = 'unknown';
  if (pkgPath !== undefined) {
    try {
      version = (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: string }).version ?? version;
    } catch {
      // INVARIANT: the broker ships with its package.json; a missing version is cosmetic only.
    }
    commit = gitCommit(dirname(pkgPath));
  }
  return { version, commit, buildDate: statSync(here).mtime.toISOString().replace(/\.\d{3}Z$/, 'Z') };
}
