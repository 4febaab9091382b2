import { describe, expect, it } from 'vitest';
import type { CheckInput } from '@warden/core';
import { createMemoryBudgetStore, type BudgetDefinition, type BudgetStore } from '@warden/budget';
import type { EnrichedInputs } from '../enrichment/enriched-check.js';
import type { ItemDecision } from '../delegation/identity-decision.js';
import { BudgetRuntime } from './budget-runtime.js';

const T0 = Date.UTC(2026, 10, 28, 12);

function def(over: Partial<BudgetDefinition> = {}): BudgetDefinition {
  return { name: 'daily', per: 'subject', teamPath: undefined, window: { kind: 'day' }, limit: 1000, kinds: new Set(['model']), actions: new Set(['invoke']), defaultEstimate: 100, reservationTtlMs: 60_000, ...over };
}

function item(kind: string, id: string, attr: Record<string, unknown> = {}): EnrichedInputs['items'][number] {
  const input = { principal: { id: 'alice', roles: ['user'], attr: { team: 'red' } }, resource: { kind, id, attr }, actions: ['invoke'] } as unknown as CheckInput;
  return { input };
}

const allow = (): ItemDecision => ({ effects: { invoke: 'ALLOW' }, reasons: [], outputs: [] });

function runtime(defs: BudgetDefinition[], store: BudgetStore = createMemoryBudgetStore()) {
  const errors: string[] = [];
  return { sut: new BudgetRuntime({ definitions: defs, store, now: () => T0, onError: (m) => errors.push(m) }), errors };
}

const party = { agent: undefined, gateway: undefined, context: {} };

describe(BudgetRuntime.name, () => {
  it('applies only to the kinds and actions configured, and not to items enrichment denied', () => {
    const { sut } = runtime([def()]);
    expect(sut.applies([item('model', 'm')], ['invoke'])).toBe(true);
    expect(sut.applies([item('tool', 't')], ['invoke'])).toBe(false);
    expect(sut.applies([item('model', 'm')], ['list'])).toBe(false);
    expect(sut.applies([{ ...item('model', 'm'), denied: [{ code: 'x', message: 'x' }] }], ['invoke'])).toBe(false);
  });

  it('shows each budget to policies and reserves the sum of the allowed items only', async () => {
    const { sut } = runtime([def()]);
    const items = [item('model', 'a', { max_tokens: 300 }), item('model', 'b'), item('tool', 't')];
    const session = await sut.open(items, ['invoke'], party);
    expect(session.view).toEqual({ daily: { limit: 1000, used: 0, reserved: 0, remaining: 1000, estimate: 400, window: '2026-11-28', resetsAt: '2026-11-29T00:00:00.000Z' } });
    const decisions = [allow(), { effects: { invoke: 'DENY' as const }, reasons: [], outputs: [] }, allow()];
    const answer = await session.reserve(items, decisions);
    expect(answer?.budgets).toEqual({ daily: { reserved: 300, limit: 1000, remaining: 700, resetsAt: '2026-11-29T00:00:00.000Z' } });
    expect(answer?.reservationId).toMatch(/^rsv_[A-Za-z0-9_-]{22}$/);
    expect(decisions.map((d) => d.effects['invoke'])).toEqual(['ALLOW', 'DENY', 'ALLOW']);
  });

  it('denies every budgeted item when the store fails to reserve (fail closed), keeping the other items', async () => {
    const memory = createMemoryBudgetStore();
    const failing: BudgetStore = { ...memory, reserve: () => Promise.reject(Object.assign(new Error('down'), { code: 'ECONNRESET' })) };
    const { sut, errors } = runtime([def()], failing);
    const items = [item('model', 'a'), item('tool', 't')];
    const session = await sut.open(items, ['invoke'], party);
    const decisions = [allow(), allow()];
    expect(await session.reserve(items, decisions)).toBeUndefined();
    expect(decisions[0]).toMatchObject({ effects: { invoke: 'DENY' }, reasons: [{ code: 'budget_unavailable', resource: { kind: 'model', id: 'a' }, actions: ['invoke'] }] });
    expect(decisions[1]?.effects['invoke']).toBe('ALLOW');
    expect(errors).toEqual(['budget store reserve failed (ECONNRESET)']);
  });

  it('attributes per agent, team and key, and denies what it cannot attribute', async () => {
    const { sut } = runtime([def({ name: 'by_agent', per: 'agent' }), def({ name: 'by_team', per: 'team', teamPath: ['principal', 'attr', 'team'] }), def({ name: 'by_key', per: 'key' })]);
    const items = [item('model', 'a')];
    const full = await sut.open(items, ['invoke'], { agent: { id: 'bot', roles: ['agent'], attr: {} }, gateway: 'edge', context: {} });
    const ok = [allow()];
    expect(Object.keys((await full.reserve(items, ok))?.budgets ?? {})).toEqual(['by_agent', 'by_team', 'by_key']);
    const partial = await sut.open(items, ['invoke'], party);
    const denied = [allow()];
    expect(await partial.reserve(items, denied)).toBeUndefined();
    // The first cause denies; nothing is reserved in the budgets that could attribute (all or none).
    expect(denied[0]?.effects['invoke']).toBe('DENY');
    expect(denied[0]?.reasons.map((r) => [r.code, r.message])).toEqual([['budget_unattributable', 'the token budget `by_agent` cannot be applied: the request names no agent']]);
    const team = await sut.open(items, ['invoke'], { agent: { id: 'bot', roles: ['agent'], attr: {} }, gateway: 'edge', context: {} });
    expect(team.view?.['by_team']).toMatchObject({ used: 0, reserved: 100 });
  });

  it('keeps budgets of different subjects, windows and names apart', async () => {
    let now = T0;
    const store = createMemoryBudgetStore();
    const sut = new BudgetRuntime({ definitions: [def({ limit: 100 })], store, now: () => now, onError: () => undefined });
    const spend = async (who: string) => {
      const it = item('model', 'a');
      (it.input.principal as { id: string }).id = who;
      const s = await sut.open([it], ['invoke'], party);
      const d = [allow()];
      await s.reserve([it], d);
      return d[0]?.effects['invoke'];
    };
    expect(await spend('alice')).toBe('ALLOW');
    expect(await spend('alice')).toBe('DENY');
    expect(await spend('bob')).toBe('ALLOW');
    now = T0 + 12 * 3_600_000;
    expect(await spend('alice')).toBe('ALLOW');
  });
});
