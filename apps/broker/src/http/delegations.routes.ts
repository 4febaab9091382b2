/**
 * Delegation over HTTP (DESIGN.md section 8):
 *
 * - `GET /.well-known/jwks.json`: the public keys that verify Warden's delegation tokens.
 * - `POST /v1/delegations`: mints a delegation for an agent from a parent credential: the
 *   subject's own (`subject.token`, or a subject stated by a trusted gateway) or a delegation
 *   token the calling agent holds (`delegation` + `agent`). Refused (403, with the reason) unless
 *   the grants are inside the parent's, inside what the subject may do (checked with the engine
 *   for every concrete resource id and action, at each cap), onward delegation was granted, and
 *   the depth stays within the parent's and the configured limit of every granted action.
 * - `DELETE /v1/delegations/{id}`: revokes a delegation (and so its descendants); allowed to its
 *   subject (bearer token), a trusted gateway, or an admin.
 * - `POST /v1/admin/revocations`: an admin revokes a delegation, a session, an agent or a subject.
 * - `GET /v1/revocations/stream`: server-sent events of revocations (`?after=<seq>` replays), for
 *   gateways holding long sessions; trusted gateways and admins.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WardenError, type CheckInput, type JsonValue, type Principal } from '@warden/core';
import type { Engine } from '@warden/decision';
import {
  actorOf,
  delegationIds,
  DelegationError,
  extendChain,
  isDelegationError,
  lastHop,
  parseScope,
  REVOCATION_TARGETS,
  signDelegation,
  type DelegationChain,
  type Grant,
  type Revocation,
  type RevocationTarget,
} from '@warden/delegation';
import { enrich, parseDurationMs, type JsonObject } from '@warden/resolvers';
import type { AdminAuth } from '../admin/admin-auth.js';
import { recordDecision, type DecisionLog } from '../audit/decision-log.js';
import { eventAuditEntry, type AuditEvent } from '../audit/event-audit-entry.js';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import type { DelegationRuntime } from '../delegation/delegation-runtime.js';
import { agentPrincipal } from '../delegation/identity-decision.js';
import { enrichInputs, toPrincipal } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import type { PolicySnapshots } from '../policy-source/policy-holder.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';
import { GATEWAY_KEY_HEADER, type GatewayMatcher } from './v1-check.routes.js';

/** What the routes need, built at boot. */
export interface DelegationRoutesDeps {
  /** The policy set in force (a mint reads `current` once and checks and logs with that snapshot). */
  policies: PolicySnapshots;
  runtime: ResolverRuntime;
  delegation: DelegationRuntime;
  auth: AdminAuth;
  matchGateway: GatewayMatcher;
  limits: RequestLimitsConfig;
  maxTtlSeconds: number;
  bodyLimit: number;
  /** The decision log (delegations minted, revocations); undefined when off. */
  audit?: DecisionLog | undefined;
}

/** Hands an event to the decision log (strict: waits until it is durable, else `ERR_AUDIT_UNAVAILABLE`). */
function logEvent(deps: DelegationRoutesDeps, event: Omit<AuditEvent, 'policyVersion' | 'at'> & { at?: number }, policyVersion = deps.policies.current.version): Promise<void> | undefined {
  const log = deps.audit;
  if (log === undefined) return undefined;
  const e: AuditEvent = { ...event, policyVersion, at: event.at ?? Date.now() };
  return recordDecision(log, () => eventAuditEntry(e, log.mask));
}

/** A repeated revocation is the same event, at the time it was first recorded (the log's key is id and time). */
function revocationEvent(r: Revocation, source: string): Omit<AuditEvent, 'policyVersion'> {
  return { decisionId: `revocation:${r.seq}`, at: Date.parse(r.at), kind: 'revocation', source, identities: {}, input: { target: r.target, id: r.id, by: r.by, ...(r.reason !== undefined ? { reason: r.reason } : {}) } };
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const NAME = /^[^\s]{1,256}$/;

function bad(field: string, message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(field, 'expected a non-empty string without spaces');
  return v;
}

/** A parsed `POST /v1/delegations` body. */
interface MintRequest {
  token?: string;
  subject?: { id: string; roles: string[]; attr: JsonObject };
  delegation?: string;
  agent?: string;
  to: string;
  grants: Grant[];
  canSubDelegate: boolean;
  maxDepth: number;
  ttlSeconds: number;
  task?: string;
}

function parseMint(body: unknown, maxTtlSeconds: number): MintRequest {
  if (!isObj(body)) throw bad('(body)', 'expected a JSON object');
  for (const k of Object.keys(body)) if (!['subject', 'delegation', 'agent', 'to', 'grants', 'canSubDelegate', 'maxDepth', 'ttl', 'task'].includes(k)) throw bad(k, 'unknown field');
  const out: MintRequest = {
    to: name(body['to'], 'to'),
    grants: parseScope(body['grants'], 'grants'),
    canSubDelegate: false,
    maxDepth: 1,
    ttlSeconds: Math.min(maxTtlSeconds, 600),
  };
  const sub = body['canSubDelegate'];
  if (sub !== undefined && typeof sub !== 'boolean') throw bad('canSubDelegate', 'expected true or false');
  out.canSubDelegate = sub === true;
  if (body['maxDepth'] !== undefined) {
    const d = body['maxDepth'];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 32) throw bad('maxDepth', 'expected an integer from 1 to 32');
    out.maxDepth = d;
  }
  if (body['ttl'] !== undefined) {
    const ms = typeof body['ttl'] === 'string' ? parseDurationMs(body['ttl']) : undefined;
    if (ms === undefined || ms < 1000) throw bad('ttl', 'expected a duration of at least 1s, such as `10m`');
    if (ms / 1000 > maxTtlSeconds) throw bad('ttl', `at most ${maxTtlSeconds}s (\`delegation.maxTtl\`)`);
    out.ttlSeconds = Math.floor(ms / 1000);
  }
  if (body['task'] !== undefined) out.task = name(body['task'], 'task');
  const s = body['subject'];
  const d = body['delegation'];
  if ((s === undefined) === (d === undefined)) throw bad('subject', 'give exactly one parent: `subject` (the subject\'s own credential) or `delegation` (a delegation token the calling agent holds)');
  if (s !== undefined) {
    if (!isObj(s)) throw bad('subject', 'expected an object with `token`');
    if (s['token'] !== undefined) {
      if (typeof s['token'] !== 'string' || s['token'] === '' || s['token'].length > 16384) throw bad('subject.token', 'expected a token');
      out.token = s['token'];
    } else {
      const roles = s['roles'];
      if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string' && NAME.test(r))) throw bad('subject.roles', 'expected a non-empty list of role names');
      const attr = s['attr'];
      if (attr !== undefined && !isObj(attr)) throw bad('subject.attr', 'expected an object');
      out.subject = { id: name(s['id'], 'subject.id'), roles: roles as string[], attr: (attr ?? {}) as JsonObject };
    }
  } else {
    if (typeof d !== 'string' || d === '') throw bad('delegation', 'expected a delegation token');
    out.delegation = d;
    const a = body['agent'];
    if (!isObj(a)) throw bad('agent', 'is required with `delegation`: `{ "id": "<the agent holding it>" }`');
    out.agent = name(a['id'], 'agent.id');
  }
  return out;
}

function refused(reason: 'delegation_scope_exceeded' | 'delegation_revoked' | 'delegation_actor_mismatch' | 'delegation_policy_denied', message: string): DelegationError {
  return new DelegationError('ERR_DELEGATION_REFUSED', reason, message);
}

/** The subject of `req` as the engine takes it (stated by a gateway, or resolved from its token). */
async function resolveSubject(deps: DelegationRoutesDeps, req: Pick<MintRequest, 'token' | 'subject'>, requestId: string): Promise<Principal> {
  if (req.subject !== undefined) return { id: req.subject.id, roles: req.subject.roles, attr: req.subject.attr as Record<string, JsonValue> };
  const registry = deps.runtime.current().registry;
  if (registry === undefined) throw new WardenError('ERR_STORAGE_UNAVAILABLE', 'context resolvers are misconfigured; an administrator must fix them');
  const outcome = await enrich(registry, { requestId, principal: {}, subject: { token: req.token as string }, resources: [] });
  const item = outcome.items[0];
  const failure = item?.denials[0];
  if (failure !== undefined) throw new WardenError('ERR_UNAUTHENTICATED', failure.message);
  const p = toPrincipal(item?.input.principal);
  if ('code' in p) throw new WardenError('ERR_UNAUTHENTICATED', p.message);
  return p;
}

/**
 * Refuses unless `subject` may do every concrete action of `grants` (ids named, actions named),
 * each resource enriched like a check and each capped attribute set to its cap (as an attribute and
 * as the call's argument of that name).
 */
async function checkSubjectMay(deps: DelegationRoutesDeps, engine: Engine, subject: Principal, grants: readonly Grant[], requestId: string): Promise<void> {
  const inputs: CheckInput[] = [];
  for (const g of grants) {
    if (g.ids === undefined || g.actions.includes('*')) continue;
    for (const id of g.ids) inputs.push({ requestId, principal: subject, resource: { kind: g.kind, id, attr: {} }, actions: [...g.actions] });
  }
  if (inputs.length === 0) return;
  if (inputs.length > deps.limits.maxResourcesPerRequest) throw bad('grants', `at most ${deps.limits.maxResourcesPerRequest} concrete resources`);
  const enriched = await enrichInputs(deps.runtime, inputs, { requestId, principal: subject as unknown as JsonObject });
  const caps = new Map<CheckInput, Record<string, number>>();
  let i = 0;
  for (const g of grants) {
    if (g.ids === undefined || g.actions.includes('*')) continue;
    for (let j = 0; j < g.ids.length; j++) caps.set(inputs[i++] as CheckInput, g.caps ?? {});
  }
  const toCheck = enriched.items.map((it, n) => {
    if (it.denied !== undefined) throw refused('delegation_scope_exceeded', `\`${subject.id}\`'s permissions on ${it.input.resource.kind} \`${it.input.resource.id}\` cannot be established: ${it.denied[0]?.message ?? 'denied'}`);
    const cap = caps.get(inputs[n] as CheckInput) ?? {};
    // At the cap as an attribute and as the call's argument (a cap bounds a call's arguments, see
    // `cappedValue`), so a policy reading either sees the capped value.
    const atCap = Object.keys(cap).length === 0 ? it.input.resource.attr : { ...it.input.resource.attr, ...cap, arguments: { ...cap } };
    return { ...it.input, principal: subject, resource: { ...it.input.resource, attr: atCap } };
  });
  const outputs = engine.check(toCheck, { now: new Date(), includeEffectiveDerivedRoles: false });
  outputs.forEach((out, n) => {
    const input = toCheck[n] as CheckInput;
    for (const a of input.actions) {
      if (out.actions[a]?.effect !== 'EFFECT_ALLOW') throw refused('delegation_scope_exceeded', `\`${subject.id}\` may not \`${a}\` ${input.resource.kind} \`${input.resource.id}\`, so cannot delegate it`);
    }
  });
}

/**
 * Refuses unless the `agent` resource policy lets `delegator` (the subject, or the agent passing
 * on its delegation, with `canSubDelegate` and `delegationDepth` from its own delegation) do
 * `delegate` on the target agent, enriched like any resource. A policy set with no policy for
 * agents has no opinion (the grants and the subject's permissions still bound the delegation).
 */
async function checkMayDelegate(deps: DelegationRoutesDeps, engine: Engine, delegator: Principal, to: string, requestId: string): Promise<void> {
  const input: CheckInput = { requestId, principal: delegator, resource: { kind: 'agent', id: to, attr: {} }, actions: [DELEGATE] };
  const enriched = await enrichInputs(deps.runtime, [input], { requestId, principal: delegator as unknown as JsonObject });
  const item = enriched.items[0];
  if (item === undefined || item.denied !== undefined) throw refused('delegation_policy_denied', `agent \`${to}\` cannot be established: ${item?.denied?.[0]?.message ?? 'denied'}`);
  const [out] = engine.check([{ ...item.input, principal: delegator }], { now: new Date(), includeEffectiveDerivedRoles: false });
  const effect = out?.actions[DELEGATE];
  if (effect === undefined || (effect.effect !== 'EFFECT_ALLOW' && effect.policy !== 'NO_MATCH')) {
    throw refused('delegation_policy_denied', `\`${delegator.id}\` may not delegate to agent \`${to}\` (policy)`);
  }
}

/** The action agent policies decide delegation with. */
const DELEGATE = 'delegate';

/** The calling agent as a principal, from the resolvers, with what its own delegation says. */
async function callingAgent(deps: DelegationRoutesDeps, id: string, parent: DelegationChain, requestId: string): Promise<Principal> {
  const registry = deps.runtime.current().registry;
  if (registry === undefined) throw new WardenError('ERR_STORAGE_UNAVAILABLE', 'context resolvers are misconfigured; an administrator must fix them');
  const outcome = await enrich(registry, { requestId, principal: { id: parent.subject }, agent: { id }, resources: [] });
  const agent = agentPrincipal(outcome.items[0]?.input.agent);
  if ('code' in agent) throw refused('delegation_policy_denied', agent.message);
  const hop = lastHop(parent);
  return { ...agent, attr: { ...agent.attr, canSubDelegate: hop.canSubDelegate, delegationDepth: parent.hops.length } };
}

/** The configured depth limit of what `grants` delegate (the lowest of their actions'). */
function depthLimitOf(deps: DelegationRoutesDeps, grants: readonly Grant[]): number {
  let limit = Infinity;
  for (const g of grants) for (const a of g.actions) limit = Math.min(limit, a === '*' ? deps.delegation.depthLimit('*') : deps.delegation.depthLimit(a));
  return limit;
}

async function mint(deps: DelegationRoutesDeps, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const req = parseMint(request.body, deps.maxTtlSeconds);
  if (req.subject !== undefined) {
    const header = request.headers[GATEWAY_KEY_HEADER];
    if (deps.matchGateway(typeof header === 'string' ? header : undefined) === undefined) throw new WardenError('ERR_UNAUTHENTICATED', `a subject stated directly (id, roles) needs a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  }
  const id = deps.delegation.newId();
  // The decision id of a mint, granted or refused (the refusal's entry in the decision log has it).
  void reply.header('x-warden-decision-id', id);
  // The subject, once known (stated, resolved from its token, or the parent delegation's).
  const seen: { subject?: string } = req.subject !== undefined ? { subject: req.subject.id } : {};
  try {
    return await mintAs(deps, req, id, reply, seen);
  } catch (err) {
    if (isDelegationError(err) && err.code === 'ERR_DELEGATION_REFUSED') {
      await logEvent(deps, {
        decisionId: id,
        kind: 'delegation',
        source: '/v1/delegations',
        decision: 'DENY',
        reasons: [{ code: err.reason, message: err.message }],
        identities: { ...(seen.subject !== undefined ? { subject: seen.subject } : {}), agent: req.to },
        input: { ...(req.agent !== undefined ? { from: req.agent } : {}), to: req.to, grants: req.grants as unknown as JsonValue, canSubDelegate: req.canSubDelegate, ...(req.task !== undefined ? { task: req.task } : {}) },
      });
    }
    throw err;
  }
}

async function mintAs(deps: DelegationRoutesDeps, req: MintRequest, id: string, reply: FastifyReply, seen: { subject?: string }): Promise<FastifyReply> {
  const rt = deps.delegation;
  const now = Date.now();
  // One snapshot checks the grants and names the version in the decision log.
  const policies = deps.policies.current;
  let chain: DelegationChain;
  if (req.delegation !== undefined) {
    let parent: DelegationChain;
    try {
      parent = await rt.verifier.verify(req.delegation, now);
    } catch (err) {
      if (isDelegationError(err)) throw new DelegationError('ERR_DELEGATION_REFUSED', err.reason, `the parent delegation is not valid: ${err.message}`);
      throw err;
    }
    seen.subject = parent.subject;
    if (actorOf(parent) !== req.agent) throw refused('delegation_actor_mismatch', `the parent delegation is held by \`${actorOf(parent)}\`, not by \`${req.agent ?? ''}\``);
    const revoked = rt.revocations.find({ chain: parent, agent: req.agent as string });
    if (revoked !== undefined) throw refused('delegation_revoked', `the ${revoked.target} \`${revoked.id}\` has been revoked`);
    chain = extendChain({ chain: parent }, { id, to: req.to, grants: req.grants, canSubDelegate: req.canSubDelegate, maxDepth: req.maxDepth, ttlSeconds: req.ttlSeconds, depthLimit: depthLimitOf(deps, req.grants), ...(req.task !== undefined ? { task: req.task } : {}) }, now);
    await checkMayDelegate(deps, policies.engine, await callingAgent(deps, req.agent as string, parent, id), req.to, id);
  } else {
    const subject = await resolveSubject(deps, req, id);
    seen.subject = subject.id;
    const revoked = rt.revocations.find({ subject: subject.id });
    if (revoked !== undefined) throw refused('delegation_revoked', `the ${revoked.target} \`${revoked.id}\` has been revoked`);
    await checkSubjectMay(deps, policies.engine, subject, req.grants, id);
    await checkMayDelegate(deps, policies.engine, subject, req.to, id);
    const session = typeof subject.attr['sid'] === 'string' ? subject.attr['sid'] : undefined;
    chain = extendChain({ subject: subject.id, ...(session !== undefined ? { session } : {}) }, { id, to: req.to, grants: req.grants, canSubDelegate: req.canSubDelegate, maxDepth: req.maxDepth, ttlSeconds: req.ttlSeconds, depthLimit: depthLimitOf(deps, req.grants), ...(req.task !== undefined ? { task: req.task } : {}) }, now);
  }
  const hop = lastHop(chain);
  const ids = delegationIds(chain);
  await rt.store.record({
    id: hop.id,
    subject: chain.subject,
    ...(chain.session !== undefined ? { session: chain.session } : {}),
    from: hop.from,
    to: hop.to,
    ...(ids.length > 1 ? { parentId: ids[ids.length - 2] as string } : {}),
    ancestors: ids.slice(0, -1),
    grants: hop.grants,
    ...(hop.task !== undefined ? { task: hop.task } : {}),
    issuedAt: new Date(hop.iat * 1000).toISOString(),
    expiresAt: new Date(hop.exp * 1000).toISOString(),
  });
  const token = await signDelegation(chain, rt.keys.signer);
  // SECURITY: the token is not part of the entry.
  await logEvent(deps, {
    decisionId: hop.id,
    kind: 'delegation',
    source: '/v1/delegations',
    identities: { subject: chain.subject, agent: hop.to, delegationChain: ids },
    input: { from: hop.from, to: hop.to, grants: hop.grants as unknown as JsonValue, canSubDelegate: hop.canSubDelegate, expiresAt: new Date(hop.exp * 1000).toISOString(), ...(hop.task !== undefined ? { task: hop.task } : {}) },
  }, policies.version);
  return reply
    .code(201)
    .header('content-type', 'application/json')
    .send(JSON.stringify({ delegationId: hop.id, token, subject: chain.subject, agent: hop.to, depth: chain.hops.length, chain: ids, expiresAt: new Date(hop.exp * 1000).toISOString() }));
}

/** Who is asking to revoke `subjectOf`'s delegation: an admin, a trusted gateway, or the subject itself. */
async function mayRevoke(deps: DelegationRoutesDeps, request: FastifyRequest, subjectOf: string): Promise<string> {
  const header = request.headers[GATEWAY_KEY_HEADER];
  const gateway = deps.matchGateway(typeof header === 'string' ? header : undefined);
  if (gateway !== undefined) return `gateway:${gateway.name}`;
  const authorization = request.headers.authorization;
  const m = authorization === undefined ? null : /^Bearer\s+(\S+)$/i.exec(authorization);
  if (m === null) throw new WardenError('ERR_UNAUTHENTICATED', `revoking needs \`Authorization: Bearer <token>\` (the subject's or an admin's) or a trusted gateway's \`${GATEWAY_KEY_HEADER}\``);
  let subject: Principal | undefined;
  try {
    subject = await resolveSubject(deps, { token: m[1] as string }, 'revoke');
  } catch (err) {
    if (!(err instanceof WardenError)) throw err;
  }
  if (subject?.id === subjectOf) return subject.id;
  try {
    const admin = await deps.auth.authorize(authorization, 'create', subjectOf, 'warden:revocation');
    return `admin:${admin.id}`;
  } catch (err) {
    // A known subject who is not an admin is identified, just not allowed.
    if (subject !== undefined && err instanceof WardenError && err.code === 'ERR_UNAUTHENTICATED') {
      throw new WardenError('ERR_FORBIDDEN', `\`${subject.id}\` may not revoke delegations of another subject`);
    }
    throw err;
  }
}

function parseRevocation(body: unknown): { target: RevocationTarget; id: string; reason?: string } {
  if (!isObj(body)) throw bad('(body)', 'expected a JSON object');
  for (const k of Object.keys(body)) if (!['target', 'id', 'reason'].includes(k)) throw bad(k, 'unknown field');
  const target = body['target'];
  if (typeof target !== 'string' || !(REVOCATION_TARGETS as readonly string[]).includes(target)) throw bad('target', `expected one of ${REVOCATION_TARGETS.join(', ')}`);
  const reason = body['reason'];
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > 512)) throw bad('reason', 'expected a string of at most 512 characters');
  return { target: target as RevocationTarget, id: name(body['id'], 'id'), ...(reason !== undefined ? { reason: reason as string } : {}) };
}

function json(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
}

/** Registers the delegation routes on `app`. */
export async function registerDelegationRoutes(app: FastifyInstance, deps: DelegationRoutesDeps): Promise<void> {
  await app.register(async (api) => {
    useJsonBodies(api, deps.bodyLimit, toWardenError);
    api.get('/.well-known/jwks.json', (_req, reply) => {
      void reply.header('cache-control', 'public, max-age=300');
      return json(reply, 200, deps.delegation.keys.jwks);
    });
    api.post('/v1/delegations', { bodyLimit: deps.bodyLimit }, (request, reply) => mint(deps, request, reply));
    api.delete<{ Params: { id: string } }>('/v1/delegations/:id', async (request, reply) => {
      const id = request.params.id;
      const record = await deps.delegation.store.get(id);
      if (record === undefined) throw new WardenError('ERR_NOT_FOUND', `delegation \`${id}\` does not exist`);
      const by = await mayRevoke(deps, request, record.subject);
      const entry = await deps.delegation.revoke({ target: 'delegation', id, by });
      await logEvent(deps, revocationEvent(entry, '/v1/delegations'));
      return json(reply, 200, { revoked: entry });
    });
    api.post('/v1/admin/revocations', async (request, reply) => {
      const admin = await deps.auth.authorize(request.headers.authorization, 'create', '*', 'warden:revocation');
      const r = parseRevocation(request.body);
      const entry = await deps.delegation.revoke({ ...r, by: `admin:${admin.id}` });
      await logEvent(deps, revocationEvent(entry, '/v1/admin/revocations'));
      return json(reply, 201, { revoked: entry });
    });
    api.get<{ Querystring: { after?: string } }>('/v1/revocations/stream', async (request, reply) => {
      const header = request.headers[GATEWAY_KEY_HEADER];
      if (deps.matchGateway(typeof header === 'string' ? header : undefined) === undefined) {
        await deps.auth.authorize(request.headers.authorization, 'read', '*', 'warden:revocation');
      }
      const afterRaw = request.query.after;
      const after = afterRaw === undefined ? undefined : Number(afterRaw);
      if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) throw bad('after', 'expected a non-negative integer');
      streamRevocations(deps.delegation, request, reply, after);
      return reply;
    });
  });
}

/** Server-sent events: replays entries after `after` (when given), then every new one. */
function streamRevocations(rt: DelegationRuntime, request: FastifyRequest, reply: FastifyReply, after: number | undefined): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  const sent = new Set<number>();
  const send = (r: { seq: number }): void => {
    if (sent.has(r.seq)) return;
    sent.add(r.seq);
    res.write(`id: ${r.seq}\nevent: revocation\ndata: ${JSON.stringify(r)}\n\n`);
  };
  const unsubscribe = rt.onRevocation(send);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  heartbeat.unref();
  const stop = (): void => {
    unsubscribe();
    clearInterval(heartbeat);
  };
  request.raw.on('close', stop);
  res.write(': connected\n\n');
  if (after !== undefined) {
    rt.store.revocationsAfter(after).then(
      (entries) => entries.forEach(send),
      () => {
        res.write('event: error\ndata: {"code":"ERR_STORAGE_UNAVAILABLE"}\n\n');
        res.end();
        stop();
      },
    );
  }
}
