import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { loadBrokerConfig } from './load-broker-config.js';
import { readBudgets } from './read-budgets.js';

function errorOf(fn: () => unknown): WardenError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    return err as WardenError;
  }
  throw new Error('expected an error');
}

const one = (b: Record<string, unknown>) => readBudgets({ budgets: [{ name: 'daily', per: 'subject', window: 'day', limit: 1000, ...b }] });

describe(readBudgets.name, () => {
  it('reads a budget with its defaults: model invoke, 1024 tokens estimated, reservations held 5 minutes', () => {
    expect(readBudgets({})).toEqual([]);
    const [b] = one({});
    expect(b).toEqual({
      name: 'daily',
      per: 'subject',
      teamPath: undefined,
      window: { kind: 'day' },
      limit: 1000,
      kinds: new Set(['model']),
      actions: new Set(['invoke']),
      defaultEstimate: 1024,
      reservationTtlMs: 300_000,
    });
  });

  it('reads teams, fixed periods, any kind or action, estimates and time-to-live', () => {
    const [b] = one({ per: 'team', team: 'agent.attr.org.team', window: { period: '7d' }, appliesTo: { kinds: '*', actions: ['invoke', 'stream'] }, defaultEstimate: 0, reservationTtl: '90s' });
    expect(b).toMatchObject({ per: 'team', teamPath: ['agent', 'attr', 'org', 'team'], window: { kind: 'period', ms: 7 * 86_400_000 }, kinds: undefined, actions: new Set(['invoke', 'stream']), defaultEstimate: 0, reservationTtlMs: 90_000 });
    expect(one({ per: 'team' })[0]?.teamPath).toEqual(['principal', 'attr', 'team']);
    expect(one({ window: { period: '30m' } })[0]?.window).toEqual({ kind: 'period', ms: 1_800_000 });
  });

  it.each([
    [{ name: 'daily-tokens' }, 'budgets[0].name'],
    [{ per: 'human' }, 'budgets[0].per'],
    [{ team: 'principal.attr.team' }, 'budgets[0].team'],
    [{ per: 'team', team: 'request.context.team' }, 'budgets[0].team'],
    [{ window: 'week' }, 'budgets[0].window'],
    [{ window: { period: '500ms' } }, 'budgets[0].window.period'],
    [{ window: { every: '1h' } }, 'budgets[0].window.every'],
    [{ limit: 0 }, 'budgets[0].limit'],
    [{ limit: 1.5 }, 'budgets[0].limit'],
    [{ limit: '1000' }, 'budgets[0].limit'],
    [{ defaultEstimate: -1 }, 'budgets[0].defaultEstimate'],
    [{ reservationTtl: '2d' }, 'budgets[0].reservationTtl'],
    [{ reservationTtl: 'soon' }, 'budgets[0].reservationTtl'],
    [{ appliesTo: { kinds: [] } }, 'budgets[0].appliesTo.kinds'],
    [{ appliesTo: { models: ['x'] } }, 'budgets[0].appliesTo.models'],
    [{ windows: 'day' }, 'budgets[0].windows'],
  ])('refuses %j naming `%s`', (b, key) => {
    const err = errorOf(() => one(b));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain(`\`${key}\``);
  });

  it('refuses duplicate names and a missing window or limit', () => {
    expect(errorOf(() => readBudgets({ budgets: [{ name: 'a', per: 'subject', window: 'day', limit: 1 }, { name: 'a', per: 'agent', window: 'day', limit: 1 }] })).message).toContain('duplicate budget `a`');
    expect(errorOf(() => readBudgets({ budgets: [{ name: 'a', per: 'subject', limit: 1 }] })).message).toContain('`budgets[0].window`: is required');
    expect(errorOf(() => readBudgets({ budgets: [{ name: 'a', per: 'subject', window: 'day' }] })).message).toContain('`budgets[0].limit`: is required');
    expect(errorOf(() => readBudgets({ budgets: { name: 'a' } })).message).toContain('`budgets`: must be a list');
  });

  it('is part of the broker configuration, and refuses in-process budgets across several workers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-budgets-'));
    writeFileSync(join(dir, 'warden.yaml'), 'budgets:\n  - { name: daily, per: key, window: hour, limit: 5000 }\n');
    expect(loadBrokerConfig({ cwd: dir, env: {} }).budgets.map((b) => b.name)).toEqual(['daily']);
    const db = { DATABASE_URL: 'postgres://127.0.0.1/x', WARDEN_WORKERS: '2' };
    expect(errorOf(() => loadBrokerConfig({ cwd: dir, env: db })).message).toContain('`budgets`: more than one worker');
    expect(loadBrokerConfig({ cwd: dir, env: { ...db, REDIS_URL: 'redis://127.0.0.1:6379' } }).budgets).toHaveLength(1);
  });
});
