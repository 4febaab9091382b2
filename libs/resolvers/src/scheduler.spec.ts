import { describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { staticResolverFactory } from './builtins/static/static.resolver.js';
import { createLruCacheStore } from './cache/cache-store.js';
import { ResolverError } from './resolver-error.js';
import { createResolverRegistry } from './resolver-registry.js';
import { parseResolverConfig, type ResolveContext, type ResolverFactory } from './resolver.types.js';
import { enrich, type ResolverRunReport } from './scheduler.js';

type Impl = (keys: readonly JsonValue[], ctx: ResolveContext) => Promise<ReadonlyArray<unknown>>;

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** A `fake` kind whose behaviour per resolver name comes from `impls`; every call is recorded. */
function fakes(impls: Record<string, Impl>) {
  const calls: Array<{ resolver: string; keys: JsonValue[] }> = [];
  const factory: ResolverFactory = {
    kind: 'fake',
    parseConfig: (raw) => parseResolverConfig(raw),
    create: (config) => ({
      name: config.name,
      resolveMany: (keys, ctx) => {
        calls.push({ resolver: config.name, keys: [...keys] });
        const impl = impls[config.name];
        if (impl === undefined) throw new Error(`no impl for ${config.name}`);
        return impl(keys, ctx);
      },
    }),
  };
  return { factory, calls };
}

/** Answers `{ v: <key> }` for every key after `ms`. */
const echoAfter =
  (ms: number): Impl =>
  async (keys) => {
    await sleep(ms);
    return keys.map((k) => ({ v: k }));
  };

function registry(configs: unknown[], impls: Record<string, Impl>, cacheStore = createLruCacheStore()) {
  const { factory, calls } = fakes(impls);
  const reg = createResolverRegistry({ configs, factories: { fake: factory, static: staticResolverFactory }, cacheStore });
  return { reg, calls };
}

const fake = (name: string, key: string, provides: Record<string, string>, extra: Record<string, unknown> = {}) => ({ name, kind: 'fake', key, provides, ...extra });

describe(enrich.name, () => {
  it('maps results through provides into the input, with provenance', async () => {
    const { reg } = registry(
      [
        { name: 'dept', kind: 'static', key: 'principal.id', data: { alice: { dept: 'sales', level: 3 } }, provides: { 'principal.attr.dept': 'result.dept', 'principal.attr.senior': 'result.level > 2' } },
      ],
      {},
    );
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice', roles: ['user'], attr: {} }, resources: [{ kind: 'tool', id: 't', attr: {} }] });
    expect(out.items).toHaveLength(1);
    const item = out.items[0];
    expect(item?.input.principal).toEqual({ id: 'alice', roles: ['user'], attr: { dept: 'sales', senior: true } });
    expect(item?.input.resource).toEqual({ kind: 'tool', id: 't', attr: {} });
    expect(item?.provenance['principal.attr.dept']).toMatchObject({ resolver: 'dept', durationMs: expect.any(Number) });
    expect(item?.provenance['principal.attr.dept']?.cache).toBeUndefined();
    expect(item?.denials).toEqual([]);
  });

  it('does not modify the request it was given', async () => {
    const { reg } = registry([fake('a', 'principal.id', { 'principal.attr.x': 'result.v' })], { a: echoAfter(0) });
    const principal = { id: 'alice', attr: {} };
    await enrich(reg, { requestId: 'r', principal, resources: [] });
    expect(principal).toEqual({ id: 'alice', attr: {} });
  });

  // Timing tests retry: a shared 2-core CI machine can stall one run; a real regression fails every try.
  it('runs four independent 20 ms resolvers in parallel', { retry: 2 }, async () => {
    const names = ['a', 'b', 'c', 'd'];
    const { reg } = registry(
      names.map((n) => fake(n, 'principal.id', { [`principal.attr.${n}`]: 'result.v' })),
      Object.fromEntries(names.map((n) => [n, echoAfter(20)])),
    );
    const t0 = performance.now();
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    const elapsed = performance.now() - t0;
    expect(out.items[0]?.input.principal?.['attr']).toEqual({ a: 'alice', b: 'alice', c: 'alice', d: 'alice' });
    // Serial would be >= 80 ms; parallel is about 20 ms.
    expect(elapsed).toBeLessThan(40);
  });

  it('runs a two-level chain in about twice one level, and starts a dependent as soon as its own dependency is done', { retry: 2 }, async () => {
    const { reg } = registry(
      [
        fake('first', 'principal.id', { 'principal.attr.first': 'result.v' }),
        fake('second', 'principal.attr.first', { 'principal.attr.second': 'result.v' }),
        fake('slow', 'principal.id', { 'principal.attr.slow': 'result.v' }),
      ],
      { first: echoAfter(20), second: echoAfter(20), slow: echoAfter(45) },
    );
    const t0 = performance.now();
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    const elapsed = performance.now() - t0;
    expect(out.items[0]?.input.principal?.['attr']).toEqual({ first: 'alice', second: 'alice', slow: 'alice' });
    // Critical path is max(20 + 20, 45) = 45; stage-by-stage would be 45 + 20 = 65.
    expect(elapsed).toBeGreaterThanOrEqual(40);
    expect(elapsed).toBeLessThan(63);
  });

  it('a chain waits for its dependency: about 2x one resolver', { retry: 2 }, async () => {
    const { reg } = registry(
      [fake('first', 'principal.id', { 'principal.attr.first': 'result.v' }), fake('second', 'principal.attr.first', { 'principal.attr.second': 'result.v' })],
      { first: echoAfter(20), second: echoAfter(20) },
    );
    const t0 = performance.now();
    await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(38);
    expect(elapsed).toBeLessThan(75);
  });

  it('batches 50 resources into one resolveMany call with de-duplicated keys', async () => {
    const { reg, calls } = registry([fake('project', 'resource.attr.projectId', { 'resource.attr.owner': "'owner-' + result.v" })], { project: echoAfter(1) });
    const resources = Array.from({ length: 50 }, (_, i) => ({ kind: 'doc', id: `d${i}`, attr: { projectId: `p${i % 7}` } }));
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.keys).toHaveLength(7);
    expect(new Set(calls[0]?.keys).size).toBe(7);
    expect(out.items).toHaveLength(50);
    expect(out.items[10]?.input.resource?.['attr']).toEqual({ projectId: 'p3', owner: 'owner-p3' });
    expect(out.runs).toEqual([expect.objectContaining({ resolver: 'project', calls: 1, keys: 7 })]);
  });

  it('batches a per-resource resolver that depends on a shared one, and runs the shared one once', async () => {
    const { reg, calls } = registry(
      [
        fake('tenant', 'principal.id', { 'principal.attr.tenant': 'result.v' }),
        fake('doc', 'resource.id', { 'resource.attr.tenant': 'result.v' }, { when: "P.attr.tenant == 'alice'" }),
      ],
      { tenant: echoAfter(2), doc: echoAfter(2) },
    );
    const resources = Array.from({ length: 20 }, (_, i) => ({ kind: 'doc', id: `d${i}`, attr: {} }));
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources });
    expect(calls.map((c) => [c.resolver, c.keys.length])).toEqual([
      ['tenant', 1],
      ['doc', 20],
    ]);
    expect(out.items.every((i) => i.input.principal?.['attr'] !== undefined)).toBe(true);
    expect(out.items[19]?.input.resource?.['attr']).toEqual({ tenant: 'd19' });
  });

  it('skips a resolver whose key is missing, and one whose when guard is false', async () => {
    const { reg, calls } = registry(
      [fake('proj', 'resource.attr.projectId', { 'resource.attr.p': 'result.v' }), fake('tool', 'resource.id', { 'resource.attr.t': 'result.v' }, { when: "R.kind == 'tool'" })],
      { proj: echoAfter(0), tool: echoAfter(0) },
    );
    const out = await enrich(reg, {
      requestId: 'r',
      resources: [
        { kind: 'model', id: 'm', attr: {} },
        { kind: 'tool', id: 't', attr: { projectId: 'p1' } },
      ],
    });
    expect(out.items[0]?.input.resource?.['attr']).toEqual({});
    expect(out.items[1]?.input.resource?.['attr']).toEqual({ projectId: 'p1', p: 'p1', t: 't' });
    expect(calls.map((c) => [c.resolver, c.keys])).toEqual([
      ['proj', ['p1']],
      ['tool', ['t']],
    ]);
    expect(out.items.every((i) => i.denials.length === 0 && i.failures.length === 0)).toBe(true);
  });

  it('leaves attributes missing when the resolver finds nothing', async () => {
    const { reg } = registry([fake('a', 'principal.id', { 'principal.attr.x': 'result.v' })], { a: async (keys) => keys.map(() => undefined) });
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [] });
    expect(out.items[0]?.input.principal).toEqual({ id: 'alice', attr: {} });
    expect(out.items[0]?.denials).toEqual([]);
  });

  describe('onError', () => {
    const failing: Impl = async (keys) => keys.map((k) => (k === 'bad' ? new ResolverError('proj', 'ERR_RESOLVER_FAILED', 'upstream said 500 for secret-key') : { v: k }));

    it('deny: the affected resources carry a resolver_failed denial, the others do not', async () => {
      const { reg } = registry([fake('proj', 'resource.id', { 'resource.attr.v': 'result.v' }, { onError: 'deny' })], { proj: failing });
      const out = await enrich(reg, { requestId: 'r', resources: [{ kind: 'd', id: 'ok', attr: {} }, { kind: 'd', id: 'bad', attr: {} }] });
      expect(out.items[0]?.denials).toEqual([]);
      expect(out.items[0]?.input.resource?.['attr']).toEqual({ v: 'ok' });
      expect(out.items[1]?.denials).toEqual([{ code: 'resolver_failed', resolver: 'proj', message: 'resolver `proj` failed' }]);
      expect(out.items[1]?.input.resource?.['attr']).toEqual({});
      // SECURITY: the denial text never carries upstream details.
      expect(JSON.stringify(out.items[1]?.denials)).not.toContain('secret-key');
    });

    it('a refused token denies as token_invalid with the kind\'s reason, under any onError but omit', async () => {
      const refuse: Impl = async (keys) => keys.map(() => new ResolverError('idp', 'ERR_TOKEN_INVALID', 'token expired'));
      for (const onError of ['deny', 'stale'] as const) {
        const extra = onError === 'stale' ? { onError, cache: { ttl: '1s', staleMaxAge: '1s' } } : { onError };
        const { reg } = registry([fake('idp', 'subject.token', { 'principal.id': 'result.sub' }, extra)], { idp: refuse });
        const out = await enrich(reg, { requestId: 'r', subject: { token: 'eyJ.secret.token' }, resources: [] });
        expect(out.items[0]?.denials).toEqual([{ code: 'token_invalid', resolver: 'idp', message: 'token expired' }]);
        expect(JSON.stringify([out.items[0]?.denials, out.items[0]?.failures])).not.toContain('secret');
      }
    });

    it('deny on a shared resolver denies every resource', async () => {
      const { reg } = registry([fake('who', 'principal.id', { 'principal.attr.v': 'result.v' })], { who: async () => Promise.reject(new Error('boom')) });
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [{ kind: 'd', id: '1', attr: {} }, { kind: 'd', id: '2', attr: {} }] });
      expect(out.items.map((i) => i.denials.map((d) => d.resolver))).toEqual([['who'], ['who']]);
    });

    it('omit: the attribute is missing, the failure is recorded, nothing is denied', async () => {
      const { reg } = registry([fake('proj', 'resource.id', { 'resource.attr.v': 'result.v' }, { onError: 'omit' })], { proj: failing });
      const out = await enrich(reg, { requestId: 'r', resources: [{ kind: 'd', id: 'bad', attr: {} }] });
      expect(out.items[0]?.denials).toEqual([]);
      expect(out.items[0]?.input.resource?.['attr']).toEqual({});
      expect(out.items[0]?.failures).toEqual([expect.objectContaining({ resolver: 'proj', code: 'ERR_RESOLVER_FAILED', onError: 'omit' })]);
    });

    it('stale: serves the last good value within staleMaxAge, then denies', async () => {
      let up = true;
      let now = 1_000_000;
      const { factory } = fakes({ who: async (keys) => keys.map((k) => (up ? { v: k } : new ResolverError('who', 'ERR_RESOLVER_FAILED', 'down'))) });
      const reg = createResolverRegistry({
        configs: [fake('who', 'principal.id', { 'principal.attr.v': 'result.v' }, { onError: 'stale', cache: { ttl: '1s', staleMaxAge: '10s' } })],
        factories: { fake: factory },
        now: () => now,
      });
      const req = { requestId: 'r', principal: { id: 'alice' }, resources: [] };
      await enrich(reg, req);
      up = false;
      now += 5000;
      const stale = await enrich(reg, req);
      expect(stale.items[0]?.denials).toEqual([]);
      expect(stale.items[0]?.input.principal?.['attr']).toEqual({ v: 'alice' });
      expect(stale.items[0]?.provenance['principal.attr.v']?.cache).toEqual({ hit: true, ageMs: 5000, stale: true });
      now += 6001;
      const expired = await enrich(reg, req);
      expect(expired.items[0]?.denials).toEqual([expect.objectContaining({ code: 'resolver_failed', resolver: 'who' })]);
      expect(expired.items[0]?.input.principal?.['attr']).toBeUndefined();
    });

    it('a malformed result (provides fails) follows onError and writes none of the provides', async () => {
      const { reg } = registry([fake('m', 'principal.id', { 'principal.attr.a': 'result.v', 'principal.attr.b': 'result.missing.x' })], { m: echoAfter(0) });
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [] });
      expect(out.items[0]?.input.principal?.['attr']).toEqual({});
      expect(out.items[0]?.denials).toEqual([{ code: 'resolver_failed', resolver: 'm', message: 'resolver `m` returned malformed data' }]);
    });

    it('a resolver answering the wrong number of values fails every key', async () => {
      const { reg } = registry([fake('m', 'principal.id', { 'principal.attr.a': 'result.v' })], { m: async () => [] });
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
      expect(out.items[0]?.failures[0]?.code).toBe('ERR_RESOLVER_RESULT_INVALID');
      expect(out.items[0]?.denials).toHaveLength(1);
    });
  });

  describe('timeouts', () => {
    it('times a slow resolver out at its timeout, aborting its signal, and denies', async () => {
      let sawAbort = false;
      const { reg } = registry([fake('slow', 'principal.id', { 'principal.attr.v': 'result.v' }, { timeout: '30ms' })], {
        slow: (keys, ctx) =>
          new Promise((res) => {
            ctx.signal.addEventListener('abort', () => (sawAbort = true));
            setTimeout(() => res(keys.map((k) => ({ v: k }))), 500);
          }),
      });
      const t0 = performance.now();
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeLessThan(250);
      expect(sawAbort).toBe(true);
      expect(out.items[0]?.failures[0]?.code).toBe('ERR_RESOLVER_TIMEOUT');
      expect(out.items[0]?.denials).toEqual([{ code: 'resolver_failed', resolver: 'slow', message: 'resolver `slow` timed out' }]);
    });

    it('a timeout with onError omit lets the other resolvers finish', async () => {
      const { reg } = registry(
        [fake('slow', 'principal.id', { 'principal.attr.slow': 'result.v' }, { timeout: '20ms', onError: 'omit' }), fake('fast', 'principal.id', { 'principal.attr.fast': 'result.v' })],
        { slow: () => new Promise(() => undefined), fast: echoAfter(1) },
      );
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
      expect(out.items[0]?.input.principal?.['attr']).toEqual({ fast: 'alice' });
      expect(out.items[0]?.denials).toEqual([]);
    });

    it('the request signal aborts pending resolvers', async () => {
      const { reg } = registry([fake('slow', 'principal.id', { 'principal.attr.v': 'result.v' }, { timeout: '5s' })], { slow: () => new Promise(() => undefined) });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 20);
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [], signal: controller.signal });
      expect(out.items[0]?.failures[0]?.code).toBe('ERR_RESOLVER_ABORTED');
      expect(out.items[0]?.denials).toHaveLength(1);
    });
  });

  it('R.kind guards skip other kinds without a node, and follow a kind another resolver provides', async () => {
    const { reg, calls } = registry(
      [
        fake('tools', 'resource.id', { 'resource.attr.v': 'result.v' }, { when: 'R.kind == "tool"' }),
        { name: 'retype', kind: 'static', key: 'resource.id', data: { m2: { k: 'tool2' } }, provides: { 'resource.kind': 'result.k' } },
        fake('tools2', 'resource.id', { 'resource.attr.w': 'result.v' }, { when: 'R.kind == "tool2"' }),
      ],
      { tools: echoAfter(0), tools2: echoAfter(0) },
    );
    const out = await enrich(reg, { requestId: 'r', resources: [{ kind: 'tool', id: 't1', attr: {} }, { kind: 'model', id: 'm1', attr: {} }, { kind: 'model', id: 'm2', attr: {} }] });
    expect(out.items.map((i) => i.input.resource?.['attr'])).toEqual([{ v: 't1' }, {}, { w: 'm2' }]);
    expect(calls).toEqual([
      { resolver: 'tools', keys: ['t1'] },
      { resolver: 'tools2', keys: ['m2'] },
    ]);
  });

  it('answers warm keys from the in-process cache without a call, and stale ones through one', async () => {
    let now = 5_000;
    const { factory, calls } = fakes({ c: echoAfter(0) });
    const reg = createResolverRegistry({
      configs: [fake('c', 'resource.id', { 'resource.attr.v': 'result.v' }, { cache: { ttl: '30s', staleMaxAge: '1m' }, onError: 'stale' })],
      factories: { fake: factory },
      now: () => now,
    });
    const req = { requestId: 'r', resources: [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }] };
    const cold = await enrich(reg, req);
    expect(cold.runs).toEqual([expect.objectContaining({ resolver: 'c', calls: 1, keys: 2, hits: 0 })]);
    now += 1000;
    const warm = await enrich(reg, req);
    expect(warm.runs).toEqual([expect.objectContaining({ resolver: 'c', calls: 0, keys: 0, hits: 2 })]);
    expect(warm.items.map((i) => i.input.resource?.['attr'])).toEqual([{ v: 'a' }, { v: 'b' }]);
    expect(warm.items[1]?.provenance['resource.attr.v']?.cache).toEqual({ hit: true, ageMs: 1000, stale: false });
    expect(calls).toHaveLength(1);
    now += 40_000; // past the ttl: served stale through the slow path, which refreshes in the background
    const stale = await enrich(reg, req);
    expect(stale.runs).toEqual([expect.objectContaining({ calls: 1, hits: 0 })]);
    expect(stale.items[0]?.provenance['resource.attr.v']?.cache?.stale).toBe(true);
  });

  it('reports cache hits and age in provenance on the second request', async () => {
    let now = 5_000;
    const { factory, calls } = fakes({ c: echoAfter(0) });
    const reg = createResolverRegistry({
      configs: [fake('c', 'principal.id', { 'principal.attr.v': 'result.v' }, { cache: { ttl: '30s' } })],
      factories: { fake: factory },
      now: () => now,
    });
    const first = await enrich(reg, { requestId: 'r1', principal: { id: 'alice' }, resources: [] });
    now += 1200;
    const second = await enrich(reg, { requestId: 'r2', principal: { id: 'alice' }, resources: [] });
    expect(first.items[0]?.provenance['principal.attr.v']?.cache).toEqual({ hit: false, ageMs: 0, stale: false });
    expect(second.items[0]?.provenance['principal.attr.v']?.cache).toEqual({ hit: true, ageMs: 1200, stale: false });
    expect(calls).toHaveLength(1);
  });

  it('a rebuilt registry keeps cache entries of unchanged resolvers and drops those of changed ones', async () => {
    const store = createLruCacheStore();
    const impls = { a: echoAfter(0), b: echoAfter(0) };
    const configs = [fake('a', 'principal.id', { 'principal.attr.a': 'result.v' }, { cache: { ttl: '1m' } }), fake('b', 'principal.id', { 'principal.attr.b': 'result.v' }, { cache: { ttl: '1m' } })];
    const first = registry(configs, impls, store);
    await enrich(first.reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    const changed = [configs[0], fake('b', 'principal.id', { 'principal.attr.b': "result.v + '!'" }, { cache: { ttl: '1m' } })];
    const second = registry(changed, impls, store);
    const out = await enrich(second.reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    expect(second.calls.map((c) => c.resolver)).toEqual(['b']);
    expect(out.items[0]?.input.principal?.['attr']).toEqual({ a: 'alice', b: 'alice!' });
  });

  it('answers at once, without a promise, when every key is a fresh in-process cache hit', async () => {
    const { reg, calls } = registry(
      [
        fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }, { cache: { ttl: '1m' } }),
        fake('cat', 'resource.id', { 'resource.attr.v': 'result.v' }, { cache: { ttl: '1m' } }),
        fake('dep', 'principal.attr.team', { 'resource.attr.team': 'result.v' }, { cache: { ttl: '1m' } }),
      ],
      { who: echoAfter(0), cat: echoAfter(0), dep: echoAfter(0) },
    );
    const req = { requestId: 'r', principal: { id: 'alice' }, resources: [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }] };
    const cold = enrich(reg, req);
    expect(cold).toBeInstanceOf(Promise);
    await cold;
    const warm = enrich(reg, req);
    expect(warm).not.toBeInstanceOf(Promise);
    const out = warm as Awaited<typeof warm>;
    expect(out.items.map((i) => i.input.resource?.['attr'])).toEqual([
      { v: 'a', team: 'alice' },
      { v: 'b', team: 'alice' },
    ]);
    expect(out.runs.map((r) => [r.resolver, r.calls, r.hits])).toEqual([
      ['who', 0, 1],
      ['cat', 0, 2],
      ['dep', 0, 2],
    ]);
    expect(calls.map((c) => c.resolver)).toEqual(['who', 'cat', 'dep']);
  });

  it('items share one principal written by request-level resolvers, and own the roots per-resource resolvers write', async () => {
    const { reg } = registry(
      [
        fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }),
        fake('cat', 'resource.id', { 'resource.attr.v': 'result.v' }),
      ],
      { who: echoAfter(0), cat: echoAfter(0) },
    );
    const principal = { id: 'alice', attr: { level: 1 } };
    const resources = [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }];
    const out = await enrich(reg, { requestId: 'r', principal, resources });
    const [a, b] = out.items;
    expect(a?.input.principal).toBe(b?.input.principal);
    expect(a?.input.principal).not.toBe(principal);
    expect(a?.input.principal).toEqual({ id: 'alice', attr: { level: 1, team: 'alice' } });
    expect(a?.input.resource).not.toBe(b?.input.resource);
    expect(b?.provenance['principal.attr.team']).toMatchObject({ resolver: 'who' });
    expect(principal).toEqual({ id: 'alice', attr: { level: 1 } });
    expect(resources).toEqual([{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }]);
  });

  it('a per-resource resolver writing under principal gives each item its own principal', async () => {
    const { reg } = registry(
      [
        fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }),
        fake('owner', 'resource.id', { 'principal.attr.owns': 'result.v' }),
      ],
      { who: echoAfter(0), owner: echoAfter(0) },
    );
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }] });
    const [a, b] = out.items;
    expect(a?.input.principal).not.toBe(b?.input.principal);
    expect(a?.input.principal?.['attr']).toEqual({ team: 'alice', owns: 'a' });
    expect(b?.input.principal?.['attr']).toEqual({ team: 'alice', owns: 'b' });
  });

  it('a request-level resolver writing a root the request lacks gives every item the same new object', async () => {
    const { reg } = registry([fake('ag', 'principal.id', { 'agent.attr.model': 'result.v' })], { ag: echoAfter(0) });
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }] });
    expect(out.items.map((i) => i.input.agent)).toEqual([{ attr: { model: 'alice' } }, { attr: { model: 'alice' } }]);
    expect(out.items[0]?.input.agent).toBe(out.items[1]?.input.agent);
  });

  it('an owned request is written in place: no copies of its resources or shared roots', async () => {
    const { reg } = registry(
      [fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }), fake('cat', 'resource.id', { 'resource.attr.v': 'result.v' })],
      { who: echoAfter(0), cat: echoAfter(0) },
    );
    const principal = { id: 'alice', attr: {} };
    const resources = [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }];
    const out = await enrich(reg, { requestId: 'r', principal, resources, owned: true });
    expect(out.items[0]?.input.principal).toBe(principal);
    expect(out.items.map((i) => i.input.resource)).toEqual(resources);
    expect(out.items[1]?.input.resource).toBe(resources[1]);
    expect(resources[1]).toEqual({ kind: 'd', id: 'b', attr: { v: 'b' } });
    expect(principal).toEqual({ id: 'alice', attr: { team: 'alice' } });
  });

  it('values mapped from one cached result are computed once and shared; computed expressions are not', async () => {
    const { reg } = registry(
      [
        fake('prof', 'principal.id', { 'principal.attr.profile': 'result' }, { cache: { ttl: '1m' } }),
        fake('calc', 'principal.id', { 'principal.attr.calc': '{"v": result.v}' }, { cache: { ttl: '1m' } }),
      ],
      { prof: echoAfter(0), calc: echoAfter(0) },
    );
    const ask = async () => (await enrich(reg, { requestId: 'r', principal: { id: 'alice', attr: {} }, resources: [] })).items[0]?.input.principal?.['attr'] as Record<string, unknown>;
    const [a, b, c] = [await ask(), await ask(), await ask()];
    expect(a['profile']).toEqual({ v: 'alice' });
    expect(b['profile']).toBe(c['profile']);
    expect(b['calc']).toEqual({ v: 'alice' });
    expect(b['calc']).not.toBe(c['calc']);
  });

  it('runs no per-resource resolver for a request without resources (a guard on R.kind would only fail)', async () => {
    const { reg, calls } = registry(
      [fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }), fake('cat', 'resource.id', { 'resource.attr.v': 'result.v' }, { when: 'R.kind == "tool"' })],
      { who: echoAfter(0), cat: echoAfter(0) },
    );
    const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [] });
    expect(out.items[0]?.denials).toEqual([]);
    expect(out.items[0]?.failures).toEqual([]);
    expect(out.items[0]?.input.principal).toEqual({ id: 'alice', attr: { team: 'alice' } });
    expect(calls.map((c) => c.resolver)).toEqual(['who']);
  });

  describe('onResolverRun', () => {
    it('reports each resolver that ran, in registry order, with its kind, calls, keys and when it ran', async () => {
      const { reg } = registry(
        [
          fake('who', 'principal.id', { 'principal.attr.team': 'result.v' }),
          fake('skipped', 'principal.id', { 'principal.attr.never': 'result.v' }, { when: 'P.id == "nobody"' }),
          fake('cat', 'resource.id', { 'resource.attr.v': 'result.v' }),
        ],
        { who: echoAfter(20), skipped: echoAfter(0), cat: echoAfter(0) },
      );
      const reports: ResolverRunReport[] = [];
      const before = performance.now();
      const out = await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [{ kind: 'tool', id: 'a' }, { kind: 'tool', id: 'b' }] }, { onResolverRun: (r) => reports.push(r) });
      const after = performance.now();
      expect(reports.map((r) => r.resolver)).toEqual(['who', 'cat']);
      expect(reports[0]).toMatchObject({ kind: 'fake', calls: 1, keys: 1, hits: 0, cachedKeys: 0, failures: 0 });
      expect(reports[1]).toMatchObject({ kind: 'fake', calls: 1, keys: 2, hits: 0, cachedKeys: 0, failures: 0 });
      for (const r of reports) {
        expect(r.error).toBeUndefined();
        expect(r.start).toBeGreaterThanOrEqual(before);
        expect(r.end).toBeLessThanOrEqual(after);
      }
      const who = reports[0] as ResolverRunReport;
      // The 20 ms upstream call is inside its run (timer resolution allows a millisecond less).
      expect(who.end - who.start).toBeGreaterThanOrEqual(19);
      // The outcome is what it is without an observer (its runs in the order they were first noted).
      expect(out.runs.map((r) => [r.resolver, r.calls, r.keys, r.hits]).sort()).toEqual([
        ['cat', 1, 2, 0],
        ['who', 1, 1, 0],
      ]);
    });

    it('reports keys the in-process cache answered as hits, with no call and no duration', async () => {
      const { reg } = registry([fake('c', 'principal.id', { 'principal.attr.v': 'result.v' }, { cache: { ttl: '30s' } })], { c: echoAfter(0) });
      const request = { requestId: 'r', principal: { id: 'alice' }, resources: [] };
      const cold: ResolverRunReport[] = [];
      await enrich(reg, request, { onResolverRun: (r) => cold.push(r) });
      const warm: ResolverRunReport[] = [];
      const out = enrich(reg, request, { onResolverRun: (r) => warm.push(r) });
      // A warm enrichment still answers synchronously with an observer.
      expect(out).not.toBeInstanceOf(Promise);
      expect(cold).toEqual([expect.objectContaining({ resolver: 'c', calls: 1, keys: 1, hits: 0, cachedKeys: 0 })]);
      expect(warm).toEqual([expect.objectContaining({ resolver: 'c', calls: 0, keys: 0, hits: 1, cachedKeys: 0, failures: 0 })]);
      expect(warm[0]?.end).toBe(warm[0]?.start);
      expect(warm[0]?.start).toBeGreaterThan(0);
    });

    it('counts keys a cache wrapper answered within a call (a stale value) as cached keys', async () => {
      let now = 5_000;
      const { factory } = fakes({ c: echoAfter(0) });
      const reg = createResolverRegistry({
        configs: [fake('c', 'resource.id', { 'resource.attr.v': 'result.v' }, { cache: { ttl: '30s', staleMaxAge: '1m' }, onError: 'stale' })],
        factories: { fake: factory },
        now: () => now,
      });
      const req = { requestId: 'r', resources: [{ kind: 'd', id: 'a', attr: {} }, { kind: 'd', id: 'b', attr: {} }] };
      await enrich(reg, req);
      now += 40_000;
      const reports: ResolverRunReport[] = [];
      await enrich(reg, req, { onResolverRun: (r) => reports.push(r) });
      expect(reports).toEqual([expect.objectContaining({ resolver: 'c', calls: 1, keys: 2, hits: 0, cachedKeys: 2, failures: 0 })]);
    });

    it('reports failures with the first failure code, also of a resolver that failed before any call', async () => {
      const { reg } = registry(
        [
          fake('down', 'resource.id', { 'resource.attr.v': 'result.v' }),
          fake('badguard', 'principal.id', { 'principal.attr.x': 'result.v' }, { when: 'P.id', onError: 'omit' }),
        ],
        {
          down: async () => {
            throw new ResolverError('down', 'ERR_RESOLVER_TIMEOUT', 'resolver `down` timed out');
          },
          badguard: echoAfter(0),
        },
      );
      const reports: ResolverRunReport[] = [];
      await enrich(reg, { requestId: 'r', principal: { id: 'alice' }, resources: [{ kind: 'tool', id: 'a' }, { kind: 'tool', id: 'b' }] }, { onResolverRun: (r) => reports.push(r) });
      expect(reports).toEqual([
        expect.objectContaining({ resolver: 'down', calls: 1, keys: 2, failures: 2, error: 'ERR_RESOLVER_TIMEOUT' }),
        expect.objectContaining({ resolver: 'badguard', calls: 0, keys: 0, failures: 2, error: 'ERR_RESOLVER_FAILED' }),
      ]);
    });
  });
});
