#!/usr/bin/env node
// Delegation costs (issue 4), `npm run bench:delegation`:
//
// 1. In process: what verifying a delegation adds to a check at chain depth 1, 3 and 5: the
//    verifier's answer for a token seen before (signature remembered, chain and lifetimes checked
//    again) plus the scope test of the request; and, for scale, one full ES256 signature
//    verification (what verifying every time would cost). Anchor in the same run: the engine's own
//    check of the same one-resource request. Goal: under 50 µs at depth 5 with keys cached.
// 2. Over HTTP: revocation propagation between two broker processes sharing Postgres and Redis.
//    For each of BENCH_REVOCATIONS (100) delegations: mint on A, check on B (ALLOW), revoke on A,
//    and time from sending the revocation to A until B's revocation stream delivers it (B applies
//    it before it streams it; A answers once it is durable); a check on B must then DENY. Anchor in the
//    same run: a bare Redis PUBLISH -> message round trip on the same server. Goal: p99 < 100 ms.
//
// Writes bench/results/delegation.json and the section of bench/README.md between
// <!-- delegation:start --> and <!-- delegation:end --> (BENCH_NO_WRITE=1: print only).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { Bench } from 'tinybench';
import { stringify } from 'yaml';
import { createBenchDatabase, envInt, fmt, gitState, percentile, policyDir, replaceSection, root, sleep, startWarden, stopProcesses } from './harness.mjs';
import { shapes } from './shapes.mjs';

const NO_WRITE = process.env.BENCH_NO_WRITE === '1';
const TIME_MS = envInt('BENCH_DELEGATION_TIME_MS', 1500);
const REVOCATIONS = envInt('BENCH_REVOCATIONS', 100);
const REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
const GOAL_VERIFY_US = 50;
const GOAL_PROPAGATION_P99_MS = 100;
const log = (m) => process.stderr.write(`bench:delegation: ${m}\n`);

const built = spawnSync(process.execPath, [join(root, 'scripts/ensure-built.mjs')], { cwd: root, stdio: 'inherit', timeout: 300_000 });
if (built.status !== 0) throw new Error('scripts/ensure-built.mjs failed');
const dist = join(root, 'dist/apps/broker');
const D = await import(pathToFileURL(join(dist, 'libs/delegation/src/index.js')).href);
const { compilePolicies, createEngine } = await import(pathToFileURL(join(dist, 'libs/decision/src/index.js')).href);
const { readPolicyDir } = await import(pathToFileURL(join(dist, 'apps/broker/src/policy-source/read-policy-dir.js')).href);
const { jwtVerify, createLocalJWKSet } = await import('jose');

// ---------------------------------------------------------------------------------------------
// 1. In process

async function inProcess() {
  const source = readPolicyDir(policyDir);
  const { policySet } = compilePolicies(source.policies, { schemas: source.schemas });
  const engine = createEngine(policySet, {});
  const s = shapes['1x1'];
  const input = { requestId: 'bench', principal: s.principal, resource: s.resources[0].resource, actions: s.resources[0].actions };
  const request = { kind: input.resource.kind, id: input.resource.id, action: input.actions[0], attr: input.resource.attr };
  const grant = { kind: input.resource.kind, actions: ['*'] };
  const issuer = 'http://127.0.0.1:3594';
  const ring = await D.loadDelegationKeys([await D.generateDelegationKey('ES256')], issuer);
  const now = Date.now();
  const tokens = {};
  let chain = D.extendChain({ subject: s.principal.id }, { id: 'd1', to: 'agent-1', grants: [grant], canSubDelegate: true, maxDepth: 5, ttlSeconds: 3600 }, now);
  for (let depth = 1; depth <= 5; depth++) {
    if (depth > 1) chain = D.extendChain({ chain }, { id: `d${depth}`, to: `agent-${depth}`, grants: [grant], canSubDelegate: true, maxDepth: 5, ttlSeconds: 3600 }, now);
    if ([1, 3, 5].includes(depth)) tokens[depth] = { token: await D.signDelegation(chain, ring.signer), bytes: 0 };
  }
  for (const t of Object.values(tokens)) t.bytes = Buffer.byteLength(t.token);
  const verifier = D.createDelegationVerifier({ issuer, jwks: ring.jwks });
  for (const { token } of Object.values(tokens)) await verifier.verify(token, Date.now());
  const keys = createLocalJWKSet(ring.jwks);
  const bench = new Bench({ time: TIME_MS, warmupTime: 300 });
  bench.add('anchor: engine check (1 resource, 1 action)', () => {
    engine.check([input], { now: new Date(), includeEffectiveDerivedRoles: false });
  });
  for (const [depth, { token }] of Object.entries(tokens)) {
    bench.add(`verify, signature remembered, depth ${depth}`, () => {
      const c = verifier.verify(token, Date.now());
      if (c instanceof Promise || !D.chainAllows(c, request)) throw new Error('not verified synchronously');
    });
  }
  for (const [depth, { token }] of Object.entries(tokens)) {
    bench.add(`full ES256 signature verification, depth ${depth}`, async () => {
      await jwtVerify(token, keys, { issuer, typ: D.DELEGATION_TOKEN_TYPE });
    });
  }
  await bench.run();
  return bench.tasks.map((t) => ({ name: t.name, usPerOp: t.result.latency.mean * 1000, p99Us: t.result.latency.p99 * 1000, samples: t.result.latency.samples.length, tokenBytes: Object.entries(tokens).find(([d]) => t.name.endsWith(`depth ${d}`))?.[1].bytes }));
}

// ---------------------------------------------------------------------------------------------
// 2. Revocation propagation between two processes

const GATEWAY_KEY = `bench-gateway-${process.pid}-0123456789`;

async function redisAnchor(n) {
  const pub = new Redis(REDIS_URL);
  const sub = new Redis(REDIS_URL);
  const channel = `bench:anchor:${process.pid}`;
  await sub.subscribe(channel);
  const times = [];
  for (let i = 0; i < n; i++) {
    const got = new Promise((resolve) => sub.once('message', resolve));
    const t0 = performance.now();
    await pub.publish(channel, String(i));
    await got;
    times.push(performance.now() - t0);
    await sleep(5);
  }
  pub.disconnect();
  sub.disconnect();
  return times;
}

async function post(url, path, body, headers = {}) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function propagation(children) {
  const db = await createBenchDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-delegation-'));
  const config = join(dir, 'warden.yaml');
  writeFileSync(
    config,
    stringify({
      gateways: [{ name: 'bench', apiKey: GATEWAY_KEY }],
      // The agent's attributes are those of the shapes' agent principal (support-bot).
      // and, as the target of a delegation (the shipped agent policy wants the same tenant), its tenant.
      resolvers: [
        { name: 'agents', kind: 'static', key: 'agent.id', data: { 'bench-agent': shapes['10x1'].principal.attr }, provides: { 'agent.attr': 'result' } },
        { name: 'agent-directory', kind: 'static', key: 'resource.id', when: 'R.kind == "agent"', data: { 'bench-agent': { tenant: 'acme', status: 'active' } }, provides: { 'resource.attr.tenant': 'result.tenant', 'resource.attr.status': 'result.status' } },
      ],
      delegation: { revocationPoll: '10s' },
    }),
  );
  const extraPids = new Set();
  try {
    const a = await startWarden({ children, name: 'warden-a', cwd: dir, workers: 1, databaseUrl: db.url, redisUrl: REDIS_URL, config });
    const b = await startWarden({ children, name: 'warden-b', cwd: dir, workers: 1, databaseUrl: db.url, redisUrl: REDIS_URL, config });
    const s = shapes['1x1'];
    const resource = s.resources[0].resource;
    const gw = { 'x-warden-api-key': GATEWAY_KEY };
    // B's revocation stream: seq -> arrival time.
    const arrivals = new Map();
    const controller = new AbortController();
    const stream = await fetch(`${b.url}/v1/revocations/stream`, { headers: gw, signal: controller.signal });
    const reader = stream.body.getReader();
    let buffer = '';
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ done: true }));
        if (done) return;
        const at = performance.now();
        buffer += new TextDecoder().decode(value);
        for (const m of buffer.matchAll(/data: (\{[^\n]*\})\n/g)) arrivals.set(JSON.parse(m[1]).id, at);
        buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
      }
    })();
    const times = [];
    for (let i = 0; i < REVOCATIONS; i++) {
      const minted = await post(a.url, '/v1/delegations', { subject: { id: s.principal.id, roles: s.principal.roles, attr: s.principal.attr }, to: 'bench-agent', grants: [{ kind: resource.kind, actions: ['*'] }] }, gw);
      if (minted.status !== 201) throw new Error(`mint failed: ${JSON.stringify(minted.json)}`);
      const body = { subject: { id: s.principal.id, roles: s.principal.roles, attr: s.principal.attr }, agent: { id: 'bench-agent' }, delegation: minted.json.token, action: 'invoke', resource };
      const before = await post(b.url, '/v1/check', body, gw);
      if (before.json.decision !== 'ALLOW') throw new Error(`check before revocation: ${JSON.stringify(before.json)}`);
      const t0 = performance.now();
      const res = await fetch(`${a.url}/v1/delegations/${minted.json.delegationId}`, { method: 'DELETE', headers: gw });
      if (res.status !== 200) throw new Error(`revoke failed: ${res.status} ${await res.text()}`);
      const id = minted.json.delegationId;
      const deadline = Date.now() + 5000;
      while (!arrivals.has(id) && Date.now() < deadline) await sleep(0.2);
      if (!arrivals.has(id)) throw new Error(`revocation ${id} never reached B`);
      times.push(arrivals.get(id) - t0);
      const after = await post(b.url, '/v1/check', body, gw);
      if (after.json.decision !== 'DENY' || after.json.reasons[0]?.code !== 'delegation_revoked') throw new Error(`check after revocation: ${JSON.stringify(after.json)}`);
    }
    controller.abort();
    await pump;
    return times;
  } finally {
    await stopProcesses(children, extraPids);
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function summary(times) {
  return { n: times.length, p50Ms: percentile(times, 50), p90Ms: percentile(times, 90), p99Ms: percentile(times, 99), maxMs: Math.max(...times) };
}

async function main() {
  const children = new Set();
  const watchdog = setTimeout(() => {
    log('watchdog: giving up after 10 minutes');
    void stopProcesses(children, new Set()).finally(() => process.exit(1));
  }, 600_000);
  watchdog.unref();
  log('1. in process');
  const tasks = await inProcess();
  for (const t of tasks) log(`${t.name}: ${fmt(t.usPerOp, 2)} µs`);
  log('2. revocation propagation (two brokers, Postgres + Redis)');
  const anchor = summary(await redisAnchor(REVOCATIONS));
  const prop = summary(await propagation(children));
  log(`propagation p50 ${fmt(prop.p50Ms, 2)} ms, p99 ${fmt(prop.p99Ms, 2)} ms; bare Redis pub/sub p50 ${fmt(anchor.p50Ms, 2)} ms, p99 ${fmt(anchor.p99Ms, 2)} ms`);
  const git = gitState();
  const anchorUs = tasks[0].usPerOp;
  const depth5 = tasks.find((t) => t.name === 'verify, signature remembered, depth 5');
  const res = { date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, nproc: cpus().length, node: process.version }, git, tasks, propagation: prop, redisAnchor: anchor, goals: { verifyDepth5Us: GOAL_VERIFY_US, propagationP99Ms: GOAL_PROPAGATION_P99_MS } };
  const L = [];
  L.push(`Measured ${res.date} on ${res.machine.cpu} (nproc ${res.machine.nproc}), Node ${res.machine.node}; Warden code at ${git.head}${git.changedFilesInAppsLibsPolicies > 0 ? ` + ${git.changedFilesInAppsLibsPolicies} uncommitted file(s) in apps/libs/policies` : ''}. Reproduce: \`npm run bench:delegation\`.`);
  L.push('');
  L.push(`**1. Verification per check** (in process, tinybench, ${TIME_MS} ms per task; the anchor is the engine's check of the \`1x1\` request in the same run):`);
  L.push('');
  L.push('| task | µs / op | p99 µs | × anchor | token bytes |');
  L.push('|---|--:|--:|--:|--:|');
  for (const t of tasks) L.push(`| ${t.name} | ${fmt(t.usPerOp, 2)} | ${fmt(t.p99Us, 2)} | ${fmt(t.usPerOp / anchorUs, 2)} | ${t.tokenBytes ?? '–'} |`);
  L.push('');
  L.push(`Goal: under ${GOAL_VERIFY_US} µs at depth 5 with keys cached: ${fmt(depth5.usPerOp, 2)} µs, **${depth5.usPerOp < GOAL_VERIFY_US ? 'met' : 'missed'}**. A token's signature is verified once (first use) and remembered until it expires; every check then re-checks the chain (each hop alive, linked, attenuated, depth) and the scope, which is what "signature remembered" measures.`);
  L.push('');
  L.push(`**2. Revocation propagation** between two broker processes (1 worker each) sharing Postgres and Redis, ${prop.n} revocations, from sending \`DELETE /v1/delegations/{id}\` to A (which stores it in Postgres, publishes it and answers) to B's revocation stream event (B applies a revocation before it streams it; a check right after must DENY with \`delegation_revoked\`, and did every time). Anchor in the same run: bare Redis PUBLISH → message on the same server.`);
  L.push('');
  L.push('| measure | p50 ms | p90 ms | p99 ms | max ms |');
  L.push('|---|--:|--:|--:|--:|');
  L.push(`| revocation on A → applied on B | ${fmt(prop.p50Ms, 2)} | ${fmt(prop.p90Ms, 2)} | ${fmt(prop.p99Ms, 2)} | ${fmt(prop.maxMs, 2)} |`);
  L.push(`| anchor: Redis PUBLISH → message | ${fmt(anchor.p50Ms, 2)} | ${fmt(anchor.p90Ms, 2)} | ${fmt(anchor.p99Ms, 2)} | ${fmt(anchor.maxMs, 2)} |`);
  L.push('');
  L.push(`Goal: p99 under ${GOAL_PROPAGATION_P99_MS} ms: **${prop.p99Ms < GOAL_PROPAGATION_P99_MS ? 'met' : 'missed'}**.`);
  const section = L.join('\n');
  if (NO_WRITE) {
    console.log(section);
    return;
  }
  writeFileSync(join(root, 'bench/results/delegation.json'), `${JSON.stringify(res, null, 2)}\n`);
  replaceSection(join(root, 'bench/README.md'), '<!-- delegation:start -->', '<!-- delegation:end -->', section, log);
  log('wrote bench/results/delegation.json and bench/README.md');
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`error: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
