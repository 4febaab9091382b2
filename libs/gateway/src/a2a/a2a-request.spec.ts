/**
 * A2A requests as the real `@a2a-js/sdk` client sends them (protocol 1.0, and 0.3 through its
 * compatibility layer) to an agent served on 127.0.0.1, captured and parsed into checks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { parseA2aRequest } from './a2a-request.js';

/** An agent that answers every JSON-RPC call with an error and keeps the request bodies. */
function captureAgent(protocol: '1.0' | '0.3') {
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      res.setHeader('content-type', 'application/json');
      const common = { name: 'refunder', description: 'issues refunds', version: '1.0.0', capabilities: {}, defaultInputModes: ['text/plain'], defaultOutputModes: ['text/plain'], skills: [{ id: 'refund', name: 'refund', description: 'refunds', tags: [] }] };
      if (req.method === 'GET') {
        const card = protocol === '1.0' ? { ...common, supportedInterfaces: [{ url: `${base}/rpc`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' }] } : { ...common, url: `${base}/rpc`, protocolVersion: '0.3.0', preferredTransport: 'JSONRPC' };
        res.end(JSON.stringify(card));
        return;
      }
      const rpc = JSON.parse(text) as { id: unknown };
      bodies.push(rpc);
      res.end(JSON.stringify({ jsonrpc: '2.0', id: rpc.id, error: { code: -32603, message: 'captured' } }));
    });
  });
  return { server, bodies, base: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const attempt = async (p: Promise<unknown>): Promise<void> => {
  await p.catch(() => undefined);
};

describe.each(['1.0', '0.3'] as const)('A2A protocol %s from @a2a-js/sdk', (protocol) => {
  const agent = captureAgent(protocol);
  beforeAll(async () => {
    await new Promise<void>((r) => agent.server.listen(0, '127.0.0.1', r));
    const factory =
      protocol === '1.0'
        ? new ClientFactory()
        : new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { cardResolver: new DefaultAgentCardResolver({ legacyCompat: { enabled: true } }), transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })] }));
    const client = await factory.createFromUrl(agent.base());
    const message = { messageId: 'm-1', contextId: 'ctx-1', taskId: '', role: 1, parts: [{ content: { $case: 'text' as const, value: 'refund order 42' } }], metadata: { taskType: 'refund' } };
    await attempt(client.sendMessage({ message, metadata: {} } as never));
    await attempt(client.sendMessage({ message: { ...message, metadata: undefined }, metadata: { skill: 'lookup' } } as never));
    await attempt(client.sendMessage({ message: { ...message, metadata: undefined }, metadata: {} } as never));
    await attempt(client.getTask({ id: 't-7' } as never));
    await attempt(client.cancelTask({ id: 't-7' } as never));
  });
  afterAll(() => agent.server.close());

  it('captured what the SDK sent', () => {
    expect(agent.bodies).toHaveLength(5);
  });

  it('a message is a check on the target agent with the task type as the action, and no text', () => {
    const check = parseA2aRequest(agent.bodies[0], { target: 'refund-agent' });
    expect(check.resource).toEqual({
      kind: 'agent',
      id: 'refund-agent',
      attr: { method: protocol === '1.0' ? 'SendMessage' : 'message/send', streaming: false, parts: ['text'], contextId: 'ctx-1', messageId: 'm-1' },
    });
    expect(check.action).toBe('refund');
    expect(check.rpc).toMatchObject({ method: protocol === '1.0' ? 'SendMessage' : 'message/send', protocol });
    expect(JSON.stringify(check)).not.toContain('order 42');
  });

  it('takes the task type from the request metadata (skill), else the default', () => {
    expect(parseA2aRequest(agent.bodies[1], { target: 'a' }).action).toBe('lookup');
    expect(parseA2aRequest(agent.bodies[2], { target: 'a' }).action).toBe('message');
    expect(parseA2aRequest(agent.bodies[2], { target: 'a', defaultTaskType: 'chat' }).action).toBe('chat');
  });

  it('maps task methods to fixed actions', () => {
    expect([parseA2aRequest(agent.bodies[3], { target: 'a' }), parseA2aRequest(agent.bodies[4], { target: 'a' })].map((c) => [c.action, c.resource.attr['taskId']])).toEqual([
      ['get_task', 't-7'],
      ['cancel_task', 't-7'],
    ]);
  });
});

describe('refuses what is not an A2A request', () => {
  const codeOf = (body: unknown): string => {
    try {
      parseA2aRequest(body, { target: 'a' });
    } catch (err) {
      expect(err).toBeInstanceOf(WardenError);
      return `${(err as WardenError).code}: ${(err as Error).message}`;
    }
    return 'accepted';
  };
  it.each([
    [[], /JSON-RPC 2.0 request object/],
    [{ jsonrpc: '1.0', method: 'SendMessage' }, /`jsonrpc` must be "2.0"/],
    [{ jsonrpc: '2.0', method: 'tools/call', params: {} }, /unknown method `tools\/call`/],
    [{ jsonrpc: '2.0', method: 'SendMessage', params: {} }, /needs `params.message`/],
    [{ jsonrpc: '2.0', method: 'SendMessage', params: { message: {}, metadata: { taskType: 'drop everything' } } }, /not a valid action name/],
  ])('%j', (body, why) => {
    expect(codeOf(body)).toMatch(/^ERR_REQUEST_INVALID: A2A request: /);
    expect(codeOf(body)).toMatch(why);
  });
});
