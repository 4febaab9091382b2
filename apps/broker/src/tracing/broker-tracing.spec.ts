import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { startOtlpReceiver, type OtlpReceiver } from '../../../../test/support/otlp-receiver.js';
import type { TracingConfig } from '../config/broker-config.js';
import { createBrokerTracing, fromHeaders, fromMetadata, type BrokerTracing } from './broker-tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

let receiver: OtlpReceiver;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
});

afterAll(async () => {
  await receiver?.close();
});

function tracingWith(config: Partial<TracingConfig>, errors: string[] = []): BrokerTracing {
  const t = createBrokerTracing({
    config: { enabled: true, exporter: 'otlp-http', endpoint: receiver.url, serviceName: 'unit', sampleRatio: 1, headers: {}, ...config },
    version: '1.2.3',
    onError: (m) => errors.push(m),
  });
  if (t === undefined) throw new Error('expected tracing');
  return t;
}

describe(createBrokerTracing.name, () => {
  it('makes nothing when tracing is off', () => {
    expect(createBrokerTracing({ config: { enabled: false, exporter: 'otlp-http', endpoint: receiver.url, serviceName: 'x', sampleRatio: 1, headers: {} }, version: '1', onError: () => undefined })).toBeUndefined();
  });

  it('follows the caller`s sampling decision, and samples its own traces at sampleRatio', async () => {
    const never = tracingWith({ sampleRatio: 0 });
    // No caller: not sampled at ratio 0, so no trace object at all.
    expect(never.start('warden.check', 'v1', undefined)).toBeUndefined();
    expect(never.start('warden.check', 'v1', fromHeaders({}))).toBeUndefined();
    // A sampled caller is followed whatever the ratio; an unsampled one is not recorded even at ratio 1.
    const sampled = never.start('warden.check', 'v1', fromHeaders({ traceparent: `00-${TRACE}-${PARENT}-01` }));
    expect(sampled?.logFields().trace_id).toBe(TRACE);
    sampled?.run(() => undefined);
    await never.shutdown();
    const always = tracingWith({ sampleRatio: 1 });
    expect(always.start('warden.check', 'v1', fromHeaders({ traceparent: `00-${TRACE}-${PARENT}-00` }))).toBeUndefined();
    // A malformed traceparent is ignored: a new trace starts.
    const fresh = always.start('warden.check', 'v1', fromHeaders({ traceparent: 'garbage' }));
    expect(fresh?.logFields().trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh?.logFields().trace_id).not.toBe(TRACE);
    fresh?.run(() => undefined);
    await always.shutdown();
  });

  it('reads a traceparent from gRPC metadata, and exports the root with its stages on shutdown', async () => {
    const tracing = tracingWith({});
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${TRACE}-${PARENT}-01`);
    const trace = tracing.start('warden.check', 'cerbos-grpc', fromMetadata(metadata), { 'rpc.system': 'grpc' });
    if (trace === undefined) throw new Error('expected a trace');
    // Stage times are clock readings already taken (the SDK reads a future one as an epoch time).
    const t0 = performance.now() - 20;
    const enrich = trace.enrich();
    enrich.onResolverRun({ resolver: 'crm', kind: 'http', start: t0, end: t0 + 5, calls: 1, keys: 3, hits: 1, cachedKeys: 0, failures: 3, error: 'ERR_RESOLVER_TIMEOUT' });
    enrich.end(undefined);
    trace.evaluate(t0 + 6, t0 + 7);
    trace.audit('strict').end();
    trace.decided({ decisionId: 'd-1', decision: 'DENY', policyVersion: 'pv', reasons: ['resolver_failed'] });
    await expect(trace.run(() => Promise.reject(new WardenError('ERR_AUDIT_UNAVAILABLE', 'down')))).rejects.toThrow('down');
    await tracing.shutdown();
    const root = receiver.spans.find((s) => s.traceId === TRACE && s.attributes['warden.adapter'] === 'cerbos-grpc');
    const spans = receiver.spans.filter((s) => s.spanId === root?.spanId || s.parentSpanId === root?.spanId || receiver.spans.some((p) => p.spanId === s.parentSpanId && p.parentSpanId === root?.spanId));
    expect(spans.map((s) => s.name).sort()).toEqual(['warden.audit', 'warden.check', 'warden.enrich', 'warden.evaluate', 'warden.resolver crm']);
    expect(root?.parentSpanId).toBe(PARENT);
    expect(root?.resource).toMatchObject({ 'service.name': 'unit', 'service.version': '1.2.3' });
    expect(root?.attributes).toMatchObject({ 'warden.adapter': 'cerbos-grpc', 'rpc.system': 'grpc', 'warden.decision': 'DENY', 'warden.decision_id': 'd-1', 'warden.policy_version': 'pv', 'warden.reasons': ['resolver_failed'], 'error.type': 'ERR_AUDIT_UNAVAILABLE' });
    // The status names the code only, never the message (which may carry request values).
    expect(root?.status).toEqual({ code: 2, message: 'ERR_AUDIT_UNAVAILABLE' });
    const resolver = spans.find((s) => s.name === 'warden.resolver crm');
    const enrichSpan = spans.find((s) => s.name === 'warden.enrich');
    expect(resolver?.parentSpanId).toBe(enrichSpan?.spanId);
    expect(enrichSpan?.parentSpanId).toBe(root?.spanId);
    expect(resolver?.attributes).toMatchObject({ 'warden.resolver.calls': 1, 'warden.resolver.keys': 3, 'warden.resolver.cache_hits': 1, 'warden.resolver.cache_hit': false, 'warden.resolver.failures': 3, 'warden.resolver.error': 'ERR_RESOLVER_TIMEOUT' });
    // The explicit times (performance.now() readings) keep their 5 ms length.
    expect(Number((resolver?.end ?? 0n) - (resolver?.start ?? 0n)) / 1e6).toBeCloseTo(5, 1);
    expect(spans.find((s) => s.name === 'warden.audit')?.attributes).toMatchObject({ 'warden.audit.mode': 'strict' });
  });

  it('reports a failed export through onError, at most once a minute', async () => {
    // A collector that refuses every batch (400: not retried).
    let requests = 0;
    const server = createServer((req, res) => {
      requests += 1;
      req.resume();
      req.on('end', () => res.writeHead(400).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const errors: string[] = [];
    try {
      const tracing = tracingWith({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, headers: { 'x-api-key': 'not-in-messages' } }, errors);
      // 600 roots: a full batch (512) is exported at once and fails, the rest fails at shutdown.
      for (let i = 0; i < 600; i++) tracing.start('warden.check', 'v1', undefined)?.run(() => undefined);
      await tracing.shutdown();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(requests).toBe(2);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^tracing: exporting spans failed \(512 spans dropped so far\): /);
    expect(errors[0]).not.toContain('not-in-messages');
  });
});
