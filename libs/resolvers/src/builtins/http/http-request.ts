/**
 * One bounded JSON request of the `http` kind, on `node:http`/`node:https` with keep-alive agents
 * (cheaper per call than `fetch`, which matters when four resolvers fan out on every check):
 * redirects are not followed (a redirect could leave the allowed origins), the body is read up to
 * a byte limit and decoded as strict UTF-8 JSON, and every failure becomes a coded
 * {@link ResolverError} whose message names the resolver, the method and the configured path
 * template only (never a key value, a header or upstream text).
 */
import http from 'node:http';
import https from 'node:https';
import { ResolverError } from '../../resolver-error.js';
import { abortedError, NEVER_ABORTED } from '../../with-timeout.js';

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

// Shared by every `http` resolver of the process: connections to an upstream are reused.
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
} as const;

const CODE = /^[A-Z0-9_]{1,40}$/;

function codeOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && CODE.test(code) ? code : undefined;
}

type Raw = { status: number; bytes: Buffer } | { status: number; tooLarge: true };

function send(req: HttpRequest): Promise<Raw> {
  return new Promise((resolveRaw, rejectRaw) => {
    // The caller's signal aborts the request. Node's own `signal` option watches the request's
    // whole lifecycle with end-of-stream listeners (several per call, about as much as the rest of
    // http.request); one abort listener, removed once the answer is settled, does the same here.
    const signal = req.signal;
    let outgoing: http.ClientRequest | undefined;
    const onAbort = (): void => {
      outgoing?.destroy(new Error('aborted'));
    };
    const watched = signal !== NEVER_ABORTED;
    if (watched) signal.addEventListener('abort', onAbort, { once: true });
    const resolve = (raw: Raw): void => {
      if (watched) signal.removeEventListener('abort', onAbort);
      resolveRaw(raw);
    };
    const reject = (err: unknown): void => {
      if (watched) signal.removeEventListener('abort', onAbort);
      rejectRaw(err);
    };
    if (signal.aborted) {
      reject(new Error('aborted'));
      return;
    }
    const url = req.url;
    const transport = url.protocol === 'https:' ? https : http;
    let headers: Readonly<Record<string, string>> = req.headers;
    if (req.body !== undefined || headers['accept'] === undefined) {
      const h: Record<string, string> = { accept: 'application/json', ...req.headers };
      if (req.body !== undefined) {
        h['content-type'] ??= 'application/json';
        h['content-length'] = String(Buffer.byteLength(req.body));
      }
      headers = h;
    }
    // Plain options rather than the URL object: what Node would derive from it (urlToHttpOptions),
    // without the conversion and the merge on every call.
    outgoing = transport.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port === '' ? undefined : Number(url.port),
        path: url.pathname + url.search,
        method: req.method,
        headers,
        agent: AGENTS[url.protocol as 'http:' | 'https:'],
      },
      (res) => {
        const status = res.statusCode ?? 0;
        // Statuses other than 2xx need no body: drain it so the connection can be reused.
        if (status < 200 || status > 299) {
          res.resume();
          resolve({ status, bytes: Buffer.alloc(0) });
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > req.maxResponseBytes) {
          res.destroy();
          resolve({ status, tooLarge: true });
          return;
        }
        const chunks: Buffer[] = [];
        let total = 0;
        res.on('data', (chunk: Buffer) => {
          total += chunk.length;
          if (total > req.maxResponseBytes) {
            res.destroy();
            resolve({ status, tooLarge: true });
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status, bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(req.body);
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Sends `req` and answers the parsed JSON body (2xx) or not-found (404); throws a
 * {@link ResolverError} for anything else.
 * @example const answer = await requestJson({ resolver: 'crm', method: 'GET', url, label: 'GET /users/{key}', headers: {}, maxResponseBytes: 1 << 20, signal });
 */
export async function requestJson(req: HttpRequest): Promise<HttpAnswer> {
  const { resolver, label } = req;
  const failed = (why: string, code: 'ERR_RESOLVER_FAILED' | 'ERR_RESOLVER_RESULT_INVALID' = 'ERR_RESOLVER_FAILED'): ResolverError =>
    new ResolverError(resolver, code, `resolver \`${resolver}\`: ${label}: ${why}`);
  if (req.signal.aborted) throw abortedError(resolver, req.signal);
  let raw: Raw;
  try {
    raw = await send(req);
  } catch (err) {
    if (req.signal.aborted) throw abortedError(resolver, req.signal);
    // SECURITY: the socket error's own text is not used (it could quote an address).
    const code = codeOf(err);
    throw failed(`request failed${code !== undefined ? ` (${code})` : ''}`);
  }
  if (raw.status === 404) return { status: 'not-found' };
  if (raw.status < 200 || raw.status > 299) throw failed(`answered HTTP ${raw.status}`);
  if ('tooLarge' in raw) throw failed(`answered more than ${req.maxResponseBytes} bytes`, 'ERR_RESOLVER_RESULT_INVALID');
  let text: string;
  try {
    text = UTF8.decode(raw.bytes);
  } catch {
    throw failed('answered a body that is not UTF-8', 'ERR_RESOLVER_RESULT_INVALID');
  }
  try {
    return { status: 'ok', body: JSON.parse(text) as unknown };
  } catch {
    throw failed('answered malformed JSON', 'ERR_RESOLVER_RESULT_INVALID');
  }
}
