#!/usr/bin/env node
// The floor under bench/enrichment.mjs's fan-out: a bare Node HTTP server doing the same exchange
// as Warden's `/v1/check` there, and nothing else. For each POST it parses the JSON body, sends
// one GET to each upstream given on the command line (node:http, one keep-alive agent, all four at
// once), parses the four JSON answers and answers 200 with them. What it costs over 20 ms is what
// any Node server pays on this machine for this exchange (wake-ups, loopback, HTTP parsing).
//
//   node bench/fanout-proxy.mjs http://127.0.0.1:p1/users/alice http://127.0.0.1:p2/... ...
//
// Listens on 127.0.0.1 (a free port) and writes `listening <port>` on stdout.
import http from 'node:http';

const targets = process.argv.slice(2).map((u) => new URL(u));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function getJson(u) {
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers: { accept: 'application/json' }, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8'));
    Promise.all(targets.map(getJson)).then(
      (answers) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ decision: 'ALLOW', answers })),
      (err) => res.writeHead(502).end(String(err.message)),
    );
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
