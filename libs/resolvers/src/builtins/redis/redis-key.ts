/**
 * The Redis key of a `redis` resolver: a template such as `user:{key}:profile` filled with the
 * batch key's string form.
 *
 * SECURITY: keys often come from the request (a resource attribute), so a key must not forge the
 * template's own structure. When the template uses one of the separators `:` `/` `|` `#`, a key
 * containing it is refused (with `user:{key}:profile`, the key `1:admin` would read another record,
 * `user:1:admin:profile`). Control characters, empty keys and keys over 512 characters are refused too.
 */
import type { JsonValue } from '@warden/core';
import { configError } from '../../resolver.types.js';

/** A checked key template. */
export interface RedisKeyTemplate {
  readonly template: string;
  /** The Redis key for `key`, or undefined when `key` is not usable. */
  fill(key: JsonValue): string | undefined;
}

const SEPARATORS = [':', '/', '|', '#'];
const MAX_KEY_CHARS = 512;
const MAX_TEMPLATE_CHARS = 1024;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The string form of a batch key (string, finite number or boolean), or undefined. */
export function redisKeyString(key: JsonValue): string | undefined {
  if (typeof key === 'string') return key;
  if ((typeof key === 'number' && Number.isFinite(key)) || typeof key === 'boolean') return String(key);
  return undefined;
}

/**
 * Checks the `keyTemplate` of resolver `resolver`: `{key}` at least once, no other braces.
 * @example parseRedisKeyTemplate('profiles', 'user:{key}:profile').fill('42') // 'user:42:profile'
 */
export function parseRedisKeyTemplate(resolver: string, raw: unknown): RedisKeyTemplate {
  if (typeof raw !== 'string' || raw === '' || raw.length > MAX_TEMPLATE_CHARS) throw configError(resolver, 'keyTemplate', 'expected a Redis key template such as `user:{key}:profile`');
  if (!raw.includes('{key}')) throw configError(resolver, 'keyTemplate', 'expected the placeholder `{key}`');
  const literal = raw.replaceAll('{key}', '');
  if (literal.includes('{') || literal.includes('}')) throw configError(resolver, 'keyTemplate', 'only the placeholder `{key}` is allowed');
  if (CONTROL.test(literal)) throw configError(resolver, 'keyTemplate', 'control characters are not allowed');
  const refused = SEPARATORS.filter((s) => literal.includes(s));
  return {
    template: raw,
    fill(key) {
      const s = redisKeyString(key);
      if (s === undefined || s === '' || s.length > MAX_KEY_CHARS || CONTROL.test(s) || refused.some((c) => s.includes(c))) return undefined;
      // A function replacer: a string one would expand `$&`, `$'` and `$$` inside the key.
      return raw.replaceAll('{key}', () => s);
    },
  };
}
