/**
 * The NDJSON sink: one JSON entry per line, appended to a file (fsynced per batch) or written to
 * stdout. Not idempotent: a replay after a partial failure may repeat lines (readers de-duplicate
 * on `decisionId`).
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditSink } from '../../audit-sink.js';
import { Utf8Batches } from '../../utf8-batch.js';

/** Options of {@link createNdjsonSink}. */
export interface NdjsonSinkOptions {
  /** The file to append to, or `-` for stdout. */
  path: string;
}

/**
 * Creates an NDJSON sink.
 * @example const sink = createNdjsonSink({ path: 'data/audit.ndjson' });
 */
export function createNdjsonSink(options: NdjsonSinkOptions): AuditSink {
  const { path } = options;
  let fh: FileHandle | undefined;
  const batches = new Utf8Batches();
  return {
    name: 'ndjson',
    async write(batch) {
      const b = batches.take();
      try {
        for (const e of batch) b.json(e).byte(0x0a);
        const bytes = b.bytes();
        if (path === '-') {
          await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (err) => (err ? reject(err) : resolve())));
          return;
        }
        if (fh === undefined) {
          mkdirSync(dirname(path), { recursive: true });
          fh = await open(path, 'a');
        }
        for (let at = 0; at < bytes.length; ) at += (await fh.write(bytes, at, bytes.length - at)).bytesWritten;
        await fh.sync();
      } finally {
        batches.give(b);
      }
    },
    async close() {
      await fh?.close();
      fh = undefined;
    },
  };
}
