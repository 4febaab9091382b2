import { describe, expect, it } from 'vitest';
import type { InputDocument } from './attribute-path.js';
import { compileResolverExpression } from './resolver-cel.js';

/** The outcome of evaluating: the value, or the fact that it threw. */
function outcome(source: string, input: InputDocument, result?: unknown): { value?: unknown; threw?: true } {
  try {
    return { value: compileResolverExpression(source).evaluate(input, result) };
  } catch {
    return { threw: true };
  }
}

describe(compileResolverExpression.name, () => {
  // The fast paths (`result.a.b`, `R.kind == "x"`) must agree with full CEL, which the same
  // expression in parentheses always goes through.
  const inputs: InputDocument[] = [{ resource: { kind: 'tool', id: 't' } }, { resource: { kind: 'model', id: 'm' } }, { resource: { id: 'x' } }, {}];
  it.each(['R.kind == "tool"', "resource.kind == 'tool'", 'R.kind == "mcp:tool"'])('`%s` agrees with CEL on every input', (guard) => {
    for (const input of inputs) expect(outcome(guard, input)).toEqual(outcome(`(${guard})`, input));
  });

  const results: unknown[] = [{ a: { b: 1 } }, { a: { b: [1, 2] } }, { a: {} }, { a: 3 }, {}, null, 'text'];
  it.each(['result.a.b', 'result.a', 'result'])('`%s` agrees with CEL on every result', (expr) => {
    for (const result of results) {
      const fast = outcome(expr, {}, result);
      const full = outcome(`(${expr})`, {}, result);
      expect(fast.threw).toEqual(full.threw);
      if (fast.threw === undefined) expect(JSON.stringify(fast.value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))).toEqual(JSON.stringify(full.value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
    }
  });

  it('lists the input paths an expression reads', () => {
    expect(compileResolverExpression('R.kind == "tool" && P.attr.tenant == "acme"').reads.map((r) => r.text)).toEqual(['principal.attr.tenant', 'resource.kind']);
  });
});
