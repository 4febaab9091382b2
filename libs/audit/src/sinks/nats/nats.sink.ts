/**
 * The NATS JetStream sink: each entry is published to `subject` with the decision id as the
 * message id, so JetStream drops a replayed entry it already holds (within the stream's
 * `duplicate_window`, two minutes by default; `duplicateWindowMs` sets it on a stream this sink
 * creates, or set it longer on the stream to cover longer sink outages). A batch resolves once
 * JetStream has acknowledged every entry. The connection is made on the first write (and again
 * after a failure), and the stream is created when missing.
 *
 * Why not `js.publish` per entry: each one is a request with its own error object (for its stack),
 * timer and promise, which made the sink a fifth of the broker's CPU under load. Here entries are
 * published on the core connection with a reply subject under one inbox of the sink's; JetStream
 * sends its acknowledgement there, one subscription collects them, and a batch has one timer.
 * The batches awaiting acknowledgements are a short array of sequence ranges, not a `Map` keyed by
 * entry nor a `Set` of per-batch handlers: a `Map` or `Set` that takes a new key and drops it soon
 * after rehashes into a new table every few keys, and V8 links each old table to its successor.
 * Once a full collection had moved the live table to the old generation, each dead table there
 * kept its successor (and the batches its closures held, entries and all) alive through the
 * young-generation collections, which then promoted them all, about 1-2 KB per entry: at 1,300
 * entries/s a mark-compact of the writer's isolate every 8 s, in two of three probes
 * (bench/README.md). An array that is pushed and spliced keeps its one backing store.
 *
 * While the connection is down (the client reconnects by itself), a write fails at once instead
 * of handing its messages to the client's reconnect buffer and waiting for acknowledgements that
 * cannot come: the writer spills the batch without stalling (strict callers do not wait for the
 * acknowledgement timeout), and a stop does not wait for it either. A batch in flight when the
 * connection drops fails when the drop is seen; whatever the client still delivers after the
 * reconnect is dropped by JetStream as a duplicate when the spill file is replayed.
 */
import { connect, createInbox, headers, nanos, type NatsConnection, type Subscription } from 'nats';
import type { SerializedEntry } from '../../audit-entry.js';
import { pastPoll, type AuditSink } from '../../audit-sink.js';
import { jsonUtf8 } from '../../utf8-batch.js';

/** Options of {@link createNatsAuditSink}. */
export interface NatsAuditSinkOptions {
  /** `nats://host:port`. SECURITY: may hold credentials; never logged. */
  url: string;
  /** Subject entries are published to (default `warden.audit`). */
  subject?: string;
  /** The stream created when none captures `subject` (default `WARDEN_AUDIT`). */
  stream?: string;
  /** How long to wait for a connection and for a batch's acknowledgements, ms (default 5000). */
  timeoutMs?: number;
  /**
   * The `duplicate_window` of the stream when this sink creates it, ms (default: JetStream's, 2
   * min). A replay after an outage longer than it may store again the entries of the batches
   * that were in flight when the connection dropped. A stream that exists is left as it is.
   */
  duplicateWindowMs?: number;
}

/** A batch awaiting JetStream's acknowledgements: entries `first` to `first + acked.length - 1` of the sink's sequence. */
interface InFlight {
  /** The connection it was published on. */
  readonly nc: NatsConnection;
  readonly first: number;
  /** 1 where the entry's acknowledgement came (a repeated one is not counted twice). */
  readonly acked: Uint8Array;
  /** Takes one entry's acknowledgement: undefined when JetStream stored it (or already had it). */
  readonly ack: (err: Error | undefined) => void;
  /** Fails the batch (its connection dropped). */
  readonly fail: (err: Error) => void;
}

interface Link {
  nc: NatsConnection;
  inbox: string;
  sub: Subscription;
  /** False between a `disconnect` and the next `reconnect`. */
  up(): boolean;
}

const decoder = new TextDecoder();

/** The error in a JetStream acknowledgement (`{"error": {...}}`), or a no-responders status. */
function ackError(data: Uint8Array, status: { hasError: boolean; code: number; description: string } | undefined): Error | undefined {
  if (status?.hasError === true) return new Error(status.code === 503 ? 'no JetStream stream captures the subject (no responders)' : `JetStream answered ${status.code} ${status.description}`);
  if (data.length === 0) return new Error('JetStream answered an empty acknowledgement');
  const text = decoder.decode(data);
  if (!text.includes('"error"')) return undefined;
  try {
    const e = (JSON.parse(text) as { error?: { code?: number; description?: string } }).error;
    return new Error(`JetStream refused the entry: ${e?.code ?? '?'} ${e?.description ?? ''}`.trim());
  } catch {
    return new Error('JetStream answered an unreadable acknowledgement');
  }
}

/**
 * Creates a JetStream sink.
 * @example const sink = createNatsAuditSink({ url: 'nats://127.0.0.1:4222' });
 */
export function createNatsAuditSink(options: NatsAuditSinkOptions): AuditSink {
  const subject = options.subject ?? 'warden.audit';
  const stream = options.stream ?? 'WARDEN_AUDIT';
  const timeout = options.timeoutMs ?? 5000;
  /**
   * The batches awaiting acknowledgements, oldest first: one at a time normally (the writer sends
   * a batch once the one before settled); a batch that timed out is gone from it, and the
   * acknowledgements still coming for it are dropped.
   */
  const inFlight: InFlight[] = [];
  let seq = 0;

  /** The batch entry `n` of the sequence belongs to, when it awaits that entry's acknowledgement. */
  const awaiting = (n: number): InFlight | undefined => {
    for (let i = 0; i < inFlight.length; i++) {
      const b = inFlight[i] as InFlight;
      const k = n - b.first;
      if (k >= 0 && k < b.acked.length) {
        if (b.acked[k] === 1) return undefined;
        b.acked[k] = 1;
        return b;
      }
    }
    return undefined;
  };
  let conn: Promise<Link> | undefined;

  async function open(): Promise<Link> {
    const nc = await connect({ servers: options.url, timeout, maxReconnectAttempts: -1 });
    let up = true;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          up = false;
          const err = new Error('nats: connection lost');
          for (const b of inFlight.filter((x) => x.nc === nc)) b.fail(err);
        } else if (s.type === 'reconnect') {
          up = true;
        }
      }
    })().catch(() => undefined);
    try {
      const jsm = await nc.jetstreamManager({ timeout });
      const name = await jsm.streams.find(subject).catch(() => undefined);
      if (name === undefined) await jsm.streams.add({ name: stream, subjects: [subject], ...(options.duplicateWindowMs !== undefined ? { duplicate_window: nanos(options.duplicateWindowMs) } : {}) });
      const inbox = createInbox();
      const sub = nc.subscribe(`${inbox}.*`, {
        callback: (err, msg) => {
          if (err !== null) return;
          const b = awaiting(Number(msg.subject.slice(inbox.length + 1)));
          // undefined: late (its batch already timed out) or repeated.
          b?.ack(ackError(msg.data, msg.headers));
        },
      });
      // The subscription must be known to the server before the first reply can reach it.
      await nc.flush();
      return { nc, inbox, sub, up: () => up && !nc.isClosed() };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  return {
    name: 'nats',
    async write(batch) {
      if (batch.length === 0) return;
      conn ??= open();
      let link: Link;
      try {
        link = await conn;
      } catch (err) {
        conn = undefined;
        throw err;
      }
      if (link.nc.isClosed()) {
        conn = undefined;
        throw new Error('nats: connection closed');
      }
      if (!link.up()) throw new Error('nats: not connected (reconnecting)');
      const first = seq + 1;
      seq += batch.length;
      await new Promise<void>((resolve, reject) => {
        let left = batch.length;
        let failure: Error | undefined;
        const settle = (err: Error | undefined): void => {
          clearTimeout(timer);
          const i = inFlight.indexOf(mine);
          if (i >= 0) inFlight.splice(i, 1);
          if (err !== undefined) reject(err);
          else resolve();
        };
        // Judged after the next poll: acknowledgements that came while this thread ran late count.
        const timer = setTimeout(() => pastPoll(() => settle(failure ?? new Error(`JetStream acknowledged ${batch.length - left} of ${batch.length} entries within ${timeout} ms`))), timeout);
        const mine: InFlight = {
          nc: link.nc,
          first,
          acked: new Uint8Array(batch.length),
          ack: (err) => {
            failure ??= err;
            left -= 1;
            if (left === 0) settle(failure);
          },
          fail: settle,
        };
        inFlight.push(mine);
        try {
          // Published in order on one connection.
          for (let i = 0; i < batch.length; i++) {
            const e = batch[i] as SerializedEntry;
            const h = headers();
            h.set('Nats-Msg-Id', e.decisionId);
            link.nc.publish(subject, jsonUtf8(e), { reply: `${link.inbox}.${first + i}`, headers: h });
          }
        } catch (err) {
          // A closed connection refuses to publish: the batch fails now (the writer spills it).
          if (link.nc.isClosed()) conn = undefined;
          settle(err instanceof Error ? err : new Error(String(err)));
        }
      });
    },
    async close() {
      const c = conn;
      conn = undefined;
      const link = await c?.catch(() => undefined);
      if (link === undefined) return;
      // Acknowledgements still on their way are waited for (drain); a connection that is down is just closed.
      await (link.up() ? link.nc.drain() : link.nc.close()).catch(() => undefined);
    },
  };
}
