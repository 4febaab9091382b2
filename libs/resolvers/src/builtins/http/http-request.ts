/**
 * One bounded JSON request of the `http` kind: redirects are not followed (a redirect could leave
 * the allowed origins), the body is read up to a byte limit and decoded as strict UTF-8 JSON, and
 * every failure becomes a coded {@link ResolverError} whose message names the resolver, the method
 * and the configured path template only (never a key value, a header or upstream text).
 */
import { ResolverError } from '../../resolver-error.js';
import { abortedError } from '../../with-timeout.js';

/** What {@link requestJson} sends. */
export interface HttpRequest {
  readonly resolver: string;
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  /** The configured template, for messages (it holds no key values). */
  readonly label: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly maxResponseBytes: number;
  readonly signal: AbortSignal;
}

/** A 2xx answer's parsed body, or a 404. */
export type HttpAnswer = { readonly status: 'ok'; readonly body: unknown } | { readonly status: 'not-found' };

const TOO_LARGE = Symbol('too-large');

async function readBounded(res: Response, limit: number): Promise<Uint8Array | typeof TOO_LARGE> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel().catch(() => undefined);
    return TOO_LARGE;
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
      return TOO_LARGE;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function codeOf(err: unknown): string | undefined {
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : undefined;
}

/**
 * Sends `req` and answers the parsed JSON body (2xx) or not-found (404); throws a
 * {@link ResolverError} for anything else.
 * @example const answer = await requestJson({ resolver: 'crm', method: 'GET', url, label: 'GET /users/{key}', headers: {}, maxResponseBytes: 1 << 20, signal });
 */
export async function requestJson(req: HttpRequest): Promise<HttpAnswer> {
  const { resolver, label } = req;
  const failed = (why: string, code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID' = 'ERR_RESOLVER_FAILED'): ResolverError =>
    new ResolverError(resolver, code, `resolver \`${resolver}\`: ${label}: ${why}`);
  let res: Response;
  try {
    res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
      redirect: 'manual',
      signal: req.signal,
    });
  } catch (err) {
    if (req.signal.aborted) throw abortedError(resolver, req.signal);
    // SECURITY: the fetch error's own text is not used (it could quote a URL or a header).
    const code = codeOf(err);
    throw failed(`request failed${code !== undefined ? ` (${code})` : ''}`);
  }
  try {
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return { status: 'not-found' };
    }
    if (res.status < 200 || res.status > 299) {
      await res.body?.cancel().catch(() => undefined);
      throw failed(`answered HTTP ${res.status}`);
    }
    const bytes = await readBounded(res, req.maxResponseBytes);
    if (bytes === TOO_LARGE) throw failed(`answered more than ${req.maxResponseBytes} bytes`, 'ERR_RESOLVER_RESULT_INVALID');
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw failed('answered a body that is not UTF-8', 'ERR_RESOLVER_RESULT_INVALID');
    }
    try {
      return { status: 'ok', body: JSON.parse(text) as unknown };
    } catch {
      throw failed('answered malformed JSON', 'ERR_RESOLVER_RESULT_INVALID');
    }
  } catch (err) {
    if (err instanceof ResolverError) throw err;
    if (req.signal.aborted) throw abortedError(resolver, req.signal);
    throw failed(`reading the answer failed${codeOf(err) !== undefined ? ` (${codeOf(err) ?? ''})` : ''}`);
  }
}
