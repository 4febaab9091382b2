import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isWardenError } from '@warden/core';
import { buildRecord, CAPTURED, CAPTURE_NO_ROOM, packEntry, serializeEntry, type AuditEntry, type ComposedEntry, type SerializedEntry } from './audit-entry.js';
import type { AuditSink } from './audit-sink.js';
import { CAPTURE_QUEUED, cpuMasksIntersect, createThreadedAuditWriter, EventLoopState, serveAuditWriter, sharesCpuWithMain, STARVED_UNTIL_QUEUED, STATS_INTERVAL_MS, ThreadSchedStat, type AuditThread, type ServedAuditWriter } from './audit-thread.js';
import { createEntryRing, EntryRingWriter } from './entry-ring.js';
import { createAuditWriter } from './audit-writer.js';
import { auditEntry, ids, range, SwitchableSink } from '../../../test/support/audit-doubles.js';

/**
 * The writer's "thread" as the two ends of a real MessageChannel, served in this thread (the
 * worker file of the broker is compiled code; the protocol is what is under test here). The
 * served end closing is what a thread's exit looks like to the parent.
 */
function channelThread(serve: (port: MessagePort) => void): AuditThread & { served: MessagePort } {
  const { port1, port2 } = new MessageChannel();
  serve(port2);
  return {
    served: port2,
    postMessage: (m: unknown) => port1.postMessage(m),
    on(event: string, listener: (arg: never) => void) {
      if (event === 'message') port1.on('message', listener as (m: unknown) => void);
      else if (event === 'exit') port1.on('close', () => (listener as (code: number) => void)(0));
      return this;
    },
    terminate: async () => {
      port1.close();
      return 1;
    },
  };
}

/**
 * A writer's end that takes nothing from the ring and asks for the core (`asks`: the ring's request
 * word, 1 or 2) from the moment it is given the ring, which `gotRing` receives; it answers `close`.
 */
function starvedThread(asks: number, gotRing: (asked: Int32Array) => void): AuditThread {
  return channelThread((port) =>
    port.on('message', (m: { t: string; id?: number; sab?: SharedArrayBuffer }) => {
      if (m.t === 'ring' && m.sab !== undefined) {
        const asked = new Int32Array(m.sab, 0, 2);
        Atomics.store(asked, 1, asks);
        gotRing(asked);
      }
      if (m.t === 'close') {
        port.postMessage({ t: 'done', id: m.id, stats: { written: 0, spilled: 0, replayed: 0, failed: 0, dropped: 0, queued: 0, spillPending: false, yields: 0 }, received: 0 });
        port.close();
      }
    }),
  );
}

/** Entries `from` to `to` (exclusive) as the writer's thread takes them from a post. */
const serialized = (from: number, to: number): SerializedEntry[] => range(from, to).map((n) => ({ ...auditEntry(n), json: JSON.stringify(auditEntry(n)), subject: 'alice', agent: undefined, resources: [] }));

/** Makes `sink`'s writes hang until the function returned is called, which lets them (and later ones) through. */
function holdWrites(sink: SwitchableSink): () => void {
  let release = (): void => undefined;
  const write = sink.write.bind(sink);
  sink.write = (b) => new Promise<void>((r) => (release = r)).then(() => write(b));
  return () => {
    sink.write = write;
    release();
  };
}

/** Asks the served end on the other side of `port` to close, and waits for its answer. */
const closeServed = (port: MessagePort): Promise<unknown> =>
  new Promise((r) => {
    port.on('message', (m: { t: string }) => m.t === 'done' && r(m));
    port.postMessage({ t: 'close', id: 1 });
  });

describe('createThreadedAuditWriter', () => {
  let dir: string;
  let spillPath: string;
  let errors: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'warden-audit-thread-'));
    spillPath = join(dir, 'audit.spill.ndjson');
    errors = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const served = (sink: AuditSink, path = spillPath) => (port: MessagePort) => serveAuditWriter(port, (onError) => createAuditWriter({ sink, spillPath: path, batchSize: 3, onError }));

  it('builds each entry in the caller\'s thread after its turn, and the writer on the other end writes them in order', async () => {
    const sink = new SwitchableSink();
    const sut = createThreadedAuditWriter({ start: () => channelThread(served(sink)), onError: (m) => errors.push(m) });
    let built = 0;
    for (const n of range(0, 8)) sut.record(() => (built++, auditEntry(n)));
    expect(built).toBe(0);
    expect(sut.stats().queued).toBe(8);
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(8);
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 8).map(auditEntry)));
    expect(sink.received.map((e) => JSON.parse(e.json) as AuditEntry)).toEqual(range(0, 8).map(auditEntry));
    // The counters come back with the flush's answer.
    expect(sut.stats()).toMatchObject({ written: 8, queued: 0, spilled: 0 });
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('resolves a durable record once the other end made it durable, after the entries recorded before it', async () => {
    const sink = new SwitchableSink();
    const sut = createThreadedAuditWriter({ start: () => channelThread(served(sink)) });
    sut.record(auditEntry(1));
    await sut.recordDurable(auditEntry(2));
    expect(ids(sink.received)).toEqual(['d-0001', 'd-0002']);
    // With the sink down it is durable in the spill file, and the sink's error is reported here.
    sink.down = true;
    const errs: string[] = [];
    const sut2 = createThreadedAuditWriter({ start: () => channelThread(served(sink)), onError: (m) => errs.push(m) });
    await sut2.recordDurable(auditEntry(3));
    expect(readFileSync(spillPath, 'utf8')).toContain('"decisionId":"d-0003"');
    expect(errs.some((m) => m.includes('sink `switchable` failed'))).toBe(true);
    await sut.close();
    await sut2.close();
  });

  it('refuses a durable record with ERR_AUDIT_UNAVAILABLE when neither the sink nor the spill file takes it', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    // The spill file's directory is a file: it cannot be created.
    writeFileSync(join(dir, 'blocked'), '');
    const sut = createThreadedAuditWriter({ start: () => channelThread(served(sink, join(dir, 'blocked', 'spill.ndjson'))), onError: (m) => errors.push(m) });
    const err = await sut.recordDurable(auditEntry(1)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isWardenError(err) && err.code).toBe('ERR_AUDIT_UNAVAILABLE');
    expect(errors.some((m) => m.includes('spill file failed'))).toBe(true);
    await sut.close();
  });

  it('refuses the callers waiting on a thread that stopped, starts a new one, and sends it what follows', async () => {
    const sink = new SwitchableSink();
    const threads: ReturnType<typeof channelThread>[] = [];
    // The first thread takes entries but never answers a durable record: it "crashes" instead.
    let first = true;
    const start = (): AuditThread => {
      const t = first
        ? channelThread((port) => port.on('message', () => undefined))
        : channelThread(served(sink));
      first = false;
      threads.push(t);
      return t;
    };
    const sut = createThreadedAuditWriter({ start, onError: (m) => errors.push(m), restartDelayMs: 10 });
    const waiting = sut.recordDurable(auditEntry(1));
    await new Promise((r) => setTimeout(r, 20));
    (threads[0] as ReturnType<typeof channelThread>).served.close();
    const err = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isWardenError(err) && err.code).toBe('ERR_AUDIT_UNAVAILABLE');
    expect(errors.some((m) => m.includes("the writer's thread stopped"))).toBe(true);
    // Recorded before the new thread runs: held, then sent to it.
    sut.record(auditEntry(2));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 30));
    expect(threads).toHaveLength(2);
    await sut.flush();
    expect(ids(sink.received)).toEqual(['d-0002']);
    await sut.close();
  });

  it('refuses a durable record the thread has not answered within durableTimeoutMs (a thread stuck in a write), and one answered in time stays resolved', async () => {
    // A thread that takes every post and answers none.
    const stuck = createThreadedAuditWriter({ start: () => channelThread((port) => port.on('message', () => undefined)), durableTimeoutMs: 50, closeTimeoutMs: 50, onError: (m) => errors.push(m) });
    const err = await stuck.recordDurable(auditEntry(1)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isWardenError(err) && err.code).toBe('ERR_AUDIT_UNAVAILABLE');
    expect((err as Error).message).toMatch(/did not make the entry durable within 50 ms/);
    await stuck.close();
    const sink = new SwitchableSink();
    const sut = createThreadedAuditWriter({ start: () => channelThread(served(sink)), durableTimeoutMs: 50 });
    await sut.recordDurable(auditEntry(2));
    // Its timer was cleared with the answer: nothing is refused later.
    await new Promise((r) => setTimeout(r, 80));
    expect(ids(sink.received)).toEqual(['d-0002']);
    await sut.close();
  });

  it('holds at most maxPosted entries posted to a thread that takes none, drops and counts the rest, says so once, and posts again once the thread takes them', async () => {
    let port: MessagePort | undefined;
    const sut = createThreadedAuditWriter({
      start: () =>
        channelThread((p) => {
          port = p;
          p.on('message', () => undefined);
        }),
      ringBytes: 0,
      maxPosted: 10,
      closeTimeoutMs: 50,
      onError: (m) => errors.push(m),
    });
    for (const n of range(1, 26)) sut.record(auditEntry(n));
    await new Promise((r) => setTimeout(r, 30));
    expect(sut.stats()).toMatchObject({ dropped: 15, queued: 10 });
    expect(errors.filter((m) => m.includes('entries are dropped until it does'))).toHaveLength(1);
    // The thread takes the ten and says so: entries are posted again.
    port?.postMessage({ t: 'stats', stats: { written: 10, spilled: 0, replayed: 0, failed: 0, dropped: 0, queued: 0, spillPending: false, yields: 0 }, received: 10 });
    await new Promise((r) => setTimeout(r, 10));
    for (const n of range(26, 31)) sut.record(auditEntry(n));
    await new Promise((r) => setTimeout(r, 30));
    expect(sut.stats()).toMatchObject({ dropped: 15, queued: 5 });
    expect(errors.some((m) => m.includes('takes entries again; 15 were dropped in all'))).toBe(true);
    await sut.close();
  });

  it('a thread failing of an uncaught exception spills what its writer holds first; the next thread replays it, nothing lost', async () => {
    const sink = new SwitchableSink();
    holdWrites(sink);
    const threads: ReturnType<typeof channelThread>[] = [];
    const serves: ServedAuditWriter[] = [];
    const start = (): AuditThread => {
      const t = channelThread((port) => serves.push(serveAuditWriter(port, (onError) => createAuditWriter({ sink: threads.length === 0 ? sink : next, spillPath, batchSize: 3, writeTimeoutMs: 60_000, onError }))));
      threads.push(t);
      return t;
    };
    const next = new SwitchableSink();
    const sut = createThreadedAuditWriter({ start, onError: (m) => errors.push(m), restartDelayMs: 10, postIntervalMs: 1 });
    for (const n of range(0, 7)) sut.record(auditEntry(n));
    // Posted and taken by the thread's writer, whose first batch hangs at the sink.
    for (let i = 0; i < 50 && (sut.stats().queued !== 7 || serves.length === 0); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 120));
    // What the broker's audit-worker.js does on an uncaught exception, then the thread's exit.
    (serves[0] as ServedAuditWriter).failed(new Error('boom'));
    await new Promise((r) => setTimeout(r, 20));
    (threads[0] as ReturnType<typeof channelThread>).served.close();
    for (let i = 0; i < 100 && threads.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await sut.flush();
    expect(errors.some((m) => m.includes("the writer's thread failed (boom); 7 entries it held spilled"))).toBe(true);
    expect(ids(next.received)).toEqual(ids(range(0, 7).map(auditEntry)));
    await sut.close();
  });

  it('a failing thread also spills the entries of the posts it had not read yet, after those it held', async () => {
    const sink = new SwitchableSink();
    holdWrites(sink);
    const { port1, port2 } = new MessageChannel();
    const served = serveAuditWriter(port2, (onError) => createAuditWriter({ sink, spillPath, batchSize: 3, writeTimeoutMs: 60_000, onError }));
    const reported: string[] = [];
    port1.on('message', (m: { t: string; message?: string }) => m.t === 'err' && reported.push(m.message ?? ''));
    port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(0, 4) });
    // Read and held by the writer (its first batch at the sink) ...
    await new Promise((r) => setTimeout(r, 20));
    // ... then more posts, which the served end has not read when it fails (the same turn); one it cannot take is skipped.
    port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(4, 6) });
    port1.postMessage({ t: 'rec', at: Date.now(), entries: 5 });
    port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(6, 7) });
    served.failed(new Error('boom'), () => receiveMessageOnPort(port2));
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect(onDisk).toEqual(ids(range(0, 7).map(auditEntry)));
    await new Promise((r) => setTimeout(r, 20));
    expect(reported.filter((m) => m.includes("the writer's thread failed (boom); 7 entries it held spilled, for the next thread to replay (1 unread posts could not be taken)"))).toHaveLength(1);
    port1.close();
  });

  it('sends what does not fit in the ring in the post, after the ring\'s entries, and keeps the order', async () => {
    const sink = new SwitchableSink();
    // About two entries fit in this ring: most of each batch goes in the post.
    const sut = createThreadedAuditWriter({ start: () => channelThread(served(sink)), ringBytes: 700, onError: (m) => errors.push(m) });
    for (const n of range(0, 10)) sut.record(auditEntry(n));
    await new Promise((r) => setImmediate(r));
    expect(sut.stats().queued).toBe(10);
    await sut.flush();
    // Once the thread read the ring, the next batch starts in it again.
    for (const n of range(10, 20)) sut.record(auditEntry(n));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 20).map(auditEntry)));
    expect(sink.received.map((e) => JSON.parse(e.json) as AuditEntry)).toEqual(range(0, 20).map(auditEntry));
    expect(sink.received[3]).toMatchObject({ subject: 'alice', agent: undefined, resources: [], decision: 'DENY' });
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('gives the entries written in the ring and not yet posted to the next thread when one stops', async () => {
    const sink = new SwitchableSink();
    const threads: ReturnType<typeof channelThread>[] = [];
    const start = (): AuditThread => {
      const t = channelThread(threads.length === 0 ? (port) => port.on('message', () => undefined) : served(sink));
      threads.push(t);
      return t;
    };
    const sut = createThreadedAuditWriter({ start, onError: (m) => errors.push(m), restartDelayMs: 10, postIntervalMs: 60_000 });
    for (const n of range(0, 3)) sut.record(auditEntry(n));
    await new Promise((r) => setImmediate(r));
    // Built into the ring, not posted (the interval is a minute): the first thread never saw them.
    (threads[0] as ReturnType<typeof channelThread>).served.close();
    await new Promise((r) => setTimeout(r, 40));
    expect(threads).toHaveLength(2);
    sut.record(auditEntry(3));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 4).map(auditEntry)));
    await sut.close();
  });

  it('has captured entries composed by the decoder on the writer\'s end, and on this end for those a stopped thread left in the ring', async () => {
    // Captured: CAPTURED and the packed text; decoded: the text (what `compose` writes, which is never called here).
    const packed = (n: number): string => packEntry(serializeEntry(auditEntry(n)));
    const captured = (n: number): ComposedEntry => ({
      compose: (out) => {
        composed += 1;
        out.raw(packed(n));
      },
      capture: (buf, start, end) => {
        const text = packed(n);
        if (end - start < 1 + Buffer.byteLength(text)) return CAPTURE_NO_ROOM;
        buf[start] = CAPTURED;
        return start + 1 + buf.write(text, start + 1);
      },
    });
    let decoded = 0;
    let composed = 0;
    const decode = (record: Buffer): Buffer => {
      decoded += 1;
      return record.subarray(1);
    };
    const sink = new SwitchableSink();
    const threads: ReturnType<typeof channelThread>[] = [];
    const start = (): AuditThread => {
      const t = channelThread(threads.length === 0 ? (port) => port.on('message', () => undefined) : (port) => serveAuditWriter(port, (onError) => createAuditWriter({ sink, spillPath, batchSize: 3, onError }), undefined, decode));
      threads.push(t);
      return t;
    };
    const sut = createThreadedAuditWriter({ start, onError: (m) => errors.push(m), restartDelayMs: 10, postIntervalMs: 60_000, decodeCaptured: decode });
    for (const n of range(0, 3)) sut.record(captured(n));
    await new Promise((r) => setImmediate(r));
    // In the ring, not posted: the first thread stops, and this end decodes the three for the next.
    (threads[0] as ReturnType<typeof channelThread>).served.close();
    await new Promise((r) => setTimeout(r, 40));
    expect(threads).toHaveLength(2);
    expect(decoded).toBe(3);
    await sut.flush();
    for (const n of range(3, 6)) sut.record(captured(n));
    await sut.flush();
    // The next three decoded on the writer's end; none composed.
    expect(decoded).toBe(6);
    expect(composed).toBe(0);
    expect(ids(sink.received)).toEqual(ids(range(0, 6).map(auditEntry)));
    expect(sink.received.map((e) => JSON.parse(e.json) as AuditEntry)).toEqual(range(0, 6).map(auditEntry));
    await sut.close();
    expect(errors.filter((m) => !m.includes('stopped'))).toEqual([]);
  });

  it('captures only while the writer\'s thread keeps up: a thread starved of CPU, or with a long queue, gets composed entries', async () => {
    const packed = (n: number): string => packEntry(serializeEntry(auditEntry(n)));
    let composed = 0;
    const captured = (n: number): ComposedEntry => ({
      compose: (out) => {
        composed += 1;
        out.raw(packed(n));
      },
      capture: (buf, start) => {
        buf[start] = CAPTURED;
        return start + 1 + buf.write(packed(n), start + 1);
      },
    });
    const decode = (record: Buffer): Buffer => record.subarray(1);
    const sink = new SwitchableSink();
    let asked: Int32Array | undefined;
    let served: ServedAuditWriter | undefined;
    const sut = createThreadedAuditWriter({
      start: () =>
        channelThread((port) => {
          port.on('message', (m: { t: string; sab?: SharedArrayBuffer }) => {
            if (m.t === 'ring' && m.sab !== undefined) asked = new Int32Array(m.sab, 0, 2);
          });
          served = serveAuditWriter(port, (onError) => createAuditWriter({ sink, spillPath, batchSize: 3, onError }), undefined, decode);
        }),
      onError: (m) => errors.push(m),
      decodeCaptured: decode,
    });
    expect(served).toBeDefined();
    await new Promise((r) => setTimeout(r, 20));
    // The thread keeps up: captured.
    for (const n of range(0, 3)) sut.record(captured(n));
    await sut.flush();
    expect(composed).toBe(0);
    // It says it is starved (the word its end sets, EntryRingReader.starved): composed here.
    Atomics.store(asked as Int32Array, 1, 1);
    for (const n of range(3, 6)) sut.record(captured(n));
    await sut.flush();
    expect(composed).toBe(3);
    Atomics.store(asked as Int32Array, 1, 0);
    // Its queue, as it last reported, long (a sink that does not answer): composed here too.
    const release = holdWrites(sink);
    for (const n of range(6, 6 + CAPTURE_QUEUED + 50)) sut.record(captured(n));
    await new Promise((r) => setTimeout(r, 3 * STATS_INTERVAL_MS));
    expect(sut.stats().queued).toBeGreaterThanOrEqual(CAPTURE_QUEUED);
    const before = composed;
    sut.record(captured(6 + CAPTURE_QUEUED + 50));
    await new Promise((r) => setImmediate(r));
    expect(composed).toBe(before + 1);
    release();
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 6 + CAPTURE_QUEUED + 51).map(auditEntry)));
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('closes: the other end flushes and stops; later records are refused and reported', async () => {
    const sink = new SwitchableSink();
    let closedPort = false;
    const sut = createThreadedAuditWriter({
      start: () => {
        const t = channelThread(served(sink));
        t.served.on('close', () => (closedPort = true));
        return t;
      },
      onError: (m) => errors.push(m),
    });
    for (const n of range(0, 5)) sut.record(auditEntry(n));
    await sut.close();
    expect(ids(sink.received)).toEqual(ids(range(0, 5).map(auditEntry)));
    expect(closedPort).toBe(true);
    sut.record(auditEntry(9));
    expect(errors).toEqual(['audit: an entry was recorded after close']);
    await expect(sut.recordDurable(auditEntry(10))).rejects.toThrow(/closed/);
  });

  it('gives a starved writer\'s thread the core only once an eighth of the ring waits for it, or its own queue is long, and counts each time', async () => {
    // The other end takes nothing from the ring and says it is starved from the start.
    let asked: Int32Array | undefined;
    const thread = starvedThread(1, (a) => (asked = a));
    const ringBytes = 64 << 10;
    // busyShare 0: however idle this event loop (the next test has the default).
    const sut = createThreadedAuditWriter({ start: () => thread, ringBytes, busyShare: 0, onError: (m) => errors.push(m) });
    const turn = () => new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toBeDefined();
    // A record in the ring: its length, and the packed entry padded to 4 bytes.
    const entryBytes = 4 + Math.ceil(Buffer.byteLength(packEntry(buildRecord(auditEntry(0), () => undefined) as SerializedEntry)) / 4) * 4;
    // Less than an eighth of the ring: the event loop goes on at once, however starved the other end says it is.
    const few = Math.floor(ringBytes / 8 / entryBytes);
    for (const n of range(0, few - 1)) sut.record(auditEntry(n));
    await turn();
    expect(sut.stats().yields).toBe(0);
    // Unless its own queue is long (2): then whatever the ring holds.
    Atomics.store(asked as Int32Array, 1, 2);
    sut.record(auditEntry(few - 1));
    await turn();
    expect(sut.stats().yields).toBe(1);
    Atomics.store(asked as Int32Array, 1, 1);
    // Past an eighth: each check phase that built entries waits for it (up to YIELD_MS).
    for (const n of range(few, few + Math.ceil(ringBytes / 8 / entryBytes))) sut.record(auditEntry(n));
    await turn();
    expect(sut.stats().yields).toBe(2);
    sut.record(auditEntry(10_000));
    await turn();
    expect(sut.stats().yields).toBe(3);
    // Fed: no more waits.
    Atomics.store(asked as Int32Array, 1, 0);
    sut.record(auditEntry(10_001));
    await turn();
    expect(sut.stats().yields).toBe(3);
    await sut.close();
    expect(errors).toEqual([]);
  });

  it.runIf(process.platform === 'linux')('gives a starved writer\'s thread the core only while the event loop\'s thread was on its core its share (busyShare) of the last 100 ms or more', async () => {
    // Starved, with a long queue of its own: wherever the ring stands, it asks for the core.
    let asked: Int32Array | undefined;
    const thread = starvedThread(2, (a) => (asked = a));
    // A share a loaded machine's test thread still reaches (the default is BUSY_SHARE).
    const sut = createThreadedAuditWriter({ start: () => thread, ringBytes: 64 << 10, busyShare: 0.3, onError: (m) => errors.push(m) });
    const turn = () => new Promise((r) => setImmediate(r));
    // Idle for 150 ms: whatever starves the other end, it is not this event loop.
    await new Promise((r) => setTimeout(r, 150));
    expect(asked).toBeDefined();
    sut.record(auditEntry(0));
    await turn();
    expect(sut.stats().yields).toBe(0);
    // On its core for 150 ms in one callback: now a pause gives the other end the core.
    const clock = new ThreadSchedStat();
    const until = (clock.cpuMs() as number) + 150;
    while ((clock.cpuMs() as number) < until);
    clock.close();
    sut.record(auditEntry(1));
    await turn();
    expect(sut.stats().yields).toBe(1);
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('the writer\'s end asks for the core when a post reaches it late after waiting for a core, until it is on time with a short queue, and counts its long queue only while it waits for a core; a slow sink or its own work alone never asks', async () => {
    const sink = new SwitchableSink();
    const { port1, port2 } = new MessageChannel();
    // Wide limits: on a busy machine this thread's own timers run tens of ms late, which is starvation too.
    const starvedAfterMs = 2_000;
    // The thread's wait for a core, as the kernel would tell it: moved by the test.
    let waited = 0;
    /** Since when the thread has been waiting for a core all the time (performance.now()), while it is. */
    let waitingSince: number | undefined;
    const waitedMs = (): number => waited + (waitingSince === undefined ? 0 : performance.now() - waitingSince);
    serveAuditWriter(port2, (onError) => createAuditWriter({ sink, spillPath, batchSize: 3, onError }), { starvedAfterMs, fedWithinMs: 1_000, waitedMs });
    const sab = createEntryRing(4096);
    const asked = (): number => Atomics.load(new Int32Array(sab, 0, 2), 1);
    const delivered = () => new Promise((r) => setTimeout(r, 30));
    port1.postMessage({ t: 'ring', sab });
    port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(0, 3) });
    await delivered();
    expect(asked()).toBe(0);
    // The sink hangs: the queue grows past STARVED_UNTIL_QUEUED, posts still arrive on time, nobody is asked to yield.
    const release = holdWrites(sink);
    const many = serialized(3, STARVED_UNTIL_QUEUED + 100);
    port1.postMessage({ t: 'rec', at: Date.now(), entries: many });
    await delivered();
    expect(asked()).toBe(0);
    // A post that waited longer than `starvedAfterMs` for this end's thread while the thread did not
    // wait for a core (it was busy with its own work, or its process was stopped): nobody is asked.
    port1.postMessage({ t: 'rec', at: Date.now() - starvedAfterMs - 5 });
    await delivered();
    expect(asked()).toBe(0);
    // The same lateness with the thread waiting for a core all that time: it was starved, and asks ...
    // (The writer's own stats timer also looks at the clock, every 100 ms: when it runs between the
    // move and the post, it takes the wait as seen and the post finds none, so the test tries again.)
    for (let attempt = 0; attempt < 5 && asked() === 0; attempt++) {
      waited += starvedAfterMs;
      port1.postMessage({ t: 'rec', at: Date.now() - starvedAfterMs - 5 });
      await delivered();
    }
    expect(asked()).not.toBe(0);
    // ... whatever the ring holds (2: its own queue is past YIELD_QUEUED) while it still waits for a
    // core most of the time ...
    waitingSince = performance.now();
    await delivered();
    expect(asked()).toBe(2);
    await delivered();
    expect(asked()).toBe(2);
    // ... but not once it has the core: its long queue waits for a slow sink, which a pause of the
    // event loop would not feed (1: the ring's backlog decides) ...
    waited = waitedMs();
    waitingSince = undefined;
    // (judged over the last 20-40 ms: a few looks later)
    for (let i = 0; i < 20 && asked() === 2; i++) await delivered();
    expect(asked()).toBe(1);
    // ... and withdraws once it has written its queue down (no post needed: it looks again by itself).
    release();
    for (let i = 0; i < 100 && asked() !== 0; i++) await delivered();
    expect(asked()).toBe(0);
    expect(ids(sink.received)).toEqual(ids(range(0, STARVED_UNTIL_QUEUED + 100).map(auditEntry)));
    await closeServed(port1);
  });

  it('the writer\'s end never asks for the core while it may not run on a CPU of the event loop\'s, and asks once it may', async () => {
    const sink = new SwitchableSink();
    const { port1, port2 } = new MessageChannel();
    const starvedAfterMs = 2_000;
    let waited = 0;
    let apart = true;
    serveAuditWriter(port2, (onError) => createAuditWriter({ sink, spillPath, batchSize: 3, onError }), { starvedAfterMs, fedWithinMs: 1_000, waitedMs: () => waited, sharesCore: () => !apart });
    const sab = createEntryRing(4096);
    const asked = (): number => Atomics.load(new Int32Array(sab, 0, 2), 1);
    const delivered = () => new Promise((r) => setTimeout(r, 30));
    port1.postMessage({ t: 'ring', sab });
    // A sink that hangs and a queue past STARVED_UNTIL_QUEUED: once it asks, this end keeps asking while it may be fed.
    const release = holdWrites(sink);
    port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(0, STARVED_UNTIL_QUEUED + 100) });
    await delivered();
    /** A post as late as starvation, with the thread waiting for a core all that time (tried again: see the test above). */
    const starve = async (): Promise<void> => {
      for (let attempt = 0; attempt < 5 && asked() === 0; attempt++) {
        waited += starvedAfterMs;
        port1.postMessage({ t: 'rec', at: Date.now() - starvedAfterMs - 5 });
        await delivered();
      }
    };
    // Watched every millisecond: not even a request withdrawn at the next look.
    let everAsked = 0;
    const watch = setInterval(() => (everAsked = Math.max(everAsked, asked())), 1);
    await starve();
    clearInterval(watch);
    expect(everAsked).toBe(0);
    // The same thread on a CPU the event loop may use (the answer is kept 100 ms): it asks ...
    apart = false;
    await new Promise((r) => setTimeout(r, 120));
    await starve();
    expect(asked()).not.toBe(0);
    // ... and withdraws once it is pinned apart again, while still late (it looks every 5 ms).
    apart = true;
    for (let i = 0; i < 20 && asked() !== 0; i++) await delivered();
    expect(asked()).toBe(0);
    release();
    await closeServed(port1);
    expect(ids(sink.received)).toEqual(ids(range(0, STARVED_UNTIL_QUEUED + 100).map(auditEntry)));
  });

  it('the writer\'s end sleeps a moment as it takes entries while the event loop\'s thread is runnable on a core it may share; never otherwise, and loses nothing', async () => {
    const packed = (n: number): string => packEntry(serializeEntry(auditEntry(n)));
    const captured = (n: number): ComposedEntry => ({
      compose: () => undefined,
      capture: (buf, start) => {
        buf[start] = CAPTURED;
        return start + 1 + buf.write(packed(n), start + 1);
      },
    });
    // Each entry costs its decoder 0.05 ms: taking 40 runs past GIVE_WAY_AFTER_MS again and again.
    const slow = (record: Buffer): Buffer => {
      const until = performance.now() + 0.05;
      while (performance.now() < until);
      return record.subarray(1);
    };
    const take = async (runnable: boolean, shares: boolean): Promise<{ writerYields: number; asked: number; got: string[] }> => {
      const sink = new SwitchableSink();
      const { port1, port2 } = new MessageChannel();
      let asked = 0;
      const limits = { starvedAfterMs: 60_000, fedWithinMs: 60_000, waitedMs: () => 0, sharesCore: () => shares, eventLoopRunnable: () => (asked++, runnable) };
      serveAuditWriter(port2, (onError) => createAuditWriter({ sink, spillPath: join(dir, `${runnable}-${shares}.spill`), batchSize: 50, onError }), limits, slow);
      const sab = createEntryRing(1 << 20);
      const w = new EntryRingWriter(sab, slow);
      for (const n of range(0, 40)) expect(w.compose(captured(n))).toBe(true);
      port1.postMessage({ t: 'ring', sab });
      port1.postMessage({ t: 'rec', at: Date.now(), upTo: w.head, n: 40 });
      const done = (await closeServed(port1)) as { stats: { writerYields: number } };
      port1.close();
      return { writerYields: done.stats.writerYields, asked, got: ids(sink.received) };
    };
    const all = ids(range(0, 40).map(auditEntry));
    const beside = await take(true, true);
    expect(beside.writerYields).toBeGreaterThan(0);
    expect(beside.writerYields).toBe(beside.asked);
    expect(beside.got).toEqual(all);
    // The event loop idle (or running elsewhere and done): asked, never slept.
    const idle = await take(false, true);
    expect(idle.asked).toBeGreaterThan(0);
    expect(idle.writerYields).toBe(0);
    expect(idle.got).toEqual(all);
    // Pinned apart: not even asked.
    const apart = await take(true, false);
    expect(apart.asked).toBe(0);
    expect(apart.writerYields).toBe(0);
    expect(apart.got).toEqual(all);
  });

  it('the writer\'s end also looks before each sink write whether to give the event loop its core, through the writer\'s beforeWrite', async () => {
    const write = async (runnable: boolean, shares: boolean): Promise<{ writerYields: number; asked: number; writes: number; got: string[] }> => {
      const sink = new SwitchableSink();
      const { port1, port2 } = new MessageChannel();
      let asked = 0;
      const limits = { starvedAfterMs: 60_000, fedWithinMs: 60_000, waitedMs: () => 0, sharesCore: () => shares, eventLoopRunnable: () => (asked++, runnable) };
      serveAuditWriter(port2, (onError, giveWay) => createAuditWriter({ sink, spillPath: join(dir, `w-${runnable}-${shares}.spill`), batchSize: 10, onError, beforeWrite: giveWay }), limits);
      // Posted in the message, not the ring: only the writes can give way.
      port1.postMessage({ t: 'rec', at: Date.now(), entries: serialized(0, 40) });
      const done = (await closeServed(port1)) as { stats: { writerYields: number } };
      port1.close();
      return { writerYields: done.stats.writerYields, asked, writes: sink.batches.length, got: ids(sink.received) };
    };
    const all = ids(range(0, 40).map(auditEntry));
    const beside = await write(true, true);
    expect(beside.writes).toBe(4);
    expect(beside.writerYields).toBe(4);
    expect(beside.asked).toBe(4);
    expect(beside.got).toEqual(all);
    const idle = await write(false, true);
    expect(idle.asked).toBe(4);
    expect(idle.writerYields).toBe(0);
    expect(idle.got).toEqual(all);
    const apart = await write(true, false);
    expect(apart.asked).toBe(0);
    expect(apart.writerYields).toBe(0);
    expect(apart.got).toEqual(all);
  });

  it.runIf(process.platform === 'linux')('reads whether the event loop\'s thread is runnable from its state in the kernel\'s stat file, whatever its name holds', () => {
    // This runs on the process's main thread (a forked test worker) or beside it: either way the main thread's state is read.
    expect(typeof new EventLoopState().runnable()).toBe('boolean');
    const dir = mkdtempSync(join(tmpdir(), 'warden-stat-'));
    try {
      const stat = (name: string, text: string): EventLoopState => {
        const path = join(dir, name);
        writeFileSync(path, text);
        return new EventLoopState(path);
      };
      expect(stat('r', '4242 (node) R 1 4242 4242 0 -1\n').runnable()).toBe(true);
      expect(stat('s', '4242 (node) S 1 4242 4242 0 -1\n').runnable()).toBe(false);
      // A name with a space and a parenthesis and an R in it: the state follows the last ')'.
      expect(stat('odd', '4242 (a) R (b) S 1 4242\n').runnable()).toBe(false);
      expect(stat('cut', '4242 (node)').runnable()).toBeUndefined();
      expect(new EventLoopState(join(dir, 'missing')).runnable()).toBeUndefined();
      const closed = stat('closed', '4242 (node) R 1\n');
      closed.close();
      expect(closed.runnable()).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tells whether two threads may share a CPU from their Cpus_allowed masks; true where a mask is unknown', () => {
    expect(cpuMasksIntersect([0x1], [0x2])).toBe(false);
    expect(cpuMasksIntersect([0x3], [0x2])).toBe(true);
    // 32-bit groups, most significant first: CPU 32 against CPU 0, and groups of different counts aligned at CPU 0.
    expect(cpuMasksIntersect([0x1, 0x0], [0x0, 0x1])).toBe(false);
    expect(cpuMasksIntersect([0x80000000], [0xffffffff])).toBe(true);
    expect(cpuMasksIntersect([0x1], [0x0, 0x1])).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'warden-cpus-'));
    try {
      const status = (name: string, mask: string): string => {
        const path = join(dir, name);
        writeFileSync(path, `Name:\tnode\nCpus_allowed:\t${mask}\nCpus_allowed_list:\t-\n`);
        return path;
      };
      expect(sharesCpuWithMain(status('a', '00000001'), status('b', '00000002'))).toBe(false);
      expect(sharesCpuWithMain(status('c', '00000000,00000003'), status('d', '00000002'))).toBe(true);
      expect(sharesCpuWithMain(join(dir, 'missing'), status('e', '00000002'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // This thread against the process's main thread, from the kernel's files: where this runs on
    // the main thread (a forked test worker) or in a worker thread of the same affinity, they share.
    if (process.platform === 'linux') expect(sharesCpuWithMain()).toBe(true);
  });

  it.runIf(process.platform === 'linux')('reads the thread\'s time on a core and waiting for one from the kernel (ms, as the file says, never going back), again from one open file', () => {
    const clock = new ThreadSchedStat();
    const kernel = (field: number): number => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[field]) / 1e6;
    const before = [kernel(0), kernel(1)];
    const first = [clock.cpuMs(), clock.waitMs()];
    const after = [kernel(0), kernel(1)];
    for (const f of [0, 1]) {
      expect(first[f]).toBeTypeOf('number');
      expect(first[f]).toBeGreaterThanOrEqual(before[f] as number);
      expect(first[f]).toBeLessThanOrEqual(after[f] as number);
    }
    const until = Date.now() + 20;
    while (Date.now() < until) {
      // run: both can only grow, and the time on a core by about these 20 ms
    }
    expect(clock.waitMs()).toBeGreaterThanOrEqual(first[1] as number);
    expect(clock.cpuMs()).toBeGreaterThan((first[0] as number) + 5);
    clock.close();
    expect(clock.cpuMs()).toBeUndefined();
    expect(clock.waitMs()).toBeUndefined();
  });
});
