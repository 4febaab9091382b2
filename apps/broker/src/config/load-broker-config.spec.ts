import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { loadBrokerConfig } from './load-broker-config.js';

/** Directories this file's tests made, removed after them (a CI run left 116 behind in the temporary directory). */
const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory in the temporary one, removed after this file's tests. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

function withYaml(yaml: string, env: Record<string, string> = {}) {
  const dir = tempDir('warden-config-');
  writeFileSync(join(dir, 'warden.yaml'), yaml);
  return loadBrokerConfig({ cwd: dir, env });
}

/** A warden.yaml in a fresh directory; returns its path. */
function writeYaml(yaml: string): string {
  const path = join(tempDir('warden-config-'), 'warden.yaml');
  writeFileSync(path, yaml);
  return path;
}

function errorOf(fn: () => unknown): WardenError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    return err as WardenError;
  }
  throw new Error('expected an error');
}

describe(loadBrokerConfig.name, () => {
  it('uses Cerbos defaults when there is no file and no env', () => {
    const sut = loadBrokerConfig({ cwd: tempDir('warden-empty-'), env: {} });
    expect(sut.configFile).toBeUndefined();
    expect(sut.http).toEqual({ host: '127.0.0.1', port: 3594 });
    expect(sut.grpc).toEqual({ host: '127.0.0.1', port: 3595 });
    expect(sut.storage).toEqual({ driver: 'disk', directory: expect.stringMatching(/\/policies$/), watchForChanges: true, watchDebounceMs: 200, pollIntervalMs: 1000 });
    expect(sut.engine).toEqual({
      globals: {},
      defaultPolicyVersion: 'default',
      defaultScope: '',
      lenientScopeSearch: false,
      strictEvaluation: false,
      schemaEnforcement: 'none',
    });
    expect(sut.requestLimits).toEqual({ maxResourcesPerRequest: 50, maxActionsPerResource: 50 });
    expect(sut.auxData).toEqual({ keySets: [], disableVerification: false, acceptableTimeSkewSeconds: 0 });
    expect(sut.workers).toBeGreaterThanOrEqual(1);
  });

  it('reads every Cerbos-named key from warden.yaml', () => {
    const sut = withYaml(`
server:
  httpListenAddr: 127.0.0.1:9000
  requestLimits: { maxResourcesPerRequest: 5, maxActionsPerResource: 7 }
storage: { driver: disk, disk: { directory: ./pol } }
engine:
  globals: { environment: test, n: 1 }
  defaultPolicyVersion: v2
  defaultScope: acme.hr
  lenientScopeSearch: true
  strictEvaluation: true
schema: { enforcement: reject }
auxData:
  jwt:
    disableVerification: true
    acceptableTimeSkew: 2s
    keySets:
      - id: inline
        local: { data: "e30=" }
`);
    expect(sut.http).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(sut.storage).toMatchObject({ driver: 'disk', directory: expect.stringMatching(/\/pol$/) });
    expect(sut.engine).toEqual({
      globals: { environment: 'test', n: 1 },
      defaultPolicyVersion: 'v2',
      defaultScope: 'acme.hr',
      lenientScopeSearch: true,
      strictEvaluation: true,
      schemaEnforcement: 'reject',
    });
    expect(sut.requestLimits).toEqual({ maxResourcesPerRequest: 5, maxActionsPerResource: 7 });
    expect(sut.auxData).toEqual({
      keySets: [{ id: 'inline', local: { data: 'e30=', pem: false } }],
      disableVerification: true,
      acceptableTimeSkewSeconds: 2,
    });
  });

  it('lets environment variables win over the file', () => {
    const sut = withYaml('server: { httpListenAddr: "127.0.0.1:9000" }\n', {
      WARDEN_HTTP_ADDR: '127.0.0.1:0',
      WARDEN_POLICY_DIR: '/tmp/p',
      WARDEN_WORKERS: '3',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x',
    });
    expect(sut.http).toEqual({ host: '127.0.0.1', port: 0 });
    expect(sut.storage).toMatchObject({ driver: 'disk', directory: '/tmp/p' });
    expect(sut.workers).toBe(3);
  });

  it('runs the serving processes with a V8 interrupt budget of 8,000 unless WARDEN_V8_INTERRUPT_BUDGET says otherwise', () => {
    expect(loadBrokerConfig({ cwd: tmpdir(), env: {} }).v8InterruptBudget).toBe(8_000);
    expect(loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_V8_INTERRUPT_BUDGET: '0' } }).v8InterruptBudget).toBe(0);
    expect(loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_V8_INTERRUPT_BUDGET: ' 20000 ' } }).v8InterruptBudget).toBe(20_000);
  });

  it('reads the file named by WARDEN_CONFIG', () => {
    const dir = tempDir('warden-config-');
    writeFileSync(join(dir, 'other.yaml'), 'schema: { enforcement: warn }\n');
    expect(loadBrokerConfig({ cwd: dir, env: { WARDEN_CONFIG: 'other.yaml' } }).engine.schemaEnforcement).toBe('warn');
  });

  const bad: [string, string | (() => unknown), string][] = [
    ['WARDEN_CONFIG', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_CONFIG: 'nope-warden.yaml' } }), 'file not found'],
    ['WARDEN_HTTP_ADDR', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_HTTP_ADDR: 'localhost' } }), 'host:port'],
    ['WARDEN_WORKERS', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_WORKERS: 'many' } }), 'positive integer'],
    ['WARDEN_WORKERS', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_WORKERS: '0' } }), 'positive integer'],
    ['WARDEN_V8_INTERRUPT_BUDGET', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_V8_INTERRUPT_BUDGET: '500' } }), 'from 1000 to 10000000'],
    ['WARDEN_V8_INTERRUPT_BUDGET', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_V8_INTERRUPT_BUDGET: 'fast' } }), 'got `fast`'],
    ['engine.globals', 'engine: { globals: [1, 2] }', 'mapping'],
    ['engine.defaultPolicyVersion', 'engine: { defaultPolicyVersion: "a b" }', 'must match'],
    ['engine.defaultPolicyVersion', 'engine: { defaultPolicyVersion: 3 }', 'must be a string'],
    ['engine.defaultScope', 'engine: { defaultScope: "-bad" }', 'not a valid scope'],
    ['engine.lenientScopeSearch', 'engine: { lenientScopeSearch: "yes" }', 'true or false'],
    ['engine.strictEvaluation', 'engine: { strictEvaluation: 1 }', 'true or false'],
    ['engine.unknownThing', 'engine: { unknownThing: 1 }', 'unknown key'],
    ['schema.enforcement', 'schema: { enforcement: strict }', 'none, warn, reject'],
    ['auxData.jwt.keySets', 'auxData: { jwt: { keySets: {} } }', 'must be a list'],
    ['auxData.jwt.keySets[0].id', 'auxData: { jwt: { keySets: [ { local: { data: "e30=" } } ] } }', 'required'],
    ['auxData.jwt.keySets[0].local', 'auxData: { jwt: { keySets: [ { id: a, local: {} } ] } }', 'exactly one'],
    ['auxData.jwt.keySets[0].local.file', 'auxData: { jwt: { keySets: [ { id: a, local: { file: /nope.jwk } } ] } }', 'file not found'],
    ['auxData.jwt.keySets[0].remote', 'auxData: { jwt: { keySets: [ { id: a, remote: { url: "http://x" } } ] } }', 'not supported'],
    ['auxData.jwt.keySets[1].id', 'auxData: { jwt: { keySets: [ { id: a, local: { data: e30= } }, { id: a, local: { data: e30= } } ] } }', 'duplicate'],
    ['auxData.jwt.disableVerification', 'auxData: { jwt: { disableVerification: "no" } }', 'true or false'],
    ['auxData.jwt.acceptableTimeSkew', 'auxData: { jwt: { acceptableTimeSkew: soon } }', 'duration'],
    ['server.requestLimits.maxResourcesPerRequest', 'server: { requestLimits: { maxResourcesPerRequest: 0 } }', 'positive integer'],
    ['server.requestLimits.maxActionsPerResource', 'server: { requestLimits: { maxActionsPerResource: -1 } }', 'positive integer'],
    ['server.requestLimits.maxActionsPerResource', 'server: { requestLimits: { maxActionsPerResource: 1.5 } }', 'positive integer'],
    ['server.httpListenAddr', 'server: { httpListenAddr: "127.0.0.1:99999" }', 'host:port'],
    ['storage.driver', 'storage: { driver: blob }', 'must be one of disk, git'],
    ['storage.disk.watchForChanges', 'storage: { disk: { watchForChanges: "yes" } }', 'true or false'],
    ['storage.disk.watchDebounce', 'storage: { disk: { watchDebounce: 0s } }', 'positive duration'],
    ['storage.disk.pollInterval', 'storage: { disk: { pollInterval: 10ms } }', 'at least 100ms'],
    ['storage.disk.pollInterval', 'storage: { disk: { pollInterval: often } }', 'duration'],
    ['storage.git', 'storage: { git: { url: /srv/policies.git } }', 'only applies with `storage.driver: git`'],
    ['storage.git.url', 'storage: { driver: git }', 'is required'],
    ['storage.git.url', 'storage: { driver: git, git: { url: "--upload-pack=touch /tmp/x" } }', 'not starting with `-`'],
    ['storage.git.protocol', 'storage: { driver: git, git: { protocol: ftp, url: /srv/p.git } }', 'must be one of https, ssh, file'],
    ['storage.git.protocol', 'storage: { driver: git, git: { protocol: https, url: /srv/p.git } }', 'does not match'],
    ['storage.git.branch', 'storage: { driver: git, git: { url: /srv/p.git, branch: "-f" } }', 'not a branch name'],
    ['storage.git.branch', 'storage: { driver: git, git: { url: /srv/p.git, branch: "a..b" } }', 'not a branch name'],
    ['storage.git.subDir', 'storage: { driver: git, git: { url: /srv/p.git, subDir: ../etc } }', 'inside the repository'],
    ['storage.git.https', 'storage: { driver: git, git: { url: "https://example.com/p.git", https: { username: u, password: p } } }', 'credential helper'],
    ['storage.git.updatePollInterval', 'storage: { driver: git, git: { url: /srv/p.git, updatePollInterval: 5ms } }', 'at least 100ms'],
    ['storage.git.operationTimeout', 'storage: { driver: git, git: { url: /srv/p.git, operationTimeout: 0s } }', 'positive duration'],
    ['storage.disk', 'storage: { driver: git, disk: { directory: ./p }, git: { url: /srv/p.git } }', 'only applies with `storage.driver: disk`'],
    ['WARDEN_POLICY_DIR', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_POLICY_DIR: '/p', WARDEN_CONFIG: writeYaml('storage: { driver: git, git: { url: /srv/p.git } }') } }), 'applies to `storage.driver: disk`'],
    ['telemetry', 'telemetry: { disabled: true }', 'unknown key'],
    ['WARDEN_WORKERS', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_WORKERS: '2' } }), 'needs `DATABASE_URL`'],
    ['DATABASE_URL', () => loadBrokerConfig({ cwd: tmpdir(), env: { DATABASE_URL: 'mysql://x' } }), 'postgres://'],
    ['REDIS_URL', () => loadBrokerConfig({ cwd: tmpdir(), env: { REDIS_URL: 'http://x' } }), 'redis://'],
    ['WARDEN_ADMIN_TOKEN', () => loadBrokerConfig({ cwd: tmpdir(), env: { WARDEN_ADMIN_TOKEN: 'short' } }), '16 characters'],
    ['datasources', 'datasources: [1]', 'mapping'],
    ['datasources.crm', 'datasources: { crm: { url: "http://x" } }', '`kind`'],
    ['datasources.crm.headers.Authorization', 'datasources: { crm: { kind: http, url: "http://x", headers: { Authorization: "Bearer ${NOPE_UNSET_VAR}" } } }', '`NOPE_UNSET_VAR` is not set'],
    ['resolvers', 'resolvers: { a: 1 }', 'must be a list'],
    ['gateways[0].apiKey', 'gateways: [ { name: envoy, apiKey: short } ]', '16 characters'],
    ['gateways[1].name', 'gateways: [ { name: envoy, apiKey: aaaaaaaaaaaaaaaaaaaa }, { name: envoy, apiKey: bbbbbbbbbbbbbbbbbbbb } ]', 'duplicate'],
    ['admin.bootstrapToken', 'admin: { bootstrapToken: short }', '16 characters'],
    ['database.seedFiles[0]', 'database: { seedFiles: [ /nope.sql ] }', 'file not found'],
  ];
  it.each(bad)('rejects a bad `%s` naming the key', (key, input, fragment) => {
    const err = errorOf(typeof input === 'string' ? () => withYaml(input) : input);
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain(`\`${key}\``);
    expect(err.message).toContain(fragment);
  });

  it('serves from one process on the embedded database, from all CPUs with DATABASE_URL', () => {
    expect(loadBrokerConfig({ cwd: tmpdir(), env: {} }).workers).toBe(1);
    expect(loadBrokerConfig({ cwd: tmpdir(), env: {} }).database.url).toBeUndefined();
    const withDb = loadBrokerConfig({ cwd: tmpdir(), env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x' } });
    expect(withDb.workers).toBeGreaterThanOrEqual(1);
    expect(withDb.database.url).toBe('postgres://postgres@127.0.0.1:5432/x');
  });

  it('fills `${NAME}` placeholders of datasources and gateway keys from the environment', () => {
    const sut = withYaml(
      'datasources: { crm: { kind: http, url: "http://127.0.0.1:1", headers: { Authorization: "Bearer ${CRM_TOKEN}" } } }\n' +
        'gateways: [ { name: envoy, apiKey: "${GW_KEY}" } ]\nresolvers: [ { name: a, kind: static } ]\n',
      { CRM_TOKEN: 'sekret', GW_KEY: 'g'.repeat(24) },
    );
    expect(sut.datasources['crm']).toEqual({ kind: 'http', url: 'http://127.0.0.1:1', headers: { Authorization: 'Bearer sekret' } });
    expect(sut.gateways).toEqual([{ name: 'envoy', apiKey: 'g'.repeat(24) }]);
    expect(sut.resolvers).toEqual([{ name: 'a', kind: 'static' }]);
  });

  it('never puts a secret in a config error', () => {
    const err = errorOf(() => withYaml('gateways: [ { name: envoy, apiKey: "${GW_KEY}" } ]\n', { GW_KEY: 'tooshort' }));
    expect(err.message).not.toContain('tooshort');
  });

  it('rejects a file that is not YAML', () => {
    const err = errorOf(() => withYaml('engine: [unclosed'));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain('not valid YAML');
  });

  it('reads `delegation`, with defaults the same on every replica', () => {
    const none = loadBrokerConfig({ cwd: tempDir('warden-empty-'), env: { WARDEN_HTTP_ADDR: '127.0.0.1:4000' } });
    expect(none.delegation).toEqual({
      issuer: 'urn:warden:delegation',
      keys: undefined,
      activeKid: undefined,
      algorithm: 'ES256',
      maxDepth: 5,
      maxDepthByAction: {},
      maxTtlSeconds: 3600,
      highCapabilityActions: [],
      revocationPollMs: 1000,
      revocationMaxStalenessMs: 5000,
      externalIssuers: [],
    });
    const key = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd', alg: 'ES256', kid: 'k1' };
    const set = withYaml(
      'delegation:\n  issuer: https://warden.example\n  keys: "${KEYS}"\n  maxDepth: 3\n  maxDepthByAction: { issue_refund: 1 }\n  maxTtl: 15m\n  highCapabilityActions: [issue_refund]\n  revocationPoll: 500ms\n  revocationMaxStaleness: 2s\n',
      { KEYS: JSON.stringify({ keys: [key] }) },
    );
    expect(set.delegation).toMatchObject({ issuer: 'https://warden.example', keys: [key], maxDepth: 3, maxDepthByAction: { issue_refund: 1 }, maxTtlSeconds: 900, highCapabilityActions: ['issue_refund'], revocationPollMs: 500, revocationMaxStalenessMs: 2000 });
  });

  it('refuses a bad `delegation` section, naming the key', () => {
    expect(errorOf(() => withYaml('delegation:\n  algorithm: HS256\n')).message).toMatch(/`delegation.algorithm`: must be ES256 or EdDSA/);
    expect(errorOf(() => withYaml('delegation:\n  maxDepth: 0\n')).message).toMatch(/`delegation.maxDepth`/);
    expect(errorOf(() => withYaml('delegation:\n  maxTtl: soon\n')).message).toMatch(/`delegation.maxTtl`: must be a positive duration/);
    expect(errorOf(() => withYaml('delegation:\n  keys: []\n')).message).toMatch(/`delegation.keys`: must be a non-empty list/);
    expect(errorOf(() => withYaml('delegation:\n  keysFile: nowhere.json\n')).message).toMatch(/`delegation.keysFile`: file not found/);
    expect(errorOf(() => withYaml('delegation:\n  depth: 3\n')).message).toMatch(/`delegation.depth`: unknown key/);
    expect(errorOf(() => withYaml('delegation:\n  externalIssuers: [{ issuer: x, jwksUri: "file:///etc/keys" }]\n')).message).toMatch(/`delegation.externalIssuers\[0\].jwksUri`: must be an http\(s\) URL/);
    expect(errorOf(() => withYaml('delegation:\n  externalIssuers: [{ issuer: x, jwksUri: "https://idp/jwks", algorithms: [HS256] }]\n')).message).toMatch(/`HS256` is not an asymmetric JWS algorithm/);
    expect(withYaml('delegation:\n  externalIssuers: [{ issuer: https://idp, jwksUri: "https://idp/jwks", audience: warden }]\n').delegation.externalIssuers).toEqual([{ issuer: 'https://idp', jwksUri: 'https://idp/jwks', audience: 'warden', algorithms: ['RS256', 'ES256'] }]);
  });

  it('reads `mcp` (the MCP proxy) and keeps catalogs out of the enrichment resolvers', () => {
    const set = withYaml(
      'resolvers:\n  - { name: tools, kind: catalog, resourceKind: tool, source: mcp, upstream: github }\n  - { name: s, kind: static, key: principal.id, data: {}, provides: { principal.attr.x: result } }\n' +
        'mcp:\n  resource: https://warden.example/mcp\n  authorizationServers: [https://idp.example]\n  requiredScopes: [mcp:tools]\n  token: { datasource: idp }\n  upstreams:\n    github: { url: "http://127.0.0.1:7001/mcp", headers: { Authorization: "Bearer ${GH}" } }\n',
      { GH: 'gh-secret' },
    );
    expect(set.catalogs).toEqual([{ name: 'tools', kind: 'catalog', resourceKind: 'tool', source: 'mcp', upstream: 'github' }]);
    expect(set.resolvers).toHaveLength(1);
    expect(set.mcp).toEqual({
      resource: 'https://warden.example/mcp',
      authorizationServers: ['https://idp.example'],
      requiredScopes: ['mcp:tools'],
      token: { datasource: 'idp' },
      upstreams: [{ name: 'github', url: 'http://127.0.0.1:7001/mcp', headers: { Authorization: 'Bearer gh-secret' } }],
    });
    expect(withYaml('server: {}\n').mcp).toBeUndefined();
  });

  it('refuses a bad `mcp` section, naming the key', () => {
    const bad: Array<[string, RegExp]> = [
      ['mcp:\n  resource: ftp://x\n', /`mcp.resource`: must be an http\(s\) URL/],
      ['mcp:\n  requiredScopes: [a]\n', /`mcp.requiredScopes`: needs `mcp.token`/],
      ['mcp:\n  token: { datasource: idp }\n', /`mcp.resource`: is required with `mcp.token`/],
      ['mcp:\n  resource: https://w/mcp\n  token: { datasource: idp, audience: other }\n', /`mcp.token.audience`: is `mcp.resource`/],
      ['mcp:\n  upstreams: { "gh.x": { url: "http://127.0.0.1:1/mcp" } }\n', /`mcp.upstreams.gh.x`: an upstream name/],
      ['mcp:\n  upstreams: { gh: { url: "http://u:p@127.0.0.1:1/mcp" } }\n', /`mcp.upstreams.gh.url`: must not carry credentials/],
      ['mcp:\n  upstreams: { gh: { address: x } }\n', /`mcp.upstreams.gh.address`: unknown key/],
      ['mcp:\n  upstream: {}\n', /`mcp.upstream`: unknown key/],
    ];
    for (const [yaml, message] of bad) {
      const err = errorOf(() => withYaml(yaml));
      expect(err.code).toBe('ERR_CONFIG_INVALID');
      expect(err.message).toMatch(message);
    }
  });

  describe('the gRPC listener', () => {
    it('reads `server.grpcListenAddr`, and WARDEN_GRPC_ADDR over it', () => {
      expect(withYaml('server: { grpcListenAddr: "127.0.0.1:9001" }').grpc).toEqual({ host: '127.0.0.1', port: 9001 });
      expect(withYaml('server: { grpcListenAddr: "127.0.0.1:9001" }', { WARDEN_GRPC_ADDR: '[::1]:0' }).grpc).toEqual({ host: '::1', port: 0 });
      expect(withYaml('{}', { WARDEN_GRPC_ADDR: ':7000' }).grpc).toEqual({ host: '127.0.0.1', port: 7000 });
    });

    it('rejects a malformed address, naming the key that holds it', () => {
      const env = errorOf(() => withYaml('{}', { WARDEN_GRPC_ADDR: '127.0.0.1' }));
      expect(env.code).toBe('ERR_CONFIG_INVALID');
      expect(env.message).toBe('invalid configuration: `WARDEN_GRPC_ADDR`: must be host:port, got `127.0.0.1`');
      const file = errorOf(() => withYaml('server: { grpcListenAddr: "127.0.0.1:70000" }'));
      expect(file.message).toBe('invalid configuration: `server.grpcListenAddr`: must be host:port, got `127.0.0.1:70000`');
      expect(errorOf(() => withYaml('server: { grpcListenAddr: 3595 }')).message).toBe('invalid configuration: `server.grpcListenAddr`: must be a string');
    });

    it('rejects the HTTP listener\'s own address, but lets both ask for a free port', () => {
      const err = errorOf(() => withYaml('{}', { WARDEN_HTTP_ADDR: '127.0.0.1:9000', WARDEN_GRPC_ADDR: '127.0.0.1:9000' }));
      expect(err.code).toBe('ERR_CONFIG_INVALID');
      expect(err.message).toBe('invalid configuration: `WARDEN_GRPC_ADDR`: must differ from the HTTP listener (both are `127.0.0.1:9000`)');
      expect(withYaml('{}', { WARDEN_HTTP_ADDR: '127.0.0.1:0', WARDEN_GRPC_ADDR: '127.0.0.1:0' }).grpc.port).toBe(0);
    });
  });
  describe('storage (the policy source)', () => {
    it('watches the directory by default, with Warden\'s debounce and poll fallback, each configurable', () => {
      expect(withYaml('storage: { disk: { directory: ./pol, watchForChanges: false, watchDebounce: 50ms, pollInterval: 0s } }').storage).toEqual({
        driver: 'disk',
        directory: expect.stringMatching(/\/pol$/),
        watchForChanges: false,
        watchDebounceMs: 50,
        pollIntervalMs: 0,
      });
    });

    it('reads Cerbos\'s git keys; a local path is resolved against the working directory, a URL kept as written', () => {
      const dir = tempDir('warden-config-');
      writeFileSync(join(dir, 'warden.yaml'), 'storage: { driver: git, git: { protocol: file, url: ./repo.git, branch: release/v2, subDir: ./policies/, checkoutDir: ./work, updatePollInterval: 500ms, operationTimeout: 5s } }');
      expect(loadBrokerConfig({ cwd: dir, env: {} }).storage).toEqual({
        driver: 'git',
        url: join(dir, 'repo.git'),
        branch: 'release/v2',
        subDir: 'policies',
        checkoutDir: join(dir, 'work'),
        updatePollIntervalMs: 500,
        operationTimeoutMs: 5000,
      });
      expect(withYaml('storage: { driver: git, git: { url: "git@github.com:acme/policies.git", protocol: ssh } }').storage).toEqual({
        driver: 'git',
        url: 'git@github.com:acme/policies.git',
        branch: undefined,
        subDir: '',
        checkoutDir: undefined,
        updatePollIntervalMs: 10_000,
        operationTimeoutMs: 60_000,
      });
    });
  });

  describe('forwardAuth', () => {
    it('defaults to x-warden-agent and x-warden-delegation, and takes other header names lower-cased', () => {
      expect(withYaml('{}').forwardAuth).toEqual({ agentHeader: 'x-warden-agent', delegationHeader: 'x-warden-delegation' });
      expect(withYaml('forwardAuth: { agentHeader: X-Agent-Id, delegationHeader: x-act-as }').forwardAuth).toEqual({ agentHeader: 'x-agent-id', delegationHeader: 'x-act-as' });
    });

    it('refuses a name that is no header, one with another meaning, two equal names and unknown keys', () => {
      expect(errorOf(() => withYaml('forwardAuth: { agentHeader: "x agent" }')).message).toContain('`forwardAuth.agentHeader`: must be an HTTP header name');
      expect(errorOf(() => withYaml('forwardAuth: { agentHeader: "x-agent\\r\\nx-evil: 1" }')).message).toContain('`forwardAuth.agentHeader`: must be an HTTP header name');
      expect(errorOf(() => withYaml('forwardAuth: { delegationHeader: Authorization }')).message).toContain('`authorization` already has another meaning');
      expect(errorOf(() => withYaml('forwardAuth: { agentHeader: x-a, delegationHeader: X-A }')).message).toContain('`forwardAuth.delegationHeader`: must differ');
      expect(errorOf(() => withYaml('forwardAuth: { agent: x-a }')).message).toContain('`forwardAuth.agent`: unknown key');
    });
  });

  describe('audit', () => {
    it('is off by default (as the Cerbos PDP), with the Postgres sink, best-effort, 90 days and the data directory when enabled', () => {
      const sut = withYaml('{}');
      expect(sut.audit).toMatchObject({ enabled: false, sink: 'postgres', mode: 'best-effort', maskPaths: [], retentionDays: 90, nats: undefined, maxQueue: 20_000 });
      expect(sut.audit.path.endsWith('/data/audit.ndjson')).toBe(true);
      expect(withYaml('database: { dataDir: ./pg }\naudit: { enabled: true }').audit.spillDir.endsWith('/pg')).toBe(true);
      expect(withYaml('{}').audit.spillPath.endsWith('/data/audit.spill.ndjson')).toBe(true);
      // A worker of several: its slot's own file (a restarted worker takes the slot over).
      expect(withYaml('{}', { WARDEN_WORKER_SLOT: '1' }).audit.spillPath.endsWith('/data/audit.spill.w1.ndjson')).toBe(true);
      expect(errorOf(() => withYaml('{}', { WARDEN_WORKER_SLOT: 'x' })).message).toContain('`WARDEN_WORKER_SLOT`');
    });

    it('reads every key', () => {
      const sut = withYaml('audit: { enabled: true, sink: ndjson, path: "-", mode: strict, maskPaths: [context.prompt, "resources.*.attr.ssn"], retentionDays: 7, spillDir: ./spill, thread: main, maxQueue: 50000 }');
      expect(sut.audit).toMatchObject({ enabled: true, sink: 'ndjson', path: '-', mode: 'strict', maskPaths: ['context.prompt', 'resources.*.attr.ssn'], retentionDays: 7, thread: 'main', maxQueue: 50_000 });
      expect(withYaml('audit: { enabled: true }').audit.thread).toBe('worker');
      expect(sut.audit.spillDir.endsWith('/spill')).toBe(true);
      expect(withYaml('audit: { sink: nats, nats: { url: "nats://127.0.0.1:4222" } }').audit.nats).toEqual({ url: 'nats://127.0.0.1:4222', subject: 'warden.audit', stream: 'WARDEN_AUDIT', duplicateWindowMs: 120_000 });
      expect(withYaml('audit: { sink: nats, nats: { url: "nats://127.0.0.1:4222", duplicateWindow: 1h } }').audit.nats?.duplicateWindowMs).toBe(3_600_000);
    });

    it('is turned on by WARDEN_AUDIT_SINK, with WARDEN_AUDIT_NATS_URL over the file (containers)', () => {
      const sut = withYaml('audit: { nats: { url: "nats://file:4222" }, sink: nats }', { WARDEN_AUDIT_SINK: 'nats', WARDEN_AUDIT_NATS_URL: 'nats://nats:4222' });
      expect(sut.audit).toMatchObject({ enabled: true, sink: 'nats', nats: { url: 'nats://nats:4222', subject: 'warden.audit', stream: 'WARDEN_AUDIT' } });
      expect(withYaml('{}', { WARDEN_AUDIT_SINK: 'ndjson' }).audit).toMatchObject({ enabled: true, sink: 'ndjson' });
      expect(withYaml('audit: { enabled: true }', { WARDEN_AUDIT_SINK: '' }).audit.sink).toBe('postgres');
      expect(errorOf(() => withYaml('{}', { WARDEN_AUDIT_SINK: 'kafka' })).message).toContain('`WARDEN_AUDIT_SINK`: must be one of');
      expect(errorOf(() => withYaml('{}', { WARDEN_AUDIT_SINK: 'nats', WARDEN_AUDIT_NATS_URL: 'http://x' })).message).toContain('`WARDEN_AUDIT_NATS_URL`: must be a nats:// URL');
    });

    it('rejects bad values naming the key', () => {
      expect(errorOf(() => withYaml('audit: { sink: kafka }')).message).toContain('`audit.sink`: must be one of postgres, ndjson, nats');
      expect(errorOf(() => withYaml('audit: { mode: paranoid }')).message).toContain('`audit.mode`: must be one of best-effort, strict');
      expect(errorOf(() => withYaml('audit: { thread: background }')).message).toContain('`audit.thread`: must be one of worker, main, got `background`');
      expect(errorOf(() => withYaml('audit: { maskPaths: ["context..x"] }')).message).toContain('`audit.maskPaths[0]`');
      expect(errorOf(() => withYaml('audit: { retentionDays: 0 }')).message).toContain('`audit.retentionDays`');
      expect(errorOf(() => withYaml('audit: { maxQueue: 0 }')).message).toContain('`audit.maxQueue`: must be a positive integer, got `0`');
      expect(errorOf(() => withYaml('audit: { maxQueue: lots }')).message).toContain('`audit.maxQueue`: must be a positive integer');
      expect(errorOf(() => withYaml('audit: { sink: nats }')).message).toContain('`audit.nats.url`');
      expect(errorOf(() => withYaml('audit: { nats: { url: "nats://x" } }')).message).toContain('`audit.nats`: only applies');
      expect(errorOf(() => withYaml('audit: { sink: nats, nats: { url: "nats://x", duplicateWindow: forever } }')).message).toContain('`audit.nats.duplicateWindow`: must be a positive duration');
      expect(errorOf(() => withYaml('audit: { enable: true }')).message).toContain('`audit.enable`: unknown key');
    });
  });
});
