/**
 * OpenTelemetry tracing of the decision path (`tracing.enabled: true`): one root span per decision
 * request, named `warden.check` (`warden.plan` for tool discovery) with the adapter that brought
 * it (`warden.adapter`), and under it `warden.enrich` (one `warden.resolver <name>` child per
 * resolver that ran), `warden.evaluate` and `warden.audit`. A caller's W3C `traceparent` (HTTP
 * header or gRPC metadata) is continued: the root span is its child and keeps its trace id.
 *
 * Why spans are made by hand, with explicit parents and no context manager: only Warden's stages
 * are traced (auto-instrumentation would trace every socket, and costs on every request), and
 * passing the parent explicitly needs no AsyncLocalStorage on the hot path. The provider is this
 * app's own, never registered globally, so several brokers in one process (the tests) keep their
 * own exporters.
 *
 * Off (the default), none of this exists: {@link createBrokerTracing} returns undefined and every
 * call site checks one field, so a check makes no span object and reads no extra clock.
 */
import { ROOT_CONTEXT, SpanKind, defaultTextMapGetter, type Attributes, type Context, type Span, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../config/broker-config.js';
import { DecisionTrace, type DecisionAdapter } from './decision-trace.js';

/** What a caller's trace context is read from: HTTP headers, or gRPC metadata through its own getter. */
export type TraceCarrier = { readonly carrier: unknown; readonly getter: TextMapGetter<unknown> };

/** The name of a decision's root span. */
export type DecisionSpanName = 'warden.check' | 'warden.plan';

/** The app's tracer; exists only while `tracing.enabled` is true. */
export interface BrokerTracing {
  /**
   * Starts a decision's root span (a child of the caller's span when `from` carries a valid
   * `traceparent`), or returns undefined when the trace is not sampled: then nothing else is made.
   */
  start(name: DecisionSpanName, adapter: DecisionAdapter, from: TraceCarrier | undefined, attributes?: Attributes): DecisionTrace | undefined;
  /** Exports what is buffered and stops (bounded: a collector that does not answer delays shutdown by at most {@link SHUTDOWN_TIMEOUT_MS}). */
  shutdown(): Promise<void>;
}

/** Options of {@link createBrokerTracing}. */
export interface CreateBrokerTracingOptions {
  config: TracingConfig;
  /** `service.version` of the spans. */
  version: string;
  /** Where export failures are reported (at most one line a minute). */
  onError: (message: string) => void;
}

/** How long one export may take (OTLP/HTTP, retries included). */
const EXPORT_TIMEOUT_MS = 5_000;
/** How long shutdown waits for the last export. Below main.ts's 8 s grace. */
export const SHUTDOWN_TIMEOUT_MS = 3_000;
const REPORT_EVERY_MS = 60_000;

/** Headers as Fastify and node:http give them (lower-case names; a repeated header is an array). */
export function fromHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): TraceCarrier {
  return { carrier: headers, getter: defaultTextMapGetter as TextMapGetter<unknown> };
}

/** What {@link fromMetadata} reads: `@grpc/grpc-js`'s `Metadata` (its `get` returns every value of a key). */
export interface MetadataLike {
  get(key: string): Array<string | Buffer>;
  getMap(): Record<string, unknown>;
}

const METADATA_GETTER: TextMapGetter<unknown> = {
  keys: (m) => Object.keys((m as MetadataLike).getMap()),
  get: (m, key) => {
    const values = (m as MetadataLike).get(key);
    if (values.length === 0) return undefined;
    return values.map(String);
  },
};

/** gRPC call metadata as a trace carrier. */
export function fromMetadata(metadata: MetadataLike): TraceCarrier {
  return { carrier: metadata, getter: METADATA_GETTER };
}

/** Reports failed exports through `onError`, at most once a minute (a collector that is down would otherwise log every batch). */
class ReportingExporter implements SpanExporter {
  private lastReport = -Infinity;
  private failed = 0;

  constructor(
    private readonly inner: SpanExporter,
    private readonly onError: (message: string) => void,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.failed += spans.length;
        const now = Date.now();
        if (now - this.lastReport >= REPORT_EVERY_MS) {
          this.lastReport = now;
          // SECURITY: the error names the failure (connection refused, HTTP status), never the headers.
          this.onError(`tracing: exporting spans failed (${this.failed} spans dropped so far): ${result.error?.message ?? 'unknown error'}`);
        }
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

function exporterOf(config: TracingConfig): SpanExporter | undefined {
  switch (config.exporter) {
    case 'otlp-http':
      // The URL and headers are passed explicitly: the configuration was validated once (read-tracing.ts).
      return new OTLPTraceExporter({ url: config.endpoint, headers: { ...config.headers }, timeoutMillis: EXPORT_TIMEOUT_MS });
    case 'console':
      return new ConsoleSpanExporter();
    case 'none':
      return undefined;
  }
}

/** The app's tracing, or undefined when `tracing.enabled` is false (then nothing is traced, at no cost). */
export function createBrokerTracing(options: CreateBrokerTracingOptions): BrokerTracing | undefined {
  const { config } = options;
  if (!config.enabled) return undefined;
  const exporter = exporterOf(config);
  const spanProcessors: SpanProcessor[] = exporter === undefined ? [] : [new BatchSpanProcessor(new ReportingExporter(exporter, options.onError), { exportTimeoutMillis: EXPORT_TIMEOUT_MS })];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: options.version }),
    // A caller's sampling decision is followed; traces started here are kept at `sampleRatio`.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors,
  });
  const tracer: Tracer = provider.getTracer('warden', options.version);
  const propagator = new W3CTraceContextPropagator();
  return {
    start(name, adapter, from, attributes) {
      const parent: Context = from === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, from.carrier, from.getter);
      const span: Span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: { 'warden.adapter': adapter, ...attributes } }, parent);
      if (!span.isRecording()) return undefined;
      return new DecisionTrace(tracer, span);
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), SHUTDOWN_TIMEOUT_MS);
        timer.unref();
      });
      // A failed last export was reported by the exporter already; it rejects here too, and must
      // not become an unhandled rejection once the race is decided.
      const flushed = provider.shutdown().then(
        () => 'done' as const,
        () => 'failed' as const,
      );
      const result = await Promise.race([flushed, timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') options.onError(`tracing: the last spans were not exported within ${SHUTDOWN_TIMEOUT_MS} ms of shutdown`);
    },
  };
}
