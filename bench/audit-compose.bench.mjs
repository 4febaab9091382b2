#!/usr/bin/env node
// What composing a /v1/check decision-log entry costs the event loop, against V8's own serialisers
// on the same data, in one process, alternating: would handing the decision to the writer's thread
// and composing the entry there take work off the event loop?
//
//   npm run bench:audit-compose          (BENCH_ROUNDS, default 7; BENCH_N entries per round, default 100,000; BENCH_ONLY variants)
//
// The entry is the one bench/audit.bench.mjs's brokers write: its body (a trusted gateway stating the
// subject, one resource, one action, no resolvers) as the route holds it, with the decision the
// shipped policies give it (DENY by the agent's policy, one reason). Each measurement runs over a pool
// of 1,000 distinct object graphs (the broker sees a new one per request) and writes into one buffer:
//   compose       V1CheckEntry.compose into BytesJsonOut: what the event loop does today;
//   snapshot      JSON.stringify of the decision's own values the entry is made from (the route's
//                 request, identities, decisions, timings), then TextEncoder.encodeInto the buffer:
//                 the least the event loop would have to serialise to hand the decision to another
//                 thread, which would then parse it and compose the entry;
//   clone         v8.serialize of the same values (what postMessage's structured clone does);
//   capture       V1CheckEntry.capture: what the event loop does where the writer's thread composes
//                 (the ring's default): the request's body copied as the bytes it arrived as, the
//                 decision id, the time and the stage stamps as numbers, each action's effect as a
//                 flag and its matched policy and rule as text, the identities' ids, and the outputs
//                 and reasons as JSON; the other thread parses the body again and composes the entry;
//   decode        decodeCapturedCheck of that record: the writer's thread's work for it (the body
//                 parsed again, the entry composed), which leaves the event loop;
//   stringify     JSON.stringify of the entry's own object, then encodeInto: V8's native serialiser
//                 on exactly the JSON that compose writes (the anchor).
// The medians of the rounds, ns per entry, and their ratios to compose.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serialize } from 'node:v8';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const N = Number(process.env.BENCH_N ?? 100_000);
const POOL = 1000;

const built = process.env.BENCH_SKIP_BUILD === '1' ? { status: 0 } : spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
if (built.status !== 0) {
  process.stderr.write('audit-compose bench: scripts/ensure-built.mjs failed\n');
  process.exit(1);
}
const dist = join(root, 'dist/apps/broker');
const { V1CheckEntry, decodeCapturedCheck } = await import(pathToFileURL(join(dist, 'apps/broker/src/audit/v1-check-entry.js')).href);
const { parseV1CheckRequest } = await import(pathToFileURL(join(dist, 'apps/broker/src/http/v1-check.request.js')).href);
const { BytesJsonOut, TextJsonOut, createInputMask } = await import(pathToFileURL(join(dist, 'libs/audit/src/index.js')).href);

const BODY = '{"subject":{"id":"alice","roles":["user"],"attr":{"tenant":"acme"}},"agent":{"id":"bot"},"action":"invoke","resource":{"kind":"tool","id":"web_search","attr":{"risk":"low","tenant":"acme"}},"context":{"model":"gpt-4o"}}';
const mask = createInputMask([]);

/** One decided check as the route holds it (`AuditedCheck`), each a graph of its own. */
function decided() {
  const raw = Buffer.from(BODY);
  const req = parseV1CheckRequest(JSON.parse(BODY), { maxResourcesPerRequest: 50, maxActionsPerResource: 50 });
  req.raw = raw;
  const [resource] = req.resources;
  const item = { input: { principal: { id: req.subject.id, roles: req.subject.roles, attr: req.subject.attr }, resource } };
  const decisions = [
    {
      effects: { invoke: 'DENY' },
      details: { invoke: { subject: { policy: 'resource.tool.vdefault', rule: 'resource.tool.vdefault#tenant-low-risk' }, agent: { effect: 'EFFECT_DENY', policy: 'resource.tool.vdefault' } } },
      reasons: [{ code: 'policy_denied', message: '`invoke` on tool `web_search` is not allowed for agent `bot`', resource: { kind: 'tool', id: 'web_search' }, actions: ['invoke'], identity: 'agent' }],
      outputs: [],
    },
  ];
  const start = performance.now();
  return { req, decisionId: randomUUID(), policyVersion: 'sha256:19e379f9d1f7d895', enriched: { items: [item] }, decisions, ids: { agent: { id: 'bot' } }, stamps: { start, parsed: start + 0.2, enriched: start + 0.25, evaluated: start + 0.4 } };
}

/** The decision's own values, as a thread composing the entry would need them handed over. */
const snapshotOf = (d, at) => {
  const r = d.req;
  return [d.decisionId, at, d.policyVersion, '/v1/check', r.actions, r.resources, r.context, r.requestId, r.subject, r.agent, r.gateway, d.ids.agent.id, d.enriched.items[0].input.principal.id, d.decisions, d.stamps];
};

const at = Date.now();
const pool = Array.from({ length: POOL }, () => {
  const d = decided();
  const entry = new V1CheckEntry(d, mask, '/v1/check', at);
  const text = new TextJsonOut();
  entry.compose(text);
  // The entry's own object, as JSON.stringify would get it: what compose writes, parsed.
  const [fields, json] = text.text.split('\n');
  const record = Buffer.alloc(4096);
  const end = entry.capture(record, 0, record.length);
  if (end < 0) throw new Error('audit-compose bench: the entry was not captured');
  return { d, entry, fields: JSON.parse(fields), object: JSON.parse(json), captured: record.subarray(0, end), text: text.text };
});
// compose writes exactly what JSON.stringify writes for the entry: the anchor serialises the same text.
{
  const { entry, fields, object } = pool[0];
  const text = new TextJsonOut();
  entry.compose(text);
  if (text.text !== `${JSON.stringify(fields)}\n${JSON.stringify(object)}`) throw new Error('audit-compose bench: compose and JSON.stringify disagree on the entry');
  // And the captured record decodes to the same text.
  if (decodeCapturedCheck(pool[0].captured, mask).toString('utf8') !== pool[0].text) throw new Error('audit-compose bench: the captured record decodes to another entry');
}

const buf = Buffer.alloc(1 << 16);
const out = new BytesJsonOut();
const encoder = new TextEncoder();
let sink = 0;
const runs = {
  compose: () => {
    for (let i = 0; i < N; i++) {
      out.reset(buf, 0, buf.length);
      pool[i % POOL].entry.compose(out);
      sink += out.pos;
    }
  },
  snapshot: () => {
    for (let i = 0; i < N; i++) sink += encoder.encodeInto(JSON.stringify(snapshotOf(pool[i % POOL].d, at)), buf).written;
  },
  capture: () => {
    for (let i = 0; i < N; i++) sink += pool[i % POOL].entry.capture(buf, 0, buf.length);
  },
  decode: () => {
    for (let i = 0; i < N; i++) sink += decodeCapturedCheck(pool[i % POOL].captured, mask).length;
  },
  clone: () => {
    for (let i = 0; i < N; i++) sink += serialize(snapshotOf(pool[i % POOL].d, at)).length;
  },
  stringify: () => {
    for (let i = 0; i < N; i++) {
      const p = pool[i % POOL];
      sink += encoder.encodeInto(`${JSON.stringify(p.fields)}\n${JSON.stringify(p.object)}`, buf).written;
    }
  },
};
// BENCH_ONLY=capture,decode runs only those (e.g. under callgrind, which counts instructions: bench/README.md).
const only = process.env.BENCH_ONLY?.split(',').filter((x) => x !== '');
for (const n of only ?? []) if (!(n in runs)) throw new Error(`BENCH_ONLY: no variant \`${n}\` (${Object.keys(runs).join(', ')})`);
const names = Object.keys(runs).filter((n) => only === undefined || only.includes(n));
const ns = Object.fromEntries(names.map((n) => [n, []]));
for (const n of names) runs[n](); // warm-up: each optimised before any round is timed
for (let r = 0; r < ROUNDS; r++) {
  // The order rotated by one every round.
  for (let k = 0; k < names.length; k++) {
    const n = names[(k + r) % names.length];
    const t0 = process.hrtime.bigint();
    runs[n]();
    ns[n].push(Number(process.hrtime.bigint() - t0) / N);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const m = Object.fromEntries(names.map((n) => [n, median(ns[n])]));
out.reset(buf, 0, buf.length);
pool[0].entry.compose(out);
const bytes = out.pos;
console.log(`audit-compose: ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; ${ROUNDS} rounds x ${N} entries of ${bytes} bytes; median ns per entry (rounds), / compose`);
for (const n of names) console.log(`  ${n.padEnd(10)} ${m[n].toFixed(0).padStart(6)} ns  (${ns[n].map((x) => x.toFixed(0)).join(' / ')})  ${m.compose === undefined ? '' : `${(m[n] / m.compose).toFixed(2)}x`}`);
// The results are used, so no run's work can be dropped as dead code.
if (sink === 0) throw new Error('audit-compose bench: nothing was written');
