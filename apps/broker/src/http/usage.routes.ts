/**
 * `POST /v1/usage` (DESIGN.md section 8): a trusted gateway reports the tokens a call really used,
 * settling the reservation its `/v1/check` made. Body: `{ "reservationId", "tokens",
 * "idempotencyKey" }`. The reservation's hold is released and `tokens` is added to the usage of
 * every budget it reserved in, even beyond the estimate (the real count is what was spent). A
 * report is counted once per idempotency key (scoped to the gateway): a repeat answers 200 with
 * `counted: false`; the same key with another reservation or count is a 409 `ERR_CONFLICT`.
 * Another key for the same reservation is another report (a stream may report in parts).
 *
 * A report after the hold expired is still counted while Warden remembers the reservation (24 h
 * after its hold ends); after that, or for an id Warden never issued, 404
 * `ERR_BUDGET_RESERVATION_UNKNOWN` (the budget and whose tokens they are cannot be known). Bad
 * bodies are 400 `ERR_REQUEST_INVALID` naming the field; a missing or unknown gateway key 401
 * `ERR_UNAUTHENTICATED`; a store that cannot be reached 503 `ERR_BUDGET_UNAVAILABLE`.
 *
 * SECURITY: only trusted gateways settle. An agent holding a reservation id could otherwise report
 * fewer tokens than it spent.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WardenError } from '@warden/core';
import type { BudgetRuntime } from '../budget/budget-runtime.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';
import { GATEWAY_KEY_HEADER, type GatewayMatcher } from './v1-check.routes.js';

/** What the route needs, built at boot. */
export interface UsageRoutesDeps {
  /** Undefined when no budgets are configured. */
  budgets: BudgetRuntime | undefined;
  matchGateway: GatewayMatcher;
  bodyLimit: number;
}

/** A parsed usage report. */
export interface UsageReport {
  reservationId: string;
  tokens: number;
  idempotencyKey: string;
}

const FIELDS = new Set(['reservationId', 'tokens', 'idempotencyKey']);
const RESERVATION_ID = /^rsv_[A-Za-z0-9_-]{16,64}$/;
/** Printable, no spaces at the ends, at most 256 characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$/;
const MAX_TOKENS = 1e15;

const bad = (field: string, message: string): WardenError => new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);

/**
 * Parses a usage report body.
 * @example parseUsageReport({ reservationId: 'rsv_…', tokens: 812, idempotencyKey: 'req-42' })
 */
export function parseUsageReport(body: unknown): UsageReport {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('(body)', 'expected a JSON object with `reservationId`, `tokens` and `idempotencyKey`');
  const o = body as Record<string, unknown>;
  for (const k in o) if (!FIELDS.has(k)) throw bad(k, k === 'decisionId' ? 'unknown field: settle by the `reservationId` of the check' : 'unknown field');
  const id = o['reservationId'];
  if (id === undefined || id === null) throw bad('reservationId', 'is required');
  if (typeof id !== 'string' || !RESERVATION_ID.test(id)) throw bad('reservationId', 'is not a reservation id (`rsv_…`, as `/v1/check` answered it)');
  const tokens = o['tokens'];
  if (tokens === undefined || tokens === null) throw bad('tokens', 'is required');
  if (typeof tokens !== 'number' || !Number.isSafeInteger(tokens) || tokens < 0 || tokens > MAX_TOKENS) throw bad('tokens', `must be an integer from 0 to ${MAX_TOKENS}`);
  const key = o['idempotencyKey'];
  if (key === undefined || key === null || key === '') throw bad('idempotencyKey', 'is required');
  if (typeof key !== 'string' || key.length > 256) throw bad('idempotencyKey', 'must be a string of at most 256 characters');
  if (!IDEMPOTENCY_KEY.test(key)) throw bad('idempotencyKey', 'must be printable ASCII without leading or trailing spaces');
  return { reservationId: id, tokens, idempotencyKey: key };
}

async function settle(deps: UsageRoutesDeps, request: FastifyRequest): Promise<unknown> {
  const header = request.headers[GATEWAY_KEY_HEADER];
  const gateway = deps.matchGateway(typeof header === 'string' ? header : undefined);
  if (gateway === undefined) throw new WardenError('ERR_UNAUTHENTICATED', `usage reports need a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  const report = parseUsageReport(request.body);
  const budgets = deps.budgets;
  if (budgets === undefined) throw new WardenError('ERR_BUDGET_RESERVATION_UNKNOWN', 'no token budgets are configured');
  // Keys are the gateway's own: two gateways never collide; stored hashed (bounded, no raw text).
  const scoped = `${gateway.name}:${createHash('sha256').update(report.idempotencyKey).digest('base64url')}`;
  let result;
  try {
    result = await budgets.store.settle({ reservationId: report.reservationId, tokens: report.tokens, idempotencyKey: scoped }, budgets.clock());
  } catch (err) {
    throw new WardenError('ERR_BUDGET_UNAVAILABLE', 'the budget store cannot be reached; report again later with the same idempotency key', { cause: err });
  }
  switch (result.status) {
    case 'settled': {
      const shown: Record<string, { limit: number; used: number; reserved: number; remaining: number }> = {};
      for (const s of result.slots) shown[s.name] = { limit: s.limit, used: s.used, reserved: s.reserved, remaining: Math.max(0, s.limit - s.used - s.reserved) };
      return { reservationId: report.reservationId, tokens: report.tokens, counted: true, budgets: shown };
    }
    case 'duplicate':
      return { reservationId: report.reservationId, tokens: report.tokens, counted: false };
    case 'conflict':
      throw new WardenError('ERR_CONFLICT', '`idempotencyKey`: already used for another usage report (another reservation or token count)');
    case 'unknown':
      throw new WardenError('ERR_BUDGET_RESERVATION_UNKNOWN', `no reservation \`${report.reservationId}\` (never made, or older than Warden remembers)`);
  }
}

/** Registers `POST /v1/usage` on `app`. */
export async function registerUsage(app: FastifyInstance, deps: UsageRoutesDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toWardenError);
    api.post('/v1/usage', { bodyLimit: deps.bodyLimit }, async (request, reply) => reply.header('content-type', 'application/json').send(JSON.stringify(await settle(deps, request))));
  });
}
