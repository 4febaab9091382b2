// The three request shapes measured by bench/run.mjs and bench/engine.bench.mjs, built from the
// principals and resources of the shipped policies/tests/*_test.yaml fixtures (kinds `tool`,
// `model` and `mcp_tool`), so every request walks real rules: derived roles, imported variables
// and constants, a scoped policy, outputs on DENY rules.

/** A gateway agent with everything the tool, model and mcp_tool policies look at. */
const supportBot = {
  id: 'support-bot',
  roles: ['agent'],
  attr: {
    tenant: 'acme',
    allowedTools: ['search_docs', 'crm_update'],
    scopes: ['model:invoke', 'tool:invoke'],
    mcpServers: ['github'],
    sourceIp: '10.4.2.17',
  },
};

const alice = { id: 'alice', roles: ['user'], attr: { tenant: 'acme', plan: 'team', groups: ['eng'] } };

const erin = {
  id: 'erin',
  roles: ['user'],
  attr: { tenant: 'acme', plan: 'enterprise', clearances: ['restricted'] },
};

const tool = (id, attr, scope) => ({ kind: 'tool', id, attr, ...(scope === undefined ? {} : { scope }) });
const model = (id, attr) => ({ kind: 'model', id, attr });
const mcp = (id, attr) => ({ kind: 'mcp_tool', id, attr });

/** The ten resources of shape `10x1` (one action each, `invoke` / `call`). */
const mixedResources = [
  { actions: ['invoke'], resource: tool('search_docs', { risk: 'low', tenant: 'acme' }) },
  { actions: ['invoke'], resource: tool('crm_update', { risk: 'medium', tenant: 'acme' }) },
  { actions: ['invoke'], resource: tool('drop_database', { risk: 'critical', tenant: 'acme' }) },
  { actions: ['invoke'], resource: tool('web_scraper', { risk: 'high', tenant: 'acme', owner: 'support-bot' }) },
  { actions: ['invoke'], resource: tool('crm_update', { risk: 'medium', tenant: 'acme' }, 'acme') },
  {
    actions: ['invoke'],
    resource: model('gpt-4o-mini', { provider: 'openai', tier: 'mini', maxTokens: 4096, dataClassification: 'internal', region: 'eu-west-1' }),
  },
  {
    actions: ['invoke'],
    resource: model('gpt-4o-mini', { provider: 'openai', tier: 'mini', maxTokens: 4096, dataClassification: 'internal', region: 'ap-southeast-1' }),
  },
  { actions: ['call'], resource: mcp('github/search_code', { server: 'github', name: 'search_code', readOnly: true }) },
  {
    actions: ['call'],
    resource: mcp('github/merge_pr', { server: 'github', name: 'merge_pr', readOnly: false, writerGroups: ['eng', 'release'] }),
  },
  { actions: ['call'], resource: mcp('pastebin/read', { server: 'pastebin', name: 'read', readOnly: true }) },
];

/**
 * name -> { description, principal, resources: [{ actions, resource }] } in Cerbos's
 * CheckResources request shape (minus requestId).
 */
export const shapes = {
  '1x1': {
    description: 'user `alice` invokes a low-risk `tool` of her tenant (README example): 1 resource x 1 action',
    principal: alice,
    resources: [{ actions: ['invoke'], resource: tool('search_docs', { risk: 'low', tenant: 'acme' }) }],
  },
  '1x5': {
    description: 'enterprise user `erin` asks 5 actions on a restricted frontier `model`: 1 resource x 5 actions',
    principal: erin,
    resources: [
      {
        actions: ['invoke', 'stream', 'embed', 'fine_tune', 'delete'],
        resource: model('claude-opus', {
          provider: 'anthropic',
          tier: 'frontier',
          maxTokens: 4096,
          dataClassification: 'restricted',
          region: 'eu-central-1',
        }),
      },
    ],
  },
  '10x1': {
    description: 'agent `support-bot` batch-checks 5 tools (one in scope `acme`), 2 models, 3 MCP tools: 10 resources x 1 action',
    principal: supportBot,
    resources: mixedResources,
  },
};

/** The HTTP body for a shape (Cerbos `POST /api/check/resources`). */
export function httpBody(name) {
  const s = shapes[name];
  return JSON.stringify({ requestId: `bench-${name}`, principal: s.principal, resources: s.resources });
}

/** Number of actions a shape decides per request. */
export function actionCount(name) {
  return shapes[name].resources.reduce((n, r) => n + r.actions.length, 0);
}

/**
 * PlanResources shapes for bench/plan-api.bench.mjs (Cerbos `POST /api/plan/resources`): the same
 * principals asking which resources of a kind they may act on, resource attributes unknown.
 */
export const planShapes = {
  'tool-user': {
    description: 'user `alice`: which `tool`s may she invoke (1 action)',
    body: { principal: alice, resource: { kind: 'tool' }, action: 'invoke' },
  },
  'model-3': {
    description: 'enterprise user `erin`: which `model`s may she invoke, stream and embed (3 actions)',
    body: { principal: erin, resource: { kind: 'model' }, actions: ['invoke', 'stream', 'embed'] },
  },
  'mcp-agent': {
    description: 'agent `support-bot`: which `mcp_tool`s may it call (1 action)',
    body: { principal: supportBot, resource: { kind: 'mcp_tool' }, action: 'call' },
  },
};

/** The HTTP body for a plan shape. */
export function planBody(name) {
  return JSON.stringify({ requestId: `bench-${name}`, includeMeta: true, ...planShapes[name].body });
}
