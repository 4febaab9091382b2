/**
 * The NDJSON sink: one JSON entry per line, appended to a file (fsynced per batch) or written to
 * stdout. Not idempotent: a replay after a partial failure may repeat lines (readers de-duplicate
 * on `decisionId`).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditSink } from '../../audit-sink.js';
import { Utf8Batches } from '../../utf8-batch.js';

/** Options of {@link createNdjsonSink}. */
export interface NdjsonSinkOptions {
  /** The file to append to, or `-` for stdout. */
  path: string;
  /**
   * Write and fsync in the calling thread (`writeSync`, `fsyncSync`) rather than in libuv's pool
   * (default false): for a writer in a thread of its own (`audit.thread: worker`), which has
   * nothing else to do meanwhile. There the work runs at that thread's priority (nice 19, below
   * the event loop's); the pool's threads run at the broker's, and where they share the event
   * loop's core they took it from the checks as any of its own work would (bench/README.md).
   */
  blocking?: boolean;
}

/**
 * Creates an NDJSON sink.
 * @example const sink = createNdjsonSink({ path: 'data/audit.ndjson' });
 */
export function createNdjsonSink(options: NdjsonSinkOptions): AuditSink {
  const { path } = options;
  const blocking = options.blocking === true && path !== '-';
  let fh: FileHandle | undefined;
  let fd: number | undefined;
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
        if (blocking) {
          if (fd === undefined) {
            mkdirSync(dirname(path), { recursive: true });
            fd = openSync(path, 'a');
          }
          for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
          fsyncSync(fd);
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
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      await fh?.close();
      fh = undefined;
    },
  };
}
