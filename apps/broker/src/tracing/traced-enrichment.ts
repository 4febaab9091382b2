/**
 * {@link enrichInputs} under a `warden.enrich` span (with one child per resolver run) when the
 * decision is traced; exactly `enrichInputs` otherwise.
 */
import type { CheckInput } from '@warden/core';
import { enrichInputs, type EnrichedInputs, type EnrichExtra } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import { failSpan, type DecisionTrace } from './decision-trace.js';

/** Enriches `inputs` as {@link enrichInputs} does, traced under `trace` when it is given. */
export function enrichTraced(trace: DecisionTrace | undefined, runtime: ResolverRuntime, inputs: readonly CheckInput[], extra: EnrichExtra): EnrichedInputs | Promise<EnrichedInputs> {
  if (trace === undefined) return enrichInputs(runtime, inputs, extra);
  const stage = trace.enrich();
  extra.onResolverRun = stage.onResolverRun;
  let out: EnrichedInputs | Promise<EnrichedInputs>;
  try {
    out = enrichInputs(runtime, inputs, extra);
  } catch (err) {
    failSpan(stage.span, err);
    stage.end(undefined);
    throw err;
  }
  if (!(out instanceof Promise)) {
    stage.end(out.outcome);
    return out;
  }
  return out.then(
    (e) => {
      stage.end(e.outcome);
      return e;
    },
    (err: unknown) => {
      failSpan(stage.span, err);
      stage.end(undefined);
      throw err;
    },
  );
}
