/**
 * The six scenarios of issue 4 end to end on the shipped policies: a real broker, JWT access
 * tokens from a real oidc-provider (verified by the `jwt` resolver), the approval limits and the
 * tool catalogue in Postgres, the projects behind a GraphQL API (graphql-yoga), and `/v1/check`
 * and `/v1/delegations` as a gateway would call them.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { repoRoot } from '../support/conformance.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { startOidcIssuer, type OidcTestIssuer } from '../support/oidc-issuer.js';
import { createTestDatabase, type TestDatabase } from '../support/services.js';
import { startProjectsGraphql, v1Check, writePolicyDir, type HttpUpstream, type V1Answer } from '../support/upstreams.js';

/** What the IdP says about each person (every claim for everyone: policies never meet a missing one). */
const PEOPLE: Record<string, { roles: string[]; plan: string; groups: string[]; residency: string; teamId: string; onCall: boolean }> = {
  dave: { roles: ['user'], plan: 'enterprise', groups: ['research'], residency: 'US', teamId: 'none', onCall: false },
  erin: { roles: ['user'], plan: 'enterprise', groups: ['sales'], residency: 'US', teamId: 'none', onCall: false },
  eva: { roles: ['user'], plan: 'team', groups: ['eng'], residency: 'EU', teamId: 'none', onCall: false },
  alice: { roles: ['user'], plan: 'team', groups: ['eng'], residency: 'US', teamId: 'team-zeus', onCall: false },
  sue: { roles: ['support_agent'], plan: 'team', groups: ['support'], residency: 'US', teamId: 'none', onCall: false },
  ray: { roles: ['support_agent', 'refund_approver'], plan: 'team', groups: ['support'], residency: 'US', teamId: 'none', onCall: false },
  tina: { roles: ['user'], plan: 'team', groups: ['eng'], residency: 'US', teamId: 'team-apollo', onCall: false },
  olga: { roles: ['user'], plan: 'team', groups: ['eng', 'break-glass'], residency: 'US', teamId: 'none', onCall: true },
  otto: { roles: ['user'], plan: 'team', groups: ['eng', 'break-glass'], residency: 'US', teamId: 'none', onCall: false },
};
const PROJECTS: Record<string, { id: string; owningTeamId: string }> = { apollo: { id: 'apollo', owningTeamId: 'team-apollo' }, zeus: { id: 'zeus', owningTeamId: 'team-zeus' } };

let idp: OidcTestIssuer;
let data: TestDatabase;
let gql: HttpUpstream;
let broker: TestBroker;

const tokenOf = (sub: string): Promise<string> => idp.issueJwt({ sub, tenant: 'acme', ...PEOPLE[sub] });
const ask = async (who: string, body: Record<string, unknown>): Promise<V1Answer> => v1Check(broker.base, { subject: { token: await tokenOf(who) }, ...body });
const decisions = (a: V1Answer) => a.json.results.map((r) => r.decision);
const outputReasons = (a: V1Answer) => a.json.results.flatMap((r) => r.outputs ?? []).map((o) => (o.val as { reason?: string }).reason);

beforeAll(async () => {
  idp = await startOidcIssuer();
  data = await createTestDatabase('warden_scenarios');
  const c = new pg.Client({ connectionString: data.url });
  await c.connect();
  await c.query('create table tools (id text primary key, risk text not null, tenant text not null)');
  await c.query(`insert into tools values ('lookup_order', 'medium', 'acme'), ('create_ticket', 'medium', 'acme'), ('issue_refund', 'high', 'acme'), ('edit_project_plan', 'high', 'acme'), ('web_search', 'low', 'acme'), ('crm_lookup', 'medium', 'acme')`);
  await c.query('create table approvers (user_id text primary key, approval_limit integer not null)');
  await c.query(`insert into approvers values ('ray', 500)`);
  await c.end();
  gql = await startProjectsGraphql(PROJECTS, ['owningTeamId']);

  const { dir } = writePolicyDir({}, 'warden-scenarios-');
  const claim = (c: string) => [`principal.attr.${c}`, `result.${c}`];
  writeFileSync(
    join(dir, 'warden.yaml'),
    stringify({
      datasources: {
        idp: { kind: 'oidc', issuer: idp.issuer, allowInsecureHttp: true, audience: idp.jwtAudience },
        db: { kind: 'postgres', url: data.url },
        projects: { kind: 'graphql', url: `${gql.url}/graphql` },
      },
      resolvers: [
        {
          name: 'idp',
          kind: 'jwt',
          datasource: 'idp',
          key: 'subject.token',
          typ: 'at+jwt',
          cache: { ttl: '30s' },
          provides: { 'principal.id': 'result.sub', 'principal.roles': 'result.roles', ...Object.fromEntries(['tenant', 'plan', 'groups', 'residency', 'teamId', 'onCall'].map(claim)) },
        },
        { name: 'approval-limits', kind: 'postgres', datasource: 'db', key: 'principal.id', query: 'select user_id as key, approval_limit from approvers where user_id = any($1)', onError: 'omit', provides: { 'principal.attr.approvalLimit': 'result.approval_limit' } },
        { name: 'tools', kind: 'postgres', datasource: 'db', key: 'resource.id', when: 'R.kind == "tool"', query: 'select id as key, risk, tenant from tools where id = any($1)', provides: { 'resource.attr.risk': 'result.risk', 'resource.attr.tenant': 'result.tenant' } },
        { name: 'projects', kind: 'graphql', datasource: 'projects', key: 'resource.attr.projectId', when: 'R.kind == "tool"', query: 'query($keys: [ID!]!) { projects(ids: $keys) { id owningTeamId } }', resultPath: 'projects', provides: { 'resource.attr.owningTeamId': 'result.owningTeamId' } },
        {
          name: 'models',
          kind: 'static',
          key: 'resource.id',
          when: 'R.kind == "model"',
          data: { 'o3-reasoner': { tier: 'frontier', class: 'frontier-reasoning', region: 'us-east-1' }, 'mini-eu': { tier: 'mini', class: 'chat', region: 'eu-west-1' }, 'mini-us': { tier: 'mini', class: 'chat', region: 'us-east-1' } },
          provides: { 'resource.attr.tier': 'result.tier', 'resource.attr.class': 'result.class', 'resource.attr.region': 'result.region' },
        },
        {
          name: 'mcp',
          kind: 'static',
          key: 'resource.id',
          when: 'R.kind == "mcp_tool"',
          data: { 'database/drop_table': { server: 'database', name: 'drop_table', annotations: { destructiveHint: false } }, 'database/delete_tenant': { server: 'database', name: 'delete_tenant' }, 'github/search_code': { server: 'github', name: 'search_code', readOnly: true } },
          provides: { 'resource.attr': 'result' },
        },
        { name: 'agents', kind: 'static', key: 'agent.id', data: { 'support-bot': { tenant: 'acme', allowedTools: ['lookup_order', 'create_ticket', 'issue_refund'] }, planner: { tenant: 'acme', allowedTools: ['web_search', 'crm_lookup'] }, executor: { tenant: 'acme', allowedTools: ['web_search', 'crm_lookup'] } }, provides: { 'agent.attr': 'result' } },
        { name: 'agent-directory', kind: 'static', key: 'resource.id', when: 'R.kind == "agent"', data: { planner: { tenant: 'acme', status: 'active' }, executor: { tenant: 'acme', status: 'active' } }, provides: { 'resource.attr.tenant': 'result.tenant', 'resource.attr.status': 'result.status' } },
      ],
    }),
  );
  broker = await startTestBroker({ cwd: dir, policyDir: join(repoRoot, 'policies') });
});
afterAll(async () => {
  await broker?.close();
  await gql?.close();
  await idp?.close();
  await data?.drop();
});

describe('the six scenarios on the shipped policies', () => {
  it('1. the frontier reasoning model only for research or platform-ai, only from production', async () => {
    const model = (environment: string) => ({ kind: 'model', id: 'o3-reasoner', attr: { environment } });
    expect(decisions(await ask('dave', { action: 'invoke', resources: [model('production'), model('staging')] }))).toEqual(['ALLOW', 'DENY']);
    const erin = await ask('erin', { action: 'invoke', resource: model('production') });
    expect(decisions(erin)).toEqual(['DENY']);
    expect(outputReasons(erin)).toEqual(['frontier_model_restricted']);
  });

  it('2. EU-resident users and EU-classified data only to EU-hosted endpoints; outputs name where to route', async () => {
    const eva = await ask('eva', { action: 'invoke', resources: [{ kind: 'model', id: 'mini-us' }, { kind: 'model', id: 'mini-eu' }] });
    expect(decisions(eva)).toEqual(['DENY', 'ALLOW']);
    expect(eva.json.results[0]?.outputs).toEqual([expect.objectContaining({ val: { reason: 'eu_data_residency', region: 'us-east-1', allowedRegions: ['eu-west-1', 'eu-central-1'] } })]);
    const alice = await ask('alice', { action: 'invoke', resources: [{ kind: 'model', id: 'mini-us', attr: { dataResidency: 'EU' } }, { kind: 'model', id: 'mini-us' }] });
    expect(decisions(alice)).toEqual(['DENY', 'ALLOW']);
  });

  it('3. the support agent for a support user: lookups and tickets; refunds only for an approver under the limit (Postgres)', async () => {
    const tools = [{ kind: 'tool', id: 'lookup_order' }, { kind: 'tool', id: 'create_ticket' }, { kind: 'tool', id: 'issue_refund', attr: { amount: 200 } }];
    const sue = await ask('sue', { agent: { id: 'support-bot' }, action: 'invoke', resources: tools });
    expect(decisions(sue)).toEqual(['ALLOW', 'ALLOW', 'DENY']);
    expect(sue.json.reasons).toEqual([expect.objectContaining({ code: 'policy_denied', identity: 'subject', resource: { kind: 'tool', id: 'issue_refund' } })]);
    const ray = await ask('ray', { agent: { id: 'support-bot' }, action: 'invoke', resources: [{ kind: 'tool', id: 'issue_refund', attr: { amount: 499 } }, { kind: 'tool', id: 'issue_refund', attr: { amount: 500 } }], explain: true });
    expect(decisions(ray)).toEqual(['ALLOW', 'DENY']);
    expect(ray.json.explain?.items[0]?.attributes['principal.attr.approvalLimit']?.resolver).toBe('approval-limits');
  });

  it('4. edit_project_plan only for the team owning the project (GraphQL)', async () => {
    const plan = (projectId: string) => ({ kind: 'tool', id: 'edit_project_plan', attr: { projectId } });
    const tina = await ask('tina', { action: 'invoke', resources: [plan('apollo'), plan('zeus')], explain: true });
    expect(decisions(tina)).toEqual(['ALLOW', 'DENY']);
    expect(tina.json.explain?.items[0]?.attributes['resource.attr.owningTeamId']?.resolver).toBe('projects');
    expect(decisions(await ask('alice', { action: 'invoke', resources: [plan('apollo'), plan('zeus')] }))).toEqual(['DENY', 'ALLOW']);
  });

  it('5. destructive MCP tools (by name, or unannotated) are listed and called only by on-call break-glass engineers', async () => {
    const tools = [{ kind: 'mcp_tool', id: 'database/drop_table' }, { kind: 'mcp_tool', id: 'database/delete_tenant' }, { kind: 'mcp_tool', id: 'github/search_code' }];
    expect(decisions(await ask('olga', { actions: ['list', 'call'], resources: tools }))).toEqual(['ALLOW', 'ALLOW', 'ALLOW']);
    const otto = await ask('otto', { actions: ['list', 'call'], resources: tools });
    expect(decisions(otto)).toEqual(['DENY', 'DENY', 'ALLOW']);
    expect(new Set(outputReasons(otto))).toEqual(new Set(['destructive_tool_break_glass_only']));
  });

  it('6. a planner delegates to an executor: narrower only, onward only if granted, and revoking stops the executor', async () => {
    const alice = await tokenOf('alice');
    const grant = (ids: string[]) => [{ kind: 'tool', actions: ['invoke'], ids }];
    const post = async (body: unknown) => {
      const res = await fetch(`${broker.base}/v1/delegations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as { token: string; delegationId: string; error?: { message: string } } };
    };
    const root = await post({ subject: { token: alice }, to: 'planner', grants: grant(['web_search']), canSubDelegate: true, maxDepth: 2 });
    expect(root.status, JSON.stringify(root.json)).toBe(201);
    // Not a strict subset of the planner's scope, nor of what alice may do (crm_lookup is medium risk).
    expect((await post({ delegation: root.json.token, agent: { id: 'planner' }, to: 'executor', grants: grant(['web_search', 'crm_lookup']), maxDepth: 2 })).status).toBe(403);
    expect((await post({ subject: { token: alice }, to: 'planner', grants: grant(['crm_lookup']) })).status).toBe(403);
    const child = await post({ delegation: root.json.token, agent: { id: 'planner' }, to: 'executor', grants: grant(['web_search']), maxDepth: 2 });
    expect(child.status, JSON.stringify(child.json)).toBe(201);
    const onward = await post({ delegation: child.json.token, agent: { id: 'executor' }, to: 'planner', grants: grant(['web_search']), maxDepth: 2 });
    expect([onward.status, onward.json.error?.message]).toEqual([403, expect.stringContaining('does not allow onward delegation')]);
    const executor = () => v1Check(broker.base, { subject: { token: alice }, agent: { id: 'executor' }, delegation: child.json.token, action: 'invoke', resources: [{ kind: 'tool', id: 'web_search' }, { kind: 'tool', id: 'crm_lookup' }] });
    expect(decisions(await executor())).toEqual(['ALLOW', 'DENY']);
    const revoke = await fetch(`${broker.base}/v1/delegations/${root.json.delegationId}`, { method: 'DELETE', headers: { authorization: `Bearer ${alice}` } });
    expect(revoke.status).toBe(200);
    const after = await executor();
    expect(decisions(after)).toEqual(['DENY', 'DENY']);
    expect(after.json.reasons.map((r) => r.code)).toEqual(['delegation_revoked', 'delegation_revoked']);
  });
});
