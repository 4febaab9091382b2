/**
 * The `static` kind: inline data keyed by the key's value, for demos and tests.
 *
 * ```yaml
 * - name: departments
 *   kind: static
 *   key: principal.id
 *   data: { alice: { department: sales }, bob: { department: support } }
 *   provides: { principal.attr.department: result.department }
 * ```
 * A key is looked up by its string form (`42` and `"42"` find the same entry); an absent key is
 * not-found.
 */
import type { JsonValue } from '@warden/core';
import { configError, parseResolverConfig, type ContextResolver, type ResolverConfig, type ResolverFactory } from '../../resolver.types.js';

/** Config of a `static` resolver. */
export interface StaticResolverConfig extends ResolverConfig {
  readonly kind: 'static';
  readonly data: Readonly<Record<string, JsonValue>>;
}

function keyString(key: JsonValue): string | undefined {
  return typeof key === 'string' || typeof key === 'number' || typeof key === 'boolean' ? String(key) : undefined;
}

/** The resolver of a `static` config. */
export function createStaticResolver(config: StaticResolverConfig): ContextResolver {
  const data = new Map(Object.entries(config.data));
  return {
    name: config.name,
    resolveMany: (keys) =>
      Promise.resolve(
        keys.map((k) => {
          const s = keyString(k);
          return s === undefined ? undefined : data.get(s);
        }),
      ),
  };
}

/**
 * The factory of the `static` kind.
 * @example createResolverRegistry({ configs, factories: [staticResolverFactory] })
 */
export const staticResolverFactory: ResolverFactory<StaticResolverConfig> = {
  kind: 'static',
  parseConfig(raw) {
    const base = parseResolverConfig(raw);
    if (base.kind !== 'static') throw configError(base.name, 'kind', `expected \`static\`, got \`${base.kind}\``);
    for (const field of Object.keys(base.options)) {
      if (field !== 'data') throw configError(base.name, field, 'unknown field');
    }
    const data = base.options['data'];
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw configError(base.name, 'data', 'expected a map of key value to result');
    }
    return { ...base, kind: 'static', data: data as Record<string, JsonValue> };
  },
  create: (config) => createStaticResolver(config),
};
