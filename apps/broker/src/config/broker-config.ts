/**
 * The broker's validated configuration, split into the typed slices each module receives.
 * Built once at boot by `loadBrokerConfig`; nothing else reads `process.env` or the YAML file.
 */
import type { EngineConfig } from '@warden/decision';

/** One `auxData.jwt.keySets[]` entry (Cerbos layout; only `local` key sets are supported). */
export interface JwtKeySetConfig {
  id: string;
  local: {
    /** Path of a JWKS (or PEM with `pem: true`) file, resolved against the working directory. */
    file?: string;
    /** Base64-encoded JWKS (or PEM with `pem: true`). */
    data?: string;
    /** The key material is PEM instead of a JWKS. */
    pem: boolean;
  };
}

/** `auxData.jwt.*`. */
export interface AuxDataConfig {
  keySets: JwtKeySetConfig[];
  disableVerification: boolean;
  /** `acceptableTimeSkew` in seconds (Cerbos default 0). */
  acceptableTimeSkewSeconds: number;
}

/** `server.requestLimits.*`. */
export interface RequestLimitsConfig {
  maxResourcesPerRequest: number;
  maxActionsPerResource: number;
}

/** Where the HTTP listener binds. */
export interface HttpListenConfig {
  host: string;
  port: number;
}

/** Everything the broker needs, validated. */
export interface BrokerConfig {
  /** The YAML file that was read, if any. */
  configFile: string | undefined;
  http: HttpListenConfig;
  /** Absolute path of the policy directory. */
  policyDir: string;
  /** Number of HTTP worker processes (`WARDEN_WORKERS`, default: number of CPUs). */
  workers: number;
  engine: EngineConfig;
  auxData: AuxDataConfig;
  requestLimits: RequestLimitsConfig;
}
