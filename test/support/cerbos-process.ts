/**
 * Runs the real Cerbos 0.55 binary for the differential test: `cerbos compile` on a directory and
 * a disk-store `cerbos server` on 127.0.0.1 with free ports, health-checked and stopped with
 * bounded waits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from './conformance.js';

export const cerbosBin = join(repoRoot, 'node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64');

function ensureExecutable(): void {
  try {
    chmodSync(cerbosBin, 0o755);
  } catch {
    /* read-only install: assume already executable */
  }
}

const childEnv = (): NodeJS.ProcessEnv => ({ ...process.env, CERBOS_NO_TELEMETRY: '1' });

/** `cerbos compile --skip-tests -o json DIR`: ok plus the raw output. */
export function cerbosCompile(dir: string, timeoutMs = 20_000): Promise<{ ok: boolean; output: string }> {
  ensureExecutable();
  return new Promise((resolve, reject) => {
    const child = spawn(cerbosBin, ['compile', '--skip-tests', '--no-color', '-o', 'json', dir], { env: childEnv() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cerbos compile timed out on ${dir}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, output: out });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface CerbosServer {
  url: string;
  /** `127.0.0.1:<port>` of its gRPC listener. */
  grpcAddr: string;
  log: () => string;
  stop: () => Promise<void>;
}

/** Starts `cerbos server` on a disk store and waits for `/_cerbos/health`. */
export async function startCerbos(opts: { storeDir: string; workDir: string; globals: Record<string, unknown>; timeoutMs?: number; config?: Record<string, unknown> }): Promise<CerbosServer> {
  ensureExecutable();
  const httpPort = await freePort();
  let grpcPort = await freePort();
  while (grpcPort === httpPort) grpcPort = await freePort();
  const config = {
    server: { httpListenAddr: `127.0.0.1:${httpPort}`, grpcListenAddr: `127.0.0.1:${grpcPort}` },
    storage: { driver: 'disk', disk: { directory: opts.storeDir, watchForChanges: false } },
    engine: { globals: opts.globals, defaultPolicyVersion: 'default' },
    audit: { enabled: false },
    telemetry: { disabled: true },
    ...opts.config,
  };
  const configPath = join(opts.workDir, '.cerbos.yaml');
  writeFileSync(configPath, stringify(config));
  const child: ChildProcess = spawn(cerbosBin, ['server', `--config=${configPath}`, '--log-level=warn'], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));

  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const t = new Promise<void>((resolve) => setTimeout(resolve, 3000));
    await Promise.race([exitPromise, t]);
    if (!exited) {
      child.kill('SIGKILL');
      await Promise.race([exitPromise, new Promise<void>((resolve) => setTimeout(resolve, 2000))]);
    }
  };

  const url = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (exited) throw new Error(`cerbos server exited during startup:\n${log}`);
    try {
      const res = await fetch(`${url}/_cerbos/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`cerbos server did not become healthy:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, grpcAddr: `127.0.0.1:${grpcPort}`, log: () => log, stop };
}
