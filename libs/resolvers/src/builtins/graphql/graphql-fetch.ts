/**
 * The `fetch` a `graphql` resolver hands to `graphql-request`: it goes only to allowed origins,
 * never follows a redirect (one could leave the allowed origins) and reads at most
 * `maxResponseBytes` of the answer. Its failures are {@link GraphQLFetchError}s carrying a reason
 * and a safe code only, so the resolver can classify them without reading upstream text.
 */

/** Why a guarded fetch failed. */
export type GraphQLFetchFailure = 'origin' | 'network' | 'too-large';

/** A failure of the guarded fetch. Its message holds no URL, header or body text. */
export class GraphQLFetchError extends Error {
  readonly reason: GraphQLFetchFailure;
  /** A system error code such as `ECONNREFUSED`, when there is one. */
  readonly code?: string;

  constructor(reason: GraphQLFetchFailure, code?: string) {
    super(`graphql fetch failed: ${reason}${code !== undefined ? ` (${code})` : ''}`);
    this.name = 'GraphQLFetchError';
    this.reason = reason;
    if (code !== undefined) this.code = code;
  }
}

/** Options of {@link createGuardedFetch}. */
export interface GuardedFetchOptions {
  /** Origins (`scheme://host[:port]`) requests may go to. */
  readonly allowedOrigins: ReadonlySet<string>;
  readonly maxResponseBytes: number;
}

type Fetch = typeof fetch;

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

function systemCode(err: unknown): string | undefined {
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : undefined;
}

async function readBounded(res: Response, limit: number): Promise<Uint8Array> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new GraphQLFetchError('too-large');
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
      throw new GraphQLFetchError('too-large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function urlOf(input: string | URL | Request): URL | undefined {
  try {
    return new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  } catch {
    return undefined;
  }
}

/**
 * A `fetch` limited to `allowedOrigins`, without redirects, reading at most `maxResponseBytes`.
 * An abort rejects with the signal's own error (the caller checks its signal).
 * @example new GraphQLClient(endpoint, { fetch: createGuardedFetch({ allowedOrigins, maxResponseBytes: 1 << 20 }) })
 */
export function createGuardedFetch(options: GuardedFetchOptions): Fetch {
  const guarded = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = urlOf(input);
    // SECURITY: checked on every request, whatever the caller built; credentials in a URL are refused too.
    if (url === undefined || url.username !== '' || url.password !== '' || !options.allowedOrigins.has(url.origin)) {
      throw new GraphQLFetchError('origin');
    }
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'manual' });
    } catch (err) {
      if (init?.signal?.aborted === true) throw err;
      // SECURITY: the fetch error's own text is dropped (it could quote the URL).
      throw new GraphQLFetchError('network', systemCode(err));
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBounded(res, options.maxResponseBytes);
    } catch (err) {
      if (err instanceof GraphQLFetchError || init?.signal?.aborted === true) throw err;
      throw new GraphQLFetchError('network', systemCode(err));
    }
    return new Response(NULL_BODY_STATUS.has(res.status) ? null : (bytes as Uint8Array<ArrayBuffer>), { status: res.status, headers: res.headers });
  };
  return guarded as Fetch;
}
