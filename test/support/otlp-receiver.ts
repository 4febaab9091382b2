/**
 * A real OTLP/HTTP traces receiver on 127.0.0.1 for end-to-end tests: it accepts `POST /v1/traces`
 * in the JSON encoding (what `@opentelemetry/exporter-trace-otlp-http` sends), answers 200 with an
 * empty `ExportTraceServiceResponse`, and keeps every span it received, decoded into plain values.
 * No mocking library: the broker's exporter really connects to it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An attribute value as OTLP/JSON carries it, decoded. */
export type AttributeValue = string | number | boolean | AttributeValue[] | null;

/** One received span. Ids are lower-case hex; times are nanoseconds since the epoch. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Absent for a root span with no remote parent. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP span kind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly start: bigint;
  readonly end: bigint;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message?: string };
  /** The attributes of the resource that exported it (`service.name`, ...). */
  readonly resource: Readonly<Record<string, AttributeValue>>;
}

/** A running receiver. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>/v1/traces` */
  readonly url: string;
  /** Every export request received (any path or method), in order: `METHOD path content-type`. */
  readonly requests: string[];
  readonly spans: ReceivedSpan[];
  /** Resolves once at least `n` spans were received (rejects after `timeoutMs`). */
  waitForSpans(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

function decodeValue(v: unknown): AttributeValue {
  const o = (v ?? {}) as Json;
  if ('stringValue' in o) return String(o['stringValue']);
  if ('boolValue' in o) return Boolean(o['boolValue']);
  // int64 may be a JSON number or a decimal string.
  if ('intValue' in o) return Number(o['intValue']);
  if ('doubleValue' in o) return Number(o['doubleValue']);
  if ('arrayValue' in o) return (((o['arrayValue'] as Json | undefined)?.['values'] as unknown[] | undefined) ?? []).map(decodeValue);
  return null;
}

function decodeAttributes(list: unknown): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of (list as Array<{ key: string; value: unknown }> | undefined) ?? []) out[kv.key] = decodeValue(kv.value);
  return out;
}

function decode(body: Json): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of (body['resourceSpans'] as Json[] | undefined) ?? []) {
    const resource = decodeAttributes((rs['resource'] as Json | undefined)?.['attributes']);
    for (const ss of (rs['scopeSpans'] as Json[] | undefined) ?? []) {
      for (const s of (ss['spans'] as Json[] | undefined) ?? []) {
        const parent = s['parentSpanId'];
        const status = (s['status'] as Json | undefined) ?? {};
        spans.push({
          traceId: String(s['traceId']).toLowerCase(),
          spanId: String(s['spanId']).toLowerCase(),
          parentSpanId: typeof parent === 'string' && parent !== '' ? parent.toLowerCase() : undefined,
          name: String(s['name']),
          kind: Number(s['kind']),
          start: BigInt(String(s['startTimeUnixNano'])),
          end: BigInt(String(s['endTimeUnixNano'])),
          attributes: decodeAttributes(s['attributes']),
          status: { code: Number(status['code'] ?? 0), ...(typeof status['message'] === 'string' ? { message: status['message'] } : {}) },
          resource,
        });
      }
    }
  }
  return spans;
}

/** Starts a receiver on a free port of 127.0.0.1. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: string[] = [];
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method ?? '?'} ${req.url ?? '/'} ${req.headers['content-type'] ?? ''}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      try {
        spans.push(...decode(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json));
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    requests,
    spans,
    waitForSpans: (n, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (spans.length >= n) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`received ${spans.length} spans, expected at least ${n}`));
        }, timeoutMs);
        const check = (): void => {
          if (spans.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
