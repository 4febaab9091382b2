/**
 * Shared helpers for the conformance runners: where the Cerbos case folder is, how to read a
 * policy directory the way the broker does, and the known-failures lists.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { classifyPolicyPath, type PolicyFile, type SchemaFile } from '../../libs/decision/src/index.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

/** The Cerbos conformance folder: `WARDEN_CONFORMANCE_DIR` or `../shared/conformance/cerbos`. */
export const conformanceDir = resolve(repoRoot, process.env['WARDEN_CONFORMANCE_DIR'] ?? '../shared/conformance/cerbos');

/** True when the folder (or a sub-folder of it) exists. */
export function conformancePresent(sub = ''): boolean {
  return existsSync(join(conformanceDir, sub));
}

function walk(dir: string, root: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = statSync(full);
    if (st.isDirectory()) walk(full, root, out);
    else out.push(relative(root, full).split(sep).join('/'));
  }
}

/** Reads a policy directory: policies, test suites and `_schemas/` files, by Cerbos's layout rules. */
export function readPolicyDir(dir: string): { files: PolicyFile[]; tests: PolicyFile[]; schemas: SchemaFile[] } {
  const paths: string[] = [];
  walk(dir, dir, paths);
  const files: PolicyFile[] = [];
  const tests: PolicyFile[] = [];
  const schemas: SchemaFile[] = [];
  for (const p of paths.sort()) {
    const kind = classifyPolicyPath(p);
    if (kind === 'ignored') continue;
    const text = readFileSync(join(dir, p), 'utf8');
    if (kind === 'policy') files.push({ path: p, text });
    else if (kind === 'test') tests.push({ path: p, text });
    else schemas.push({ path: p.slice('_schemas/'.length), text });
  }
  return { files, tests, schemas };
}

/**
 * Reads `test/conformance/known-failures/<name>.txt`: `<case> -- <reason>` per line (split on the
 * last ` -- `, so a case may hold spaces, as CEL expressions do), `#` starts a comment line.
 */
export function knownFailures(name: string): Map<string, string> {
  const file = join(repoRoot, 'test/conformance/known-failures', `${name}.txt`);
  const out = new Map<string, string>();
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' -- ');
    if (cut < 0) out.set(line.trim(), '');
    else out.set(line.slice(0, cut).trim(), line.slice(cut + 4).trim());
  }
  return out;
}
