/**
 * `WardenClient`: a typed client of Warden's native API for gateways and agent runtimes: check,
 * plan (tool discovery), delegate, revoke, the revocation stream and usage reports.
 *
 * When Warden cannot be reached (connection refused, timeout, 5xx) a check fails closed: it
 * answers `DENY` with reason `warden_unreachable`, never throws an ALLOW at the caller. A client
 * may name a degradation for low-risk calls only: exact (kind, id, action) triples whose action is
 * a read-only verb (`read`, `list`, `get`, `describe`, `search`, `view`), answered `ALLOW` with
 * reason `degraded` while Warden is unreachable. Anything else in the list is refused when the
 * client is made, so a high-capability action can never be let through by degradation.
 */

/** Who acts, as `/v1/check` reads it. */
export interface ClientSubject {
  /** The caller's bearer token (SECURITY: never logged by this client). */
  readonly token?: string;
  /** A subject stated directly: needs the trusted gateway's API key. */
  readonly id?: string;
  readonly roles?: readonly string[];
  readonly attr?: Readonly<Record<string, unknown>>;
}

/** A resource of a check. */
export interface ClientResource {
  readonly kind: string;
  readonly id: string;
  readonly attr?: Readonly<Record<string, unknown>>;
}

/** A check request. */
export interface CheckRequest {
  readonly subject?: ClientSubject;
  readonly agent?: { readonly id: string; readonly token?: string };
  readonly delegation?: string;
  readonly actions: readonly string[];
  readonly resources: readonly ClientResource[];
  readonly context?: Readonly<Record<string, unknown>>;
  readonly requestId?: string;
  readonly explain?: boolean;
}

/** Why something was denied (or let through by degradation). */
export interface ClientReason {
  readonly code: string;
  readonly message: string;
  readonly [k: string]: unknown;
}

/** A check's answer. */
export interface CheckResult {
  readonly decision: 'ALLOW' | 'DENY';
  /** Absent when Warden did not answer (unreachable or degraded). */
  readonly decisionId?: string;
  readonly results: ReadonlyArray<{
    readonly resource: { readonly kind: string; readonly id: string };
    readonly decision: 'ALLOW' | 'DENY';
    readonly actions: Readonly<Record<string, 'ALLOW' | 'DENY'>>;
    readonly outputs?: ReadonlyArray<{ readonly src: string; readonly val: unknown; readonly action: string }>;
  }>;
  readonly reasons: readonly ClientReason[];
  readonly policyVersion?: string;
  /** The token reservation the check made (settle it with {@link WardenClient.usage}), when a budget applies. */
  readonly budget?: BudgetReservation;
  readonly explain?: unknown;
}

/** The token reservation of an allowed check (`budget` of the `/v1/check` answer). */
export interface BudgetReservation {
  /** Present it to {@link WardenClient.usage}. SECURITY: the capability to settle. */
  readonly reservationId: string;
  /** When the reservation is released unless settled (RFC 3339). */
  readonly expiresAt: string;
  readonly budgets: Readonly<Record<string, { readonly reserved: number; readonly limit: number; readonly remaining: number; readonly resetsAt: string }>>;
}

/** A usage report (`POST /v1/usage`): the tokens a call really used. */
export interface UsageReport {
  /** From the check's `budget.reservationId`. */
  readonly reservationId: string;
  /** The real count (a non-negative integer; may exceed what was reserved). */
  readonly tokens: number;
  /** Counted once per key (per gateway): retry with the same key. At most 256 printable characters. */
  readonly idempotencyKey: string;
}

/** What Warden recorded for a usage report. */
export interface UsageResult {
  readonly reservationId: string;
  readonly tokens: number;
  /** False when this idempotency key was counted before (a retry). */
  readonly counted: boolean;
  /** Each budget after this report (only when counted). */
  readonly budgets?: Readonly<Record<string, { readonly limit: number; readonly used: number; readonly reserved: number; readonly remaining: number }>>;
}

/** A tool-discovery request (`POST /v1/plan`). */
export interface PlanRequest {
  readonly subject?: ClientSubject;
  readonly agent?: { readonly id: string; readonly token?: string };
  readonly delegation?: string;
  readonly kind: string;
  readonly action?: string;
  readonly candidates?: readonly (string | { readonly id: string; readonly attr?: Readonly<Record<string, unknown>> })[];
  readonly catalog?: string;
  readonly limit?: number;
  readonly cursor?: string;
  readonly context?: Readonly<Record<string, unknown>>;
}

/** A tool-discovery answer. */
export interface PlanResult {
  readonly allowed: readonly string[];
  readonly conditional: ReadonlyArray<{ readonly id: string; readonly condition: unknown; readonly text: string; readonly needs: readonly string[] }>;
  readonly denied: { readonly count: number; readonly reasons: Readonly<Record<string, number>> };
  readonly truncated: boolean;
  readonly cursor?: string;
  readonly [k: string]: unknown;
}

/** A grant of a delegation. */
export interface ClientGrant {
  readonly kind: string;
  readonly actions: readonly string[];
  readonly ids?: readonly string[];
  readonly caps?: Readonly<Record<string, number>>;
}

/** A delegation request (`POST /v1/delegations`). */
export interface DelegateRequest {
  readonly subject?: ClientSubject;
  /** The parent delegation the calling agent holds (instead of the subject's own credential). */
  readonly delegation?: string;
  /** The agent holding `delegation`. */
  readonly agent?: string;
  /** The agent the delegation is for. */
  readonly to: string;
  readonly grants: readonly ClientGrant[];
  readonly canSubDelegate?: boolean;
  readonly maxDepth?: number;
  /** Lifetime, e.g. `10m`. */
  readonly ttl?: string;
  readonly task?: string;
}

/** A minted delegation. */
export interface Delegation {
  readonly delegationId: string;
  /** SECURITY: a bearer credential for the agent. */
  readonly token: string;
  readonly subject: string;
  readonly agent: string;
  readonly depth: number;
  readonly [k: string]: unknown;
}

/** A revocation as the stream delivers it. */
export interface RevocationEvent {
  readonly seq: number;
  readonly target: string;
  readonly id: string;
  readonly [k: string]: unknown;
}

/** A low-risk call that may be let through while Warden is unreachable. */
export interface DegradedCall {
  readonly kind: string;
  readonly id: string;
  readonly action: string;
}

/** Options of {@link WardenClient}. */
export interface WardenClientOptions {
  /** e.g. `http://127.0.0.1:3594` */
  readonly baseUrl: string;
  /** A trusted gateway's API key (`x-warden-api-key`). SECURITY: a secret. */
  readonly apiKey?: string;
  /** A bearer credential for admin and stream routes. */
  readonly bearer?: string;
  /** Per request (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Calls answered ALLOW while Warden is unreachable; read-only verbs only. */
  readonly degradation?: readonly DegradedCall[];
}

/** Read-only verbs degradation may name. */
export const READ_ONLY_ACTIONS: ReadonlySet<string> = new Set(['read', 'list', 'get', 'describe', 'search', 'view']);

/** Thrown for a refusal with a body (4xx) from a route other than check. */
export class WardenClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'WardenClientError';
  }
}

class Unreachable extends Error {}

/**
 * The client.
 * @example const warden = new WardenClient({ baseUrl: 'http://127.0.0.1:3594' });
 * const r = await warden.check({ subject: { token }, actions: ['invoke'], resources: [{ kind: 'tool', id: 'web_search' }] });
 */
export class WardenClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly degraded: ReadonlySet<string>;

  constructor(private readonly options: WardenClientOptions) {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('baseUrl must be an http(s) URL');
    this.base = url.toString().replace(/\/$/, '');
    this.timeoutMs = options.timeoutMs ?? 2000;
    for (const d of options.degradation ?? []) {
      if (!READ_ONLY_ACTIONS.has(d.action)) {
        throw new TypeError(`degradation may only name read-only actions (${[...READ_ONLY_ACTIONS].join(', ')}); \`${d.action}\` on ${d.kind} \`${d.id}\` is not one`);
      }
    }
    this.degraded = new Set((options.degradation ?? []).map((d) => `${d.kind}\u0000${d.id}\u0000${d.action}`));
  }

  /** Decides a check; fails closed (or degrades, as configured) when Warden is unreachable. */
  async check(req: CheckRequest): Promise<CheckResult> {
    try {
      const { status, json } = await this.send('POST', '/v1/check', req);
      if (status === 200) return json as CheckResult;
      const error = (json as { error?: { code?: string; message?: string } }).error;
      throw new WardenClientError(status, error?.code ?? 'ERR_UNKNOWN', error?.message ?? `Warden answered ${status}`);
    } catch (err) {
      if (!(err instanceof Unreachable)) throw err;
      return this.withoutWarden(req, err.message);
    }
  }

  /** Discovers which candidates (tools, models, agents) may be called, and under which conditions. */
  async plan(req: PlanRequest): Promise<PlanResult> {
    return this.expect<PlanResult>('POST', '/v1/plan', req);
  }

  /** Mints a delegation (refused with a {@link WardenClientError} naming the reason). */
  async delegate(req: DelegateRequest): Promise<Delegation> {
    return this.expect('POST', '/v1/delegations', req);
  }

  /** Revokes a delegation (and its descendants), as its subject (`token`), a trusted gateway or an admin. */
  async revoke(id: string, as: { readonly token?: string } = {}): Promise<void> {
    await this.expect('DELETE', `/v1/delegations/${encodeURIComponent(id)}`, undefined, as.token);
  }

  /**
   * Reports the tokens a call really used, settling the check's reservation (`POST /v1/usage`;
   * needs a trusted gateway's `apiKey`). Counted once per `idempotencyKey`: retry with the same key
   * after a network failure. Refusals throw a {@link WardenClientError} (`ERR_REQUEST_INVALID` 400,
   * `ERR_UNAUTHENTICATED` 401, `ERR_BUDGET_RESERVATION_UNKNOWN` 404, `ERR_CONFLICT` 409 for a key
   * reused for another report, `ERR_UNREACHABLE` / 5xx while Warden cannot record it).
   * @example await warden.usage({ reservationId: r.budget.reservationId, tokens: 812, idempotencyKey: requestId });
   */
  async usage(report: UsageReport): Promise<UsageResult> {
    if (!Number.isSafeInteger(report.tokens) || report.tokens < 0) throw new TypeError('tokens must be a non-negative integer');
    return this.expect<UsageResult>('POST', '/v1/usage', { reservationId: report.reservationId, tokens: report.tokens, idempotencyKey: report.idempotencyKey });
  }

  /**
   * Revocations as they happen (server-sent events), replaying those after `after`. Ends when
   * `signal` aborts or the stream closes.
   */
  async *revocations(options: { after?: number; signal?: AbortSignal } = {}): AsyncGenerator<RevocationEvent> {
    const url = `${this.base}/v1/revocations/stream${options.after !== undefined ? `?after=${options.after}` : ''}`;
    const res = await fetch(url, { headers: this.headers(false), ...(options.signal !== undefined ? { signal: options.signal } : {}) });
    if (res.status !== 200 || res.body === null) throw new WardenClientError(res.status, 'ERR_STREAM', `revocation stream answered ${res.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (data === undefined) continue;
        if (event === 'error') throw new WardenClientError(503, (JSON.parse(data) as { code?: string }).code ?? 'ERR_STREAM', 'the revocation stream failed');
        if (event === 'revocation') yield JSON.parse(data) as RevocationEvent;
      }
    }
  }

  private withoutWarden(req: CheckRequest, why: string): CheckResult {
    const results = req.resources.map((r) => {
      const actions: Record<string, 'ALLOW' | 'DENY'> = {};
      for (const a of req.actions) actions[a] = this.degraded.has(`${r.kind}\u0000${r.id}\u0000${a}`) ? 'ALLOW' : 'DENY';
      const allowed = req.actions.every((a) => actions[a] === 'ALLOW');
      return { resource: { kind: r.kind, id: r.id }, decision: allowed ? ('ALLOW' as const) : ('DENY' as const), actions };
    });
    const allowed = results.length > 0 && results.every((r) => r.decision === 'ALLOW');
    return {
      decision: allowed ? 'ALLOW' : 'DENY',
      results,
      reasons: [allowed ? { code: 'degraded', message: `Warden is unreachable (${why}); allowed by the client's degradation list` } : { code: 'warden_unreachable', message: `Warden is unreachable (${why}); denied (fail closed)` }],
    };
  }

  private headers(json: boolean, bearer = this.options.bearer): Record<string, string> {
    const h: Record<string, string> = {};
    if (json) h['content-type'] = 'application/json';
    if (this.options.apiKey !== undefined) h['x-warden-api-key'] = this.options.apiKey;
    if (bearer !== undefined) h['authorization'] = `Bearer ${bearer}`;
    return h;
  }

  private async expect<T>(method: string, path: string, body: unknown, bearer?: string): Promise<T> {
    let answer: { status: number; json: unknown };
    try {
      answer = await this.send(method, path, body, bearer);
    } catch (err) {
      if (err instanceof Unreachable) throw new WardenClientError(503, 'ERR_UNREACHABLE', `Warden is unreachable: ${err.message}`);
      throw err;
    }
    if (answer.status >= 200 && answer.status < 300) return answer.json as T;
    const error = (answer.json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new WardenClientError(answer.status, error?.code ?? 'ERR_UNKNOWN', error?.message ?? `Warden answered ${answer.status}`);
  }

  private async send(method: string, path: string, body: unknown, bearer?: string): Promise<{ status: number; json: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: this.headers(body !== undefined, bearer ?? this.options.bearer),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new Unreachable(err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err));
    }
    // A failure inside Warden is treated as Warden being unavailable: fail closed.
    if (res.status >= 500) throw new Unreachable(`HTTP ${res.status}`);
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }
}
