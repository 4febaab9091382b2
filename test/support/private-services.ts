/**
 * Private PostgreSQL and NATS servers for fault tests: each test starts its own throwaway server
 * (a fresh cluster in a temporary directory, a JetStream store of its own) on a free port of
 * 127.0.0.1, stops it in the middle of a load and starts it again on the same port and data
 * directory. The machine's shared servers are never touched (other tests and engineers use them).
 *
 * `initdb` and `postgres` refuse to run as root: when the tests run as root, both run as the
 * `postgres` user (the `uid`/`gid` options of `spawn`), in a directory that user owns.
 * `privateServicesMissing` names what is missing so a suite can skip with a clear message.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Where Debian puts PostgreSQL's server binaries (`WARDEN_TEST_PG_BIN` overrides). */
const PG_BIN = process.env['WARDEN_TEST_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';
/** The NATS server binary (`WARDEN_TEST_NATS_SERVER` overrides; else found on PATH or in /usr/sbin). */
const NATS_SERVER = process.env['WARDEN_TEST_NATS_SERVER'] ?? findOnPath('nats-server') ?? '/usr/sbin/nats-server';

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** A free TCP port of 127.0.0.1 (free when asked; the server binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Why a private server cannot be started here, or undefined when it can. */
export function privateServicesMissing(kind: 'postgres' | 'nats'): string | undefined {
  if (kind === 'postgres') {
    for (const b of ['initdb', 'postgres']) if (!existsSync(join(PG_BIN, b))) return `no \`${b}\` in ${PG_BIN} (set WARDEN_TEST_PG_BIN)`;
    if (process.getuid?.() === 0 && postgresUser() === undefined) return 'running as root and no `postgres` user to run initdb as';
    return undefined;
  }
  return existsSync(NATS_SERVER) ? undefined : `no nats-server binary (${NATS_SERVER}; set WARDEN_TEST_NATS_SERVER)`;
}

/** uid and gid of the `postgres` user, when there is one. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** A server process that can be stopped and started again with the same arguments. */
interface Restartable {
  child: ChildProcess | undefined;
  output: string;
}

const running = new Set<ChildProcess>();
// A test process that dies without its `afterAll` must not leave servers behind.
process.once('exit', () => {
  for (const c of running) {
    signalTree(c, 'SIGCONT');
    c.kill('SIGKILL');
  }
});

/** The pids of `pid`'s children, grandchildren ... (from /proc; empty where there is none). */
function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      // `pid (comm) state ppid ...`; comm may hold spaces and parentheses: read after the last `)`.
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      byParent.set(ppid, [...(byParent.get(ppid) ?? []), Number(e)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/**
 * Sends `signal` to the server and every process it started. (PostgreSQL's children each call
 * setsid, so a process group would not reach them.)
 */
function signalTree(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  for (const pid of [child.pid, ...descendants(child.pid)]) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function launch(state: Restartable, command: string, args: readonly string[], user: { uid: number; gid: number } | undefined): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(user !== undefined ? { uid: user.uid, gid: user.gid } : {}) });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const keep = (d: string): void => {
    // The last 20 kB are enough to explain a failure.
    state.output = (state.output + d).slice(-20_000);
  };
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  state.child = child;
  return child;
}

async function halt(state: Restartable, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  const child = state.child;
  state.child = undefined;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  // A paused server must run to handle the signal.
  signalTree(child, 'SIGCONT');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function waitFor(what: string, probe: () => Promise<boolean>, state: Restartable, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    const c = state.child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) throw new Error(`${what} exited while starting:\n${state.output}`);
    if (Date.now() > until) throw new Error(`${what} did not become ready in ${timeoutMs} ms:\n${state.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A private PostgreSQL server. */
export interface PrivatePostgres {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (default database `postgres`; trust auth). */
  url(database?: string): string;
  /** Starts the server again (same port, same data directory); resolves once it accepts connections. */
  start(): Promise<void>;
  /**
   * Stops the server: `fast` (SIGINT: clients disconnected, open transactions rolled back, a clean
   * shutdown) or `immediate` (SIGQUIT: no shutdown checkpoint; crash recovery at the next start).
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /**
   * Freezes the server and every backend (SIGSTOP to each of its processes): connections stay open,
   * nothing answers, new connections are accepted by the kernel and never served; a hung database.
   */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  /** The server's recent log output (for failure messages). */
  output(): string;
  /** Stops the server and removes its files. */
  destroy(): Promise<void>;
}

/** Creates a cluster in a temporary directory and starts it on a free port. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const missing = privateServicesMissing('postgres');
  if (missing !== undefined) throw new Error(`cannot start a private PostgreSQL: ${missing}`);
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  const root = mkdtempSync(join(tmpdir(), 'warden-pg-'));
  if (user !== undefined) chownSync(root, user.uid, user.gid);
  const data = join(root, 'data');
  const init = spawnSync(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions'], {
    encoding: 'utf8',
    timeout: 60_000,
    ...(user !== undefined ? { uid: user.uid, gid: user.gid } : {}),
  });
  if (init.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.signal}): ${init.stderr}${init.stdout}`);
  }
  const port = await freePort();
  const state: Restartable = { child: undefined, output: '' };
  const url = (database = 'postgres'): string => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const args = ['-D', data, '-p', String(port), '-k', root, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=50', '-c', 'shared_buffers=16MB'];
  const start = async (): Promise<void> => {
    if (state.child !== undefined) return;
    launch(state, join(PG_BIN, 'postgres'), args, user);
    await waitFor(
      'private PostgreSQL',
      async () => {
        const c = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 1000 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('select 1');
          return true;
        } finally {
          await c.end().catch(() => undefined);
        }
      },
      state,
      30_000,
    );
  };
  await start().catch((err: unknown) => {
    rmSync(root, { recursive: true, force: true });
    throw err;
  });
  return {
    port,
    url,
    start,
    stop: (mode = 'fast') => halt(state, mode === 'fast' ? 'SIGINT' : 'SIGQUIT'),
    pause: () => signalTree(state.child, 'SIGSTOP'),
    resume: () => signalTree(state.child, 'SIGCONT'),
    output: () => state.output,
    async destroy() {
      await halt(state, 'SIGQUIT');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A private NATS server with JetStream. */
export interface PrivateNats {
  readonly port: number;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** Starts the server again (same port, same JetStream store); resolves once it serves JetStream. */
  start(): Promise<void>;
  /** Stops the server (SIGTERM: a clean shutdown; `kill`: SIGKILL). */
  stop(how?: 'term' | 'kill'): Promise<void>;
  output(): string;
  /** Stops the server and removes its store. */
  destroy(): Promise<void>;
}

/** Starts `nats-server -js` on a free port with a store in a temporary directory. */
export async function startPrivateNats(): Promise<PrivateNats> {
  const missing = privateServicesMissing('nats');
  if (missing !== undefined) throw new Error(`cannot start a private NATS server: ${missing}`);
  const root = mkdtempSync(join(tmpdir(), 'warden-nats-'));
  const port = await freePort();
  const monitor = await freePort();
  const state: Restartable = { child: undefined, output: '' };
  const args = ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-js', '-sd', join(root, 'store')];
  const start = async (): Promise<void> => {
    if (state.child !== undefined) return;
    launch(state, NATS_SERVER, args, undefined);
    // Ready once the monitoring endpoint says JetStream is up (its store recovered).
    await waitFor(
      'private NATS server',
      async () => {
        const res = await fetch(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`, { signal: AbortSignal.timeout(1000) });
        return res.ok;
      },
      state,
      30_000,
    );
  };
  await start().catch((err: unknown) => {
    rmSync(root, { recursive: true, force: true });
    throw err;
  });
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    start,
    stop: (how = 'term') => halt(state, how === 'term' ? 'SIGTERM' : 'SIGKILL'),
    output: () => state.output,
    async destroy() {
      await halt(state, 'SIGKILL');
      rmSync(root, { recursive: true, force: true });
    },
  };
}
