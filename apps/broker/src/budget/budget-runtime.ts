/**
 * Token budgets in the decision path of `/v1/check` (and of the gateway adapters, which decide
 * through it). Before evaluation, {@link BudgetRuntime.open} reads the state of every budget that
 * applies to the check (one store call) so policies can read it at `request.context.budget.<name>`;
 * after evaluation, {@link BudgetSession.reserve} reserves the estimate of every allowed item in
 * every applicable budget at once (all or none). The policy decides; the reservation only ever
 * removes ALLOWs.
 *
 * SECURITY: fail closed. An allowed action a budget applies to stays allowed only when its tokens
 * were reserved: a reservation refused by the store denies it as `budget_exhausted`, a store that
 * cannot be read or written denies it as `budget_unavailable`, a budget that cannot tell whose
 * tokens these are (no agent, no team attribute, no trusted gateway key) or a malformed
 * `max_tokens` denies it too.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { JsonValue, Principal } from '@warden/core';
import { LATE_REPORT_MS, windowAt, type BudgetDefinition, type BudgetSlot, type BudgetStore, type BudgetView, type WindowSpan } from '@warden/budget';
import type { EnrichedInputs, Reason } from '../enrichment/enriched-check.js';
import type { ActionDetail, ItemDecision } from '../delegation/identity-decision.js';

/** What a check answers about its reservation (`budget` in the `/v1/check` answer). */
export interface BudgetAnswer {
  /** Settle with `POST /v1/usage`. SECURITY: the capability to settle; only the checker gets it. */
  readonly reservationId: string;
  /** When the reservation is released unless settled (RFC 3339). */
  readonly expiresAt: string;
  readonly budgets: Record<string, { readonly reserved: number; readonly limit: number; readonly remaining: number; readonly resetsAt: string }>;
}

/** Who a check is, as budgets attribute tokens. */
export interface BudgetParty {
  /** The acting agent, when the check names one (resolved). */
  readonly agent: Principal | undefined;
  /** The trusted gateway whose key the caller presented. */
  readonly gateway: string | undefined;
  /** The request's context (for `max_tokens`). */
  readonly context: Readonly<Record<string, unknown>>;
}

/** Options of {@link BudgetRuntime}. */
export interface BudgetRuntimeOptions {
  readonly definitions: readonly BudgetDefinition[];
  readonly store: BudgetStore;
  /** The clock (epoch ms); tests inject one. */
  readonly now?: () => number;
  /** Told of store failures (codes only). */
  readonly onError: (message: string) => void;
}

/** One applicable budget of one check. */
interface Entry {
  readonly def: BudgetDefinition;
  readonly span: WindowSpan;
  /** Undefined when the tokens cannot be attributed (see `unattributed`). */
  readonly slot: BudgetSlot | undefined;
  readonly unattributed: Reason | undefined;
  /** Per item: the tokens it would reserve here, or undefined when the budget does not apply to it. */
  readonly estimates: Array<number | undefined>;
  /** Sum of `estimates`. */
  readonly estimate: number;
}

const codeOf = (err: unknown): string => (typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : err instanceof Error ? err.message : 'error');

const appliesTo = (def: BudgetDefinition, kind: string, action: string): boolean => (def.kinds === undefined || def.kinds.has(kind)) && (def.actions === undefined || def.actions.has(action));

const isTokens = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The request's token estimate for one item: `max_tokens` of the resource, of the context, or the budget's default. */
function estimateOf(attr: Readonly<Record<string, unknown>>, context: Readonly<Record<string, unknown>>, def: BudgetDefinition): number | Reason {
  const raw = attr['max_tokens'] ?? attr['maxTokens'] ?? context['max_tokens'];
  if (raw === undefined || raw === null) return def.defaultEstimate;
  if (!isTokens(raw)) return { code: 'budget_estimate_invalid', message: '`max_tokens` must be a non-negative integer' };
  return raw;
}

function attributeAt(root: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): unknown {
  let v: unknown = root;
  for (let i = 1; i < path.length; i++) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[path[i] as string];
  }
  return v;
}

/** Whose tokens these are for `def`, or why that cannot be told. */
function identityOf(def: BudgetDefinition, subject: Principal, party: BudgetParty): string | Reason {
  const unknown = (why: string): Reason => ({ code: 'budget_unattributable', message: `the token budget \`${def.name}\` cannot be applied: ${why}` });
  switch (def.per) {
    case 'subject':
      return subject.id;
    case 'agent':
      return party.agent?.id ?? unknown('the request names no agent');
    case 'key':
      return party.gateway ?? unknown("the request carries no trusted gateway's key");
    case 'team': {
      const path = def.teamPath as readonly string[];
      const v = attributeAt((path[0] === 'agent' ? party.agent : subject) as unknown as Readonly<Record<string, unknown>> | undefined, path);
      if ((typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v))) return String(v);
      return unknown(`no \`${path.join('.')}\``);
    }
  }
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 32);

/** The budgets of a broker: which apply to a check, their state, reservations. */
export class BudgetRuntime {
  private readonly now: () => number;

  constructor(private readonly options: BudgetRuntimeOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The store (for usage reports). */
  get store(): BudgetStore {
    return this.options.store;
  }

  /** The configured budgets. */
  get definitions(): readonly BudgetDefinition[] {
    return this.options.definitions;
  }

  /** The clock. */
  clock(): number {
    return this.now();
  }

  /**
   * True when some budget applies to some (item, action) of the check. Allocates nothing: a check
   * no budget applies to costs this loop only.
   */
  applies(items: EnrichedInputs['items'], actions: readonly string[]): boolean {
    const defs = this.options.definitions;
    for (let d = 0; d < defs.length; d++) {
      const def = defs[d] as BudgetDefinition;
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as EnrichedInputs['items'][number];
        if (it.denied !== undefined) continue;
        for (let a = 0; a < actions.length; a++) if (appliesTo(def, it.input.resource.kind, actions[a] as string)) return true;
      }
    }
    return false;
  }

  /** Reads the state of the budgets that apply to the check (see the module comment). */
  async open(items: EnrichedInputs['items'], actions: readonly string[], party: BudgetParty): Promise<BudgetSession> {
    const now = this.now();
    const first = items.find((it) => it.denied === undefined);
    const entries: Entry[] = [];
    const invalid = new Map<number, Reason>();
    for (const def of this.options.definitions) {
      const estimates = new Array<number | undefined>(items.length);
      let estimate = 0;
      let any = false;
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as EnrichedInputs['items'][number];
        if (it.denied !== undefined || !actions.some((a) => appliesTo(def, it.input.resource.kind, a))) continue;
        any = true;
        const e = estimateOf(it.input.resource.attr, party.context, def);
        if (typeof e !== 'number') {
          invalid.set(i, { ...e, resource: { kind: it.input.resource.kind, id: it.input.resource.id } });
          continue;
        }
        estimates[i] = e;
        estimate += e;
      }
      if (!any || first === undefined) continue;
      const span = windowAt(def.window, now);
      const who = identityOf(def, first.input.principal, party);
      const slot: BudgetSlot | undefined =
        typeof who === 'string' ? { key: `${def.name}|${def.per}:${digest(who)}|${span.id}`, name: def.name, limit: def.limit, expiresAt: span.end + LATE_REPORT_MS } : undefined;
      entries.push({ def, span, slot, unattributed: typeof who === 'string' ? undefined : who, estimates, estimate });
    }
    const slots = entries.flatMap((e) => (e.slot !== undefined ? [e.slot] : []));
    let view: Record<string, JsonValue> | undefined = {};
    try {
      const usages = slots.length > 0 ? await this.options.store.read(slots, now) : [];
      let k = 0;
      for (const e of entries) {
        if (e.slot === undefined) continue;
        const u = usages[k++] as { used: number; reserved: number };
        const shown: BudgetView = {
          limit: e.def.limit,
          used: u.used,
          reserved: u.reserved,
          remaining: Math.max(0, e.def.limit - u.used - u.reserved),
          estimate: e.estimate,
          window: e.span.id,
          resetsAt: new Date(e.span.end).toISOString(),
        };
        view[e.def.name] = shown as unknown as JsonValue;
      }
    } catch (err) {
      this.options.onError(`budget store read failed (${codeOf(err)})`);
      view = undefined;
    }
    return new BudgetSession(this.options.store, this.options.onError, now, entries, invalid, view, actions);
  }
}

/** One check's budgets, between reading their state and reserving. */
export class BudgetSession {
  constructor(
    private readonly store: BudgetStore,
    private readonly onError: (message: string) => void,
    private readonly now: number,
    private readonly entries: readonly Entry[],
    /** Items whose `max_tokens` is malformed. */
    private readonly invalid: ReadonlyMap<number, Reason>,
    /** `request.context.budget`, or undefined when the store could not be read. */
    readonly view: Record<string, JsonValue> | undefined,
    private readonly actions: readonly string[],
  ) {}

  /**
   * Reserves the estimate of every item the policies allowed, in every applicable budget at once,
   * and replaces the decisions of the items it cannot reserve for with DENY. Returns what the
   * answer carries about the reservation (undefined when nothing was reserved).
   */
  async reserve(items: EnrichedInputs['items'], decisions: ItemDecision[]): Promise<BudgetAnswer | undefined> {
    for (const [i, reason] of this.invalid) this.deny(items, decisions, i, undefined, reason);
    if (this.view === undefined) {
      for (const e of this.entries) this.denyAll(items, decisions, e, { code: 'budget_unavailable', message: `the token budget \`${e.def.name}\` cannot be checked right now; try again later` });
      return undefined;
    }
    for (const e of this.entries) if (e.unattributed !== undefined) this.denyAll(items, decisions, e, e.unattributed);
    const planned: Array<{ entry: Entry; amount: number }> = [];
    for (const e of this.entries) {
      if (e.slot === undefined) continue;
      let amount = 0;
      let any = false;
      for (let i = 0; i < items.length; i++) {
        const est = e.estimates[i];
        if (est === undefined || !this.allowedUnder(items, decisions, i, e.def)) continue;
        amount += est;
        any = true;
      }
      if (any) planned.push({ entry: e, amount });
    }
    if (planned.length === 0) return undefined;
    const ttlMs = Math.min(...planned.map((p) => p.entry.def.reservationTtlMs));
    const id = `rsv_${randomBytes(16).toString('base64url')}`;
    let result;
    try {
      result = await this.store.reserve({ id, slots: planned.map((p) => ({ slot: p.entry.slot as BudgetSlot, amount: p.amount })), ttlMs }, this.now);
    } catch (err) {
      this.onError(`budget store reserve failed (${codeOf(err)})`);
      for (const p of planned) this.denyAll(items, decisions, p.entry, { code: 'budget_unavailable', message: `the token budget \`${p.entry.def.name}\` cannot be checked right now; try again later` });
      return undefined;
    }
    if (!result.ok) {
      const p = planned[result.exhausted] as (typeof planned)[number];
      const u = result.usages[result.exhausted] as { used: number; reserved: number };
      const left = Math.max(0, p.entry.def.limit - u.used - u.reserved);
      const reason: Reason = {
        code: 'budget_exhausted',
        message: `the token budget \`${p.entry.def.name}\` is exhausted: ${left} of ${p.entry.def.limit} tokens left until ${new Date(p.entry.span.end).toISOString()}, this request needs up to ${p.amount}`,
      };
      // All or none: every reservation this check would have made is refused.
      for (const q of planned) this.denyAll(items, decisions, q.entry, reason);
      return undefined;
    }
    const budgets: BudgetAnswer['budgets'] = {};
    planned.forEach((p, k) => {
      const u = result.usages[k] as { used: number; reserved: number };
      budgets[p.entry.def.name] = { reserved: p.amount, limit: p.entry.def.limit, remaining: Math.max(0, p.entry.def.limit - u.used - u.reserved), resetsAt: new Date(p.entry.span.end).toISOString() };
    });
    return { reservationId: id, expiresAt: new Date(this.now + ttlMs).toISOString(), budgets };
  }

  /** True when item `i` has an allowed action `def` applies to. */
  private allowedUnder(items: EnrichedInputs['items'], decisions: ItemDecision[], i: number, def: BudgetDefinition): boolean {
    const kind = (items[i] as EnrichedInputs['items'][number]).input.resource.kind;
    const d = decisions[i] as ItemDecision;
    return this.actions.some((a) => appliesTo(def, kind, a) && d.effects[a] === 'ALLOW');
  }

  private denyAll(items: EnrichedInputs['items'], decisions: ItemDecision[], e: Entry, reason: Reason): void {
    for (let i = 0; i < items.length; i++) if (e.estimates[i] !== undefined || this.invalid.has(i)) this.deny(items, decisions, i, e.def, reason);
  }

  /** Replaces item `i`'s decision: every allowed action `def` applies to (every budgeted one when undefined) becomes DENY with `reason`. */
  private deny(items: EnrichedInputs['items'], decisions: ItemDecision[], i: number, def: BudgetDefinition | undefined, reason: Reason): void {
    const input = (items[i] as EnrichedInputs['items'][number]).input;
    const d = decisions[i] as ItemDecision;
    const denied: string[] = [];
    for (const a of this.actions) {
      if (d.effects[a] !== 'ALLOW') continue;
      if (def !== undefined ? appliesTo(def, input.resource.kind, a) : this.entries.some((e) => appliesTo(e.def, input.resource.kind, a))) denied.push(a);
    }
    if (denied.length === 0) return;
    const effects = { ...d.effects };
    let details: Record<string, ActionDetail> | undefined;
    if (d.details !== undefined) details = { ...d.details };
    for (const a of denied) {
      effects[a] = 'DENY';
      if (details !== undefined && details[a] !== undefined) details[a] = { ...details[a], effect: 'DENY' };
    }
    const r: Reason = { ...reason, resource: { kind: input.resource.kind, id: input.resource.id }, actions: denied };
    decisions[i] = details !== undefined ? { effects, details, reasons: [...d.reasons, r], outputs: d.outputs } : { effects, reasons: [...d.reasons, r], outputs: d.outputs };
  }
}
