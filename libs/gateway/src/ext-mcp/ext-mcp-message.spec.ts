import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parseExtMcpIdentity, parseExtMcpRequest, parseExtMcpResponse, type ExtMcpMessage } from './ext-mcp-message.js';

const call = (over: Partial<ExtMcpMessage> = {}): ExtMcpMessage => ({
  serviceName: 'support',
  method: 'tools/call',
  metadataContext: { authorization: 'Bearer tok', agent: 'refund-bot' },
  body: { name: 'issue_refund', arguments: { orderId: 'o-1', amount: 120 } },
  ...over,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_REQUEST_INVALID');
    return (err as WardenError).message;
  }
  throw new Error('accepted');
}

describe('parseExtMcpRequest', () => {
  it('reads a tools/call as invoke on mcp_tool <service>/<name> with its arguments', () => {
    const c = parseExtMcpRequest(call());
    expect(c).toEqual({
      kind: 'check',
      method: 'tools/call',
      identity: { token: 'tok', subject: undefined, agent: { id: 'refund-bot' }, delegation: undefined, context: {}, needsTrust: false, present: true },
      action: 'invoke',
      resource: { kind: 'mcp_tool', id: 'support/issue_refund', attr: { server: 'support', name: 'issue_refund', arguments: { orderId: 'o-1', amount: 120 } } },
      what: 'call tool `issue_refund`',
    });
  });

  it('reads prompts/get and resources/read as the MCP proxy names them', () => {
    expect(parseExtMcpRequest(call({ method: 'prompts/get', body: { name: 'summarize_ticket', arguments: { ticket: 'T-1' } } }))).toMatchObject({
      action: 'get',
      resource: { kind: 'mcp_prompt', id: 'support/summarize_ticket', attr: { server: 'support', name: 'summarize_ticket', arguments: { ticket: 'T-1' } } },
    });
    expect(parseExtMcpRequest(call({ method: 'resources/read', body: { uri: 'docs://refund-policy' } }))).toMatchObject({
      action: 'read',
      resource: { kind: 'mcp_resource', id: 'support/docs://refund-policy', attr: { server: 'support', uri: 'docs://refund-policy' } },
    });
  });

  it('passes other methods, even without params or a service name, but still reads the caller', () => {
    for (const method of ['initialize', 'ping', 'tools/list', 'notifications/initialized']) {
      const c = parseExtMcpRequest({ serviceName: '', method, metadataContext: { token: 'tok' }, body: undefined });
      expect(c).toEqual({ kind: 'pass', method, identity: expect.objectContaining({ token: 'tok', present: true }) });
    }
    expect(() => parseExtMcpRequest({ serviceName: '', method: 'ping', metadataContext: { tokn: 'x' }, body: undefined })).toThrow(/`metadata_context.tokn`: unknown key/);
  });

  it('defaults a call without arguments to no arguments', () => {
    expect(parseExtMcpRequest(call({ body: { name: 'search_code' } }))).toMatchObject({ resource: { attr: { arguments: {} } } });
  });

  it('refuses malformed messages, naming the part', () => {
    expect(refusal(() => parseExtMcpRequest(call({ method: undefined })))).toBe('`method` is required (the JSON-RPC method)');
    expect(refusal(() => parseExtMcpRequest(call({ method: '' })))).toBe('`method` is required (the JSON-RPC method)');
    expect(refusal(() => parseExtMcpRequest(call({ method: 42 })))).toBe('`method` is not a JSON-RPC method name');
    expect(refusal(() => parseExtMcpRequest(call({ method: 'tools call' })))).toBe('`method` is not a JSON-RPC method name');
    expect(refusal(() => parseExtMcpRequest(call({ serviceName: '' })))).toBe('`service_name` is required (the MCP backend)');
    expect(refusal(() => parseExtMcpRequest(call({ serviceName: 'a/b' })))).toMatch(/`service_name` must be a backend name without spaces or `\/`/);
    expect(refusal(() => parseExtMcpRequest(call({ body: undefined })))).toBe('`mcp_request` is required for `tools/call` (the JSON-RPC params)');
    expect(refusal(() => parseExtMcpRequest(call({ body: ['x'] })))).toBe('`mcp_request` must be an object (the JSON-RPC params)');
    expect(refusal(() => parseExtMcpRequest(call({ body: { arguments: {} } })))).toMatch(/^`mcp_request.name` must be a non-empty name/);
    expect(refusal(() => parseExtMcpRequest(call({ body: { name: 7 } })))).toMatch(/^`mcp_request.name` must be a non-empty name/);
    expect(refusal(() => parseExtMcpRequest(call({ body: { name: 'x', arguments: 'amount=1' } })))).toBe('`mcp_request.arguments` must be an object');
    expect(refusal(() => parseExtMcpRequest(call({ body: { name: 'x', arguments: [1] } })))).toBe('`mcp_request.arguments` must be an object');
    expect(refusal(() => parseExtMcpRequest(call({ method: 'resources/read', body: { uri: '' } })))).toBe('`mcp_request.uri` must be a URI without spaces');
  });

  it('refuses arguments nested beyond the limit', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 40; i++) deep = deep['x'] = {};
    expect(refusal(() => parseExtMcpRequest(call({ body: { name: 'x', arguments: root } })))).toMatch(/nested more than 32 levels/);
  });
});

describe('parseExtMcpIdentity', () => {
  it('reads a bearer token, a bare token, an agent, its token and a delegation', () => {
    expect(parseExtMcpIdentity({ token: 't1', agent: { id: 'bot', token: 'at' }, delegation: 'dlg', context: { channel: 'slack' } })).toEqual({
      token: 't1',
      subject: undefined,
      agent: { id: 'bot', token: 'at' },
      delegation: 'dlg',
      context: { channel: 'slack' },
      needsTrust: false,
      present: true,
    });
    expect(parseExtMcpIdentity({ authorization: 'bearer t2', token: 't2', agent: 'bot', agentToken: 'at' })).toMatchObject({ token: 't2', agent: { id: 'bot', token: 'at' } });
  });

  it('treats values the gateway evaluated to null as absent; nothing at all is no credential', () => {
    expect(parseExtMcpIdentity({ authorization: null, agent: null })).toMatchObject({ token: undefined, agent: undefined, present: false });
    expect(parseExtMcpIdentity(undefined)).toMatchObject({ present: false, needsTrust: false });
  });

  it('marks a stated subject or agent attributes as needing a trusted gateway', () => {
    expect(parseExtMcpIdentity({ subject: { id: 'alice', roles: ['user'] } })).toMatchObject({ subject: { id: 'alice', roles: ['user'], attr: {} }, needsTrust: true, present: true });
    expect(parseExtMcpIdentity({ token: 't', agent: { id: 'bot', roles: ['agent'] } })).toMatchObject({ needsTrust: true });
    expect(parseExtMcpIdentity({ token: 't', agent: { id: 'bot', attr: { tier: 1 } } })).toMatchObject({ needsTrust: true });
    expect(parseExtMcpIdentity({ token: 't', agent: { id: 'bot', token: 'x' } })).toMatchObject({ needsTrust: false });
  });

  it('refuses malformed or contradictory credentials', () => {
    expect(refusal(() => parseExtMcpIdentity({ authorization: 'Basic dXNlcg==' }))).toBe('`metadata_context.authorization` must be `Bearer <token>`');
    expect(refusal(() => parseExtMcpIdentity({ authorization: 42 }))).toBe('`metadata_context.authorization` must be `Bearer <token>`');
    expect(refusal(() => parseExtMcpIdentity({ authorization: 'Bearer a', token: 'b' }))).toMatch(/name different tokens/);
    expect(refusal(() => parseExtMcpIdentity({ token: '' }))).toMatch(/^`metadata_context.token` must be a token/);
    expect(refusal(() => parseExtMcpIdentity({ token: 'a b' }))).toMatch(/^`metadata_context.token` must be a token/);
    expect(refusal(() => parseExtMcpIdentity({ token: 'x'.repeat(16 * 1024 + 1) }))).toMatch(/^`metadata_context.token` must be a token/);
    expect(refusal(() => parseExtMcpIdentity({ token: 't', subject: { id: 'a', roles: ['user'] } }))).toMatch(/either a token or a `subject`/);
    expect(refusal(() => parseExtMcpIdentity({ subject: 'alice' }))).toMatch(/`metadata_context.subject` must be an object/);
    expect(refusal(() => parseExtMcpIdentity({ subject: { id: 'alice', roles: [] } }))).toMatch(/roles` must be a non-empty list/);
    expect(refusal(() => parseExtMcpIdentity({ subject: { id: 'alice', roles: ['user'], admin: true } }))).toBe('`metadata_context.subject.admin`: unknown field');
    expect(refusal(() => parseExtMcpIdentity({ agent: 12 }))).toMatch(/`metadata_context.agent` must be an agent id/);
    expect(refusal(() => parseExtMcpIdentity({ token: 't', delegation: 'd' }))).toMatch(/`metadata_context.delegation` needs `metadata_context.agent`/);
    expect(refusal(() => parseExtMcpIdentity({ token: 't', agentToken: 'a' }))).toMatch(/`metadata_context.agentToken` needs `metadata_context.agent`/);
    expect(refusal(() => parseExtMcpIdentity({ token: 't', context: 'x' }))).toBe('`metadata_context.context` must be an object');
    expect(refusal(() => parseExtMcpIdentity(['token']))).toBe('`metadata_context` must be an object');
  });
});

describe('parseExtMcpResponse', () => {
  const list = (body: unknown, method = 'tools/list'): ExtMcpMessage => ({ serviceName: 'support', method, metadataContext: { token: 'tok' }, body });

  it('reads a tools/list result as mcp_tool entries with the attributes the MCP proxy gives them', () => {
    const result = { tools: [{ name: 'search_code', description: 'Search', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }, { name: 'drop_table', inputSchema: { type: 'object' } }], nextCursor: 'c1' };
    const c = parseExtMcpResponse(list(result));
    expect(c).toMatchObject({ kind: 'filter', field: 'tools', action: 'invoke', resourceKind: 'mcp_tool', result });
    if (c.kind !== 'filter') throw new Error('not a filter');
    expect(c.entries).toEqual([
      { kind: 'mcp_tool', id: 'support/search_code', attr: { server: 'support', name: 'search_code', description: 'Search', annotations: { readOnlyHint: true } } },
      { kind: 'mcp_tool', id: 'support/drop_table', attr: { server: 'support', name: 'drop_table' } },
    ]);
  });

  it('reads prompts/list and resources/list results', () => {
    const p = parseExtMcpResponse(list({ prompts: [{ name: 'internal_runbook', description: 'On-call' }] }, 'prompts/list'));
    expect(p).toMatchObject({ field: 'prompts', action: 'list', resourceKind: 'mcp_prompt', entries: [{ id: 'support/internal_runbook', attr: { server: 'support', name: 'internal_runbook', description: 'On-call' } }] });
    const r = parseExtMcpResponse(list({ resources: [{ uri: 'secret://api-key', name: 'api-key', mimeType: 'text/plain' }] }, 'resources/list'));
    expect(r).toMatchObject({ field: 'resources', action: 'list', resourceKind: 'mcp_resource', entries: [{ id: 'support/secret://api-key', attr: { server: 'support', uri: 'secret://api-key', name: 'api-key', mimeType: 'text/plain' } }] });
  });

  it('passes other results', () => {
    expect(parseExtMcpResponse(list({ content: [] }, 'tools/call'))).toMatchObject({ kind: 'pass', method: 'tools/call' });
  });

  it('refuses malformed listings', () => {
    expect(refusal(() => parseExtMcpResponse(list(undefined)))).toBe('`mcp_response` is required for `tools/list` (the JSON-RPC result)');
    expect(refusal(() => parseExtMcpResponse(list({ tools: { name: 'x' } })))).toBe('`mcp_response.tools` must be a list');
    expect(refusal(() => parseExtMcpResponse(list({})))).toBe('`mcp_response.tools` must be a list');
    expect(refusal(() => parseExtMcpResponse(list({ tools: ['x'] })))).toBe('`mcp_response.tools[0]` must be an object');
    expect(refusal(() => parseExtMcpResponse(list({ tools: [{ description: 'no name' }] })))).toMatch(/^`mcp_response.tools\[0\].name` must be a non-empty name/);
    expect(refusal(() => parseExtMcpResponse(list({ tools: [{ name: 'x', description: 3 }] })))).toBe('`mcp_response.tools[0].description` must be a string');
    expect(refusal(() => parseExtMcpResponse(list({ tools: [{ name: 'x', annotations: 'ro' }] })))).toBe('`mcp_response.tools[0].annotations` must be an object');
    expect(refusal(() => parseExtMcpResponse(list({ resources: [{ name: 'no uri' }] }, 'resources/list')))).toMatch(/^`mcp_response.resources\[0\].uri` must be a URI/);
    expect(refusal(() => parseExtMcpResponse({ ...list({ tools: [] }), serviceName: undefined }))).toBe('`service_name` is required (the MCP backend)');
  });

  it('refuses a listing naming one entry twice (one decision would cover two descriptions)', () => {
    expect(refusal(() => parseExtMcpResponse(list({ tools: [{ name: 'x', annotations: { readOnlyHint: true } }, { name: 'x' }] })))).toBe('`mcp_response.tools` lists `x` more than once');
  });
});
