import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry, SerializedEntry } from './audit-entry.js';
import type { AuditSink } from './audit-sink.js';
import { createAuditWriter } from './audit-writer.js';

/** A test double of the sink contract: keeps what it is given, or rejects while `down`. */
class SwitchableSink implements AuditSink {
  readonly name = 'switchable';
  down = false;
  readonly received: SerializedEntry[] = [];
  readonly batches: number[] = [];
  async write(batch: readonly SerializedEntry[]): Promise<void> {
    if (this.down) throw new Error('sink down');
    this.received.push(...batch);
    this.batches.push(batch.length);
  }
  async close(): Promise<void> {}
}

function entry(n: number): AuditEntry {
  return {
    decisionId: `d-${String(n).padStart(4, '0')}`,
    time: new Date(Date.UTC(2026, 10, 28, 9, 0, 0, n)).toISOString(),
    kind: 'check',
    policyVersion: 'v1',
    source: '/v1/check',
    decision: n % 2 === 0 ? 'ALLOW' : 'DENY',
    identities: { subject: 'alice' },
    input: { actions: ['invoke'] },
    results: [],
    reasons: [],
  };
}

const ids = (es: readonly { decisionId: string }[]): string[] => es.map((e) => e.decisionId);
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

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
    for (const n of range(0, 7)) sut.record(() => (built++, entry(n)));
    // Not while the caller runs (a burst of checks is answered before it is logged) ...
    expect(built).toBe(0);
    expect(sut.stats().queued).toBe(7);
    // ... but in the check phase of the same turn: what waits for the batch is a string, not the caller's objects.
    await new Promise((r) => setImmediate(r));
    expect(built).toBe(7);
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 7).map(entry)));
    expect(sink.received.map((e) => JSON.parse(e.json) as AuditEntry)).toEqual(range(0, 7).map(entry));
    expect(sink.batches).toEqual([3, 3, 1]);
    expect(built).toBe(7);
    expect(existsSync(spillPath)).toBe(false);
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('writes a backlog of maxBatchSize entries or more in writes of that size, in order', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxBatchSize: 6, onError: (m) => errors.push(m) });
    for (const n of range(0, 14)) sut.record(entry(n));
    await sut.flush();
    expect(sink.batches).toEqual([6, 6, 2]);
    expect(ids(sink.received)).toEqual(ids(range(0, 14).map(entry)));
    await sut.close();
    expect(errors).toEqual([]);
  });

  it('never loses entries when the sink fails then recovers: spilled to disk, replayed in order before newer ones', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 4, onError: (m) => errors.push(m) });
    for (const n of range(0, 3)) sut.record(entry(n));
    await sut.flush();
    sink.down = true;
    for (const n of range(3, 13)) sut.record(entry(n));
    await sut.flush();
    expect(sut.stats()).toMatchObject({ spillPending: true, spilled: 10, queued: 0 });
    // What is on disk, in order, is exactly what the sink refused.
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    expect(ids(onDisk)).toEqual(ids(range(3, 13).map(entry)));
    // Still down: newer entries queue behind the spilled ones, on disk.
    for (const n of range(13, 16)) sut.record(entry(n));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 3).map(entry)));
    sink.down = false;
    for (const n of range(16, 18)) sut.record(entry(n));
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 18).map(entry)));
    expect(existsSync(spillPath)).toBe(false);
    expect(sut.stats()).toMatchObject({ spillPending: false, replayed: 13, failed: 0 });
    await sut.close();
    expect(errors.some((m) => m.includes('sink `switchable` failed'))).toBe(true);
  });

  it('keeps only the unsent tail of the spill file when the sink fails again during a replay', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2 });
    sink.down = true;
    for (const n of range(0, 6)) sut.record(entry(n));
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
    expect(ids(sink.received)).toEqual(ids(range(0, 6).map(entry)));
    await sut.close();
  });

  it('a new writer finds the spill file of a previous process and replays it before new entries', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const first = createAuditWriter({ sink, spillPath, batchSize: 5 });
    for (const n of range(0, 8)) first.record(entry(n));
    // Shutdown with the sink down: everything ends up on disk.
    await first.close();
    expect(first.stats()).toMatchObject({ queued: 0, spillPending: true, spilled: 8 });
    const fresh = new SwitchableSink();
    const second = createAuditWriter({ sink: fresh, spillPath, batchSize: 5 });
    expect(second.stats().spillPending).toBe(true);
    // The spilled entries go first, before anything recorded by this process.
    await second.flush();
    expect(ids(fresh.received)).toEqual(ids(range(0, 8).map(entry)));
    second.record(entry(8));
    await second.flush();
    expect(ids(fresh.received)).toEqual(ids(range(0, 9).map(entry)));
    expect(existsSync(spillPath)).toBe(false);
    await second.close();
  });

  it('skips a torn last line left by a crash and replays the rest', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, `${JSON.stringify(entry(0))}\n${JSON.stringify(entry(1))}\n{"decisionId":"d-00`);
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
    const ok = sut.recordDurable(entry(0));
    await sut.flush();
    await expect(ok).resolves.toBeUndefined();
    sink.down = true;
    const spilled = sut.recordDurable(entry(1));
    await sut.flush();
    await expect(spilled).resolves.toBeUndefined();
    expect(ids(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry))).toEqual(['d-0001']);
    await sut.close();

    // A spill path that cannot be a file (its parent is a regular file) and a failing sink.
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    const nowhere = createAuditWriter({ sink, spillPath: join(blocked, 'spill.ndjson'), onError: () => undefined });
    const lost = nowhere.recordDurable(entry(2));
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
    for (const n of range(0, 12)) sut.record(entry(n));
    // Two overflows happened synchronously, inside `record`.
    expect(sut.stats()).toMatchObject({ spilled: 10, queued: 2, spillPending: true });
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 12).map(entry)));
    await sut.close();
  });

  it('bounds memory when the sink and the disk both fail: a full queue drops its oldest entries, counted, and recovers', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    errors = [];
    const sut = createAuditWriter({ sink, spillPath: join(blocked, 'spill.ndjson'), batchSize: 100, maxQueue: 4, onError: (m) => errors.push(m) });
    for (const n of range(0, 4)) sut.record(entry(n));
    // The fourth record filled the queue: the disk was tried once, and failed.
    expect(sut.stats()).toMatchObject({ queued: 4, dropped: 0, spilled: 0 });
    for (const n of range(4, 10)) sut.record(entry(n));
    expect(sut.stats()).toMatchObject({ queued: 4, dropped: 6 });
    expect(errors.filter((m) => m.includes('queue full and spill file failed'))).toHaveLength(1);
    expect(errors.some((m) => m.includes('1 entries dropped so far'))).toBe(true);
    sink.down = false;
    await sut.flush();
    // The newest four survive, in order.
    expect(ids(sink.received)).toEqual(ids(range(6, 10).map(entry)));
    expect(sut.stats()).toMatchObject({ queued: 0, dropped: 6 });
    await sut.close();
  });

  it('a builder that throws costs only its own entry: the rest of the batch is written, a strict caller learns it', async () => {
    const sink = new SwitchableSink();
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    sut.record(entry(0));
    const broken = sut.recordDurable(() => {
      throw new Error('bug in a builder');
    });
    sut.record(entry(2));
    await sut.flush();
    await expect(broken).rejects.toMatchObject({ code: 'ERR_AUDIT_UNAVAILABLE' });
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0002']);
    expect(errors).toEqual(['audit: an entry could not be built: bug in a builder']);
    await sut.close();
  });

  it('starts its appends on a new line after a torn tail, so the first new entry is not merged into the fragment', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, `${JSON.stringify(entry(0))}\n{"decisionId":"d-00`);
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, onError: (m) => errors.push(m) });
    sut.record(entry(5));
    await sut.flush();
    // The replay failed (sink down): the new entry was appended behind the torn fragment.
    expect(readFileSync(spillPath, 'utf8')).toBe(`${JSON.stringify(entry(0))}\n{"decisionId":"d-00\n${JSON.stringify(entry(5))}\n`);
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
    sut.record(entry(0));
    await sut.flush();
    expect(attempts).toBe(1);
    // No flush called here: the promise settles through the writer alone, and the sink is not tried again.
    await expect(sut.recordDurable(entry(1))).resolves.toBeUndefined();
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
    sut.record(entry(0));
    await sut.flush();
    expect(attempts).toBe(1);
    // About 400 ms of a steady trickle: the backoff (100 ms, 200 ms, 400 ms ...) allows two or three more attempts.
    const started = Date.now();
    for (const n of range(1, 81)) {
      sut.record(entry(n));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(attempts).toBeLessThanOrEqual(1 + Math.ceil(Math.log2((Date.now() - started) / 100 + 1)));
    // Nothing waited in memory for the retry: the trickle went to the spill file.
    await new Promise((r) => setTimeout(r, 30));
    expect(sut.stats()).toMatchObject({ queued: 0, spilled: 81 });
    sink.down = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 81).map(entry)));
    await sut.close();
  });

  it('keeps what an overflow appends to the spill file while a replay is running (replay succeeds)', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxQueue: 3 });
    for (const n of range(0, 2)) sut.record(entry(n));
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
    for (const n of range(2, 5)) sut.record(entry(n));
    expect(sut.stats()).toMatchObject({ queued: 0, spilled: 5 });
    release();
    await replaying;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 5).map(entry)));
    expect(existsSync(spillPath)).toBe(false);
    await sut.close();
  });

  it('keeps what an overflow appends to the spill file while a replay is running (replay fails half way)', async () => {
    const sink = new SwitchableSink();
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, maxQueue: 3, onError: () => undefined });
    for (const n of range(0, 4)) sut.record(entry(n));
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
    for (const n of range(4, 7)) sut.record(entry(n));
    release();
    await replaying;
    // The first replay batch went; the rest of the file, overflowed entries included, is still on disk, in order.
    expect(ids(sink.received)).toEqual(['d-0000', 'd-0001']);
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect(onDisk).toEqual(ids(range(2, 7).map(entry)));
    sink.write = write;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 7).map(entry)));
    await sut.close();
  });

  it('gives up on a sink write that never settles after writeTimeoutMs: the batch is spilled, and replayed once the sink answers', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let hang = true;
    sink.write = (b) => (hang ? new Promise<void>(() => undefined) : write(b));
    const sut = createAuditWriter({ sink, spillPath, writeTimeoutMs: 50, maxRetryMs: 60_000, onError: (m) => errors.push(m) });
    for (const n of range(0, 3)) sut.record(entry(n));
    const started = Date.now();
    await sut.flush();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(sut.stats()).toMatchObject({ spilled: 3, queued: 0, spillPending: true });
    expect(errors.some((m) => m.includes('did not answer within 50 ms'))).toBe(true);
    hang = false;
    await sut.flush();
    expect(ids(sink.received)).toEqual(ids(range(0, 3).map(entry)));
    await sut.close();
  });

  it('close does not try a failing sink again: what is queued goes to the spill file at once', async () => {
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    let attempts = 0;
    sink.write = async (b) => {
      attempts++;
      return write(b);
    };
    sink.down = true;
    const sut = createAuditWriter({ sink, spillPath, maxRetryMs: 60_000, onError: () => undefined });
    sut.record(entry(0));
    await sut.flush();
    sut.record(entry(1));
    await sut.close();
    expect(attempts).toBe(1);
    expect(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['d-0000', 'd-0001']);
  });

  it('close stops a long replay after its current batch: the rest and the queue stay on disk, in order, nothing lost', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'spill'), { recursive: true });
    writeFileSync(spillPath, range(0, 100).map((n) => `${JSON.stringify(entry(n))}\n`).join(''));
    const sink = new SwitchableSink();
    const write = sink.write.bind(sink);
    sink.write = async (b) => {
      await new Promise((r) => setTimeout(r, 10));
      return write(b);
    };
    // A new writer replays the file left behind (100 entries, 50 batches of 10 ms each).
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2 });
    await new Promise((r) => setTimeout(r, 30));
    for (const n of range(100, 103)) sut.record(entry(n));
    const started = Date.now();
    await sut.close();
    expect(Date.now() - started).toBeLessThan(200);
    const sent = ids(sink.received);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.length).toBeLessThan(100);
    // What the sink took, then what is on disk: every entry once, in order.
    const onDisk = readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId);
    expect([...sent, ...onDisk]).toEqual(ids(range(0, 103).map(entry)));
  });

  it('close during a sink write that hangs: finishes once the write times out, with the queue spilled and no second attempt', async () => {
    const sink = new SwitchableSink();
    let attempts = 0;
    sink.write = () => {
      attempts++;
      return new Promise<void>(() => undefined);
    };
    const sut = createAuditWriter({ sink, spillPath, batchSize: 2, writeTimeoutMs: 100, onError: () => undefined });
    for (const n of range(0, 2)) sut.record(entry(n));
    // The full batch is in flight (and hangs) when more entries arrive and the stop comes.
    await new Promise((r) => setTimeout(r, 10));
    sut.record(entry(2));
    const started = Date.now();
    await sut.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(attempts).toBe(1);
    expect(readFileSync(spillPath, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEntry).decisionId)).toEqual(['d-0000', 'd-0001', 'd-0002']);
  });
});
