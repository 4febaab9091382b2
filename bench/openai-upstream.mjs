// A small OpenAI-compatible upstream for bench/nginx-auth.bench.mjs, in its own process (so it
// shares no event loop with the load generator or the bench, and its CPU is measured on its own).
// `POST /v1/chat/completions` reads the body and answers a fixed chat completion (200, JSON);
// every other path answers 404. Every request is counted; `GET /_bench/stats` (asked directly on
// the upstream's port by the bench, never through nginx, and not counted) answers the counts and
// the `x-warden-decision-id` / `x-warden-region` headers of the last request that carried them.
//
//   node bench/openai-upstream.mjs <port>      prints `listening <port>` once it listens on 127.0.0.1
//
// It exits on SIGTERM/SIGINT, and by itself when its parent goes away (orphan check every second).
import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node bench/openai-upstream.mjs <port>\n');
  process.exit(2);
}

const ANSWER = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1764288000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the bench upstream.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 },
});
const ANSWER_HEADERS = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) };

const stats = { hits: 0, completions: 0, notFound: 0, withDecisionId: 0, lastDecisionId: null, lastRegion: null };

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/_bench/stats') {
    req.resume();
    const text = JSON.stringify(stats);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    return;
  }
  stats.hits += 1;
  const decision = req.headers['x-warden-decision-id'];
  if (typeof decision === 'string' && decision !== '') {
    stats.withDecisionId += 1;
    stats.lastDecisionId = decision;
    stats.lastRegion = req.headers['x-warden-region'] ?? null;
  }
  if (req.method === 'POST' && req.url === '/v1/chat/completions') {
    stats.completions += 1;
    // Read the whole body, as a real provider would, before answering.
    req.on('data', () => undefined);
    req.on('end', () => res.writeHead(200, ANSWER_HEADERS).end(ANSWER));
    return;
  }
  req.resume();
  res.writeHead(404, { 'content-length': 0 }).end();
});
// Longer than nginx's upstream keepalive_timeout (60 s), so nginx never reuses a connection this
// side has just closed.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));

const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();
