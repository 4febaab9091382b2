/**
 * The fetch the OIDC kinds hand to openid-client and jose. It adds what those libraries leave to
 * the caller: the call's AbortSignal (so an abandoned call abandons its request), a bound on the
 * answer's size (a broken or hostile endpoint cannot make the broker buffer without limit), and
 * failures as coded {@link ResolverError}s whose message names the resolver and the step only
 * (never a URL query, a header, a token or upstream text). Libraries pass those errors through
 * (openid-client as the `cause` of its own error; {@link findResolverError} digs them out).
 */
import { ResolverError } from '../../resolver-error.js';
import { abortedError } from '../../with-timeout.js';

/** The fetch implementation the OIDC kinds call (injected; the global `fetch` by default). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** The request init openid-client and jose pass (their body types are wider than the DOM `BodyInit`). */
export interface OidcFetchInit {
  readonly method?: string;
  readonly headers?: RequestInit['headers'];
  readonly body?: RequestInit['body'] | Uint8Array;
  readonly redirect?: RequestInit['redirect'];
  readonly signal?: AbortSignal | null;
}

/** What {@link createOidcFetch} binds. */
export interface OidcFetchOptions {
  readonly resolver: string;
  /** For messages: `discovery`, `JWKS`, `userinfo`, `introspection`. */
  readonly step: string;
  readonly fetch: FetchLike;
  /** The call's signal; aborts the request on top of the library's own timeout. */
  readonly signal?: AbortSignal;
  /** Largest answer read, in bytes (default 1 MiB). */
  readonly maxResponseBytes?: number;
  /** Fail anything but HTTP 200 and a body that is not JSON here (for jose's JWKS fetch, whose own errors are vague). */
  readonly requireJson200?: boolean;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

function codeOf(err: unknown): string | undefined {
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : undefined;
}

/**
 * The first {@link ResolverError} in `err`'s `cause` chain (libraries wrap what the fetch threw).
 * @example findResolverError(new Error('x', { cause: resolverError })) === resolverError
 */
export function findResolverError(err: unknown): ResolverError | undefined {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== undefined && cur !== null; depth++) {
    if (cur instanceof ResolverError) return cur;
    cur = cur instanceof Error ? (cur as Error & { cause?: unknown }).cause : undefined;
  }
  return undefined;
}

async function readBounded(res: Response, limit: number): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (res.body === null) return new Uint8Array();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * A fetch bound to one resolver, step and (optionally) call signal.
 * @example cfg[customFetch] = createOidcFetch({ resolver: 'introspect', step: 'introspection', fetch, signal: ctx.signal });
 */
export function createOidcFetch(options: OidcFetchOptions): (url: string, init: OidcFetchInit) => Promise<Response> {
  const { resolver, step } = options;
  const limit = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const failed = (why: string, code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID' = 'ERR_RESOLVER_FAILED'): ResolverError =>
    new ResolverError(resolver, code, `resolver \`${resolver}\`: ${step}: ${why}`);
  return async (url, init) => {
    const call = options.signal;
    if (call?.aborted) throw abortedError(resolver, call);
    const signals = [init.signal, call].filter((s): s is AbortSignal => s !== undefined && s !== null);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const aborted = (): ResolverError | undefined => {
      if (call?.aborted) return abortedError(resolver, call);
      if (signal?.aborted) return failed('request timed out');
      return undefined;
    };
    let res: Response;
    try {
      const body = init.body instanceof Uint8Array ? new Uint8Array(init.body) : init.body;
      res = await options.fetch(url, {
        ...(init.method !== undefined ? { method: init.method } : {}),
        ...(init.headers !== undefined ? { headers: init.headers } : {}),
        ...(body !== undefined ? { body } : {}),
        // SECURITY: never follow a redirect (it could carry a token or a secret elsewhere).
        redirect: 'manual',
        ...(signal !== undefined ? { signal } : {}),
      });
    } catch (err) {
      // SECURITY: the fetch error's own text is not used (it could quote the URL).
      const code = codeOf(err);
      throw aborted() ?? failed(`request failed${code !== undefined ? ` (${code})` : ''}`);
    }
    let answer: Uint8Array<ArrayBuffer> | undefined;
    try {
      answer = await readBounded(res, limit);
    } catch {
      throw aborted() ?? failed('reading the answer failed');
    }
    if (answer === undefined) throw failed(`answered more than ${limit} bytes`, 'ERR_RESOLVER_RESULT_INVALID');
    if (options.requireJson200 === true) {
      if (res.status !== 200) throw failed(`answered HTTP ${res.status}`);
      try {
        JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(answer));
      } catch {
        throw failed('answered malformed JSON', 'ERR_RESOLVER_RESULT_INVALID');
      }
    }
    if (res.status < 200 || res.status > 599) throw failed(`answered HTTP ${res.status}`);
    const nullBody = res.status === 204 || res.status === 205 || res.status === 304;
    return new Response(nullBody ? null : answer, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}
