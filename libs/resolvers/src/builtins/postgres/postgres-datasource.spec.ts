import { describe, expect, it } from 'vitest';
import { parsePostgresDatasource } from './postgres-datasource.js';

const SECRET = 'p4ss-W0rd-value';

describe(parsePostgresDatasource.name, () => {
  it('accepts a server URL with a default pool size, filling placeholders from env', () => {
    expect(parsePostgresDatasource('hr', { kind: 'postgres', url: 'postgres://warden@127.0.0.1:5432/hr' })).toEqual({ mode: 'server', url: 'postgres://warden@127.0.0.1:5432/hr', maxConnections: 10 });
    expect(parsePostgresDatasource('hr', { kind: 'postgres', url: 'postgresql://warden:${HR_PW}@db.internal/hr', maxConnections: 3 }, { HR_PW: SECRET })).toEqual({
      mode: 'server',
      url: `postgresql://warden:${SECRET}@db.internal/hr`,
      maxConnections: 3,
    });
  });

  it('accepts an embedded database', () => {
    expect(parsePostgresDatasource('demo', { kind: 'postgres', embedded: true })).toEqual({ mode: 'embedded', maxConnections: 10 });
  });

  it('refuses bad fields naming the datasource and field, never quoting the URL', () => {
    const bad = (raw: Record<string, unknown>, env = {}) => () => parsePostgresDatasource('hr', { kind: 'postgres', ...raw }, env);
    expect(bad({})).toThrow('datasource `hr`: field `url`: expected a `postgres://` URL (or `embedded: true`)');
    expect(bad({ url: `http://warden:${SECRET}@db/hr` })).toThrow('datasource `hr`: field `url`: expected a `postgres://` or `postgresql://` URL');
    expect(bad({ url: `http://warden:${SECRET}@db/hr` })).not.toThrow(SECRET);
    expect(bad({ url: `postgres://warden:${SECRET}@[::1/hr` })).toThrow('datasource `hr`: field `url`: expected a `postgres://` or `postgresql://` URL');
    expect(bad({ url: `postgres://warden:${SECRET}@[::1/hr` })).not.toThrow(SECRET);
    expect(bad({ url: 'postgres://warden:${HR_PW}@db/hr' }, { OTHER: SECRET })).toThrow('field `url`: environment variable `HR_PW` is not set');
    expect(bad({ url: 'postgres://db/hr', embedded: true })).toThrow('field `url`: not allowed with `embedded: true`');
    expect(bad({ embedded: 'yes' })).toThrow('field `embedded`');
    expect(bad({ url: 'postgres://db/hr', maxConnections: 0 })).toThrow('field `maxConnections`: expected an integer from 1 to 1000');
    expect(bad({ url: 'postgres://db/hr', password: 'x' })).toThrow('field `password`: unknown field');
    expect(() => parsePostgresDatasource('hr', { kind: 'http', url: 'http://x' })).toThrow('field `kind`: expected `postgres`, got `http`');
    try {
      bad({ url: `postgres://warden:${SECRET}@/` })();
      expect.unreachable();
    } catch (err) {
      expect((err as Error & { code: string }).code).toBe('ERR_CONFIG_INVALID');
      expect(JSON.stringify({ m: (err as Error).message, s: (err as Error).stack })).not.toContain(SECRET);
    }
  });
});
