/**
 * Replays Cerbos's `cel_eval` conformance cases (`{condition, request, want}`) against the CEL
 * layer. Each case file is one test; each leaf expression of an `all` case that wants `true` is
 * also a test of its own (every leaf must then be true), which pinpoints regressions.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  compileCelExpression,
  createCelContext,
  evaluateCelCondition,
  type CelCondition,
  type CelRequest,
} from '../../libs/decision/src/cel/index.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const conformanceDir = resolve(repoRoot, process.env['WARDEN_CONFORMANCE_DIR'] ?? '../shared/conformance/cerbos');
const caseDir = join(conformanceDir, 'cel_eval');

/** Cerbos's harness pins `now` so that `now() == timestamp("2021-04-22T10:05:20.021-05:00")` holds. */
const NOW = new Date('2021-04-22T10:05:20.021-05:00');

interface CelCase {
  condition: CelCondition;
  request: CelRequest;
  want: boolean;
}

function knownFailures(): Map<string, string> {
  const file = join(repoRoot, 'test/conformance/known-failures/cel-eval.txt');
  const out = new Map<string, string>();
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const [name, ...reason] = t.split(/\s+#\s*|\s+--\s+/);
    if (name) out.set(name.trim(), reason.join(' ').trim());
  }
  return out;
}

const present = existsSync(caseDir);
const suite = present ? describe : describe.skip;

suite(present ? `cerbos cel_eval conformance (${caseDir})` : `cerbos cel_eval conformance: SKIPPED, ${caseDir} not found`, () => {
  if (!present) it.skip(`skipped: conformance folder ${caseDir} is absent (set WARDEN_CONFORMANCE_DIR)`, () => {});
  const skips = knownFailures();
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
