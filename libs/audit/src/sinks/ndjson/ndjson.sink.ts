/**
 * The NDJSON sink: one JSON entry per line, appended to a file (fsynced per batch) or written to
 * stdout. Not idempotent: a replay after a partial failure may repeat lines (readers de-duplicate
 * on `decisionId`).
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SerializedEntry } from '../../audit-entry.js';
import type { AuditSink } from '../../audit-sink.js';

/** Options of {@link createNdjsonSink}. */
export interface NdjsonSinkOptions {
  /** The file to append to, or `-` for stdout. */
  path: string;
}

/** The batch's lines as UTF-8 (an entry from the ring is copied as the bytes it came as, not made a string). */
function linesOf(batch: readonly SerializedEntry[]): Buffer {
  let size = 0;
  for (const e of batch) size += (e.bytes?.length ?? Buffer.byteLength(e.json, 'utf8')) + 1;
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const e of batch) {
    if (e.bytes !== undefined) {
      out.set(e.bytes, at);
      at += e.bytes.length;
    } else at += out.write(e.json, at, 'utf8');
    out[at++] = 0x0a;
  }
  return out;
}

/**
 * Creates an NDJSON sink.
 * @example const sink = createNdjsonSink({ path: 'data/audit.ndjson' });
 */
export function createNdjsonSink(options: NdjsonSinkOptions): AuditSink {
  const { path } = options;
  let fh: FileHandle | undefined;
  return {
    name: 'ndjson',
    async write(batch) {
      const lines = linesOf(batch);
      if (path === '-') {
        await new Promise<void>((resolve, reject) => process.stdout.write(lines, (err) => (err ? reject(err) : resolve())));
        return;
      }
      if (fh === undefined) {
        mkdirSync(dirname(path), { recursive: true });
        fh = await open(path, 'a');
      }
      await fh.writeFile(lines);
      await fh.sync();
    },
    async close() {
      await fh?.close();
      fh = undefined;
    },
  };
}
