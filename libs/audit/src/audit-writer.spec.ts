import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from './audit-entry.js';
import type { AuditSink } from './audit-sink.js';
import { createAuditWriter } from './audit-writer.js';
import { auditEntry, ids, range, SwitchableSink } from '../../../test/support/audit-doubles.js';

describe('createAuditWriter', () => {
  let dir: string;
  let spillPath: string;
  let errors: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'warden-audit-'));
    spillPath = join(dir, 'spill', 'audit.spill.ndjson');
    errors = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes queued entries to the sink in batches, each built and serialised once, after the caller\'s turn of the event loop', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 3, onError: (m) => errors.push(m) });
    let built = 0;
    for (const n of range(0, 7)) sut.record(() => (built++, auditEntry(n)));
    // Not while the caller runs (a burst of checks is answered before it is logged) ...
    expect(built).toBe(0);
    expect(sut.stats().queued).toBe(7);
    // ... but in the check phase of the same turn: what waits for the batch is a string, not the caller's objects.
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(7);
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 7).map(auditEntry)));
    expect(sink.received.map((e) => JSON.parse(e.json) as AuditEntry)).toEqual(range(0, 7).map(auditEntry));
    expect(sink.batches).toEqual([3, 3, 1]);
    expect(built).toBe(7);
    expect(existsSync(spillPath)).toBe(false);
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('writes in the sink\'s own batch size when it is given none, and a backlog in the writes of the writer\'s default', async () => {
    const sink = new (class extends SwitchableSink {
      readonly batchSize = 3;
    })();
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    for (const n of range(0, 7)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sink.batches).toEqual([3, 3, 1]);
    // 1,000 waiting at once (5 x the writer's 200): one write of them all.
    for (const n of range(7, 1007)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sink.batches.slice(3)).toEqual([1000]);
    expect(ids(sink.received)).toEqual(ids(range(0, 1007).map(auditEntry)));
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('calls beforeWrite once before each sink write, before the sink has the batch', async () => {
    const sink = new SwitchableSink();
    const seen: number[] = [];
    const sut = createAuditWriter({ sink, spillPath, batchSize: 3, onError: (m) => errors.push(m), beforeWrite: () => seen.push(sink.received.length) });
    for (const n of range(0, 7)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sink.batches).toEqual([3, 3, 1]);
    // Called with 0, 3 and 6 entries at the sink: before each write, never after it.
    expect(seen).toEqual([0, 3, 6]);
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('writes a backlog of maxBatchSize entries or more in writes of that size, in order', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxBatchSize: 6, onError: (m) => errors.push(m) });
    for (const n of range(0, 14)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sink.batches).toEqual([6, 6, 2]);
    expect(ids(sink.received)).toEqual(ids(range(0, 14).map(auditEntry)));
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('never loses entries when the sink fails then recovers: spilled to disk, replayed in order before newer ones', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 4, onError: (m) => errors.push(m) });
    for (const n of range(0, 3)) sut.record(auditEntry(n));
    await sut.flush();
    sink.down = true;
    for (const n of range(3, 13)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sut.stats()).toMatchObject({ spillPending: true, spilled: 10, queued: 0 });
    // What is on disk, in order, is exactly what the sink refused.
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    expect(ids(onDisk)).toEqual(ids(range(3, 13).map(auditEntry)));
    // Still down: newer entries queue behind the spilled ones, on disk.
    for (const n of range(13, 16)) sut.record(auditEntry(n));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 3).map(auditEntry)));
    sink.down = false;
    for (const n of range(16, 18)) sut.record(auditEntry(n));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 18).map(auditEntry)));
    expect(existsSync(spillPath)).toBe(false);
    expect(sut.stats()).toMatchObject({ spillPending: false, replayed: 13, failed: 0 });
    await sut.close();
    expect(errors.some((m) => m.includes('sink `switchable` failed'))).toBe(true);
  });

  it('keeps only the unsent tail of the spill file when the sink fails again during a replay', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2 });
    sink.down = true;
    for (const n of range(0, 6)) sut.record(auditEntry(n));
    await sut.flush();
    sink.down = false;
    // The sink takes one replay batch, then fails.
    const write = sink.write.bind(sink);
    let calls = 0;
    sink.write = async (b) => {
      if (++calls > 1) throw new Error('sink down again');
      return write(b);
    };
    await sut.flush();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    const tail = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect(tail).toEqual(['d-0002', 'd-0003', 'd-0004', 'd-0005']);
    sink.write = write;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 6).map(auditEntry)));
    await sut.close();
  });

  it('a new writer finds the spill file of a previous process and replays it before new entries', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const first = createAuditWriter({ sink, spillPath, batchSize: 5 });
    for (const n of range(0, 8)) first.record(auditEntry(n));
    // Shutdown with the sink down: everything ends up on disk.
    await first.close();
    expect(first.stats()).toMatchObject({ queued: 0, spillPending: true, spilled: 8 });
    const fresh = new SwitchableSink();
    const second = createAuditWriter({ sink: fresh, spillPath, batchSize: 5 });
    expect(second.stats().spillPending).toBe(true);
    // The spilled entries go first, before anything recorded by this process.
    await second.flush();
    expect(ids(fresh.received)).toEqual(ids(range(0, 8).map(auditEntry)));
    second.record(auditEntry(8));
    await second.flush();
    expect(ids(fresh.received)).toEqual(ids(range(0, 9).map(auditEntry)));
    expect(existsSync(spillPath)).toBe(false);
    await second.close();
  });

  it('skips a torn last line left by a crash and replays the rest', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, `${JSON.stringify(auditEntry(0))}\n${JSON.stringify(auditEntry(1))}\n{"decisionId":"d-00`);
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    await sut.flush();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    expect(errors).toEqual(['audit: skipped an unreadable line of the spill file']);
    await sut.close();
  });

  it('strict: resolves once an entry is durable (sink or spill file) and rejects when it is neither', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath });
    const ok = sut.recordDurable(auditEntry(0));
    await sut.flush();
    await expect(ok).resolves.toBeUndefined();
    sink.down = true;
    const spilled = sut.recordDurable(auditEntry(1));
    await sut.flush();
    await expect(spilled).resolves.toBeUndefined();
    expect(ids(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry))).toEqual(['d-0001']);
    await sut.close();

    // A spill path that cannot be a file (its parent is a regular file) and a failing sink.
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    const nowhere = createAuditWriter({ sink, spillPath: join(blocked, 'spill.ndjson'), onError: () => undefined });
    const lost = nowhere.recordDurable(auditEntry(2));
    await nowhere.flush();
    await expect(lost).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    // Not dropped: still held in memory, written once the sink is back.
    expect(nowhere.stats().queued).toBe(1);
    sink.down = false;
    await nowhere.flush();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0002']);
    await nowhere.close();
  });

  it('spills the whole queue at once when it reaches maxQueue, and still replays it in order', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 100, maxQueue: 5 });
    for (const n of range(0, 12)) sut.record(auditEntry(n));
    // Two overflows happened synchronously, inside `record`.
    expect(sut.stats()).toMatchObject({ spilled: 10, queued: 2, spillPending: true });
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 12).map(auditEntry)));
    await sut.close();
  });

  it('bounds memory when the sink and the disk both fail: a full queue drops its oldest entries, counted, and recovers', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    errors = [];
    const sut = createAuditWriter({ sink, spillPath: join(blocked, 'spill.ndjson'), batchSize: 100, maxQueue: 4, onError: (m) => errors.push(m) });
    for (const n of range(0, 4)) sut.record(auditEntry(n));
    // The fourth record filled the queue: the disk was tried once, and failed.
    expect(sut.stats()).toMatchObject({ queued: 4, dropped: 0, spilled: 0 });
    for (const n of range(4, 10)) sut.record(auditEntry(n));
    expect(sut.stats()).toMatchObject({ queued: 4, dropped: 6 });
    expect(errors.filter((m) => m.includes('queue full and spill file failed'))).toHaveLength(1);
    expect(errors.some((m) => m.includes('1 entries dropped so far'))).toBe(true);
    sink.down = false;
    await sut.flush();
    // The newest four survive, in order.
    expect(ids(sink.received)).toEqual(ids(range(6, 10).map(auditEntry)));
    expect(sut.stats()).toMatchObject({ queued: 0, dropped: 6 });
    await sut.close();
  });

  it('a builder that throws costs only its own entry: the rest of the batch is written, a strict caller learns it', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    sut.record(auditEntry(0));
    const broken = sut.recordDurable(() => {
      throw new Error('bug in a builder');
    });
    sut.record(auditEntry(2));
    await sut.flush();
    await expect(broken).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0002']);
    expect(errors).toEqual(['audit: an entry could not be built: bug in a builder']);
    await sut.close();
  });

  it('starts its appends on a new line after a torn tail, so the first new entry is not merged into the fragment', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, `${JSON.stringify(auditEntry(0))}\n{"decisionId":"d-00`);
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    sut.record(auditEntry(5));
    await sut.flush();
    // The replay failed (sink down): the new entry was appended behind the torn fragment.
    expect(readFileSync(spillPath, 'utf8')).toBe(`${JSON.stringify(auditEntry(0))}\n{"decisionId":"d-00\n${JSON.stringify(auditEntry(5))}\n`);
    sink.down = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0005']);
    await sut.close();
  });

  it('strict callers do not wait for the sink\'s retry while it is failing: their entries go to the spill file at once', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let attempts = 0;
    sink.write = async (b) => {
      attempts++;
      return write(b);
    };
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, maxRetryMs: 60_000 });
    sut.record(auditEntry(0));
    await sut.flush();
    expect(attempts).toBe(1);
    // No flush called here: the promise settles through the writer alone, and the sink is not tried again.
    await expect(sut.recordDurable(auditEntry(1))).resolves.toBeUndefined();
    expect(attempts).toBe(1);
    expect(ids(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry))).toEqual(['d-0000', 'd-0001']);
    sink.down = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    await sut.close();
  });

  it('backs off while the sink is failing, even under steady traffic: partial batches go to the spill file, only the retry timer tries the sink', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let attempts = 0;
    sink.write = async (b) => {
      attempts++;
      // A sink that takes a while to fail (a refused connection, a timeout).
      await new Promise((r) => setTimeout(r, 15));
      return write(b);
    };
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, flushIntervalMs: 10, maxRetryMs: 60_000 });
    sut.record(auditEntry(0));
    await sut.flush();
    expect(attempts).toBe(1);
    // About 400 ms of a steady trickle: the backoff (100 ms, 200 ms, 400 ms ...) allows two or three more attempts.
    const started = Date.now();
    for (const n of range(1, 81)) {
      sut.record(auditEntry(n));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(attempts).toBeLessThanOrEqual(1 + Math.ceil(Math.log2((Date.now() - started) / 100 + 1)));
    // Nothing waited in memory for the retry: the trickle went to the spill file.
    await new Promise((r) => setTimeout(r, 30));
    expect(sut.stats()).toMatchObject({ queued: 0, spilled: 81 });
    sink.down = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 81).map(auditEntry)));
    await sut.close();
  });

  it('keeps what an overflow appends to the spill file while a replay is running (replay succeeds)', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxQueue: 3 });
    for (const n of range(0, 2)) sut.record(auditEntry(n));
    await sut.flush();
    expect(sut.stats().spillPending).toBe(true);
    // The sink is back but slow: the replay's first batch is in flight when the queue overflows.
    sink.down = false;
    const write = sink.write.bind(sink);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    sink.write = async (b) => {
      await gate;
      return write(b);
    };
    const replaying = sut.flush();
    await new Promise((r) => setTimeout(r, 10));
    for (const n of range(2, 5)) sut.record(auditEntry(n));
    expect(sut.stats()).toMatchObject({ queued: 0, spilled: 5 });
    release();
    await replaying;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 5).map(auditEntry)));
    expect(existsSync(spillPath)).toBe(false);
    await sut.close();
  });

  it('keeps every line whole when an overflow appends while a failed batch is being spilled (large entries)', async () => {
    // A failed batch of large entries is appended to the spill file while records keep arriving;
    // the overflows they cause append synchronously. Nothing may land inside the batch's lines.
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, batchSize: 4, maxQueue: 4, onError: (m) => errors.push(m) });
    const big = (n: number): AuditEntry => ({ ...auditEntry(n), input: { actions: ['invoke'], note: 'x'.repeat(300_000) } });
    for (const n of range(0, 4)) sut.record(big(n));
    const spilling = sut.flush();
    for (let n = 4; n < 40; n++) {
      sut.record(big(n));
      await new Promise((r) => setImmediate(r));
    }
    await spilling;
    await sut.flush();
    const lines = readFileSync(spillPath, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines.map((l) => (JSON.parse(l) as AuditEntry).decisionId).sort()).toEqual(ids(range(0, 40).map(auditEntry)).sort());
    sink.down = false;
    await sut.flush();
    expect(ids(sink.received).sort()).toEqual(ids(range(0, 40).map(auditEntry)).sort());
    expect(errors.filter((m) => m.includes('unreadable'))).toEqual([]);
    await sut.close();
  });

  it('keeps what an overflow appends to the spill file while a replay is running (replay fails half way)', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxQueue: 3, onError: () => undefined });
    for (const n of range(0, 4)) sut.record(auditEntry(n));
    await sut.flush();
    sink.down = false;
    const write = sink.write.bind(sink);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    sink.write = async (b) => {
      await gate;
      if (++calls > 1) throw new Error('sink down again');
      return write(b);
    };
    const replaying = sut.flush();
    await new Promise((r) => setTimeout(r, 10));
    for (const n of range(4, 7)) sut.record(auditEntry(n));
    release();
    await replaying;
    // The first replay batch went; the rest of the file, overflowed entries included, is still on disk, in order.
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect(onDisk).toEqual(ids(range(2, 7).map(auditEntry)));
    sink.write = write;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 7).map(auditEntry)));
    await sut.close();
  });

  it('spillHeld: the batch at the sink, the queue and what was just recorded go to the spill file at once, in order; the next writer replays them', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    // The first write never answers: its batch is at the sink when the thread would die.
    sink.write = () => new Promise<void>(() => undefined);
    const sut = createAuditWriter({ sink, spillPath, batchSize: 3, writeTimeoutMs: 60_000, onError: (m) => errors.push(m) });
    for (const n of range(0, 8)) sut.record(auditEntry(n));
    void sut.flush();
    await new Promise((r) => setImmediate(r));
    // Recorded, not yet built (the check phase has not come).
    for (const n of range(8, 10)) sut.record(auditEntry(n));
    expect(sut.spillHeld?.()).toBe(10);
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect(onDisk).toEqual(ids(range(0, 10).map(auditEntry)));
    expect(sut.stats()).toMatchObject({ queued: 0, spilled: 10, spillPending: true });
    // Nothing is held twice: a second call has nothing left.
    expect(sut.spillHeld?.()).toBe(0);

    const next = new SwitchableSink();
    const again = createAuditWriter({ sink: next, spillPath, batchSize: 3, onError: (m) => errors.push(m) });
    await again.flush();
    expect(ids(next.received)).toEqual(ids(range(0, 10).map(auditEntry)));
    expect(existsSync(spillPath)).toBe(false);
    await again.close();
    sink.write = write;
    expect(errors).toEqual([]);
  });

  it('gives up on a sink write that never settles after writeTimeoutMs: the batch is spilled, and replayed once the sink answers', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let hang = true;
    sink.write = (b) => (hang ? new Promise<void>(() => undefined) : write(b));
    const sut = createAuditWriter({ sink, spillPath, writeTimeoutMs: 50, maxRetryMs: 60_000, onError: (m) => errors.push(m) });
    for (const n of range(0, 3)) sut.record(auditEntry(n));
    const started = Date.now();
    await sut.flush();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(sut.stats()).toMatchObject({ spilled: 3, queued: 0, spillPending: true });
    expect(errors.some((m) => m.includes('did not answer within 50 ms'))).toBe(true);
    hang = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 3).map(auditEntry)));
    await sut.close();
  });

  it('a write whose answer came while the writer\'s thread ran late is not timed out: the deadline is judged after the sockets are read', async () => {
    // A real TCP server in another thread answers each line at once, while this thread is blocked.
    const server = new Worker(
      `const net = require('node:net'); const { parentPort } = require('node:worker_threads');
       const s = net.createServer((c) => c.on('data', (d) => c.write(d))).listen(0, '127.0.0.1', () => parentPort.postMessage(s.address().port));`,
      { eval: true },
    );
    const port = await new Promise<number>((r) => server.once('message', r));
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const writeTimeoutMs = 50;
    const sink: AuditSink = {
      name: 'echo',
      write(batch) {
        const answered = new Promise<void>((r) => socket.once('data', () => r()));
        socket.write(`${batch.length}\n`);
        // Once the writer has set its deadline, this thread runs late (as one stopped, or starved of
        // CPU, would): the answer comes meanwhile and the deadline passes.
        queueMicrotask(() => {
          const until = performance.now() + 4 * writeTimeoutMs;
          while (performance.now() < until) {
            // blocked
          }
        });
        return answered;
      },
      close: async () => undefined,
    };
    try {
      const sut = createAuditWriter({ sink, spillPath, batchSize: 1, writeTimeoutMs, onError: (m) => errors.push(m) });
      sut.record(auditEntry(0));
      await sut.flush();
      expect(sut.stats()).toMatchObject({ written: 1, spilled: 0 });
      expect(existsSync(spillPath)).toBe(false);
      await sut.close();
      expect(errors).toEqual([]);
    } finally {
      socket.destroy();
      await server.terminate();
    }
  });

  it('close tries a failing sink once more: still down, the queue joins the spill file in order, with no further attempt', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let attempts = 0;
    sink.write = async (b) => {
      attempts++;
      return write(b);
    };
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, maxRetryMs: 60_000, onError: () => undefined });
    sut.record(auditEntry(0));
    await sut.flush();
    expect(attempts).toBe(1);
    sut.record(auditEntry(1));
    await sut.close();
    expect(attempts).toBe(2);
    expect(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['d-0000', 'd-0001']);
  });

  it('close while backing off after a transient failure: the spill file and the queue go to the sink that is back, nothing stays on disk', async () => {
    // A replica stopped for good (scaled in) never replays its spill file: a stop must not leave entries there that the sink would take.
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, maxRetryMs: 60_000, onError: () => undefined });
    sut.record(auditEntry(0));
    await sut.flush();
    expect(existsSync(spillPath)).toBe(true);
    sink.down = false;
    sut.record(auditEntry(1));
    await sut.close();
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    expect(existsSync(spillPath)).toBe(false);
  });

  it('close stops a long replay after its current batch: the rest and the queue stay on disk, in order, nothing lost', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, range(0, 100).map((n) => `${JSON.stringify(auditEntry(n))}\n`).join(''));
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    sink.write = async (b) => {
      await new Promise((r) => setTimeout(r, 10));
      return write(b);
    };
    // A new writer replays the file left behind (100 entries, 50 batches of 10 ms each).
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2 });
    await new Promise((r) => setTimeout(r, 30));
    for (const n of range(100, 103)) sut.record(auditEntry(n));
    const started = Date.now();
    await sut.close();
    expect(Date.now() - started).toBeLessThan(200);
    const sent = ids(sink.received);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThan(100);
    // What the sink took, then what is on disk: every entry once, in order.
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect([...sent, ...onDisk]).toEqual(ids(range(0, 103).map(auditEntry)));
  });

  it('close during a sink write that hangs: finishes once the write times out, with the queue spilled and no second attempt', async () => {
    const sink = new SwitchableSink();
    let attempts = 0;
    sink.write = () => {
      attempts++;
      return new Promise<void>(() => undefined);
    };
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, writeTimeoutMs: 100, onError: () => undefined });
    for (const n of range(0, 2)) sut.record(auditEntry(n));
    // The full batch is in flight (and hangs) when more entries arrive and the stop comes.
    await new Promise((r) => setTimeout(r, 10));
    sut.record(auditEntry(2));
    const started = Date.now();
    await sut.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(attempts).toBe(1);
    expect(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['d-0000', 'd-0001', 'd-0002']);
  });
});
