/**
 * Real upstream servers for end-to-end enrichment tests, all on 127.0.0.1: a plain JSON API
 * (node:http), a GraphQL API (graphql-yoga), a minimal RESP server that answers slowly or with
 * errors, and a "broken issuer" serving OIDC discovery whose endpoints misbehave on demand. Plus
 * the small plumbing e2e files share: a port with nothing listening, a policy directory, and
 * `/v1/check` / admin calls with fetch.
 *
 * No mocking library: every upstream is a socket the broker really connects to.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSchema, createYoga } from 'graphql-yoga';

/** A running node:http server. */
export interface HttpUpstream {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Paths of every request received, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** Starts `handler` on a free port of 127.0.0.1. */
export async function startHttpUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<HttpUpstream> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '/');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** Reads a request body as text. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A TCP port of 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** How the fake Redis answers GET and HGETALL. */
export type FakeRedisMode = { readonly kind: 'slow'; readonly delayMs: number } | { readonly kind: 'error'; readonly message: string };

/** A RESP server speaking just enough Redis for a client to connect; see {@link startFakeRedis}. */
export interface FakeRedis {
  readonly url: string;
  close(): Promise<void>;
}

function bulk(s: string): string {
  return `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
}

/** Parses complete RESP arrays of bulk strings from `buf`; returns the commands and the unread rest. */
function parseCommands(buf: Buffer): { commands: string[][]; rest: Buffer } {
  const commands: string[][] = [];
  let pos = 0;
  for (;;) {
    const start = pos;
    const line = (): string | undefined => {
      const end = buf.indexOf('\r\n', pos);
      if (end < 0) return undefined;
      const s = buf.toString('utf8', pos, end);
      pos = end + 2;
      return s;
    };
    const head = line();
    if (head === undefined || !head.startsWith('*')) {
      pos = start;
      break;
    }
    const n = Number(head.slice(1));
    const args: string[] = [];
    let complete = true;
    for (let i = 0; i < n; i++) {
      const len = line();
      if (len === undefined || pos + Number(len.slice(1)) + 2 > buf.length) {
        complete = false;
        break;
      }
      const l = Number(len.slice(1));
      args.push(buf.toString('utf8', pos, pos + l));
      pos += l + 2;
    }
    if (!complete) {
      pos = start;
      break;
    }
    commands.push(args);
  }
  return { commands, rest: buf.subarray(pos) };
}

/**
 * A RESP server on 127.0.0.1 that a real Redis client connects to (it answers INFO, PING, CLIENT,
 * SELECT...) but whose data commands (GET, HGETALL) are slow or fail, in order. Used for the
 * failure modes real Redis will not produce on demand.
 */
export async function startFakeRedis(mode: FakeRedisMode): Promise<FakeRedis> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending: Buffer = Buffer.alloc(0);
    // Each reply is computed as soon as its command arrives (slow replies wait concurrently, as
    // a slow server's would), but written in request order, as RESP requires.
    let queue: Promise<void> = Promise.resolve();
    const delay = (ms: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, ms);
        timers.add(t);
      });
    socket.on('data', (data: Buffer) => {
      const { commands, rest } = parseCommands(Buffer.concat([pending, data]));
      pending = rest;
      for (const args of commands) {
        const cmd = (args[0] ?? '').toUpperCase();
        let reply: Promise<string | undefined>;
        if (cmd === 'GET' || cmd === 'HGETALL') {
          const empty = cmd === 'GET' ? '$-1\r\n' : '*0\r\n';
          reply = mode.kind === 'slow' ? delay(mode.delayMs).then(() => empty) : Promise.resolve(`-${mode.message}\r\n`);
        } else if (cmd === 'INFO') {
          reply = Promise.resolve(bulk('# Server\r\nredis_version:7.0.15\r\nloading:0\r\n'));
        } else if (cmd === 'PING') {
          reply = Promise.resolve('+PONG\r\n');
        } else if (cmd === 'QUIT') {
          reply = Promise.resolve(undefined);
        } else {
          reply = Promise.resolve('+OK\r\n');
        }
        queue = queue.then(async () => {
          const r = await reply;
          if (socket.destroyed) return;
          if (r === undefined) socket.end('+OK\r\n');
          else socket.write(r);
        });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Creates a temporary directory holding `policies/<name>` for every entry of `files`. */
export function writePolicyDir(files: Readonly<Record<string, string>>, prefix = 'warden-e2e-'): { dir: string; policyDir: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const policyDir = join(dir, 'policies');
  mkdirSync(policyDir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(policyDir, name), text);
  return { dir, policyDir };
}

/** A `/v1/check` answer, as the tests read it. */
export interface V1Answer {
  readonly status: number;
  readonly text: string;
  readonly json: {
    decision: 'ALLOW' | 'DENY';
    results: Array<{ resource: { kind: string; id: string }; decision: 'ALLOW' | 'DENY'; actions: Record<string, 'ALLOW' | 'DENY'>; outputs?: Array<{ src: string; val: unknown; action: string }> }>;
    reasons: Array<{ code: string; message: string; resolver?: string; resource?: { kind: string; id: string }; actions?: string[]; identity?: 'subject' | 'agent'; delegation?: string }>;
    explain?: {
      items: Array<{
        resource: { kind: string; id: string };
        actions: Record<string, { policy: string; scope?: string }>;
        input: Record<string, unknown>;
        attributes: Record<string, { resolver: string; durationMs: number; cache?: { hit: boolean; ageMs: number; stale: boolean } }>;
        failures: Array<{ resolver: string; code: string; message: string; onError: string }>;
      }>;
      resolvers: Array<{ resolver: string; calls: number; keys: number; durationMs: number }>;
      timings: { parseMs: number; enrichMs: number; evaluateMs: number; totalMs: number };
    };
    error?: { code: string; message: string };
    [k: string]: unknown;
  };
}

/** POSTs `body` to `<base>/v1/check`. */
export async function v1Check(base: string, body: unknown, headers: Record<string, string> = {}): Promise<V1Answer> {
  const res = await fetch(`${base}/v1/check`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as V1Answer['json'] };
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A GraphQL API (graphql-yoga) on 127.0.0.1 answering `projects(ids: [ID!]!): [Project!]!` at
 * `/graphql` from `rows` (id -> the project's other fields, all strings).
 */
export async function startProjectsGraphql(rows: Readonly<Record<string, Readonly<Record<string, string>>>>, fields: readonly string[]): Promise<HttpUpstream> {
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: `type Project { id: ID! ${fields.map((f) => `${f}: String!`).join(' ')} } type Query { projects(ids: [ID!]!): [Project!]! }`,
      resolvers: { Query: { projects: (_: unknown, args: { ids: string[] }) => args.ids.flatMap((id) => (rows[id] !== undefined ? [{ id, ...rows[id] }] : [])) } },
    }),
    graphqlEndpoint: '/graphql',
    logging: false,
  });
  return startHttpUpstream((req, res) => void yoga(req, res));
}

