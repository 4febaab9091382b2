/**
 * A pre-request hook for a Node AI gateway, built on `@warden/client`: before a chat completion is
 * proxied, ask Warden whether this caller (and the agent acting for them) may invoke the model;
 * refuse with the reason otherwise. When Warden is unreachable the client fails closed; the
 * degradation list lets read-only catalogue lookups through (and nothing else).
 *
 * Wire it into your proxy's request pipeline: `const verdict = await wardenPreRequest(req)`.
 */
import { WardenClient } from '@warden/client';

const warden = new WardenClient({
  baseUrl: process.env['WARDEN_URL'] ?? 'http://127.0.0.1:3594',
  timeoutMs: 500,
  degradation: [{ kind: 'tool', id: 'search_docs', action: 'read' }],
});

/** What the gateway knows about an incoming request. */
export interface GatewayRequest {
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: { readonly model?: string; readonly max_tokens?: number };
}

/** Allow (with the headers to pass upstream) or refuse (with a status and a reason safe to show). */
export type Verdict = { allow: true; headers: Record<string, string> } | { allow: false; status: number; reason: string };

export async function wardenPreRequest(req: GatewayRequest): Promise<Verdict> {
  const token = /^Bearer (\S+)$/.exec(req.headers['authorization'] ?? '')?.[1];
  if (token === undefined) return { allow: false, status: 401, reason: 'a bearer token is required' };
  if (req.body.model === undefined) return { allow: false, status: 400, reason: '`model` is required' };
  const agent = req.headers['x-warden-agent'];
  const delegation = req.headers['x-warden-delegation'];
  const r = await warden.check({
    subject: { token },
    ...(agent !== undefined ? { agent: { id: agent } } : {}),
    ...(delegation !== undefined ? { delegation } : {}),
    actions: ['invoke'],
    resources: [{ kind: 'model', id: req.body.model, attr: req.body.max_tokens !== undefined ? { max_tokens: req.body.max_tokens } : {} }],
  });
  if (r.decision === 'ALLOW') {
    const headers: Record<string, string> = {};
    if (r.decisionId !== undefined) headers['x-warden-decision-id'] = r.decisionId;
    // Routing hints the policy emitted (e.g. the allowed region) travel with the request.
    for (const o of r.results[0]?.outputs ?? []) {
      if (typeof o.val === 'object' && o.val !== null) for (const [k, v] of Object.entries(o.val)) if (typeof v === 'string') headers[`x-warden-${k.toLowerCase()}`] = v;
    }
    return { allow: true, headers };
  }
  const reason = r.reasons[0];
  return { allow: false, status: reason?.code === 'warden_unreachable' ? 503 : 403, reason: reason?.message ?? 'denied' };
}
