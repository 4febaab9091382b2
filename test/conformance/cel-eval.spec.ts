/**
 * Replays Cerbos's `cel_eval` conformance cases (`{condition, request, want}`) against the CEL
 * layer. Each case file is one test; each leaf expression of an `all` case that wants `true` is
 * also a test of its own (every leaf must then be true), which pinpoints regressions.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  compileCelExpression,
  createCelContext,
  CelEvaluationError,
  type CelContext,
  type CelRequest,
} from '../../libs/decision/src/cel/index.js';
import { conformanceDir, knownFailures } from '../support/conformance.js';

const caseDir = join(conformanceDir, 'cel_eval');

/** Cerbos's harness pins `now` so that `now() == timestamp("2021-04-22T10:05:20.021-05:00")` holds. */
const NOW = new Date('2021-04-22T10:05:20.021-05:00');

/** A Cerbos condition `match` tree as the cases write it. */
type CelCondition =
  | { expr: string }
  | { all: { of: CelCondition[] } }
  | { any: { of: CelCondition[] } }
  | { none: { of: CelCondition[] } };

/**
 * The cases are bare conditions, not policies: this walks one the way Cerbos's engine does (an
 * expression that errors or is not `true` is not met). The engine's own walk over compiled
 * policies is covered by the engine conformance cases.
 */
function evaluateCelCondition(cond: CelCondition, ctx: CelContext): boolean {
  if ('expr' in cond) {
    try {
      return compileCelExpression(cond.expr).evaluate(ctx) === true;
    } catch (err) {
      if (err instanceof CelEvaluationError) return false;
      throw err;
    }
  }
  if ('all' in cond) return cond.all.of.every((c) => evaluateCelCondition(c, ctx));
  if ('any' in cond) return cond.any.of.some((c) => evaluateCelCondition(c, ctx));
  return !cond.none.of.some((c) => evaluateCelCondition(c, ctx));
}

interface CelCase {
  condition: CelCondition;
  request: CelRequest;
  want: boolean;
}

const present = existsSync(caseDir);
const suite = present ? describe : describe.skip;

suite(present ? `cerbos cel_eval conformance (${caseDir})` : `cerbos cel_eval conformance: SKIPPED, ${caseDir} not found`, () => {
  if (!present) it.skip(`skipped: conformance folder ${caseDir} is absent (set WARDEN_CONFORMANCE_DIR)`, () => {});
  const skips = knownFailures('cel-eval');
  const files = present ? readdirSync(caseDir).filter((f) => f.endsWith('.yaml')).sort() : [];

  for (const file of files) {
    const c = parse(readFileSync(join(caseDir, file), 'utf8')) as CelCase;
    const ctx = () =>
      createCelContext({
        request: c.request,
        constants: {},
        variables: {},
        globals: {},
        effectiveDerivedRoles: [],
        now: NOW,
      });
    const name = file.replace(/\.yaml$/, '');
    const reason = skips.get(name);
    (reason !== undefined ? it.skip : it)(`${name}${reason !== undefined ? ` (known failure: ${reason})` : ''}`, () => {
      expect(evaluateCelCondition(c.condition, ctx())).toBe(c.want);
    });

    if (c.want === true && 'all' in c.condition) {
      c.condition.all.of.forEach((leaf, i) => {
        if (!('expr' in leaf)) return;
        const id = `${name}#${i + 1}`;
        const why = skips.get(id);
        (why !== undefined ? it.skip : it)(`${id}: ${leaf.expr.trim()}${why !== undefined ? ` (known failure: ${why})` : ''}`, () => {
          expect(compileCelExpression(leaf.expr).evaluate(ctx())).toBe(true);
        });
      });
    }
  }
});
