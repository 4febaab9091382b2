/**
 * The decision-log bench's fixed-load generator in C (bench/open-load.c, run through
 * bench/open-load-native.mjs): it must send at the rate asked whatever the server does (open loop),
 * time each answer from its hand-over, and count what the server answered. Checked against real HTTP
 * servers on 127.0.0.1 in a child process (the generator runs beside this one, so the test's event
 * loop stays free), each answering in a way whose latencies are known in advance.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeGenerator, rawRequest, runNative, type OpenLoadResult } from '../../bench/open-load-native.mjs';

const servers: ChildProcess[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
});

/**
 * Starts `node -e` with an HTTP server whose request handler is `handler` (a function body over
 * `req`, `res` and `n`, the request's number from 1); resolves to its URL.
 */
function server(handler: string): Promise<string> {
  const code = `let n = 0; const h = (req, res) => { ${handler} }; require('node:http').createServer((req, res) => { n += 1; req.resume(); req.on('end', () => h(req, res, n)); }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(`http://127.0.0.1:${d.toString().trim()}/v1/check`));
  });
}

/** Answers recorded above `ms`, from the result's 10 µs buckets. */
function above(r: OpenLoadResult, ms: number): number {
  let n = 0;
  for (let i = 0; i < r.hist.sparse.length; i += 2) if (((r.hist.sparse[i] as number) * r.hist.bucketUs) / 1000 > ms) n += r.hist.sparse[i + 1] as number;
  return n;
}

/** The latency below which `p` of the answers fall (ms). */
function quantile(r: OpenLoadResult, p: number): number {
  let acc = 0;
  for (let i = 0; i < r.hist.sparse.length; i += 2) {
    acc += r.hist.sparse[i + 1] as number;
    if (acc >= p * r.hist.count) return ((r.hist.sparse[i] as number) * r.hist.bucketUs) / 1000;
  }
  return Number.NaN;
}

describe('the native open-loop generator (bench/open-load.c)', () => {
  it('compiles once per source text', () => {
    expect(nativeGenerator()).toBe(nativeGenerator());
  });

  it('sends the request it was given: method, path and headers, and the body in its bytes', async () => {
    // The server answers 200 only for the exact request line and headers, 400 otherwise.
    const url = await server(`res.statusCode = req.method === 'POST' && req.url === '/v1/check' && req.headers['x-warden-api-key'] === 'k1' && req.headers['content-type'] === 'application/json' ? 200 : 400; res.end('{}');`);
    const r = await runNative({ url, body: '{"a":1}', headers: { 'x-warden-api-key': 'k1' }, rate: 200, duration: 1, warmupS: 0.2, connections: 4 });
    expect(r.error).toBeUndefined();
    expect(r.statusCodeStats).toEqual({ 200: { count: 200 } });
    expect(rawRequest({ url, body: '{"a":1}', rate: 1, duration: 1 }).toString()).toContain('content-length: 7\r\n\r\n{"a":1}');
  });

  it('records every answer of the window at the rate asked, and times each from its hand-over', async () => {
    const url = await server(`setTimeout(() => res.end('{"ok":true}'), 5);`);
    const r = await runNative({ url, body: '{}', rate: 400, duration: 1.5, warmupS: 0.5, connections: 16 });
    expect(r.error).toBeUndefined();
    expect(r.requests).toBe(600);
    expect(r.hist.count).toBe(600);
    expect(r.non2xx).toBe(0);
    // Every answer waited for the server's 5 ms timer (which Node may start up to 1 ms before the
    // request is read: its clock is the loop's); none waited for a connection (16 for 2 in flight).
    expect(quantile(r, 0.01)).toBeGreaterThanOrEqual(4);
    expect(quantile(r, 0.5)).toBeLessThan(30);
    expect(r.wallS).toBeGreaterThanOrEqual(2);
    expect(r.wallS).toBeLessThan(3);
  });

  it('keeps sending while the server stalls, so the stall shows in full (open loop)', async () => {
    // The 300th request blocks the server's event loop for 200 ms; requests keep coming meanwhile.
    const url = await server(`if (n === 300) { const t = Date.now(); while (Date.now() - t < 200); } res.end('{}');`);
    const r = await runNative({ url, body: '{}', rate: 500, duration: 2, warmupS: 0.2, connections: 64 });
    expect(r.error).toBeUndefined();
    expect(r.hist.count).toBe(1000);
    expect(r.hist.maxMs).toBeGreaterThanOrEqual(190);
    // 500 req/s x 0.2 s = 100 requests were due during the stall, all sent on free connections:
    // the first half of them waited 100-200 ms (more only if this machine stalls too). A closed-loop
    // generator would have sent none of them during the stall.
    expect(above(r, 100)).toBeGreaterThanOrEqual(40);
    expect(above(r, 100)).toBeLessThanOrEqual(300);
  });

  it("times an answer at the kernel's receipt, not at a late read, and reports how late it was read", async () => {
    // Every answer takes 20 ms; 0.7 s in, the generator is stopped for 300 ms: the answers in
    // flight then reach its sockets while it cannot read them. Timed at their read they would show
    // up to 300 ms; timed at the kernel's stamp they show the server's 20 ms, and the 300 ms is the
    // generator's, reported as its read lag.
    const url = await server(`setTimeout(() => res.end('{}'), 20);`);
    const stops: NodeJS.Timeout[] = [];
    const r = await runNative({
      url,
      body: '{}',
      rate: 200,
      duration: 1.5,
      warmupS: 0.2,
      connections: 64,
      onStart: (pid) => {
        if (pid === undefined) return;
        stops.push(setTimeout(() => process.kill(pid, 'SIGSTOP'), 700));
        stops.push(setTimeout(() => process.kill(pid, 'SIGCONT'), 1000));
      },
    });
    for (const t of stops) clearTimeout(t);
    expect(r.error).toBeUndefined();
    expect(r.hist.count).toBe(300);
    expect(r.stamped).toBeGreaterThanOrEqual(297);
    expect(r.maxReadLagMs).toBeGreaterThanOrEqual(250);
    // The requests due during the stop go out together when it ends: the server answers 60 at once.
    expect(r.hist.maxMs).toBeLessThan(150);
    expect(quantile(r, 0.5)).toBeGreaterThanOrEqual(19);
    expect(r.readLagP99Ms).toBeGreaterThanOrEqual(100);
  });

  it('counts answers that are not 2xx', async () => {
    const url = await server(`res.statusCode = n % 2 === 0 ? 403 : 200; res.end('{}');`);
    const r = await runNative({ url, body: '{}', rate: 200, duration: 1, warmupS: 0, connections: 1 });
    expect(r.error).toBeUndefined();
    expect(r.non2xx).toBe(100);
    expect(r.statusCodeStats).toEqual({ 200: { count: 100 }, 403: { count: 100 } });
  });

  it('opens a connection again when the server closed it after an answer', async () => {
    // Every answer closes its connection (as a keep-alive timeout would, between two requests).
    const url = await server(`res.setHeader('connection', 'close'); res.end('{}');`);
    const r = await runNative({ url, body: '{}', rate: 200, duration: 1, warmupS: 0, connections: 2 });
    expect(r.error).toBeUndefined();
    expect(r.statusCodeStats).toEqual({ 200: { count: 200 } });
  });

  it('reports a server it cannot reach as an error, not as latencies', async () => {
    const url = await server(`res.end('{}');`);
    const port = Number(new URL(url).port);
    servers[0]?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const r = await runNative({ url: `http://127.0.0.1:${port}/v1/check`, body: '{}', rate: 100, duration: 1, connections: 2 });
    expect(r.error).toMatch(/Connection refused|connection closed/);
  });

  it('refuses a server that is not on 127.0.0.1', async () => {
    await expect(runNative({ url: 'http://192.0.2.1:80/v1/check', body: '{}', rate: 1, duration: 1 })).rejects.toThrow(/only http:\/\/127\.0\.0\.1/);
  });
});
