/**
 * The built broker as a separate OS process, the way it runs in production (`node
 * dist/.../main.js`), for tests that need several instances sharing one database and Redis.
 * `ensureBrokerBuilt` runs `scripts/ensure-built.mjs` (a `nest build broker` only when sources
 * changed; one test file at a time); `spawnBroker` starts one instance on a free port of 127.0.0.1 and resolves once it
 * printed its `listening` line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'dist/apps/broker/apps/broker/src/main.js');

/** Held while one test file builds: files running in parallel wait instead of running `nest build` together. */
const BUILD_LOCK = join(ROOT, 'dist', '.ensure-built.lock');

/** Builds the broker when its output is missing or older than its sources; throws on a failed build. */
export function ensureBrokerBuilt(): void {
  mkdirSync(dirname(BUILD_LOCK), { recursive: true });
  const until = Date.now() + 170_000;
  for (;;) {
    try {
      mkdirSync(BUILD_LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a test process that died mid-build.
      if (Date.now() - (statSync(BUILD_LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 300_000) rmSync(BUILD_LOCK, { recursive: true, force: true });
      if (Date.now() > until) throw new Error(`ensure-built: ${BUILD_LOCK} held for too long`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    const res = spawnSync(process.execPath, [join(ROOT, 'scripts/ensure-built.mjs')], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
    if (res.status !== 0) throw new Error(`ensure-built failed (${res.status ?? res.signal}): ${res.stderr}${res.stdout}`);
  } finally {
    rmSync(BUILD_LOCK, { recursive: true, force: true });
  }
}

/** A running broker process. */
export interface BrokerProcess {
  /** `http://127.0.0.1:<port>` as the broker printed it. */
  readonly base: string;
  /** `127.0.0.1:<port>` of its gRPC listener, as the broker printed it. */
  readonly grpcAddr: string;
  readonly process: ChildProcess;
  /** Everything the process wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link spawnBroker}. */
export interface SpawnBrokerOptions {
  readonly cwd: string;
  /** Environment of the broker on top of PATH and HOME (WARDEN_*, DATABASE_URL, REDIS_URL...). */
  readonly env: Readonly<Record<string, string>>;
  /** How long to wait for the `listening` line (default 20 s). */
  readonly startTimeoutMs?: number;
}

/**
 * Starts `node dist/apps/broker/apps/broker/src/main.js` with one worker on 127.0.0.1 (HTTP and
 * gRPC ports chosen by the OS unless `env.WARDEN_HTTP_ADDR` / `env.WARDEN_GRPC_ADDR` say otherwise).
 */
export function spawnBroker(options: SpawnBrokerOptions): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [MAIN], {
    cwd: options.cwd,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      WARDEN_HTTP_ADDR: '127.0.0.1:0',
      WARDEN_GRPC_ADDR: '127.0.0.1:0',
      WARDEN_WORKERS: '1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (graceMs = 5_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise<BrokerProcess>((resolve, reject) => {
    const fail = (why: string): void => {
      void stop(0);
      reject(new Error(`broker process ${why}\nstdout: ${out}\nstderr: ${err}`));
    };
    let listening = false;
    const timer = setTimeout(() => fail('did not print its listening line in time'), options.startTimeoutMs ?? 20_000);
    child.once('exit', (code, signal) => {
      if (listening) return;
      clearTimeout(timer);
      fail(`exited before listening (${code ?? signal})`);
    });
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+) \(gRPC (127\.0\.0\.1:\d+)\)/.exec(out);
      if (m !== null && !listening) {
        listening = true;
        clearTimeout(timer);
        resolve({ base: m[1] as string, grpcAddr: m[2] as string, process: child, stderr: () => err, stop });
      }
    });
  });
}
