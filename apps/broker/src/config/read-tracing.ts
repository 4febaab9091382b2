/**
 * `tracing:` of warden.yaml: OpenTelemetry tracing of the decision path, off unless
 * `tracing.enabled: true`. Validated once at boot; every problem is an `ERR_CONFIG_INVALID` naming
 * the key, as in `load-broker-config.ts`. The standard OpenTelemetry variables take precedence
 * over the file, as Warden's own variables do: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
 * given), `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is appended), `OTEL_SERVICE_NAME`, and
 * `OTEL_SDK_DISABLED=true`, which turns tracing off whatever the file says.
 *
 * ```yaml
 * tracing:
 *   enabled: true
 *   exporter: otlp-http                         # otlp-http | console | none
 *   endpoint: http://127.0.0.1:4318/v1/traces   # OTLP/HTTP (JSON) traces endpoint
 *   serviceName: warden
 *   sampleRatio: 1.0                            # 0..1, for traces no caller started (a caller's sampled flag is followed)
 *   headers: { x-api-key: "${OTLP_API_KEY}" }   # sent with every export
 * ```
 */
import { WardenError } from '@warden/core';
import type { TracingConfig } from './broker-config.js';

type Obj = Record<string, unknown>;
type Env = Readonly<Record<string, string | undefined>>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (key: string, message: string): WardenError => new WardenError('ERR_CONFIG_INVALID', `invalid configuration: \`${key}\`: ${message}`);

const KEYS = ['enabled', 'exporter', 'endpoint', 'serviceName', 'sampleRatio', 'headers'];
const EXPORTERS: readonly TracingConfig['exporter'][] = ['otlp-http', 'console', 'none'];
/** The OTLP/HTTP default (a collector on this machine). */
export const DEFAULT_TRACING_ENDPOINT = 'http://127.0.0.1:4318/v1/traces';
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function endpointUrl(raw: string, key: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw invalid(key, `must be an http(s) URL, got \`${raw}\``);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(key, `must be an http(s) URL, got \`${raw}\``);
  // SECURITY: credentials go in `tracing.headers` (filled from the environment), not in a URL that may be shown.
  if (u.username !== '' || u.password !== '') throw invalid(key, 'must not carry credentials (use `tracing.headers`)');
  return raw;
}

function optString(obj: Obj, name: string): string | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`tracing.${name}`, 'must be a string');
  return v;
}

function readHeaders(raw: unknown, env: Env): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (!isObj(raw)) throw invalid('tracing.headers', 'must be a mapping of header name to value');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const key = `tracing.headers.${name}`;
    if (!HEADER_NAME.test(name)) throw invalid(key, 'must be an HTTP header name');
    if (typeof value !== 'string') throw invalid(key, 'must be a string');
    const filled = value.replace(PLACEHOLDER, (_m, v: string) => {
      const found = env[v];
      if (found === undefined) throw invalid(key, `environment variable \`${v}\` is not set`);
      return found;
    });
    if (/[\r\n\0]/.test(filled)) throw invalid(key, 'contains a line break');
    out[name] = filled;
  }
  return out;
}

/** Reads `tracing:` (absent: off) with the OpenTelemetry environment variables on top. */
export function readTracing(root: Obj, env: Env): TracingConfig {
  const raw = root['tracing'];
  if (raw !== undefined && raw !== null && !isObj(raw)) throw invalid('tracing', 'must be a mapping');
  const t: Obj = isObj(raw) ? raw : {};
  for (const k of Object.keys(t)) if (!KEYS.includes(k)) throw invalid(`tracing.${k}`, `unknown key (allowed: ${KEYS.join(', ')})`);

  const enabledRaw = t['enabled'];
  if (enabledRaw !== undefined && enabledRaw !== null && typeof enabledRaw !== 'boolean') throw invalid('tracing.enabled', 'must be true or false');
  const sdkDisabled = env['OTEL_SDK_DISABLED'];
  if (sdkDisabled !== undefined && sdkDisabled !== '' && !/^(true|false)$/i.test(sdkDisabled)) throw invalid('OTEL_SDK_DISABLED', `must be true or false, got \`${sdkDisabled}\``);
  const enabled = enabledRaw === true && sdkDisabled?.toLowerCase() !== 'true';

  const exporter = optString(t, 'exporter') ?? 'otlp-http';
  if (!(EXPORTERS as readonly string[]).includes(exporter)) throw invalid('tracing.exporter', `must be one of ${EXPORTERS.join(', ')}, got \`${exporter}\``);

  const tracesEnv = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];
  const baseEnv = env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  let endpoint: string;
  if (tracesEnv !== undefined && tracesEnv !== '') endpoint = endpointUrl(tracesEnv, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  else if (baseEnv !== undefined && baseEnv !== '') endpoint = `${endpointUrl(baseEnv, 'OTEL_EXPORTER_OTLP_ENDPOINT').replace(/\/+$/, '')}/v1/traces`;
  else endpoint = endpointUrl(optString(t, 'endpoint') ?? DEFAULT_TRACING_ENDPOINT, 'tracing.endpoint');

  const serviceEnv = env['OTEL_SERVICE_NAME'];
  const fromEnv = serviceEnv !== undefined && serviceEnv !== '';
  const serviceName = fromEnv ? serviceEnv : (optString(t, 'serviceName') ?? 'warden');
  if (serviceName === '' || serviceName.length > 256 || /[\r\n\0]/.test(serviceName)) {
    throw invalid(fromEnv ? 'OTEL_SERVICE_NAME' : 'tracing.serviceName', 'must be 1-256 characters on one line');
  }

  const ratio = t['sampleRatio'] ?? 1;
  if (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw invalid('tracing.sampleRatio', `must be a number from 0 to 1, got \`${String(ratio)}\``);

  return { enabled, exporter: exporter as TracingConfig['exporter'], endpoint, serviceName, sampleRatio: ratio, headers: readHeaders(t['headers'], env) };
}
