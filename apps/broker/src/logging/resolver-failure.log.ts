/**
 * One warning line per resolver failure of a check, naming the request (`requestId`, and the
 * `decisionId` of `/v1/check`), the resolver, the failure code and what `onError` made of it.
 * Nothing is logged (and nothing allocated) for a check without failures.
 *
 * SECURITY: the message is the failure's own, which is written to be shown to an agent (it becomes
 * the deny reason) and names no credential; the request's tokens and keys are never passed here.
 */
import type { EnrichmentOutcome } from '@warden/resolvers';
import type { WardenLogger } from './warden-logger.js';

/** The trace a logged request belongs to (tracing on): its lines then carry `trace_id` and `span_id`. */
export interface LoggedTrace {
  logFields(): { trace_id: string; span_id: string };
}

/** Logs each item's resolver failures of `outcome`. */
export function logResolverFailures(log: WardenLogger, outcome: EnrichmentOutcome, requestId: string, decisionId: string | undefined, trace?: LoggedTrace): void {
  const items = outcome.items;
  for (let i = 0; i < items.length; i++) {
    const failures = (items[i] as EnrichmentOutcome['items'][number]).failures;
    for (let j = 0; j < failures.length; j++) {
      const f = failures[j] as (typeof failures)[number];
      log.warn({ requestId, ...(decisionId !== undefined ? { decisionId } : {}), ...trace?.logFields(), resolver: f.resolver, code: f.code, onError: f.onError }, f.message);
    }
  }
}
