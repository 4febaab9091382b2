import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { loadBrokerConfig } from './load-broker-config.js';
import { readTracing } from './read-tracing.js';

function errorOf(fn: () => unknown): WardenError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    return err as WardenError;
  }
  throw new Error('expected an error');
}

const on = (t: Record<string, unknown>, env: Record<string, string> = {}) => readTracing({ tracing: { enabled: true, ...t } }, env);

describe(readTracing.name, () => {
  it('is off by default, with the OTLP/HTTP defaults filled in', () => {
    expect(readTracing({}, {})).toEqual({ enabled: false, exporter: 'otlp-http', endpoint: 'http://127.0.0.1:4318/v1/traces', serviceName: 'warden', sampleRatio: 1, headers: {} });
  });

  it('reads every key, filling `${NAME}` placeholders of headers from the environment', () => {
    expect(on({ exporter: 'console', endpoint: 'https://otel.example:4318/v1/traces', serviceName: 'warden-eu', sampleRatio: 0.25, headers: { 'x-api-key': 'k-${OTLP_KEY}' } }, { OTLP_KEY: 's3cret' })).toEqual({
      enabled: true,
      exporter: 'console',
      endpoint: 'https://otel.example:4318/v1/traces',
      serviceName: 'warden-eu',
      sampleRatio: 0.25,
      headers: { 'x-api-key': 'k-s3cret' },
    });
  });

  it('lets the OpenTelemetry variables override the file, as Warden variables do', () => {
    const base = on({ endpoint: 'http://file:4318/v1/traces', serviceName: 'from-file' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_SERVICE_NAME: 'from-env' });
    expect(base.endpoint).toBe('http://collector:4318/v1/traces');
    expect(base.serviceName).toBe('from-env');
    const exact = on({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom' });
    expect(exact.endpoint).toBe('http://traces:9999/custom');
    expect(on({}, { OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(on({}, { OTEL_SDK_DISABLED: 'false' }).enabled).toBe(true);
    // The variables never turn tracing on by themselves.
    expect(readTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).enabled).toBe(false);
  });

  it.each([
    [{ enabled: 'yes' }, {}, 'tracing.enabled', 'must be true or false'],
    [{ exporter: 'zipkin' }, {}, 'tracing.exporter', 'must be one of otlp-http, console, none, got `zipkin`'],
    [{ endpoint: 'localhost:4318' }, {}, 'tracing.endpoint', 'must be an http(s) URL'],
    [{ endpoint: 'ftp://collector/v1/traces' }, {}, 'tracing.endpoint', 'must be an http(s) URL'],
    [{ endpoint: 'http://user:pw@collector:4318/v1/traces' }, {}, 'tracing.endpoint', 'must not carry credentials'],
    [{ serviceName: '' }, {}, 'tracing.serviceName', 'must be 1-256 characters'],
    [{ sampleRatio: 1.5 }, {}, 'tracing.sampleRatio', 'must be a number from 0 to 1, got `1.5`'],
    [{ sampleRatio: '0.5' }, {}, 'tracing.sampleRatio', 'must be a number from 0 to 1'],
    [{ headers: ['x'] }, {}, 'tracing.headers', 'must be a mapping'],
    [{ headers: { 'bad header': 'v' } }, {}, 'tracing.headers.bad header', 'must be an HTTP header name'],
    [{ headers: { 'x-key': '${MISSING_KEY}' } }, {}, 'tracing.headers.x-key', 'environment variable `MISSING_KEY` is not set'],
    [{ headers: { 'x-key': 'a${NL}b' } }, { NL: 'x\ny' }, 'tracing.headers.x-key', 'contains a line break'],
    [{ sampler: 'always' }, {}, 'tracing.sampler', 'unknown key'],
    [{}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT', 'must be an http(s) URL'],
    [{}, { OTEL_SDK_DISABLED: 'maybe' }, 'OTEL_SDK_DISABLED', 'must be true or false'],
  ])('refuses %j (env %j) naming `%s`', (t, env, key, message) => {
    const err = errorOf(() => on(t, env as Record<string, string>));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain(`invalid configuration: \`${key}\`: ${message}`);
  });

  it('is read by loadBrokerConfig from warden.yaml', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-tracing-'));
    writeFileSync(join(dir, 'warden.yaml'), 'tracing:\n  enabled: true\n  exporter: none\n  sampleRatio: 0\n');
    expect(loadBrokerConfig({ cwd: dir, env: {} }).tracing).toMatchObject({ enabled: true, exporter: 'none', sampleRatio: 0 });
    writeFileSync(join(dir, 'warden.yaml'), 'tracing: on\n');
    expect(errorOf(() => loadBrokerConfig({ cwd: dir, env: {} })).message).toBe('invalid configuration: `tracing`: must be a mapping');
  });
});
