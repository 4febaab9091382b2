// One tiny JSON upstream for bench/enrichment.mjs, in its own worker thread (its own event loop,
// so upstreams answering at the same moment do not queue behind each other or behind the bench).
// workerData: { delayMs, body (answer to every path) | byPath ({ path: body }, others 404), counter
// (SharedArrayBuffer: requests received, at index 0) }. Posts { port } once listening on 127.0.0.1;
// the message 'close' stops it.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { delayMs, body, byPath, counter } = workerData;
const count = new Int32Array(counter);

const server = http.createServer((req, res) => {
  Atomics.add(count, 0, 1);
  req.resume();
  setTimeout(() => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const answer = byPath !== undefined ? byPath[path] : body;
    if (answer === undefined) {
      res.writeHead(404).end();
      return;
    }
    const text = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }, delayMs);
});

server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  server.close();
  server.closeAllConnections();
  parentPort.close();
});
