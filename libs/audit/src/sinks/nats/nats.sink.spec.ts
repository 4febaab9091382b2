/**
 * Against the machine's NATS server (JetStream on, `WARDEN_TEST_NATS_URL` or 127.0.0.1:4222):
 * each run uses its own subject and stream, deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { connect, DiscardPolicy, JSONCodec, nanos, type JetStreamManager, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_NATS_URL } from '../../../../../test/support/services.js';
import { packEntry, readPackedUtf8, serializeEntry, type AuditEntry, type SerializedEntry } from '../../audit-entry.js';
import { createNatsAuditSink } from './nats.sink.js';

const URL = TEST_NATS_URL;
const RUN = randomBytes(4).toString('hex');
const SUBJECT = `warden.audit.test.${RUN}`;
const STREAM = `WARDEN_AUDIT_TEST_${RUN}`;

const entry = (id: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'pv', source: '/v1/check', decision: 'ALLOW', identities: { subject: 'alice' }, input: {}, results: [], reasons: [] });

describe('createNatsAuditSink', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connect({ servers: URL });
  });
  afterAll(async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.delete(STREAM).catch(() => undefined);
    await nc.close();
  });

  /** Runs `fn` on a subject and stream of its own (`suffix`), deleting the stream afterwards; `setUp` creates it first when given. */
  const inOwnStream = async (
    suffix: string,
    fn: (subject: string, stream: string, jsm: JetStreamManager) => Promise<void>,
    setUp?: (subject: string, stream: string, jsm: JetStreamManager) => Promise<unknown>,
  ): Promise<void> => {
    const subject = `${SUBJECT}.${suffix.toLowerCase()}`;
    const stream = `${STREAM}_${suffix}`;
    const jsm = await nc.jetstreamManager();
    await setUp?.(subject, stream, jsm);
    try {
      await fn(subject, stream, jsm);
    } finally {
      await jsm.streams.delete(stream).catch(() => undefined);
    }
  };

  it('publishes each entry once, in order, and a replayed batch adds nothing (msgID = decision id)', async () => {
    const sut = createNatsAuditSink({ url: URL, subject: SUBJECT, stream: STREAM });
    await sut.write([entry('a'), entry('b'), entry('c')]);
    await sut.write([entry('b'), entry('c'), entry('d')]);
    await sut.close();
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(STREAM);
    expect(info.state.messages).toBe(4);
    const codec = JSONCodec<AuditEntry>();
    const ids: string[] = [];
    for (let seq = 1; seq <= 4; seq++) ids.push(codec.decode((await jsm.streams.getMessage(STREAM, { seq })).data).decisionId);
    expect(ids).toEqual(['a', 'b', 'c', 'd']);
  });

  it('settles batches in flight together each on its own acknowledgements, and takes each entry once', async () => {
    await inOwnStream('TOGETHER', async (subject, stream, jsm) => {
      const sut = createNatsAuditSink({ url: URL, subject, stream });
      await sut.write([entry('t-0')]);
      const batches = [0, 1, 2].map((b) => Array.from({ length: 300 }, (_, i) => entry(`t-${b}-${i}`)));
      // Three writes before any acknowledgement: their sequence ranges are awaited side by side.
      await Promise.all(batches.map((batch) => sut.write(batch)));
      // Entries already stored come back as duplicates, acknowledged without a refusal.
      await sut.write([...(batches[1] as SerializedEntry[]).slice(0, 5), entry('t-last')]);
      await sut.close();
      const info = await jsm.streams.info(stream);
      expect(info.state.messages).toBe(1 + 900 + 1);
      const codec = JSONCodec<AuditEntry>();
      expect(codec.decode((await jsm.streams.getMessage(stream, { seq: 902 })).data).decisionId).toBe('t-last');
    });
  });

  it('stores each payload byte for byte: multi-byte text, line separators, and a 200 KB entry among 1 KB ones', async () => {
    await inOwnStream('BYTES', async (subject, stream, jsm) => {
      const sut = createNatsAuditSink({ url: URL, subject, stream });
      // 70 entries of 1-1.5 KB (more than 64 KB together) and one of 200 KB in the middle, in one batch.
      const texts = Array.from({ length: 70 }, (_, i) => `{"decisionId":"m${i}","note":"${'é😀\u2028'.repeat(i)}${'x'.repeat(1000)}"}`);
      texts.splice(35, 0, `{"decisionId":"big","note":"${'ü'.repeat(100_000)}"}`);
      // Every other one as read from the writer's ring: its packed UTF-8, published as it is.
      const batch = texts.map((json, i): SerializedEntry => (i % 2 === 0 ? { ...entry(`m-${i}`), json } : readPackedUtf8(Buffer.from(packEntry({ ...entry(`m-${i}`), json }), 'utf8'))));
      await sut.write(batch);
      await sut.close();
      const got: string[] = [];
      for (let seq = 1; seq <= texts.length; seq++) got.push(new TextDecoder().decode((await jsm.streams.getMessage(stream, { seq })).data));
      expect(got).toEqual(texts);
    });
  });

  it('rejects a batch JetStream refuses part of (a full stream discarding new messages), so the writer spills it', async () => {
    await inOwnStream('FULL', async (subject, stream, jsm) => {
      const sut = createNatsAuditSink({ url: URL, subject, stream, timeoutMs: 2000 });
      await sut.write([entry('f1'), entry('f2')]);
      await expect(sut.write([entry('f3')])).rejects.toThrow(/JetStream refused the entry/);
      // A replay of what it holds is still acknowledged (duplicates are not new messages).
      await sut.write([entry('f1')]);
      await sut.close();
      expect((await jsm.streams.info(stream)).state.messages).toBe(2);
    }, (subject, stream, jsm) => jsm.streams.add({ name: stream, subjects: [subject], max_msgs: 2, discard: DiscardPolicy.New }));
  });

  it('creates a missing stream with the duplicate window it is given, and leaves an existing one as it is', async () => {
    await inOwnStream('WINDOW', async (subject, stream, jsm) => {
      const sut = createNatsAuditSink({ url: URL, subject, stream, duplicateWindowMs: 3_600_000 });
      await sut.write([entry('w1')]);
      await sut.close();
      expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(nanos(3_600_000));
      const again = createNatsAuditSink({ url: URL, subject, stream, duplicateWindowMs: 60_000 });
      await again.write([entry('w2')]);
      await again.close();
      expect((await jsm.streams.info(stream)).config.duplicate_window).toBe(nanos(3_600_000));
    });
  });

  it('rejects when no server answers (so the writer spills)', async () => {
    const sut = createNatsAuditSink({ url: 'nats://127.0.0.1:1', subject: SUBJECT, stream: STREAM, timeoutMs: 500 });
    await expect(sut.write([entry('x')])).rejects.toThrow();
    await sut.close();
  });
});
