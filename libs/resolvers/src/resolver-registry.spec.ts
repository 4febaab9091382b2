import { describe, expect, it } from 'vitest';
import { staticResolverFactory } from './builtins/static/static.resolver.js';
import { ResolverConfigError } from './resolver-error.js';
import { buildResolverRegistry, createResolverRegistry } from './resolver-registry.js';
import { parseResolverConfig, type ResolverFactory } from './resolver.types.js';

const fake: ResolverFactory = {
  kind: 'fake',
  parseConfig: (raw) => parseResolverConfig(raw),
  create: (config) => ({ name: config.name, resolveMany: (keys) => Promise.resolve(keys.map(() => undefined)) }),
};
const factories = { static: staticResolverFactory, fake };
const datasources = { main: { kind: 'postgres' } };

function r(name: string, key: string, provides: Record<string, string>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, kind: 'fake', key, provides, ...extra };
}

function errorsOf(configs: unknown[]): Array<{ code: string; resolver: string; message: string }> {
  const built = buildResolverRegistry({ configs, factories, datasources });
  return built.errors.map((e) => ({ code: e.code, resolver: e.resolver, message: e.message }));
}

describe(buildResolverRegistry.name, () => {
  it('builds a registry in dependency order with each resolver scope', () => {
    const built = buildResolverRegistry({
      configs: [
        r('project', 'resource.attr.projectId', { 'resource.attr.ownerTeam': 'result.team' }),
        r('team-lead', 'resource.attr.ownerTeam', { 'resource.attr.lead': 'result.lead' }),
        r('dept', 'principal.id', { 'principal.attr.dept': 'result.dept' }, { when: "context.env == 'prod'" }),
        r('budget', 'principal.attr.dept', { 'principal.attr.budget': 'result.left' }),
      ],
      factories,
    });
    expect(built.errors).toEqual([]);
    const reg = built.registry;
    expect(reg?.resolvers.map((x) => x.name)).toEqual(['project', 'team-lead', 'dept', 'budget']);
    expect(reg?.get('team-lead')?.dependsOn).toEqual(['project']);
    expect(reg?.get('budget')?.dependsOn).toEqual(['dept']);
    expect(reg?.get('project')?.perResource).toBe(true);
    expect(reg?.get('dept')?.perResource).toBe(false);
    expect(reg?.get('budget')?.perResource).toBe(false);
  });

  it('puts dependencies first even when configured after their dependents', () => {
    const reg = createResolverRegistry({
      configs: [r('b', 'principal.attr.x', { 'principal.attr.y': 'result' }), r('a', 'principal.id', { 'principal.attr.x': 'result' })],
      factories,
    });
    expect(reg.resolvers.map((x) => x.name)).toEqual(['a', 'b']);
  });

  it('finds dependencies read by `when` and by `provides` expressions, through P and R', () => {
    const reg = createResolverRegistry({
      configs: [
        r('tier', 'principal.id', { 'principal.attr.tier': 'result' }),
        r('kind', 'resource.id', { 'resource.attr.cls': 'result' }),
        r('quota', 'principal.id', { 'principal.attr.quota': "P.attr.tier == 'gold' ? result.high : result.low" }, { when: "R.attr['cls'] != 'x'" }),
      ],
      factories,
    });
    expect(reg.get('quota')?.dependsOn).toEqual(['tier', 'kind']);
    expect(reg.get('quota')?.perResource).toBe(true);
  });

  it('refuses an unknown kind', () => {
    expect(errorsOf([{ name: 'a', kind: 'ldap', key: 'principal.id', provides: { 'principal.attr.x': 'result' } }])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_KIND_UNKNOWN', resolver: 'a', message: expect.stringContaining('`ldap`') }),
    ]);
  });

  it('refuses an unknown datasource', () => {
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }, { datasource: 'nope' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_DATASOURCE_UNKNOWN', resolver: 'a', message: expect.stringContaining('`nope`') }),
    ]);
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }, { datasource: 'main' })])).toEqual([]);
  });

  it('refuses duplicate names', () => {
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }), r('a', 'principal.id', { 'principal.attr.y': 'result' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_NAME_DUPLICATE', resolver: 'a' }),
    ]);
  });

  it('refuses two resolvers providing the same or overlapping paths', () => {
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }), r('b', 'resource.id', { 'principal.attr.x': 'result' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_PROVIDES_CONFLICT', resolver: 'b', message: expect.stringContaining('`a`') }),
    ]);
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr': 'result' }), r('b', 'resource.id', { 'principal.attr.x': 'result' })])[0]?.code).toBe(
      'ERR_RESOLVER_PROVIDES_CONFLICT',
    );
  });

  it('lets resolvers guarded to different resource kinds provide the same path, unless something provides resource.kind', () => {
    const tool = { ...r('tools', 'resource.id', { 'resource.attr.tenant': 'result' }), when: 'R.kind == "tool"' };
    const agent = { ...r('agents', 'resource.id', { 'resource.attr.tenant': 'result' }), when: 'R.kind == "agent"' };
    expect(errorsOf([tool, agent])).toEqual([]);
    expect(errorsOf([tool, { ...agent, when: 'R.kind == "tool"' }])[0]?.code).toBe('ERR_RESOLVER_PROVIDES_CONFLICT');
    expect(errorsOf([tool, { ...agent, when: undefined }])[0]?.code).toBe('ERR_RESOLVER_PROVIDES_CONFLICT');
    expect(errorsOf([tool, agent, r('kinds', 'resource.id', { 'resource.kind': 'result' })]).map((e) => e.code)).toContain('ERR_RESOLVER_PROVIDES_CONFLICT');
  });

  it('refuses dependency cycles, naming the cycle', () => {
    const errors = errorsOf([
      r('a', 'principal.attr.c', { 'principal.attr.a': 'result' }),
      r('b', 'principal.attr.a', { 'principal.attr.b': 'result' }),
      r('c', 'principal.id', { 'principal.attr.c': 'result' }, { when: 'has(P.attr.b)' }),
    ]);
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_RESOLVER_DEPENDENCY_CYCLE', message: expect.stringContaining('a -> c -> b -> a') })]);
  });

  it('lets a resolver read its own output (no self-cycle)', () => {
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }, { when: '!has(P.attr.x)' })])).toEqual([]);
  });

  it('refuses CEL errors in provides and when, naming the field', () => {
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result.' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_CEL_INVALID', resolver: 'a', message: expect.stringContaining('provides.principal.attr.x') }),
    ]);
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'result' }, { when: 'unknownVar == 1' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_CEL_INVALID', resolver: 'a', message: expect.stringContaining('`when`') }),
    ]);
    expect(errorsOf([r('a', 'principal.id', { 'principal.attr.x': 'nosuchfn(result)' })])[0]?.code).toBe('ERR_RESOLVER_CEL_INVALID');
  });

  it('refuses config errors of the kind and of shared fields', () => {
    expect(errorsOf([{ name: 's', kind: 'static', key: 'principal.id', provides: { 'principal.attr.x': 'result' } }])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', resolver: 's', message: expect.stringContaining('`data`') }),
    ]);
    expect(errorsOf([r('a', 'user.id', { 'principal.attr.x': 'result' })])).toEqual([
      expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', resolver: 'a', message: expect.stringContaining('`key`') }),
    ]);
  });

  it('collects every error, sorted by resolver; createResolverRegistry throws the first', () => {
    const configs = [r('z', 'principal.id', { 'principal.attr.x': 'result.' }), { name: 'b', kind: 'ldap', key: 'principal.id', provides: { 'principal.attr.y': 'result' } }];
    expect(errorsOf(configs).map((e) => [e.resolver, e.code])).toEqual([
      ['b', 'ERR_RESOLVER_KIND_UNKNOWN'],
      ['z', 'ERR_RESOLVER_CEL_INVALID'],
    ]);
    expect(() => createResolverRegistry({ configs, factories })).toThrow(ResolverConfigError);
  });

  it('wraps a factory that throws while creating as a config error naming the resolver', () => {
    const broken: ResolverFactory = { ...fake, kind: 'broken', create: () => { throw new Error('no connection string'); } };
    const built = buildResolverRegistry({ configs: [{ ...r('a', 'principal.id', { 'principal.attr.x': 'result' }), kind: 'broken' }], factories: { broken } });
    expect(built.errors[0]).toMatchObject({ code: 'ERR_RESOLVER_CONFIG_INVALID', resolver: 'a' });
  });
});

describe(parseResolverConfig.name, () => {
  it('parses durations, defaults and kind-specific options', () => {
    const c = parseResolverConfig({
      name: 'limits',
      kind: 'postgres',
      datasource: 'main',
      key: 'principal.id',
      query: 'select 1',
      provides: { 'principal.attr.limit': 'result.limit' },
      cache: { ttl: '30s', staleMaxAge: '5m', negativeTtl: '1s' },
      timeout: '200ms',
      onError: 'stale',
    });
    expect(c).toMatchObject({ timeoutMs: 200, onError: 'stale', cache: { ttlMs: 30_000, staleMaxAgeMs: 300_000, negativeTtlMs: 1000 }, options: { query: 'select 1' } });
    expect(parseResolverConfig({ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' } })).toMatchObject({ timeoutMs: 1000, onError: 'deny' });
  });

  it.each([
    [{ kind: 'x' }, 'name'],
    [{ name: 'a', key: 'principal.id' }, 'kind'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: {} }, 'provides'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.foo': 'result' } }, 'provides.principal.foo'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' }, timeout: '10' }, 'timeout'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' }, cache: { ttl: 'soon' } }, 'cache.ttl'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' }, cache: { ttl: '1s', tll: '1s' } }, 'cache.tll'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' }, onError: 'allow' }, 'onError'],
    [{ name: 'a', kind: 'x', key: 'principal.id', provides: { 'principal.attr.a': 'result' }, onError: 'stale', cache: { ttl: '1s' } }, 'cache.staleMaxAge'],
  ])('refuses %j naming field `%s`', (raw, field) => {
    expect(() => parseResolverConfig(raw)).toThrow(expect.objectContaining({ code: 'ERR_RESOLVER_CONFIG_INVALID', message: expect.stringContaining(`field \`${field}\``) }));
  });
});

describe('cache keys of registered resolvers', () => {
  it('keeps credentials (subject.*, *token*) only as hashes and plain ids as they are', async () => {
    const { createLruCacheStore } = await import('./cache/cache-store.js');
    const inner = createLruCacheStore();
    const stored: string[] = [];
    const cacheStore = { ...inner, set: (k: string, e: Parameters<typeof inner.set>[1], ms: number) => (stored.push(k), inner.set(k, e, ms)) };
    const registry = createResolverRegistry({
      configs: [
        { name: 'tok', kind: 'static', key: 'subject.token', data: { 'secret-tok': { sub: 'a' } }, provides: { 'principal.id': 'result.sub' }, cache: { ttl: '1m' } },
        { name: 'key', kind: 'static', key: 'resource.attr.apiKey', data: { 'secret-key': { x: 1 } }, provides: { 'resource.attr.x': 'result.x' }, cache: { ttl: '1m' } },
        { name: 'dept', kind: 'static', key: 'principal.id', data: { alice: { d: 'sales' } }, provides: { 'principal.attr.d': 'result.d' }, cache: { ttl: '1m' } },
      ],
      factories,
      cacheStore,
    });
    const ctx = { requestId: 'r', signal: new AbortController().signal };
    for (const [name, key] of [['tok', 'secret-tok'], ['key', 'secret-key'], ['dept', 'alice']] as const) await registry.get(name)?.resolver.resolveMany([key], ctx);
    expect(stored).toHaveLength(3);
    expect(stored.join(' ')).not.toContain('secret');
    expect(stored.some((k) => k.endsWith('"alice"'))).toBe(true);
  });
});

describe('cache namespaces', () => {
  it('a changed datasource starts an empty cache; an unchanged config keeps its entries', async () => {
    const { createLruCacheStore } = await import('./cache/cache-store.js');
    const cacheStore = createLruCacheStore();
    let calls = 0;
    const counting: ResolverFactory = {
      kind: 'counting',
      parseConfig: (raw) => parseResolverConfig(raw),
      create: (config) => ({ name: config.name, resolveMany: (keys) => ((calls += keys.length), Promise.resolve(keys.map(() => ({ v: 1 })))) }),
    };
    const config = { name: 'c', kind: 'counting', datasource: 'up', key: 'principal.id', provides: { 'principal.attr.v': 'result.v' }, cache: { ttl: '1m' } };
    const build = (url: string) => createResolverRegistry({ configs: [config], factories: { counting }, datasources: { up: { kind: 'http', url } }, cacheStore });
    const ctx = { requestId: 'r', signal: new AbortController().signal };
    await build('http://a.internal').get('c')?.resolver.resolveMany(['alice'], ctx);
    await build('http://a.internal').get('c')?.resolver.resolveMany(['alice'], ctx);
    expect(calls).toBe(1);
    await build('http://b.internal').get('c')?.resolver.resolveMany(['alice'], ctx);
    expect(calls).toBe(2);
  });
});
