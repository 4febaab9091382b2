// gRPC load for Envoy's ext_authz (`envoy.service.auth.v3.Authorization/Check`), in its own
// process (spawned by bench/harness.mjs runLoad, as bench/load.mjs is for HTTP) so its CPU use is
// measured apart. Keeps `connections` calls in flight, spread round-robin over `channels` grpc-js
// channels (each its own HTTP/2 connection: node:cluster spreads connections, not calls, over
// Warden's workers), each call re-issued as soon as it completes, for `duration` seconds.
//
// argv[2]: JSON { url: 'host:port', message (a CheckRequest as proto-loader objects),
// connections, channels, duration (s), expect: 'allowed' | 'denied' }. Prints one JSON line with
// the fields bench/load.mjs prints (errors = gRPC errors, mismatches = answers that are not the
// expected verdict), so the same histogram merging and reporting apply.
import { credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLatencyHist, printResult } from './latency-hist.mjs';

const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'apps/broker/src/proto');

const opts = JSON.parse(process.argv[2]);
const def = loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: [PROTO_DIR], keepCase: false, longs: String, enums: Number, defaults: false, oneofs: true });
const Authorization = loadPackageDefinition(def).envoy.service.auth.v3.Authorization;
const method = Authorization.service.Check;
const clients = Array.from({ length: opts.channels }, () => new Authorization(opts.url, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
// The request is encoded once and the answer only scanned (not decoded into objects): the load
// generator's own protobuf work would otherwise dominate its CPU, as a real Envoy encodes in C++.
const encoded = method.requestSerialize(opts.message);
const identity = (b) => b;

function varint(buf, at) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const b = buf[at.i++];
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return v;
    shift += 7;
  }
}

/** True when a CheckResponse has an ok_response (field 3) and no status code but 0 (field 1.1). */
function isAllowed(buf) {
  const at = { i: 0 };
  let ok = false;
  let code = 0;
  while (at.i < buf.length) {
    const tag = varint(buf, at);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire !== 2) return false; // every top-level field of CheckResponse is a message
    const len = varint(buf, at);
    if (field === 3) ok = true;
    if (field === 1) {
      const sub = { i: at.i };
      while (sub.i < at.i + len) {
        const t = varint(buf, sub);
        if (t === 0x08) code = varint(buf, sub);
        else if ((t & 7) === 2) sub.i += varint(buf, sub);
        else varint(buf, sub);
      }
    }
    at.i += len;
  }
  return ok && code === 0;
}

const hist = createLatencyHist();
let errors = 0;
let mismatches = 0;
let running = true;

// Connect every channel before the clock starts.
await Promise.all(clients.map((c) => new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())))));

const cpuStart = process.cpuUsage();
const t0 = process.hrtime.bigint();
let done = 0;

function fire(i) {
  const client = clients[i % clients.length];
  const start = process.hrtime.bigint();
  client.makeUnaryRequest(method.path, identity, identity, encoded, { deadline: Date.now() + 10_000 }, (err, res) => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (err) errors += 1;
    else {
      const allowed = isAllowed(res);
      if (allowed !== (opts.expect === 'allowed')) mismatches += 1;
      hist.record(ms);
    }
    if (running) fire(i);
    else if (++done === opts.connections) finish();
  });
}

function finish() {
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpuStart);
  for (const c of clients) c.close();
  printResult({
    requests: hist.count + errors,
    rps: hist.count / (wallMs / 1000),
    durationS: wallMs / 1000,
    non2xx: 0,
    errors,
    timeouts: 0,
    mismatches,
    hist,
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
    wallS: wallMs / 1000,
  });
}

for (let i = 0; i < opts.connections; i++) fire(i);
setTimeout(() => (running = false), opts.duration * 1000);

// Bounded: never outlive the run by much, whatever happens to the server.
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: 'gRPC load generator watchdog fired' }) + '\n');
  process.exit(1);
}, (opts.duration + 20) * 1000).unref();
