/**
 * Reads a Cerbos-layout policy directory from disk into the text-only inputs of the engine
 * compiler. The engine itself never touches the file system; this is the broker's only reader.
 */
import { createHash, type Hash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, type Dirent, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { WardenError } from '@warden/core';
import { classifyPolicyPath, type PolicyFile, type SchemaFile } from '@warden/decision';

/** The files of a policy directory, split by role. Test suites are not needed to serve. */
export interface PolicySource {
  policies: PolicyFile[];
  schemas: SchemaFile[];
}

const SCHEMA_DIR = '_schemas/';

/** A directory's entries in name order, without hidden files and folders (.git, editor swap files: never policies). */
function visible(entries: Dirent[]): Dirent[] {
  return entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function walk(dir: string, out: string[]): void {
  for (const entry of visible(readdirSync(dir, { withFileTypes: true }))) {
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
 * has the fingerprint `missing`. Synchronous: for start-up and just before a reload (which reads
 * synchronously anyway); a periodic check on a serving process uses {@link fingerprintPolicyDirAsync}.
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
    const path = fingerprintPath(root, full);
    if (path === undefined) continue;
    try {
      addToFingerprint(hash, path, statSync(full));
    } catch {
      // Removed between the listing and the stat: absent from the fingerprint, as from the next read.
    }
  }
  return hash.digest('hex');
}

/**
 * {@link fingerprintPolicyDir} without blocking the event loop: the listing and the stats go to
 * libuv's thread pool, a directory's files in parallel. Equal to the synchronous one for the same
 * directory state.
 */
export async function fingerprintPolicyDirAsync(root: string): Promise<string> {
  const files: string[] = [];
  try {
    await walkAsync(root, files);
  } catch {
    return 'missing';
  }
  const paths = files.map((full) => fingerprintPath(root, full));
  const stats = await Promise.all(files.map((full, i) => (paths[i] === undefined ? undefined : stat(full).catch(() => undefined))));
  const hash = createHash('sha256');
  for (let i = 0; i < files.length; i++) {
    const path = paths[i];
    const st = stats[i];
    // Not a policy or schema, or removed between the listing and the stat.
    if (path !== undefined && st !== undefined) addToFingerprint(hash, path, st);
  }
  return hash.digest('hex');
}

async function walkAsync(dir: string, out: string[]): Promise<void> {
  for (const entry of visible(await readdir(dir, { withFileTypes: true }))) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) await walkAsync(full, out);
    else if (entry.isFile()) out.push(full);
  }
}

/** The `/`-separated path of a policy or schema file under `root`; undefined for any other file. */
function fingerprintPath(root: string, full: string): string | undefined {
  const path = relative(root, full).split(sep).join('/');
  const kind = classifyPolicyPath(path);
  return kind === 'policy' || kind === 'schema' ? path : undefined;
}

function addToFingerprint(hash: Hash, path: string, st: Stats): void {
  hash.update(`${path}\0${st.size}\0${st.ino}\0${st.mtimeMs}\0`);
}
