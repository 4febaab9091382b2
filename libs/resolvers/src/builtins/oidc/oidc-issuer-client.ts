/**
 * One resolver's view of its issuer: the metadata, discovered lazily on the first call and then
 * kept (a memoised promise), and per-call openid-client configurations built from it.
 *
 * Why discovery is shared but calls are not: the metadata serves every later call, so one
 * caller's timeout must not cancel the request others are waiting on. Each caller instead stops
 * waiting at its own deadline ({@link untilAborted}); the shared request runs to its own cap
 * (10 s). A failed discovery is not memoised: the next call tries again. Per-token requests
 * (userinfo, introspection) serve one call only, so they are aborted with that call's signal.
 */
import * as oidc from 'openid-client';
import { ResolverError } from '../../resolver-error.js';
import { abortedError } from '../../with-timeout.js';
import type { OidcDatasource } from './oidc-datasource.js';
import { upstreamError, upstreamFailure } from './oidc-errors.js';
import { createOidcFetch, type FetchLike } from './oidc-fetch.js';

/** The issuer's metadata as discovered (RFC 8414 / OpenID Connect Discovery fields). */
export type OidcServerMetadata = oidc.ServerMetadata;

/** A resolver's lazily discovered issuer. */
export interface OidcIssuerClient {
  readonly datasource: OidcDatasource;
  /** The metadata; rejects with a coded `ResolverError` (failure, timeout or abort). */
  metadata(signal: AbortSignal): Promise<OidcServerMetadata>;
  /**
   * An openid-client configuration for one call, or why there is none: client authentication
   * from the datasource, requests aborted with `signal`, answers bounded. `endpoint` must be in
   * the metadata; `step` names the call's requests in messages.
   */
  configuration(step: string, endpoint: 'userinfo_endpoint' | 'introspection_endpoint', signal: AbortSignal): Promise<oidc.Configuration | ResolverError>;
}

/** Options of {@link createOidcIssuerClient}. */
export interface OidcIssuerClientOptions {
  readonly resolver: string;
  readonly datasource: OidcDatasource;
  /** Default: the global fetch. */
  readonly fetch?: FetchLike;
  /** Cap of the shared discovery request in ms (default 10 000; callers stop waiting at their own deadline). */
  readonly discoveryTimeoutMs?: number;
}

/** Used when the datasource names no client: discovery and userinfo need no client identity. */
const ANONYMOUS_CLIENT_ID = 'warden';
const DEFAULT_DISCOVERY_TIMEOUT_MS = 10_000;

/**
 * Waits for `promise` until `signal` aborts, then rejects with the resolver's timeout or abort
 * error (the promise itself keeps running; its outcome is dropped).
 * @example const metadata = await untilAborted('bearer', sharedDiscovery, ctx.signal);
 */
export function untilAborted<T>(resolver: string, promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortedError(resolver, signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortedError(resolver, signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function clientAuth(ds: OidcDatasource): oidc.ClientAuth {
  if (ds.clientSecret === undefined) return oidc.None();
  return ds.clientAuth === 'client_secret_post' ? oidc.ClientSecretPost(ds.clientSecret) : oidc.ClientSecretBasic(ds.clientSecret);
}

/**
 * The issuer client of one resolver. Nothing is fetched until the first call.
 * @example const issuer = createOidcIssuerClient({ resolver: 'bearer', datasource: parseOidcDatasource('bearer', raw, env) });
 */
export function createOidcIssuerClient(options: OidcIssuerClientOptions): OidcIssuerClient {
  const { resolver, datasource } = options;
  const fetch: FetchLike = options.fetch ?? globalThis.fetch;
  const timeout = Math.max(1, Math.ceil((options.discoveryTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS) / 1000));
  const clientId = datasource.clientId ?? ANONYMOUS_CLIENT_ID;
  let pending: Promise<OidcServerMetadata> | undefined;

  const discover = (): Promise<OidcServerMetadata> => {
    if (pending !== undefined) return pending;
    const attempt = oidc
      .discovery(new URL(datasource.issuer), clientId, undefined, undefined, {
        algorithm: datasource.discovery,
        timeout,
        // SECURITY: openid-client refuses http endpoints unless the operator opted in.
        execute: datasource.allowInsecureHttp ? [oidc.allowInsecureRequests] : [],
        [oidc.customFetch]: createOidcFetch({ resolver, step: 'discovery', fetch }),
      })
      .then(
        (config) => config.serverMetadata(),
        (err: unknown) => {
          throw upstreamError(resolver, 'discovery', err);
        },
      );
    pending = attempt;
    // A failure is forgotten so that the next call retries (this also marks the rejection handled).
    attempt.catch(() => {
      if (pending === attempt) pending = undefined;
    });
    return attempt;
  };

  const metadata = (signal: AbortSignal): Promise<OidcServerMetadata> => untilAborted(resolver, discover(), signal);

  return {
    datasource,
    metadata,
    async configuration(step, endpoint, signal) {
      let server: OidcServerMetadata;
      try {
        server = await metadata(signal);
      } catch (err) {
        return err instanceof ResolverError ? err : upstreamError(resolver, 'discovery', err, signal);
      }
      if (typeof server[endpoint] !== 'string') return upstreamFailure(resolver, 'discovery', `the document has no \`${endpoint}\``, 'ERR_RESOLVER_RESULT_INVALID');
      const config = new oidc.Configuration(server, clientId, undefined, clientAuth(datasource));
      if (datasource.allowInsecureHttp) oidc.allowInsecureRequests(config);
      config[oidc.customFetch] = createOidcFetch({ resolver, step, fetch, signal });
      return config;
    },
  };
}
