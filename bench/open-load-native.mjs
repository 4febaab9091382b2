// The native open-loop generator (bench/open-load.c) behind bench/open-load.mjs's interface: asked
// for with `generator: 'native'` in its options, compiled once per source text with the machine's C
// compiler (`cc`, or CC) into the temporary directory, and given the raw request to send.
//
// Why a C generator: at the fixed loads the Node generator's own event loop was late by about 1 ms
// at p99 (1.0-1.4 ms, `loopDelayP99Ms`), a third to a half of the p99 it was timing (2-4 ms); the C
// generator hands its requests over within 0.3 ms at p99 on the same core (bench/README.md, the
// session of 2026-12-02 12:41). No packaged generator here sends at an even open-loop rate: h2load's
// `--rps` starts every client's timer together (a burst of all clients at once: an echo server's p50
// read 2.0-2.4 ms at 1,800 req/s) and its timing scripts fell behind (743 of 1,800 req/s); wrk is closed
// loop.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDir } from './harness.mjs';

const SOURCE = join(benchDir, 'open-load.c');

/** The compiled generator's path, compiling it first if this source text has not been. */
export function nativeGenerator() {
  const src = readFileSync(SOURCE);
  const bin = join(tmpdir(), `warden-open-load-${createHash('sha256').update(src).digest('hex').slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  const cc = process.env.CC || 'cc';
  const tmp = `${bin}.${process.pid}`;
  const r = spawnSync(cc, ['-O2', '-o', tmp, SOURCE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`open-load: cannot compile ${SOURCE} with \`${cc}\` (${r.error?.message ?? r.stderr.trim()}); the Node generator needs none (generator: 'node', BENCH_LOADGEN=node)`);
  renameSync(tmp, bin); // atomic: a concurrent run finds a whole binary or none
  return bin;
}

/** The raw HTTP/1.1 request the generator repeats: `opts` as bench/open-load.mjs takes them. */
export function rawRequest(opts) {
  const url = new URL(opts.url);
  const body = Buffer.from(opts.body ?? '');
  const headers = { host: url.host, 'content-type': 'application/json', ...(opts.headers ?? {}), 'content-length': String(body.length) };
  const head = `POST ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head), body]);
}

/**
 * Runs the native generator with bench/open-load.mjs's options (and `onStart`, called with the
 * generator's pid once it is spawned); resolves to its result line, parsed (`{ error }` when it
 * failed). Bounded: the generator stops itself 20 s after its schedule,
 * and is killed 30 s after it.
 */
export async function runNative(opts) {
  const url = new URL(opts.url);
  if (url.protocol !== 'http:' || url.hostname !== '127.0.0.1') throw new Error(`open-load (native): only http://127.0.0.1 is supported, not ${url.origin}`);
  const bin = nativeGenerator();
  const dir = mkdtempSync(join(tmpdir(), 'warden-open-load-'));
  try {
    const file = join(dir, 'request');
    writeFileSync(file, rawRequest(opts));
    const warmupS = opts.warmupS ?? 1;
    const child = spawn(bin, [url.port, String(opts.rate), String(opts.duration), String(warmupS), String(opts.connections ?? 64), file], { stdio: ['ignore', 'pipe', 'pipe'] });
    opts.onStart?.(child.pid);
    const timer = setTimeout(() => child.kill('SIGKILL'), (opts.duration + warmupS + 30) * 1000);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, signal) => resolve(c ?? signal));
    }).finally(() => clearTimeout(timer));
    const line = out.trim().split('\n').pop() ?? '';
    if (line === '') throw new Error(`open-load (native) printed nothing (exit ${code}): ${err}`);
    return JSON.parse(line);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
