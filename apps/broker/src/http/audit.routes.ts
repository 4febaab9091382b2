/**
 * `GET /v1/audit`: the decision log, for admins and auditors (the admin engine decides: resource
 * kind `warden:audit`, action `list`). Filters `subject` (or `human`), `agent`, `resourceKind`, `resourceId`,
 * `decision`, `from`, `to` (ISO 8601, `to` exclusive); newest first, `limit` (1-1000, default
 * 100) per page and an opaque `cursor` (the previous page's `nextCursor`). With
 * `Accept: application/x-ndjson` every matching entry is streamed, one per line (an export). Needs
 * the Postgres sink: other sinks are read with their own tools.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WardenError } from '@warden/core';
import { queryAuditLog, type AuditLogQuery, type SqlDb } from '@warden/persistence';
import type { AdminAuth } from '../admin/admin-auth.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';

/** What the route needs. */
export interface AuditRoutesDeps {
  auth: AdminAuth;
  /** Warden's database when the decision log is written there; undefined: the route answers 404. */
  db: SqlDb | undefined;
}

type Req = FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>;

const FILTERS = new Set(['subject', 'human', 'agent', 'resourceKind', 'resourceId', 'decision', 'from', 'to', 'cursor', 'limit']);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/;
const EXPORT_PAGE = 1000;

function bad(field: string, message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);
}

function encodeCursor(c: { time: string; decisionId: string }): string {
  return Buffer.from(JSON.stringify([c.time, c.decisionId])).toString('base64url');
}

function decodeCursor(raw: string): { time: string; decisionId: string } {
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && ISO.test(v[0]) && typeof v[1] === 'string') return { time: v[0], decisionId: v[1] };
  } catch {
    // falls through to the error below
  }
  throw bad('cursor', 'is not a cursor this API returned');
}

/** Parses the query string into a query (without `limit`, set by the caller). */
export function parseAuditQuery(qs: Record<string, string | string[] | undefined>): Omit<AuditLogQuery, 'limit'> & { limit: number | undefined } {
  const one = (k: string): string | undefined => {
    const v = qs[k];
    if (Array.isArray(v)) throw bad(k, 'may be given once');
    if (v === '') throw bad(k, 'must not be empty');
    return v;
  };
  for (const k of Object.keys(qs)) if (!FILTERS.has(k)) throw bad(k, `unknown filter (allowed: ${[...FILTERS].join(', ')})`);
  const q: Omit<AuditLogQuery, 'limit'> & { limit: number | undefined } = { limit: undefined };
  for (const k of ['subject', 'agent', 'resourceKind', 'resourceId'] as const) {
    const v = one(k);
    if (v !== undefined) {
      if (v.length > 256) throw bad(k, 'is longer than 256 characters');
      q[k] = v;
    }
  }
  // `human` names the person an agent acts for: the subject.
  const human = one('human');
  if (human !== undefined) {
    if (q.subject !== undefined) throw bad('human', 'is another name for `subject`: give one of them');
    if (human.length > 256) throw bad('human', 'is longer than 256 characters');
    q.subject = human;
  }
  if (q.resourceId !== undefined && q.resourceKind === undefined) throw bad('resourceId', 'needs `resourceKind`');
  const decision = one('decision');
  if (decision !== undefined) {
    if (decision !== 'ALLOW' && decision !== 'DENY') throw bad('decision', 'must be ALLOW or DENY');
    q.decision = decision;
  }
  for (const k of ['from', 'to'] as const) {
    const v = one(k);
    if (v !== undefined) {
      if (!ISO.test(v) || Number.isNaN(Date.parse(v))) throw bad(k, 'must be an ISO 8601 time with a zone, e.g. `2026-11-28T09:00:00Z`');
      q[k] = v;
    }
  }
  const cursor = one('cursor');
  if (cursor !== undefined) q.cursor = decodeCursor(cursor);
  const limit = one('limit');
  if (limit !== undefined) {
    if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > 1000) throw bad('limit', 'must be an integer from 1 to 1000');
    q.limit = Number(limit);
  }
  return q;
}

async function* exportAll(db: SqlDb, q: Omit<AuditLogQuery, 'limit'>): AsyncGenerator<string> {
  let cursor = q.cursor;
  do {
    const page = await queryAuditLog(db, { ...q, ...(cursor !== undefined ? { cursor } : {}), limit: EXPORT_PAGE });
    let chunk = '';
    for (const e of page.entries) chunk += `${JSON.stringify(e)}\n`;
    if (chunk !== '') yield chunk;
    cursor = page.next;
  } while (cursor !== undefined);
}

/** Registers `GET /v1/audit`. */
export async function registerAuditRoutes(app: FastifyInstance, deps: AuditRoutesDeps): Promise<void> {
  await app.register(async (api) => {
    // Warden's error shape for everything thrown here (no body is read).
    useJsonBodies(api, 1024, toWardenError);
    route(api, deps);
  });
}

function route(app: FastifyInstance, deps: AuditRoutesDeps): void {
  app.get('/v1/audit', async (req: Req, reply: FastifyReply) => {
    await deps.auth.authorize(req.headers.authorization, 'list', '*', 'warden:audit');
    const db = deps.db;
    if (db === undefined) throw new WardenError('ERR_NOT_FOUND', 'the decision log is not kept in Warden\'s database (`audit.enabled: true` with `audit.sink: postgres`)');
    const { limit, ...q } = parseAuditQuery(req.query);
    if ((req.headers.accept ?? '').includes('application/x-ndjson')) {
      return reply.header('content-type', 'application/x-ndjson').send(Readable.from(exportAll(db, q)));
    }
    const page = await queryAuditLog(db, { ...q, limit: limit ?? 100 });
    return reply.header('content-type', 'application/json').send(JSON.stringify({ entries: page.entries, ...(page.next !== undefined ? { nextCursor: encodeCursor(page.next) } : {}) }));
  });
}
