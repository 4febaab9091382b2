/**
 * nginx (Debian's package) with `auth_request` against Warden's `/v1/ext-authz`, in front of a
 * small OpenAI-compatible upstream, all on 127.0.0.1: allowed calls reach the upstream with
 * Warden's decision id and routing hint; a call without credentials gets 401 and one the policy
 * denies 403, neither reaching the upstream; with Warden stopped nginx fails closed (500). CI
 * installs nginx (.ci/run); the suite says so and skips where it is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { closedPort, readBody, sendJson, startHttpUpstream, writePolicyDir, type HttpUpstream } from '../support/upstreams.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
if (NGINX === undefined) console.warn('skipping the nginx forward-auth e2e: nginx is not installed (.ci/run installs it)');

const ROUTE_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: route
  version: default
  rules:
    - actions: [post]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.id.endsWith("/v1/chat/completions") && P.attr.tenant == "acme"
      output:
        when:
          ruleActivated: '{"region": P.attr.residency == "EU" ? "eu-west-1" : "us-east-1"}'
`;

const CONFIG = `resolvers:
  - name: tokens
    kind: static
    key: subject.token
    data:
      alice-token: { sub: alice, roles: [user], tenant: acme, residency: EU }
      mallory-token: { sub: mallory, roles: [user], tenant: evil, residency: US }
    provides:
      principal.id: result.sub
      principal.roles: result.roles
      principal.attr.tenant: result.tenant
      principal.attr.residency: result.residency
`;

let broker: TestBroker | undefined;
let upstream: HttpUpstream;
let nginxDir: string;
let nginxBase: string;
const seen: Array<Record<string, string | string[] | undefined>> = [];

function nginx(...args: string[]): void {
  const r = spawnSync(NGINX as string, [...args, '-c', join(nginxDir, 'nginx.conf'), '-p', `${nginxDir}/`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`nginx ${args.join(' ')} failed: ${r.stderr}`);
}

async function call(path: string, headers: Record<string, string> = {}, body = '{"model":"gpt-4o-mini","messages":[]}'): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`${nginxBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

describe.runIf(NGINX !== undefined)('nginx auth_request in front of an OpenAI-style upstream, decided by Warden', () => {
  beforeAll(async () => {
    const { dir, policyDir } = writePolicyDir({ 'route.yaml': ROUTE_POLICY }, 'warden-nginx-');
    writeFileSync(join(dir, 'warden.yaml'), CONFIG);
    broker = await startTestBroker({ cwd: dir, policyDir });
    upstream = await startHttpUpstream((req, res) => {
      seen.push({ ...req.headers });
      void readBody(req).then(() => sendJson(res, 200, { id: 'chatcmpl-1', object: 'chat.completion', choices: [] }));
    });
    const port = await closedPort();
    nginxBase = `http://127.0.0.1:${port}`;
    nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir, { recursive: true });
    const authz = new URL(broker.base);
    writeFileSync(
      join(nginxDir, 'nginx.conf'),
      `worker_processes 1; pid ${nginxDir}/nginx.pid; error_log ${nginxDir}/error.log warn;
events { worker_connections 64; }
http {
  access_log ${nginxDir}/access.log;
  client_body_temp_path ${nginxDir}/b; proxy_temp_path ${nginxDir}/p; fastcgi_temp_path ${nginxDir}/f; uwsgi_temp_path ${nginxDir}/u; scgi_temp_path ${nginxDir}/s;
  server {
    listen 127.0.0.1:${port};
    location = /_warden {
      internal;
      proxy_pass http://127.0.0.1:${authz.port}/v1/ext-authz;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_connect_timeout 1s; proxy_read_timeout 2s;
    }
    location / {
      auth_request /_warden;
      auth_request_set $warden_decision $upstream_http_x_warden_decision_id;
      auth_request_set $warden_region $upstream_http_x_warden_region;
      proxy_set_header X-Warden-Decision-Id $warden_decision;
      proxy_set_header X-Warden-Region $warden_region;
      proxy_pass http://127.0.0.1:${upstream.port};
    }
  }
}
`,
    );
    nginx('-t');
    nginx();
  }, 60_000);

  afterAll(async () => {
    if (nginxDir !== undefined && existsSync(join(nginxDir, 'nginx.pid'))) {
      try {
        process.kill(Number(readFileSync(join(nginxDir, 'nginx.pid'), 'utf8').trim()), 'SIGQUIT');
      } catch {
        /* already gone */
      }
    }
    await broker?.close();
    await upstream?.close();
  });

  it('lets an allowed call through with Warden\'s decision id and routing hint', async () => {
    const before = upstream.requests.length;
    const res = await call('/v1/chat/completions', { authorization: 'Bearer alice-token' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ object: 'chat.completion' });
    expect(upstream.requests.length).toBe(before + 1);
    const h = seen[seen.length - 1] ?? {};
    expect(h['x-warden-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(h['x-warden-region']).toBe('eu-west-1');
  });

  it('answers 401 without credentials and 403 when the policy denies; neither reaches the upstream', async () => {
    const before = upstream.requests.length;
    expect((await call('/v1/chat/completions')).status).toBe(401);
    expect((await call('/v1/chat/completions', { authorization: 'Bearer nobody-knows-me' })).status).toBe(401);
    expect((await call('/v1/chat/completions', { authorization: 'Bearer mallory-token' })).status).toBe(403);
    expect((await call('/v1/fine_tuning/jobs', { authorization: 'Bearer alice-token' })).status).toBe(403);
    expect(upstream.requests.length).toBe(before);
  });

  it('never lets a header injection through: a second value in the agent header is refused', async () => {
    const before = upstream.requests.length;
    const res = await call('/v1/chat/completions', { authorization: 'Bearer alice-token', 'x-warden-agent': 'planner, admin' });
    expect(res.status).toBe(500); // Warden answered 400, which auth_request turns into an error
    expect(upstream.requests.length).toBe(before);
  });

  it('fails closed with Warden stopped', async () => {
    await broker?.close();
    broker = undefined;
    const before = upstream.requests.length;
    const res = await call('/v1/chat/completions', { authorization: 'Bearer alice-token' });
    expect(res.status).toBe(500);
    expect(upstream.requests.length).toBe(before);
  });
});
