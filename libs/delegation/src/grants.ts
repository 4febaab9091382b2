/**
 * Grants: what a delegation lets an agent do. A grant names a resource kind, the actions (`*` for
 * every action), optionally the resource ids (absent: every id of the kind) and optionally numeric
 * caps on resource attributes (`{ amount: 500 }`: only resources whose `attr.amount` is a number
 * at most 500; for a tool call, whose `attr.arguments` object is present, the argument `amount`). A scope is a list of grants; a request is inside a scope when one grant covers it.
 *
 * Attenuation: a child scope is inside its parent when every child grant is covered by one parent
 * grant (the same kind; a subset of the actions, where only `*` covers `*`; a subset of the ids,
 * where only "every id" covers "every id"; every parent cap kept, at most as high). A child grant
 * that only the union of several parent grants would cover is refused: conservative, and easy to
 * explain.
 */
import { WardenError, type JsonValue } from '@warden/core';

/** One grant of a delegation. */
export interface Grant {
  readonly kind: string;
  /** Action names, or `['*']` for every action. */
  readonly actions: readonly string[];
  /** Resource ids; absent means every id of the kind. */
  readonly ids?: readonly string[];
  /** Upper bounds on numeric resource attributes. */
  readonly caps?: Readonly<Record<string, number>>;
}

/** A delegation's scope. */
export type Scope = readonly Grant[];

/** What a check asks, as a scope sees it. */
export interface ScopedRequest {
  readonly kind: string;
  readonly id: string;
  readonly action: string;
  readonly attr: Readonly<Record<string, JsonValue>>;
}

const ALL = '*';
const NAME = /^[^\s]{1,256}$/;
const MAX_GRANTS = 64;
const MAX_LIST = 256;

function bad(field: string, message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);
}

function names(v: unknown, field: string, allowAll: boolean): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_LIST) throw bad(field, `expected a non-empty list of at most ${MAX_LIST} names`);
  const out = v.map((x, i) => {
    if (typeof x !== 'string' || !NAME.test(x)) throw bad(`${field}[${i}]`, 'expected a non-empty string without spaces');
    if (x === ALL && !allowAll) throw bad(`${field}[${i}]`, '`*` is not allowed here');
    return x;
  });
  if (new Set(out).size !== out.length) throw bad(field, 'duplicate entries');
  if (out.includes(ALL) && out.length > 1) throw bad(field, '`*` stands alone');
  return out;
}

/**
 * Parses and checks a scope from JSON (a request body or a token). Throws `ERR_REQUEST_INVALID`
 * naming the field.
 * @example parseScope([{ kind: 'tool', actions: ['invoke'], ids: ['issue_refund'], caps: { amount: 500 } }], 'grants')
 */
export function parseScope(raw: unknown, field: string): Grant[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_GRANTS) throw bad(field, `expected a non-empty list of at most ${MAX_GRANTS} grants`);
  return raw.map((g, i): Grant => {
    const f = `${field}[${i}]`;
    if (typeof g !== 'object' || g === null || Array.isArray(g)) throw bad(f, 'expected an object with `kind` and `actions`');
    const o = g as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['kind', 'actions', 'ids', 'caps'].includes(k)) throw bad(`${f}.${k}`, 'unknown field');
    if (typeof o['kind'] !== 'string' || !NAME.test(o['kind']) || o['kind'] === ALL) throw bad(`${f}.kind`, 'expected a resource kind');
    const grant: { kind: string; actions: string[]; ids?: string[]; caps?: Record<string, number> } = { kind: o['kind'], actions: names(o['actions'], `${f}.actions`, true) };
    if (o['ids'] !== undefined && o['ids'] !== null) grant.ids = names(o['ids'], `${f}.ids`, false);
    if (o['caps'] !== undefined && o['caps'] !== null) {
      const caps = o['caps'];
      if (typeof caps !== 'object' || Array.isArray(caps)) throw bad(`${f}.caps`, 'expected an object of attribute name to number');
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(caps as Record<string, unknown>)) {
        if (!NAME.test(k)) throw bad(`${f}.caps`, `invalid attribute name \`${k}\``);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${f}.caps.${k}`, 'expected a finite number');
        out[k] = v;
      }
      grant.caps = out;
    }
    return grant;
  });
}

/** True when `parent` covers everything `child` grants. */
export function grantCovers(parent: Grant, child: Grant): boolean {
  if (parent.kind !== child.kind) return false;
  if (!parent.actions.includes(ALL) && (child.actions.includes(ALL) || !child.actions.every((a) => parent.actions.includes(a)))) return false;
  if (parent.ids !== undefined && (child.ids === undefined || !child.ids.every((id) => (parent.ids as readonly string[]).includes(id)))) return false;
  for (const [attr, cap] of Object.entries(parent.caps ?? {})) {
    const c = child.caps?.[attr];
    if (c === undefined || c > cap) return false;
  }
  return true;
}

/** The first grant of `child` no grant of `parent` covers, or undefined when `child` is inside `parent`. */
export function uncoveredGrant(parent: Scope, child: Scope): Grant | undefined {
  return child.find((c) => !parent.some((p) => grantCovers(p, c)));
}

/** True when one grant of `scope` covers `request` (kind, id, action, and every cap on the resource's attributes). */
export function scopeAllows(scope: Scope, request: ScopedRequest): boolean {
  return scope.some((g) => {
    if (g.kind !== request.kind) return false;
    if (!g.actions.includes(ALL) && !g.actions.includes(request.action)) return false;
    if (g.ids !== undefined && !g.ids.includes(request.id)) return false;
    for (const [attr, cap] of Object.entries(g.caps ?? {})) {
      // SECURITY: a capped attribute that is missing or not a number is outside the grant.
      const v = cappedValue(request.attr, attr);
      if (typeof v !== 'number' || !(v <= cap)) return false;
    }
    return true;
  });
}

/**
 * The value a cap on `name` bounds: for a tool call (the resource carries the call's `arguments`
 * object, as the MCP proxy and tool discovery state it) the argument of that name, else the
 * resource attribute. The arguments are what the call will do, so they are what a cap limits.
 * @example cappedValue({ arguments: { amount: 120 } }, 'amount') // 120
 */
export function cappedValue(attr: Readonly<Record<string, JsonValue>>, name: string): JsonValue | undefined {
  const args = attr['arguments'];
  if (typeof args === 'object' && args !== null && !Array.isArray(args)) return (args as Record<string, JsonValue>)[name];
  return attr[name];
}

/** `tool: invoke on issue_refund (amount ≤ 500)`: a grant as people read it, for reasons. */
export function describeGrant(g: Grant): string {
  const ids = g.ids === undefined ? `every ${g.kind}` : g.ids.join(', ');
  const caps = Object.entries(g.caps ?? {}).map(([k, v]) => `${k} ≤ ${v}`);
  return `${g.kind}: ${g.actions.join(', ')} on ${ids}${caps.length > 0 ? ` (${caps.join(', ')})` : ''}`;
}
