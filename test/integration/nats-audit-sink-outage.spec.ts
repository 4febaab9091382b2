/**
 * The NATS JetStream sink against a PRIVATE nats-server that is stopped and started again: while
 * the connection is down a write fails at once (the writer spills the batch without waiting for
 * acknowledgements that cannot come), closing does not hang, and once the server is back the same
 * sink writes again; JetStream keeps each decision id once (msgID = decision id).
 */
import { connect, JSONCodec } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNatsAuditSink, serializeEntry, type AuditEntry, type SerializedEntry } from '@warden/audit';
import { eventually } from '../support/audit-faults.js';
import { privateServicesMissing, startPrivateNats, type PrivateNats } from '../support/private-services.js';

const STREAM = 'WARDEN_AUDIT_OUTAGE';
const SUBJECT = 'warden.audit.outage';
const entry = (id: string): SerializedEntry => serializeEntry({ decisionId: id, time: '2026-11-28T09:00:00.000Z', kind: 'check', policyVersion: 'pv', source: '/v1/check', decision: 'ALLOW', identities: { subject: 'alice' }, input: {}, results: [], reasons: [] });

const missing = privateServicesMissing('nats');
if (missing !== undefined) console.warn(`nats-audit-sink-outage: skipped: ${missing}`);

async function streamIds(url: string): Promise<string[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await nc.jetstreamManager();
    const n = (await jsm.streams.info(STREAM)).state.messages;
    const codec = JSONCodec<AuditEntry>();
    const out: string[] = [];
    for (let seq = 1; out.length < n; seq++) out.push(codec.decode((await jsm.streams.getMessage(STREAM, { seq })).data).decisionId);
    return out;
  } finally {
    await nc.close();
  }
}

describe.skipIf(missing !== undefined)('createNatsAuditSink while its server goes away and comes back', () => {
  let server: PrivateNats;
  beforeAll(async () => {
    server = await startPrivateNats();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('fails fast while disconnected, closes without hanging, and writes again after the reconnect', async () => {
    const sut = createNatsAuditSink({ url: server.url, subject: SUBJECT, stream: STREAM, timeoutMs: 5_000 });
    await sut.write([entry('a'), entry('b')]);

    await server.stop('term');
    // The client notices the drop within moments; from then on a write fails at once, well below the 5 s acknowledgement timeout.
    let started = Date.now();
    await expect(sut.write([entry('c')])).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(2_000);
    started = Date.now();
    await expect(sut.write([entry('c')])).rejects.toThrow(/not connected/);
    expect(Date.now() - started).toBeLessThan(100);

    // A second sink, closed while the server is down: no hang.
    const other = createNatsAuditSink({ url: server.url, subject: SUBJECT, stream: STREAM, timeoutMs: 5_000 });
    await expect(other.write([entry('x')])).rejects.toThrow();
    started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(1_000);

    await server.start();
    // The same sink reconnects by itself (the client's reconnect wait is 2 s).
    expect(await eventually(async () => (await sut.write([entry('c'), entry('d')]), true), 15_000, 200)).toBe(true);
    // A replay of what was already stored adds nothing.
    await sut.write([entry('a'), entry('b'), entry('c'), entry('d')]);
    started = Date.now();
    await sut.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    const ids = await streamIds(server.url);
    expect(ids.filter((id) => id !== 'c')).toEqual(['a', 'b', 'd']);
    expect(ids.filter((id) => id === 'c')).toHaveLength(1);
  });
});
