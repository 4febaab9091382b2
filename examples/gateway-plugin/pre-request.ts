/**
 * A pre-request hook for a Node AI gateway, built on `@warden/client`: before a chat completion is
 * proxied, ask Warden whether this caller (and the agent acting for them) may invoke the model;
 * refuse with the reason otherwise. The policy's outputs become the request headers the other
 * adapters send (`x-warden-allowed-regions`, `x-warden-max-tokens`, `x-warden-model`, …, the same
 * mapping as `/v1/ext-authz`), a token budget's exhaustion is a 429, and once the upstream has
 * answered the gateway reports the tokens it really spent. When Warden is unreachable the client
 * fails closed; the degradation list lets read-only catalogue lookups through (and nothing else).
 *
 * Wire it into your proxy's request pipeline:
 * `const verdict = await preRequest(req); ...; if (verdict.allow) await verdict.settle(usage.total_tokens, requestId)`.
 */
import { WardenClient } from '@warden/client';
import { denialStatus, gatewayHints } from '@warden/gateway';

/** What the gateway knows about an incoming request (header names lower-cased). */
export interface GatewayRequest {
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: { readonly model?: string; readonly max_tokens?: number };
}

/**
 * Allow (with the headers to pass upstream, and `settle` to report the real token count), or
 * refuse (with a status and a reason safe to show to the caller).
 */
export type Verdict =
  | { allow: true; headers: Record<string, string>; settle: (tokens: number, idempotencyKey: string) => Promise<void> }
  | { allow: false; status: number; reason: string };

/** Where the hook reads who acts (as `forwardAuth` configures Warden's own adapters). */
export interface PreRequestOptions {
  readonly agentHeader?: string;
  readonly delegationHeader?: string;
}

const noSettle = async (): Promise<void> => undefined;

/** The hook, asking `warden`. */
export function createPreRequest(warden: WardenClient, options: PreRequestOptions = {}): (req: GatewayRequest) => Promise<Verdict> {
  const agentHeader = options.agentHeader ?? 'x-warden-agent';
  const delegationHeader = options.delegationHeader ?? 'x-warden-delegation';
  return async (req) => {
    const token = /^Bearer (\S+)$/.exec(req.headers['authorization'] ?? '')?.[1];
    if (token === undefined) return { allow: false, status: 401, reason: 'a bearer token is required' };
    if (typeof req.body.model !== 'string' || req.body.model === '') return { allow: false, status: 400, reason: '`model` is required' };
    const agent = req.headers[agentHeader];
    const delegation = req.headers[delegationHeader];
    const r = await warden.check({
      subject: { token },
      ...(agent !== undefined ? { agent: { id: agent } } : {}),
      ...(delegation !== undefined ? { delegation } : {}),
      actions: ['invoke'],
      resources: [{ kind: 'model', id: req.body.model, attr: req.body.max_tokens !== undefined ? { max_tokens: req.body.max_tokens } : {} }],
    });
    if (r.decision === 'ALLOW') {
      const { hints, invalid } = gatewayHints(r.results[0]?.outputs ?? []);
      // A restriction the upstream cannot be told about would be lifted by dropping it: refuse.
      if (invalid.length > 0) return { allow: false, status: 403, reason: `the policy's output \`${invalid[0]}\` cannot be passed on` };
      const headers: Record<string, string> = {};
      if (r.decisionId !== undefined) headers['x-warden-decision-id'] = r.decisionId;
      for (const h of hints) headers[h.header] = h.value;
      const reservationId = r.budget?.reservationId;
      const settle = reservationId === undefined ? noSettle : async (tokens: number, idempotencyKey: string) => void (await warden.usage({ reservationId, tokens, idempotencyKey }));
      return { allow: true, headers, settle };
    }
    if (r.reasons.some((x) => x.code === 'warden_unreachable')) return { allow: false, status: 503, reason: 'authorization is unavailable' };
    const status = denialStatus(r.reasons.map((x) => x.code)).http;
    return { allow: false, status, reason: r.reasons[0]?.message ?? 'denied' };
  };
}

/** The hook with a client configured from the environment (`WARDEN_URL`, `WARDEN_API_KEY`). */
export const wardenPreRequest = createPreRequest(
  new WardenClient({
    baseUrl: process.env['WARDEN_URL'] ?? 'http://127.0.0.1:3594',
    ...(process.env['WARDEN_API_KEY'] !== undefined ? { apiKey: process.env['WARDEN_API_KEY'] } : {}),
    timeoutMs: 500,
    degradation: [{ kind: 'tool', id: 'search_docs', action: 'read' }],
  }),
);
