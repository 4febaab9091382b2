/**
 * Reads a txtar archive (Go's `golang.org/x/tools/txtar`): an optional comment, then files, each
 * introduced by a line `-- name --`. Cerbos packs policy-test fixtures this way; the conformance
 * runners use it to turn a case into the file list {@link runPolicyTests} takes.
 */

/** One file of an archive. */
export interface TxtarFile {
  name: string;
  text: string;
}

const MARKER = /^-- (.+) --$/;

/** Splits an archive into its files (the leading comment is dropped). */
export function parseTxtar(archive: string): TxtarFile[] {
  const files: TxtarFile[] = [];
  let current: { name: string; lines: string[] } | undefined;
  const flush = (): void => {
    if (current !== undefined) files.push({ name: current.name, text: current.lines.join('') });
  };
  for (const line of archive.split(/(?<=\n)/)) {
    const marker = MARKER.exec(line.replace(/\r?\n$/, ''));
    if (marker?.[1] !== undefined) {
      flush();
      current = { name: marker[1].trim(), lines: [] };
    } else if (current !== undefined) {
      current.lines.push(line);
    }
  }
  flush();
  return files;
}
