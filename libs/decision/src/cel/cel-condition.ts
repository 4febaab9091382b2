import type { CelContext, CelProgram } from './cel-program.js';
import { compileCelExpression } from './cel-program.js';
import { CelEvaluationError } from './cel-errors.js';

/** A Cerbos condition `match` tree: `expr`, or `all`/`any`/`none` with `of`. */
export type CelCondition =
  | { expr: string }
  | { all: { of: CelCondition[] } }
  | { any: { of: CelCondition[] } }
  | { none: { of: CelCondition[] } };

/**
 * Evaluates a condition tree the way Cerbos does: an expression that errors or yields a non-bool
 * counts as not met; `all` needs every child met, `any` one, `none` no child met.
 * `compile` lets callers reuse precompiled programs (defaults to compiling on the fly).
 */
export function evaluateCelCondition(
  cond: CelCondition,
  ctx: CelContext,
  compile: (source: string) => CelProgram = compileCelExpression,
): boolean {
  if ('expr' in cond) {
    try {
      return compile(cond.expr).evaluate(ctx) === true;
    } catch (err) {
      if (err instanceof CelEvaluationError) return false;
      throw err;
    }
  }
  if ('all' in cond) return cond.all.of.every((c) => evaluateCelCondition(c, ctx, compile));
  if ('any' in cond) return cond.any.of.some((c) => evaluateCelCondition(c, ctx, compile));
  return !cond.none.of.some((c) => evaluateCelCondition(c, ctx, compile));
}
