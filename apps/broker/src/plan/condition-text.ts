/**
 * A plan condition as people (and models) read it: `arguments.amount < 500` rather than the
 * filter tree, and the attributes it needs. Paths are shortened (`request.resource.attr.` is
 * dropped, so a call's arguments read `arguments.x`; other resource fields read `R.x`); operators
 * are CEL's infix ones; any other function keeps its name.
 */
import type { PlanOperand } from '@warden/decision';

const INFIX: Readonly<Record<string, string>> = {
  eq: '==',
  ne: '!=',
  lt: '<',
  le: '<=',
  gt: '>',
  ge: '>=',
  in: 'in',
  add: '+',
  sub: '-',
  mult: '*',
  div: '/',
  mod: '%',
};

/** `request.resource.attr.arguments.amount` → `arguments.amount`. */
export function shortPath(variable: string): string {
  if (variable.startsWith('request.resource.attr.')) return variable.slice('request.resource.attr.'.length);
  if (variable.startsWith('request.resource.')) return `R.${variable.slice('request.resource.'.length)}`;
  return variable;
}

/** CEL's precedence: `?:` 0, `||` 1, `&&` 2, comparisons and `in` 3, `+ -` 4, `* / %` 5, `!` 6. */
const PRECEDENCE: Readonly<Record<string, number>> = { '||': 1, '&&': 2, '==': 3, '!=': 3, '<': 3, '<=': 3, '>': 3, '>=': 3, in: 3, '+': 4, '-': 4, '*': 5, '/': 5, '%': 5 };

/** `o` as text; parenthesised when it binds looser than `outer` requires. */
function text(o: PlanOperand, outer: number): string {
  if ('variable' in o) return shortPath(o.variable);
  if ('value' in o) return JSON.stringify(o.value);
  const { operator, operands: args } = o.expression;
  const wrap = (s: string, own: number): string => (own < outer ? `(${s})` : s);
  if ((operator === 'and' || operator === 'or') && args.length >= 2) {
    const sym = operator === 'and' ? '&&' : '||';
    const p = PRECEDENCE[sym] as number;
    // `a || (b && c)`: CEL would not need the parentheses, readers do.
    return wrap(args.map((a) => text(a, operator === 'or' ? 3 : p + 1)).join(` ${sym} `), p);
  }
  if (operator === 'not' && args.length === 1) return `!${text(args[0] as PlanOperand, 7)}`;
  const infix = INFIX[operator];
  if (infix !== undefined && args.length === 2) {
    const p = PRECEDENCE[infix] as number;
    return wrap(`${text(args[0] as PlanOperand, p)} ${infix} ${text(args[1] as PlanOperand, p + 1)}`, p);
  }
  if (operator === 'if' && args.length === 3) return wrap(`${text(args[0] as PlanOperand, 1)} ? ${text(args[1] as PlanOperand, 1)} : ${text(args[2] as PlanOperand, 0)}`, 0);
  return `${operator}(${args.map((a) => text(a, 0)).join(', ')})`;
}

/**
 * The condition in CEL-like infix form.
 * @example conditionText({ expression: { operator: 'lt', operands: [{ variable: 'request.resource.attr.arguments.amount' }, { value: 500 }] } }) // 'arguments.amount < 500'
 */
export function conditionText(condition: PlanOperand): string {
  return text(condition, 0);
}

/**
 * The attributes a condition reads (shortened, sorted, once each); comprehension variables
 * (`lambda` operands) are not attributes.
 */
export function conditionAttributes(condition: PlanOperand): string[] {
  const out = new Set<string>();
  const bound = new Set<string>();
  const visit = (o: PlanOperand): void => {
    if ('variable' in o) {
      const root = o.variable.split('.')[0] as string;
      if (!bound.has(root) && o.variable.startsWith('request.')) out.add(shortPath(o.variable));
      return;
    }
    if ('value' in o) return;
    if (o.expression.operator === 'lambda') {
      for (const v of o.expression.operands.slice(1)) if ('variable' in v) bound.add(v.variable);
    }
    for (const x of o.expression.operands) visit(x);
  };
  visit(condition);
  return [...out].sort();
}
