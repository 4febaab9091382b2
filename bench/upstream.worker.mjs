// One tiny JSON upstream for bench/enrichment.mjs, in its own worker thread (its own event loop,
// so upstreams answering at the same moment do not queue behind each other or behind the bench).
// It answers `delayMs` after the request arrived, precisely: Node's timers fire up to a
// millisecond or more late, and four of them waited on at once would measure the timers' jitter
// (their maximum), not the scheduling under test. So a timer wakes it shortly before the deadline
// and Atomics.wait (a sub-millisecond blocking sleep, no spinning) waits out the rest.
// workerData: { delayMs, body (answer to every path) | byPath ({ path: body }, others 404), counter
// (SharedArrayBuffer: requests received, at index 0) }. Posts { port } once listening on 127.0.0.1;
// the message 'close' stops it.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { delayMs, body, byPath, counter } = workerData;
const count = new Int32Array(counter);

const EARLY_MS = 2;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Calls `fn` at `deadline` (performance.now() time). */
function at(deadline, fn) {
  setTimeout(() => {
    const rest = deadline - performance.now();
    if (rest > 0) Atomics.wait(sleeper, 0, 0, rest);
    fn();
  }, Math.max(0, deadline - performance.now() - EARLY_MS));
}

// The answer is prepared when the request arrives, before the wait: after the deadline only the
// write is left, so the answer leaves at the deadline rather than after a cold thread's URL
// parsing and JSON serialisation (which made answers 0.2 to 0.4 ms late at p50, measured with
// timestamps on both sides, and counted that against the broker).
const server = http.createServer((req, res) => {
  const arrived = performance.now();
  Atomics.add(count, 0, 1);
  req.resume();
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const answer = byPath !== undefined ? byPath[path] : body;
  const text = answer === undefined ? undefined : JSON.stringify(answer);
  const headers = text === undefined ? undefined : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  at(arrived + delayMs, () => {
    if (text === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, headers).end(text);
  });
});

server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  server.close();
  server.closeAllConnections();
  parentPort.close();
});
