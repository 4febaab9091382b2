/**
 * `budgets:` of warden.yaml: token budgets per subject, agent, team or gateway key, validated once
 * at boot. Every problem is an `ERR_CONFIG_INVALID` naming the key, as in `load-broker-config.ts`.
 *
 * ```yaml
 * budgets:
 *   - name: daily_tokens          # policies read request.context.budget.daily_tokens
 *     per: team                   # subject | agent | team | key
 *     team: principal.attr.team   # per team: where the team is read (principal.attr.* or agent.attr.*)
 *     window: day                 # hour | day | month (UTC) | { period: 30m } (epoch-aligned)
 *     limit: 200000               # tokens per window
 *     appliesTo: { kinds: [model], actions: [invoke] }   # the default; `'*'` for any
 *     defaultEstimate: 1024       # tokens reserved when the request names no max_tokens
 *     reservationTtl: 5m          # unsettled reservations are released after this
 * ```
 */
import { WardenError } from '@warden/core';
import type { BudgetDefinition, BudgetPer, BudgetWindow } from '@warden/budget';
import { parseDurationMs } from '@warden/resolvers';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (key: string, message: string): WardenError => new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`${key}\`: ${message}`);

/** A CEL identifier, so `request.context.budget.<name>` reads it. */
const BUDGET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const PER: readonly BudgetPer[] = ['subject', 'agent', 'team', 'key'];
const KEYS = ['name', 'per', 'team', 'window', 'limit', 'appliesTo', 'defaultEstimate', 'reservationTtl'];
const ATTR_PATH = /^(principal|agent)\.attr(\.[A-Za-z_][A-Za-z0-9_-]*)+$/;
const MAX_TOKENS = 1e15;
const DEFAULT_ESTIMATE = 1024;
const DEFAULT_RESERVATION_TTL_MS = 5 * 60_000;
const MAX_RESERVATION_TTL_MS = 24 * 3_600_000;

function tokens(v: unknown, key: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > MAX_TOKENS) throw invalid(key, `must be an integer from ${min} to ${MAX_TOKENS}, got \`${String(v)}\``);
  return v;
}

const DAYS = /^(\d{1,4})(d|w)$/;

/** A duration (`30s`, `30m`, `1h30m`, and for periods days or weeks: `7d`, `2w`) of at least a second. */
function durationMs(v: unknown, key: string): number {
  const days = typeof v === 'string' ? DAYS.exec(v) : null;
  const ms = days !== null ? Number(days[1]) * (days[2] === 'w' ? 7 : 1) * 86_400_000 : typeof v === 'string' ? parseDurationMs(v) : undefined;
  if (ms === undefined || ms < 1000) throw invalid(key, `must be a duration of at least 1s such as \`30m\` or \`7d\`, got \`${String(v)}\``);
  return ms;
}

function reservationTtl(v: unknown, key: string): number {
  const ms = durationMs(v, key);
  if (ms > MAX_RESERVATION_TTL_MS) throw invalid(key, `must be at most 24h, got \`${String(v)}\``);
  return ms;
}

function windowOf(v: unknown, key: string): BudgetWindow {
  if (v === 'hour' || v === 'day' || v === 'month') return { kind: v };
  if (isObj(v)) {
    for (const k of Object.keys(v)) if (k !== 'period') throw invalid(`${key}.${k}`, 'unknown key (allowed: period)');
    return { kind: 'period', ms: durationMs(v['period'], `${key}.period`) };
  }
  throw invalid(key, 'must be `hour`, `day`, `month` or `{ period: <duration> }`');
}

function nameSet(v: unknown, key: string, fallback: string): ReadonlySet<string> | undefined {
  const list = v === undefined || v === null ? [fallback] : v === '*' ? undefined : v;
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === 'string' && /^[^\s]{1,256}$/.test(x))) throw invalid(key, "must be a non-empty list of names, or '*'");
  return list.includes('*') ? undefined : new Set(list as string[]);
}

/**
 * Reads `budgets:` (absent: none).
 * @example readBudgets({ budgets: [{ name: 'daily', per: 'subject', window: 'day', limit: 100000 }] })
 */
export function readBudgets(root: Obj): BudgetDefinition[] {
  const raw = root['budgets'];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('budgets', 'must be a list');
  const names = new Set<string>();
  return raw.map((b: unknown, i): BudgetDefinition => {
    const key = `budgets[${i}]`;
    if (!isObj(b)) throw invalid(key, 'must be a mapping with `name`, `per`, `window` and `limit`');
    for (const k of Object.keys(b)) if (!KEYS.includes(k)) throw invalid(`${key}.${k}`, `unknown key (allowed: ${KEYS.join(', ')})`);
    const name = b['name'];
    if (typeof name !== 'string' || !BUDGET_NAME.test(name)) throw invalid(`${key}.name`, 'is required: a letter or `_`, then letters, digits or `_` (at most 63), so policies can read it');
    if (names.has(name)) throw invalid(`${key}.name`, `duplicate budget \`${name}\``);
    names.add(name);
    const per = b['per'];
    if (typeof per !== 'string' || !(PER as readonly string[]).includes(per)) throw invalid(`${key}.per`, `must be one of ${PER.join(', ')}`);
    const team = b['team'];
    if (team !== undefined && per !== 'team') throw invalid(`${key}.team`, 'is only for `per: team`');
    const teamPath = per === 'team' ? (team ?? 'principal.attr.team') : undefined;
    if (teamPath !== undefined && (typeof teamPath !== 'string' || !ATTR_PATH.test(teamPath))) throw invalid(`${key}.team`, 'must be an attribute path such as `principal.attr.team` or `agent.attr.team`');
    if (b['window'] === undefined) throw invalid(`${key}.window`, 'is required');
    if (b['limit'] === undefined) throw invalid(`${key}.limit`, 'is required');
    const applies = b['appliesTo'];
    if (applies !== undefined && applies !== null && !isObj(applies)) throw invalid(`${key}.appliesTo`, 'must be a mapping with `kinds` and/or `actions`');
    const a = (applies ?? {}) as Obj;
    for (const k of Object.keys(a)) if (k !== 'kinds' && k !== 'actions') throw invalid(`${key}.appliesTo.${k}`, 'unknown key (allowed: kinds, actions)');
    return {
      name,
      per: per as BudgetPer,
      teamPath: teamPath?.split('.'),
      window: windowOf(b['window'], `${key}.window`),
      limit: tokens(b['limit'], `${key}.limit`, 1),
      kinds: nameSet(a['kinds'], `${key}.appliesTo.kinds`, 'model'),
      actions: nameSet(a['actions'], `${key}.appliesTo.actions`, 'invoke'),
      defaultEstimate: b['defaultEstimate'] === undefined ? DEFAULT_ESTIMATE : tokens(b['defaultEstimate'], `${key}.defaultEstimate`, 0),
      reservationTtlMs: b['reservationTtl'] === undefined ? DEFAULT_RESERVATION_TTL_MS : reservationTtl(b['reservationTtl'], `${key}.reservationTtl`),
    };
  });
}
