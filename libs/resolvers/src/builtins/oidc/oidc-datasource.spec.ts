import { describe, expect, it } from 'vitest';
import type { DatasourceConfig } from '../../resolver.types.js';
import { parseOidcDatasource } from './oidc-datasource.js';
import { MAX_TOKEN_CHARS, tokenOf } from './oidc-tokens.js';
import type { ResolverError } from '../../resolver-error.js';

const SECRET = 'sUp3r-s3cret-VALUE';

describe(parseOidcDatasource.name, () => {
  const parse = (raw: Record<string, unknown> | undefined, env: Record<string, string> = { IDP_SECRET: SECRET, IDP_CLIENT: 'warden' }) =>
    parseOidcDatasource('bearer', raw as DatasourceConfig | undefined, env);

  it('applies defaults and fills placeholders from the env map', () => {
    expect(parse({ kind: 'oidc', issuer: 'https://idp.example.com/realms/main' })).toEqual({
      issuer: 'https://idp.example.com/realms/main',
      discovery: 'oidc',
      clientAuth: 'client_secret_basic',
      allowInsecureHttp: false,
    });
    expect(
      parse({ kind: 'oidc', issuer: 'http://127.0.0.1:3001', allowInsecureHttp: true, clientId: '${IDP_CLIENT}', clientSecret: 'pre-${IDP_SECRET}', audience: ['a', 'b', 'a'], discovery: 'oauth2', clientAuth: 'client_secret_post' }),
    ).toEqual({
      issuer: 'http://127.0.0.1:3001',
      discovery: 'oauth2',
      audience: ['a', 'b'],
      clientId: 'warden',
      clientSecret: `pre-${SECRET}`,
      clientAuth: 'client_secret_post',
      allowInsecureHttp: true,
    });
  });

  it('refuses bad datasources naming the field, never the secret', () => {
    const cases: Array<[Record<string, unknown> | undefined, string]> = [
      [undefined, 'resolver `bearer`: field `datasource`: this kind needs an `oidc` datasource'],
      [{ kind: 'http', url: 'https://x' }, 'field `datasource`: expected a datasource of kind `oidc`, got `http`'],
      [{ kind: 'oidc', issuer: 'https://x', jwksUri: 'https://x/jwks' }, 'field `datasource.jwksUri`: unknown field'],
      [{ kind: 'oidc' }, 'field `datasource.issuer`: expected an absolute https URL'],
      [{ kind: 'oidc', issuer: 'file:///etc/passwd' }, 'field `datasource.issuer`: expected an absolute https URL'],
      [{ kind: 'oidc', issuer: 'http://idp.example' }, 'field `datasource.issuer`: an http issuer needs `allowInsecureHttp: true`'],
      [{ kind: 'oidc', issuer: 'https://idp.example?x=1' }, 'field `datasource.issuer`: expected no query or fragment'],
      [{ kind: 'oidc', issuer: 'https://a:b@idp.example' }, 'field `datasource.issuer`: credentials in the URL are not allowed'],
      [{ kind: 'oidc', issuer: 'https://x', discovery: 'saml' }, 'field `datasource.discovery`'],
      [{ kind: 'oidc', issuer: 'https://x', audience: [''] }, 'field `datasource.audience`'],
      [{ kind: 'oidc', issuer: 'https://x', clientId: 'w', clientSecret: '${MISSING}' }, 'field `datasource.clientSecret`: environment variable `MISSING` is not set'],
      [{ kind: 'oidc', issuer: 'https://x', clientId: 'w', clientSecret: 7 }, 'field `datasource.clientSecret`: expected a non-empty string'],
      [{ kind: 'oidc', issuer: 'https://x', clientSecret: '${IDP_SECRET}' }, 'field `datasource.clientId`: a `clientSecret` needs a `clientId`'],
    ];
    for (const [raw, message] of cases) {
      let thrown: unknown;
      try {
        parse(raw);
      } catch (err) {
        thrown = err;
      }
      expect((thrown as Error | undefined)?.message).toContain(message);
      expect((thrown as { code?: string }).code).toBe('ERR_RESOLVER_CONFIG_INVALID');
    }
    const lf = () => parse({ kind: 'oidc', issuer: 'https://x', clientId: 'w', clientSecret: '${IDP_SECRET}' }, { IDP_SECRET: `${SECRET}\r\n` });
    expect(lf).toThrow('field `datasource.clientSecret`: the value is empty or contains a control character');
    expect(lf).not.toThrow(SECRET);
  });
});

describe(tokenOf.name, () => {
  it('accepts a token, dropping whitespace and a Bearer prefix', () => {
    expect(tokenOf('r', '  Bearer abc.def-ghi_~+/= ')).toBe('abc.def-ghi_~+/=');
    expect(tokenOf('r', 'bearer   xyz')).toBe('xyz');
  });

  it('refuses what is not a token, without quoting it', () => {
    const refused: Array<[unknown, string]> = [
      [42, 'token must be a string'],
      [null, 'token must be a string'],
      [['a'], 'token must be a string'],
      ['   ', 'token is empty'],
      ['Bearer ', 'token is empty'],
      ['abc def', 'token malformed'],
      ['abc\u0000def', 'token malformed'],
      ['caf\u00e9', 'token malformed'],
      ['x'.repeat(MAX_TOKEN_CHARS + 1), 'token too large'],
    ];
    for (const [key, message] of refused) {
      const err = tokenOf('r', key as string) as ResolverError;
      expect([err.code, err.message, err.resolver]).toEqual(['ERR_TOKEN_INVALID', message, 'r']);
    }
  });
});
