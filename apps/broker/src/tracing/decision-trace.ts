/**
 * One decision's spans: the root (`warden.check` / `warden.plan`) and its stages. Made only when
 * tracing is on and the trace is sampled (see `broker-tracing.ts`); the decision path holds it as
 * an optional field and skips every step here when it is absent.
 *
 * Stage spans get explicit parents (this root, or the enrich span for resolvers) and, where the
 * stage is timed by the caller (evaluation: the engine is pure and reads no clock; resolvers: the
 * scheduler measures them), explicit start and end times in `performance.now()` milliseconds,
 * which the SDK converts to wall-clock time.
 */
import { ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { isWardenError } from '@warden/core';
import type { EnrichmentOutcome, ResolverRunReport } from '@warden/resolvers';

/** The surface a decision request came through (`warden.adapter`). */
export type DecisionAdapter = 'v1' | 'ext-authz-http' | 'ext-authz-grpc' | 'ext-mcp-grpc' | 'cerbos-http' | 'cerbos-grpc' | 'plan';

/** What a decided request is, for the root span's attributes. */
export interface DecisionAttributes {
  /** `/v1/check`'s decision id, or the Cerbos API's `cerbosCallId`. */
  readonly decisionId?: string | undefined;
  /** The caller's request id, when it sent one. */
  readonly requestId?: string | undefined;
  /** ALLOW when every action of every resource is allowed. */
  readonly decision?: 'ALLOW' | 'DENY' | undefined;
  readonly policyVersion?: string | undefined;
  /** The distinct reason codes of the denials (never their messages). */
  readonly reasons?: readonly string[] | undefined;
}

/** The span of one enrichment and the observer that adds a child span per resolver run. */
export class EnrichTrace {
  private readonly context: Context;
  /** Pass as `onResolverRun` of the enrichment: one `warden.resolver <name>` span per report. */
  readonly onResolverRun: (report: ResolverRunReport) => void;

  constructor(
    tracer: Tracer,
    readonly span: Span,
  ) {
    this.context = trace.setSpan(ROOT_CONTEXT, span);
    this.onResolverRun = (r) => {
      const attributes: Attributes = {
        'warden.resolver.name': r.resolver,
        'warden.resolver.kind': r.kind,
        'warden.resolver.calls': r.calls,
        'warden.resolver.keys': r.keys,
        'warden.resolver.cache_hits': r.hits + r.cachedKeys,
        // Every key it needed came from a cache: none loaded, or all loaded ones a cache wrapper answered.
        'warden.resolver.cache_hit': r.hits + r.cachedKeys > 0 && r.cachedKeys === r.keys,
      };
      if (r.error !== undefined) {
        attributes['warden.resolver.failures'] = r.failures;
        attributes['warden.resolver.error'] = r.error;
      }
      const s = tracer.startSpan(`warden.resolver ${r.resolver}`, { startTime: r.start, attributes }, this.context);
      if (r.error !== undefined) s.setStatus({ code: SpanStatusCode.ERROR, message: r.error });
      s.end(r.end);
    };
  }

  /** Ends the span with what the enrichment did (undefined: it failed before an outcome). */
  end(outcome: EnrichmentOutcome | undefined): void {
    if (outcome !== undefined) {
      let failures = 0;
      for (const item of outcome.items) failures += item.failures.length;
      this.span.setAttributes({ 'warden.enrich.resolvers': outcome.runs.length, 'warden.enrich.failures': failures });
    }
    this.span.end();
  }
}

/** Marks `span` failed with the error's code (a `WardenError`'s, else its class); never its message, which may name request values. */
export function failSpan(span: Span, err: unknown): void {
  const type = isWardenError(err) ? err.code : err instanceof Error ? err.name : 'unknown';
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** A sampled decision's root span and its stage spans. */
export class DecisionTrace {
  private readonly context: Context;

  constructor(
    private readonly tracer: Tracer,
    readonly span: Span,
  ) {
    this.context = trace.setSpan(ROOT_CONTEXT, span);
  }

  /** The ids log lines about this decision carry (`trace_id`, `span_id` of the root). */
  logFields(): { trace_id: string; span_id: string } {
    const c = this.span.spanContext();
    return { trace_id: c.traceId, span_id: c.spanId };
  }

  /** Starts `warden.enrich`, now. */
  enrich(): EnrichTrace {
    return new EnrichTrace(this.tracer, this.tracer.startSpan('warden.enrich', undefined, this.context));
  }

  /**
   * Adds a finished `warden.evaluate` span. `start`, `end`: `performance.now()` readings taken
   * around the engine call (readings already taken: the SDK reads a number above `performance.now()` as an epoch time).
   */
  evaluate(start: number, end: number, attributes?: Attributes): void {
    this.tracer.startSpan('warden.evaluate', attributes === undefined ? { startTime: start } : { startTime: start, attributes }, this.context).end(end);
  }

  /** Starts `warden.audit`, now: handing the entry to the decision log (best-effort), or waiting until it is durable (strict). */
  audit(mode: 'best-effort' | 'strict'): Span {
    return this.tracer.startSpan('warden.audit', { attributes: { 'warden.audit.mode': mode } }, this.context);
  }

  /** Sets what was decided on the root span. */
  decided(d: DecisionAttributes): void {
    const a: Attributes = {};
    if (d.decisionId !== undefined) a['warden.decision_id'] = d.decisionId;
    if (d.requestId !== undefined) a['warden.request_id'] = d.requestId;
    if (d.decision !== undefined) a['warden.decision'] = d.decision;
    if (d.policyVersion !== undefined) a['warden.policy_version'] = d.policyVersion;
    if (d.reasons !== undefined && d.reasons.length > 0) a['warden.reasons'] = [...d.reasons];
    this.span.setAttributes(a);
  }

  /**
   * Runs the rest of the request and ends the root span once it has answered: at once when
   * `answer` returns a value, when its promise settles otherwise; an error marks the span failed.
   */
  run<T>(answer: () => T): T {
    let out: T;
    try {
      out = answer();
    } catch (err) {
      failSpan(this.span, err);
      this.span.end();
      throw err;
    }
    if (!(out instanceof Promise)) {
      this.span.end();
      return out;
    }
    // The same outcome as `answer`'s promise, settled once the span has ended.
    return out.then(
      (v: unknown) => {
        this.span.end();
        return v;
      },
      (err: unknown) => {
        failSpan(this.span, err);
        this.span.end();
        throw err;
      },
    ) as T;
  }
}
