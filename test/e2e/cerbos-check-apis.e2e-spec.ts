/**
 * Pins the three Cerbos check APIs of the broker (`POST /api/check/resources`, the deprecated
 * `POST /api/check` (CheckResourceSet) and `POST /api/check_resource_batch`) to what the Cerbos
 * 0.55.0 binary answered for the same requests (captured from it, request limits 5/5): response
 * shapes, and the exact 400 messages with buf.validate violations in Cerbos's order. The Cerbos
 * conformance replay (cerbos-server-conformance.e2e-spec.ts) covers the decisions themselves.
 *
 * Cerbos's protojson errors carry a position (`proto: (line 1:313): unknown field "foo"`) that
 * Warden does not reproduce; those are compared without it. Cerbos's 400 bodies also carry
 * `details` (the buf.validate violations as protobuf Any), which Warden omits.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';

const TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: ["invoke", "describe"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      output:
        when:
          ruleActivated: "'used'"
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
`;

const RESOURCES = '/api/check/resources';
const SET = '/api/check';
const BATCH = '/api/check_resource_batch';

let broker: TestBroker | undefined;
let base: string;

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  delete json['cerbosCallId'];
  return { status: res.status, json };
}

const P = { id: 'alice', roles: ['user'] };
const TOOL = { kind: 'tool', id: 't' };
const set = (o: Record<string, unknown>) => ({ actions: ['invoke'], principal: P, resource: { kind: 'tool', instances: { a: {} } }, ...o });
const batch = (o: Record<string, unknown>) => ({ principal: P, resources: [{ actions: ['invoke'], resource: TOOL }], ...o });

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-e2e-apis-'));
  mkdirSync(join(dir, 'policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'tool.yaml'), TOOL_POLICY);
  writeFileSync(join(dir, 'warden.yaml'), 'server:\n  requestLimits: { maxResourcesPerRequest: 5, maxActionsPerResource: 5 }\n');
  ({ base } = broker = await startTestBroker({ cwd: dir, policyDir: join(dir, 'policies') }));
});

afterAll(async () => {
  await broker?.close();
});

describe('CheckResourceSet (POST /api/check): responses as Cerbos prints them', () => {
  it('answers each instance, with meta, accepting proto field names', async () => {
    const r = await post(SET, {
      request_id: 'r1',
      include_meta: true,
      actions: ['invoke', 'delete'],
      principal: P,
      resource: { kind: 'tool', policy_version: 'default', scope: '', instances: { search: { attr: { owner: 'alice' } }, fetch: {} } },
    });
    expect(r.status).toBe(200);
    const actions = { delete: 'EFFECT_DENY', invoke: 'EFFECT_ALLOW' };
    const meta = { actions: { delete: { matchedPolicy: 'resource.tool.vdefault' }, invoke: { matchedPolicy: 'resource.tool.vdefault' } } };
    expect(r.json).toStrictEqual({
      requestId: 'r1',
      resourceInstances: { fetch: { actions }, search: { actions } },
      meta: { resourceInstances: { fetch: meta, search: meta } },
    });
  });

  it('omits an empty requestId, meta without includeMeta, and has no cerbosCallId or outputs', async () => {
    const res = await fetch(`${base}${SET}`, { method: 'POST', body: JSON.stringify(set({ requestId: '' })) });
    expect(await res.json()).toStrictEqual({ resourceInstances: { a: { actions: { invoke: 'EFFECT_ALLOW' } } } });
  });

  it('keeps `__proto__` as an instance id and an action', async () => {
    const instances: unknown = JSON.parse('{"__proto__": {}, "constructor": {}}');
    const r = await post(SET, set({ includeMeta: true, actions: ['__proto__', 'invoke'], resource: { kind: 'tool', instances } }));
    const actions = '{"actions":{"__proto__":"EFFECT_DENY","invoke":"EFFECT_ALLOW"}}';
    const meta = '{"actions":{"__proto__":{"matchedPolicy":"resource.tool.vdefault"},"invoke":{"matchedPolicy":"resource.tool.vdefault"}}}';
    expect(JSON.stringify(r.json)).toBe(
      `{"resourceInstances":{"__proto__":${actions},"constructor":${actions}},"meta":{"resourceInstances":{"__proto__":${meta},"constructor":${meta}}}}`,
    );
  });
});

describe('CheckResourceBatch (POST /api/check_resource_batch): responses as Cerbos prints them', () => {
  it('answers each entry in order with its resourceId, no meta and no outputs', async () => {
    const r = await post(BATCH, {
      requestId: 'r2',
      principal: P,
      resources: [
        { actions: ['invoke', 'delete'], resource: { kind: 'tool', id: 'search' } },
        { actions: ['describe'], resource: { kind: 'nope', id: 'x', scope: 'a.b' } },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.json).toStrictEqual({
      requestId: 'r2',
      results: [
        { resourceId: 'search', actions: { delete: 'EFFECT_DENY', invoke: 'EFFECT_ALLOW' } },
        { resourceId: 'x', actions: { describe: 'EFFECT_DENY' } },
      ],
    });
  });
});

describe('CheckResources: request-supplied keys that are Object.prototype names', () => {
  it('prints `__proto__` and `toString` actions like any other', async () => {
    const r = await post(RESOURCES, { includeMeta: true, principal: P, resources: [{ actions: ['__proto__', 'toString', 'invoke'], resource: TOOL }] });
    const m = '{"matchedPolicy":"resource.tool.vdefault"}';
    expect(JSON.stringify(r.json)).toBe(
      '{"results":[{"resource":{"id":"t","kind":"tool"},' +
        '"actions":{"__proto__":"EFFECT_DENY","toString":"EFFECT_DENY","invoke":"EFFECT_ALLOW"},' +
        `"meta":{"actions":{"__proto__":${m},"toString":${m},"invoke":${m}}},` +
        '"outputs":[{"src":"resource.tool.vdefault#rule-001","val":"used","action":"invoke"}]}]}',
    );
  });
});

/** [name, path, body, message]: every one a 400 `{code: 3, message}` as the Cerbos 0.55 binary answered. */
const INVALID: [string, string, unknown, string][] = [
  ['set: no actions', SET, set({ actions: undefined }), 'validation error: actions: value is required'],
  ['set: empty actions', SET, set({ actions: [] }), 'validation error: actions: value is required'],
  [
    'set: duplicate and empty actions (unique before items)',
    SET,
    set({ actions: ['a', 'a', ''] }),
    'validation errors:\n - actions: repeated value must contain unique items\n - actions[2]: must be at least 1 characters',
  ],
  [
    'set: violations in field order',
    SET,
    set({ actions: [], principal: { id: '', roles: [] }, resource: { kind: '', instances: {}, scope: '-x', policyVersion: 'a-b' } }),
    'validation errors:\n - actions: value is required\n - principal.id: value is required\n - principal.roles: value is required\n' +
      ' - resource.kind: value is required\n - resource.policy_version: does not match regex pattern `^[\\w]*$`\n' +
      ' - resource.instances: value is required\n' +
      ' - resource.scope: does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`',
  ],
  ['set: no resource', SET, set({ resource: undefined }), 'validation error: resource: value is required'],
  ['set: no principal', SET, set({ principal: undefined, actions: [] }), 'validation errors:\n - actions: value is required\n - principal: value is required'],
  ['set: empty body object', SET, {}, 'validation errors:\n - actions: value is required\n - principal: value is required\n - resource: value is required'],
  [
    'set: bad scope',
    SET,
    set({ resource: { kind: 'k', scope: 'a..b', instances: { a: {} } } }),
    'validation error: resource.scope: does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`',
  ],
  [
    'set: principal violations in field order',
    SET,
    set({ principal: { attr: { '': 1 }, roles: ['', ''], scope: '-', policyVersion: '-' } }),
    'validation errors:\n - principal.id: value is required\n - principal.policy_version: does not match regex pattern `^[\\w]*$`\n' +
      ' - principal.roles: repeated value must contain unique items\n - principal.roles[0]: must be at least 1 characters\n' +
      ' - principal.roles[1]: must be at least 1 characters\n - principal.attr[""]: must be at least 1 characters\n' +
      ' - principal.scope: does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`',
  ],
  ['set: jwt without token', SET, set({ auxData: { jwt: {} } }), 'validation error: aux_data.jwt.token: value is required'],
  [
    'set: too many instances and actions (instances first)',
    SET,
    set({ actions: ['1', '2', '3', '4', '5', '6'], resource: { kind: 'tool', instances: { a: {}, b: {}, c: {}, d: {}, e: {}, f: {} } } }),
    'number of resources in batch (6) exceeds configured limit (5)',
  ],
  ['set: too many actions', SET, set({ actions: ['1', '2', '3', '4', '5', '6', '7', '8'] }), 'number of actions (8) exceeds configured limit (5)'],
  ['set: requestContext is not a field', SET, set({ requestContext: {} }), 'proto: unknown field "requestContext"'],
  ['set: unknown instance field', SET, set({ resource: { kind: 'tool', instances: { a: { foo: 1 } } } }), 'proto: unknown field "foo"'],
  ['batch: no principal', BATCH, batch({ principal: undefined }), 'validation error: principal: value is required'],
  ['batch: no resources', BATCH, batch({ resources: undefined }), 'validation error: resources: value is required'],
  ['batch: entry without actions', BATCH, batch({ resources: [{ resource: TOOL }] }), 'validation error: resources[0].actions: value is required'],
  [
    'batch: violations in field order',
    BATCH,
    batch({ principal: { id: '', roles: [] }, resources: [{ actions: [], resource: { kind: '' } }] }),
    'validation errors:\n - principal.id: value is required\n - principal.roles: value is required\n - resources[0].actions: value is required\n' +
      ' - resources[0].resource.kind: value is required\n - resources[0].resource.id: value is required',
  ],
  [
    'batch: too many resources and actions (resources first)',
    BATCH,
    batch({ resources: [1, 2, 3, 4, 5, 6].map((i) => ({ actions: ['1', '2', '3', '4', '5', '6'], resource: { kind: 'k', id: String(i) } })) }),
    'number of resources in batch (6) exceeds configured limit (5)',
  ],
  ['batch: includeMeta is not a field', BATCH, batch({ includeMeta: true }), 'proto: unknown field "includeMeta"'],
  ['batch: requestContext is not a field', BATCH, batch({ requestContext: {} }), 'proto: unknown field "requestContext"'],
  [
    'resources: entry violations in field order',
    RESOURCES,
    { principal: P, resources: [{ resource: { attr: { '': 1 }, scope: '-', policyVersion: '-' }, actions: ['', ''] }] },
    'validation errors:\n - resources[0].actions: repeated value must contain unique items\n - resources[0].actions[0]: must be at least 1 characters\n' +
      ' - resources[0].actions[1]: must be at least 1 characters\n - resources[0].resource.kind: value is required\n' +
      ' - resources[0].resource.policy_version: does not match regex pattern `^[\\w]*$`\n - resources[0].resource.id: value is required\n' +
      ' - resources[0].resource.attr[""]: must be at least 1 characters\n' +
      ' - resources[0].resource.scope: does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`',
  ],
];

describe('bad input on every check API is a 400 with Cerbos 0.55 message, never an ALLOW', () => {
  it.each(INVALID)('%s', async (_name, path, body, message) => {
    const r = await post(path, body);
    expect(r.status).toBe(400);
    expect(r.json).toStrictEqual({ code: 3, message });
  });

  it('accepts an AttributesMap attribute with an empty key (unlike Resource.attr), as Cerbos does', async () => {
    const r = await post(SET, set({ resource: { kind: 'tool', instances: { a: { attr: { '': 1 } } } } }));
    expect(r.status).toBe(200);
  });
});
