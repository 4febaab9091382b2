/**
 * Reads a Cerbos-layout policy directory from disk into the text-only inputs of the engine
 * compiler. The engine itself never touches the file system; this is the broker's only reader.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { WardenError } from '@warden/core';
import { classifyPolicyPath, type PolicyFile, type SchemaFile } from '@warden/decision';

/** The files of a policy directory, split by role. Test suites are not needed to serve. */
export interface PolicySource {
  policies: PolicyFile[];
  schemas: SchemaFile[];
}

const SCHEMA_DIR = '_schemas/';

function walk(dir: string, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    // Hidden files and folders (.git, editor swap files) are never policies.
    if (entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (entry.isFile()) out.push(full);
  }
}

/**
 * Walks `root` recursively and returns its policy and schema files (paths relative to the
 * root, `/`-separated; schema paths relative to `_schemas/`).
 */
export function readPolicyDir(root: string): PolicySource {
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new WardenError('ERR_POLICY_SET_INVALID', `policy directory not found: \`${root}\``);
  const files: string[] = [];
  walk(root, files);
  const policies: PolicyFile[] = [];
  const schemas: SchemaFile[] = [];
  for (const full of files) {
    const path = relative(root, full).split(sep).join('/');
    const kind = classifyPolicyPath(path);
    if (kind === 'policy') policies.push({ path, text: readFileSync(full, 'utf8') });
    else if (kind === 'schema') {
      const schemaPath = path.startsWith(SCHEMA_DIR) ? path.slice(SCHEMA_DIR.length) : path;
      schemas.push({ path: schemaPath, text: readFileSync(full, 'utf8') });
    }
  }
  return { policies, schemas };
}

/**
 * A cheap fingerprint of what {@link readPolicyDir} would read: the path, size, inode and
 * modification time of every policy and schema file (no content is read). Equal fingerprints
 * almost surely mean equal content; the reload compares content hashes anyway, so a change the
 * fingerprint reports falsely costs one read and nothing else. A directory that cannot be read
 * has the fingerprint `missing`.
 */
export function fingerprintPolicyDir(root: string): string {
  const files: string[] = [];
  try {
    walk(root, files);
  } catch {
    return 'missing';
  }
  const hash = createHash('sha256');
  for (const full of files) {
    const path = relative(root, full).split(sep).join('/');
    const kind = classifyPolicyPath(path);
    if (kind !== 'policy' && kind !== 'schema') continue;
    try {
      const st = statSync(full);
      hash.update(`${path}\0${st.size}\0${st.ino}\0${st.mtimeMs}\0`);
    } catch {
      // Removed between the listing and the stat: absent from the fingerprint, as from the next read.
    }
  }
  return hash.digest('hex');
}
