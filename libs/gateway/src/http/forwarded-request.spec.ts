import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parseForwardedRequest } from './forwarded-request.js';

const base = { method: 'POST', path: '/v1/chat/completions', host: 'gw.local', headers: { authorization: 'Bearer tok' } };

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

describe('parseForwardedRequest', () => {
  it('reads the model of an OpenAI-style body', () => {
    const c = parseForwardedRequest({ ...base, body: '{"model":"gpt-4o","max_tokens":512,"stream":true}' }, {});
    expect(c).toMatchObject({ token: 'tok', action: 'invoke', resource: { kind: 'model', id: 'gpt-4o', attr: { max_tokens: 512, stream: true, endpoint: '/v1/chat/completions' } } });
    expect(c.context.http).toEqual({ method: 'POST', path: '/v1/chat/completions', host: 'gw.local' });
  });

  it('reads the tool and arguments of an MCP tools/call, and prompts and resources', () => {
    const call = parseForwardedRequest({ ...base, path: '/mcp', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'issue_refund', arguments: { amount: 120 } } }) }, {});
    expect(call).toMatchObject({ action: 'invoke', resource: { kind: 'mcp_tool', id: 'issue_refund', attr: { arguments: { amount: 120 }, server: 'gw.local/mcp' } } });
    const prompt = parseForwardedRequest({ ...base, path: '/mcp', body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'summarise' } }) }, {});
    expect(prompt).toMatchObject({ action: 'get', resource: { kind: 'mcp_prompt', id: 'summarise' } });
    const list = parseForwardedRequest({ ...base, path: '/mcp', body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }) }, {});
    expect(list).toMatchObject({ action: 'tools/list', resource: { kind: 'mcp_server', id: 'gw.local/mcp' } });
  });

  it('reads the called agent and task of an A2A call, the agent id from the route settings', () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 'r1', method: 'message/send', params: { message: { messageId: 'm1', role: 'user', parts: [{ kind: 'text', text: 'hi' }] }, metadata: { taskType: 'refund' } } });
    const c = parseForwardedRequest({ ...base, path: '/a2a', body, settings: { 'warden.id': 'refund-agent' } }, {});
    expect(c).toMatchObject({ action: 'refund', resource: { kind: 'agent', id: 'refund-agent' } });
  });

  it('falls back to the route, or to the route settings, when the body says nothing', () => {
    expect(parseForwardedRequest({ ...base, method: 'GET', path: '/v1/models?x=1' }, {})).toMatchObject({ action: 'get', resource: { kind: 'route', id: 'gw.local/v1/models' } });
    expect(parseForwardedRequest({ ...base, body: 'not json' }, {})).toMatchObject({ action: 'post', resource: { kind: 'route' } });
    expect(parseForwardedRequest({ ...base, settings: { 'warden.kind': 'tool', 'warden.id': 'web_search', 'warden.action': 'invoke' } }, {})).toMatchObject({ action: 'invoke', resource: { kind: 'tool', id: 'web_search' } });
  });

  it('refuses a body that claims to be JSON and is not, naming a body cut short by Envoy', () => {
    const json = { ...base.headers, 'content-type': 'application/json; charset=utf-8' };
    expect(refusal(() => parseForwardedRequest({ ...base, headers: json, body: '{"model":"o3-pro"' }, {}))).toBe('the body is not JSON although `content-type` says it is');
    expect(refusal(() => parseForwardedRequest({ ...base, headers: { ...base.headers, 'content-type': 'application/vnd.api+json' }, body: 'nope' }, {}))).toContain('not JSON');
    expect(refusal(() => parseForwardedRequest({ ...base, headers: { ...json, 'x-envoy-auth-partial-body': 'true' }, body: '{"model":"o3-pro","messages":[{"con' }, {}))).toContain('x-envoy-auth-partial-body');
    // Another content type, or no body: the route decides.
    expect(parseForwardedRequest({ ...base, headers: { ...base.headers, 'content-type': 'text/plain' }, body: '{"model"' }, {})).toMatchObject({ resource: { kind: 'route' } });
    expect(parseForwardedRequest({ ...base, headers: json, body: '' }, {})).toMatchObject({ resource: { kind: 'route' } });
  });

  it('reads the agent and delegation from the configured headers', () => {
    const c = parseForwardedRequest({ ...base, headers: { authorization: 'Bearer tok', 'x-agent': 'planner', 'x-deleg': 'eyJ.x.y' } }, { agentHeader: 'x-agent', delegationHeader: 'x-deleg' });
    expect(c).toMatchObject({ agent: 'planner', delegation: 'eyJ.x.y' });
  });

  it('refuses what could smuggle a second value or is not a request', () => {
    expect(refusal(() => parseForwardedRequest({ ...base, headers: { authorization: 'Bearer a, Bearer b' } }, {}))).toContain('authorization');
    expect(refusal(() => parseForwardedRequest({ ...base, headers: { authorization: 'Basic abc' } }, {}))).toContain('Bearer');
    expect(refusal(() => parseForwardedRequest({ ...base, headers: { ...base.headers, 'x-warden-agent': 'a b' } }, {}))).toContain('x-warden-agent');
    expect(refusal(() => parseForwardedRequest({ ...base, method: 'get\r\nx' }, {}))).toContain('method');
    expect(refusal(() => parseForwardedRequest({ ...base, path: 'no-slash' }, {}))).toContain('path');
    expect(refusal(() => parseForwardedRequest({ ...base, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: [] } }) }, {}))).toContain('arguments');
  });
});
