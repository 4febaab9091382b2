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
   * Writes and fsyncs the file in the calling thread, blocking it (default false: on libuv's pool).
   * For a sink in a thread of its own (the decision log's writer thread): blocking it holds up
   * nothing else, and the write's CPU is spent at that thread's priority. On the pool it ran at
   * the broker's, on the event loop's core: there the pool had the event loop's core for 2.9 µs
   * per check it waited, against 0.1 for the writer's thread (bench/README.md, 2026-12-01), and
   * its threads ran 2.5-2.7 µs per check at 2,500 checks/s (none with this). The fsync is most of
   * that (about four fifths, ext4): writing here and fsyncing on the pool would leave it there.
   * Never in the event loop's thread. Stdout is written asynchronously either way.
   */
  blocking?: boolean;
}

/**
 * Creates an NDJSON sink.
 * @example const sink = createNdjsonSink({ path: 'data/audit.ndjson' });
 */
export function createNdjsonSink(options: NdjsonSinkOptions): AuditSink {
  const { path } = options;
  /**
   * The file without `blocking`: a FileHandle, not a bare descriptor, because a write the writer
   * gave up on (its timeout) may still be on libuv's pool when `close` runs, and a FileHandle's
   * close waits for it; a descriptor closed under it could be reused by the next open.
   */
  let fh: FileHandle | undefined;
  /** The file's descriptor with `blocking` (each write has returned before `close` can run). */
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
        if (options.blocking === true) {
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
