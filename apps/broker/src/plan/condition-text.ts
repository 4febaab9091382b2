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

function text(o: PlanOperand, top: boolean): string {
  if ('variable' in o) return shortPath(o.variable);
  if ('value' in o) return JSON.stringify(o.value);
  const { operator, operands } = o.expression;
  const args = operands;
  const wrap = (s: string): string => (top ? s : `(${s})`);
  if ((operator === 'and' || operator === 'or') && args.length >= 2) return wrap(args.map((a) => text(a, false)).join(operator === 'and' ? ' && ' : ' || '));
  if (operator === 'not' && args.length === 1) return `!${text(args[0] as PlanOperand, false)}`;
  const infix = INFIX[operator];
  if (infix !== undefined && args.length === 2) return wrap(`${text(args[0] as PlanOperand, false)} ${infix} ${text(args[1] as PlanOperand, false)}`);
  if (operator === 'if' && args.length === 3) return wrap(`${text(args[0] as PlanOperand, false)} ? ${text(args[1] as PlanOperand, false)} : ${text(args[2] as PlanOperand, false)}`);
  return `${operator}(${args.map((a) => text(a, true)).join(', ')})`;
}

/**
 * The condition in CEL-like infix form.
 * @example conditionText({ expression: { operator: 'lt', operands: [{ variable: 'request.resource.attr.arguments.amount' }, { value: 500 }] } }) // 'arguments.amount < 500'
 */
export function conditionText(condition: PlanOperand): string {
  return text(condition, true);
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
