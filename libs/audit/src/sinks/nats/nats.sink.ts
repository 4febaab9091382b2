/**
 * The NATS JetStream sink: each entry is published to `subject` with the decision id as the
 * message id, so JetStream drops a replayed entry it already holds (within the stream's
 * `duplicate_window`, two minutes by default; set it longer on the stream to cover longer sink
 * outages). A batch resolves once JetStream has acknowledged every entry. The connection is made
 * on the first write (and again after a failure), and the stream is created when missing.
 *
 * While the connection is down (the client reconnects by itself), a write fails at once instead
 * of handing its messages to the client's reconnect buffer and waiting for acknowledgements that
 * cannot come: the writer spills the batch without stalling (strict callers do not wait for the
 * acknowledgement timeout), and a stop does not wait for it either. A batch in flight when the
 * connection drops fails when the drop is seen; whatever the client still delivers after the
 * reconnect is dropped by JetStream as a duplicate when the spill file is replayed.
 */
import { connect, JSONCodec, type JetStreamClient, type NatsConnection } from 'nats';
import type { AuditEntry } from '../../audit-entry.js';
import type { AuditSink } from '../../audit-sink.js';

/** An open connection and whether it is up right now. */
interface Conn {
  nc: NatsConnection;
  js: JetStreamClient;
  /** False between a `disconnect` and the next `reconnect`. */
  up(): boolean;
  /** Rejects when the connection drops (a new promise after each reconnect). */
  dropped(): Promise<never>;
}

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
  let conn: Promise<Conn> | undefined;

  async function open(): Promise<Conn> {
    const nc = await connect({ servers: options.url, timeout, maxReconnectAttempts: -1 });
    let up = true;
    let drop!: (err: Error) => void;
    const armed = (): Promise<never> => {
      const p = new Promise<never>((_, reject) => (drop = reject));
      p.catch(() => undefined);
      return p;
    };
    let dropped = armed();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          up = false;
          drop(new Error('nats: connection lost'));
        } else if (s.type === 'reconnect') {
          up = true;
          dropped = armed();
        }
      }
    })().catch(() => undefined);
    try {
      const jsm = await nc.jetstreamManager({ timeout });
      const name = await jsm.streams.find(subject).catch(() => undefined);
      if (name === undefined) await jsm.streams.add({ name: stream, subjects: [subject] });
      return { nc, js: nc.jetstream({ timeout }), up: () => up && !nc.isClosed(), dropped: () => dropped };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  return {
    name: 'nats',
    async write(batch) {
      conn ??= open();
      let c: Conn;
      try {
        c = await conn;
      } catch (err) {
        conn = undefined;
        throw err;
      }
      if (c.nc.isClosed()) {
        conn = undefined;
        throw new Error('nats: connection closed');
      }
      if (!c.up()) throw new Error('nats: not connected (reconnecting)');
      // Published in order on one connection; acknowledged together, or failed when the connection drops.
      const acks = Promise.all(batch.map((e) => c.js.publish(subject, codec.encode(e), { msgID: e.decisionId, timeout })));
      acks.catch(() => undefined);
      await Promise.race([acks, c.dropped()]);
    },
    async close() {
      const pending = conn;
      conn = undefined;
      const c = await pending?.catch(() => undefined);
      if (c === undefined) return;
      // Draining waits for the server; a connection that is down is just closed.
      await (c.up() ? c.nc.drain() : c.nc.close()).catch(() => undefined);
    },
  };
}
