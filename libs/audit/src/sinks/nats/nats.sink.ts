/**
 * The NATS JetStream sink: each entry is published to `subject` with the decision id as the
 * message id, so JetStream drops a replayed entry it already holds (within the stream's
 * `duplicate_window`, two minutes by default; set it longer on the stream to cover longer sink
 * outages). A batch resolves once JetStream has acknowledged every entry. The connection is made
 * on the first write (and again after a failure), and the stream is created when missing.
 */
import { connect, JSONCodec, type JetStreamClient, type NatsConnection } from 'nats';
import type { AuditEntry } from '../../audit-entry.js';
import type { AuditSink } from '../../audit-sink.js';

/** Options of {@link createNatsAuditSink}. */
export interface NatsAuditSinkOptions {
  /** `nats://host:port`. SECURITY: may hold credentials; never logged. */
  url: string;
  /** Subject entries are published to (default `warden.audit`). */
  subject?: string;
  /** The stream created when none captures `subject` (default `WARDEN_AUDIT`). */
  stream?: string;
  /** How long to wait for a connection and for each acknowledgement, ms (default 5000). */
  timeoutMs?: number;
}

/**
 * Creates a JetStream sink.
 * @example const sink = createNatsAuditSink({ url: 'nats://127.0.0.1:4222' });
 */
export function createNatsAuditSink(options: NatsAuditSinkOptions): AuditSink {
  const subject = options.subject ?? 'warden.audit';
  const stream = options.stream ?? 'WARDEN_AUDIT';
  const timeout = options.timeoutMs ?? 5000;
  const codec = JSONCodec<AuditEntry>();
  let conn: Promise<{ nc: NatsConnection; js: JetStreamClient }> | undefined;

  async function open(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    const nc = await connect({ servers: options.url, timeout, maxReconnectAttempts: -1 });
    try {
      const jsm = await nc.jetstreamManager({ timeout });
      const name = await jsm.streams.find(subject).catch(() => undefined);
      if (name === undefined) await jsm.streams.add({ name: stream, subjects: [subject] });
      return { nc, js: nc.jetstream({ timeout }) };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  return {
    name: 'nats',
    async write(batch) {
      conn ??= open();
      let js: JetStreamClient;
      try {
        ({ js } = await conn);
      } catch (err) {
        conn = undefined;
        throw err;
      }
      // Published in order on one connection; acknowledged together.
      await Promise.all(batch.map((e) => js.publish(subject, codec.encode(e), { msgID: e.decisionId, timeout })));
    },
    async close() {
      const c = conn;
      conn = undefined;
      if (c !== undefined) await (await c.catch(() => undefined))?.nc.drain().catch(() => undefined);
    },
  };
}
