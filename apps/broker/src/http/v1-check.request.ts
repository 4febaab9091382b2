/**
 * Parses the sparse `POST /v1/check` body (DESIGN.md section 3). Every problem is an
 * `ERR_REQUEST_INVALID` naming the field; unknown fields are refused so a typo never silently
 * drops a constraint. A subject or agent stated directly (`id`, `roles`, `attr`) is accepted only
 * from a trusted gateway (the caller's check is the route's; this parser only reports it).
 */
import { WardenError } from '@warden/core';
import type { JsonObject } from '@warden/resolvers';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { checkValue, isObj, type Obj } from './request-common.js';
import type { DecisionTrace } from '../tracing/decision-trace.js';

/** One resource of the request as sent. */
export interface V1Resource {
  kind: string;
  id: string;
  attr: JsonObject;
  policyVersion?: string;
  scope?: string;
}

/** The parsed body. */
export interface V1CheckRequest {
  requestId: string | undefined;
  /** `subject.token`: SECURITY: a credential; never echoed, logged or cached in clear. */
  token: string | undefined;
  /** A subject stated directly (trusted gateways only). */
  subject: { id: string; roles: string[]; attr: JsonObject } | undefined;
  agent: { id: string; token?: string; roles?: string[]; attr?: JsonObject } | undefined;
  delegation: string | undefined;
  actions: string[];
  resources: V1Resource[];
  context: JsonObject;
  explain: boolean;
  /** True when the body states identity attributes that only a trusted gateway may state. */
  needsTrust: boolean;
  /** The trusted gateway whose key the caller presented (set by the route, not the body). */
  gateway?: string | undefined;
  /**
   * The decision's trace when tracing is on and the request sampled (set by the adapter, not the
   * body). Carried here because this object is the one every stage of the check already holds.
   */
  trace?: DecisionTrace | undefined;
  /**
   * The subject, agent and resources as the caller sent them, copied before enrichment writes
   * into this request's objects; kept only while the decision log is on (its entry holds the
   * sparse input).
   */
  sent?: { subject: V1CheckRequest['subject']; agent: V1CheckRequest['agent']; resources: readonly V1Resource[] } | undefined;
  /**
   * The body as it came, when the decision log may capture the entry from it (set by the route,
   * see `V1CheckEntry.capture`). INVARIANT: this request was parsed from exactly these bytes.
   */
  raw?: Buffer | undefined;
}

const TOP = new Set(['requestId', 'subject', 'agent', 'delegation', 'action', 'actions', 'resource', 'resources', 'context', 'explain']);
const RESOURCE = new Set(['kind', 'id', 'attr', 'policyVersion', 'scope']);
const SUBJECT = new Set(['token', 'id', 'roles', 'attr']);
const AGENT = new Set(['id', 'token', 'roles', 'attr']);
const NAME = /^[^\s]{1,256}$/;
const MAX_TOKEN = 16 * 1024;

function bad(field: string, message: string): WardenError {
  return new WardenError('ERR_REQUEST_INVALID', `\`${field}\`: ${message}`);
}

function only(o: Obj, allowed: ReadonlySet<string>, prefix: string): void {
  // INVARIANT: `o` comes from JSON.parse (own enumerable keys only), so for-in sees what Object.keys would.
  for (const k in o) if (!allowed.has(k)) throw bad(prefix === '' ? k : `${prefix}.${k}`, 'unknown field');
}

function text(v: unknown, field: string, pattern: RegExp = NAME): string {
  if (typeof v !== 'string' || !pattern.test(v)) throw bad(field, 'expected a non-empty string without spaces (at most 256 characters)');
  return v;
}

function optText(v: unknown, field: string): string | undefined {
  return v === undefined || v === null ? undefined : text(v, field);
}

function token(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_TOKEN) throw bad(field, `expected a token (a non-empty string of at most ${MAX_TOKEN} characters)`);
  return v;
}

function object(v: unknown, field: string): JsonObject {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw bad(field, 'expected an object');
  try {
    checkValue(v, 0);
  } catch (err) {
    throw bad(field, (err as Error).message);
  }
  return v as JsonObject;
}

function roles(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw bad(field, 'expected a non-empty list of role names');
  const seen = new Set<string>();
  return v.map((r, i) => {
    const role = text(r, `${field}[${i}]`);
    if (seen.has(role)) throw bad(field, `duplicate role \`${role}\``);
    seen.add(role);
    return role;
  });
}

function actionsOf(body: Obj, limits: RequestLimitsConfig): string[] {
  const one = body['action'];
  const many = body['actions'];
  if ((one === undefined) === (many === undefined)) throw bad('action', 'give exactly one of `action` or `actions`');
  if (one !== undefined) return [text(one, 'action')];
  if (!Array.isArray(many) || many.length === 0) throw bad('actions', 'expected a non-empty list of actions');
  if (many.length > limits.maxActionsPerResource) throw new WardenError('ERR_REQUEST_LIMIT_EXCEEDED', `\`actions\`: at most ${limits.maxActionsPerResource} actions per request`);
  const out = many.map((a, i) => text(a, `actions[${i}]`));
  if (new Set(out).size !== out.length) throw bad('actions', 'actions must be unique');
  return out;
}

function resourceOf(v: unknown, field: string): V1Resource {
  if (!isObj(v)) throw bad(field, 'expected an object with `kind` and `id`');
  only(v, RESOURCE, field);
  const r: V1Resource = { kind: text(v['kind'], `${field}.kind`), id: text(v['id'], `${field}.id`), attr: object(v['attr'], `${field}.attr`) };
  const pv = optText(v['policyVersion'], `${field}.policyVersion`);
  if (pv !== undefined) r.policyVersion = pv;
  const scope = v['scope'];
  if (scope !== undefined && scope !== null && scope !== '') r.scope = text(scope, `${field}.scope`);
  return r;
}

function resourcesOf(body: Obj, limits: RequestLimitsConfig): V1Resource[] {
  const one = body['resource'];
  const many = body['resources'];
  if ((one === undefined) === (many === undefined)) throw bad('resource', 'give exactly one of `resource` or `resources`');
  if (one !== undefined) return [resourceOf(one, 'resource')];
  if (!Array.isArray(many) || many.length === 0) throw bad('resources', 'expected a non-empty list of resources');
  if (many.length > limits.maxResourcesPerRequest) {
    throw new WardenError('ERR_REQUEST_LIMIT_EXCEEDED', `\`resources\`: at most ${limits.maxResourcesPerRequest} resources per request`);
  }
  return many.map((r, i) => resourceOf(r, `resources[${i}]`));
}

/**
 * Parses and checks a `/v1/check` body.
 * @example parseV1CheckRequest({ subject: { token }, action: 'invoke', resource: { kind: 'tool', id: 'search' } }, limits)
 */
export function parseV1CheckRequest(body: unknown, limits: RequestLimitsConfig): V1CheckRequest {
  if (!isObj(body)) throw bad('(body)', 'expected a JSON object');
  only(body, TOP, '');
  let needsTrust = false;
  let tok: string | undefined;
  let subject: V1CheckRequest['subject'];
  const s = body['subject'];
  if (s !== undefined && s !== null) {
    if (!isObj(s)) throw bad('subject', 'expected an object with `token` (or, from a trusted gateway, `id` and `roles`)');
    only(s, SUBJECT, 'subject');
    if (s['token'] !== undefined) {
      if (s['id'] !== undefined || s['roles'] !== undefined || s['attr'] !== undefined) throw bad('subject', 'give either `token` or `id`/`roles`/`attr`, not both');
      tok = token(s['token'], 'subject.token');
    } else {
      subject = { id: text(s['id'], 'subject.id'), roles: roles(s['roles'], 'subject.roles'), attr: object(s['attr'], 'subject.attr') };
      needsTrust = true;
    }
  } else if (body['delegation'] === undefined || body['delegation'] === null) {
    // With a delegation the subject is the one it was minted for.
    throw bad('subject', 'is required: `{ "token": "..." }` (or a `delegation`, which names it)');
  }
  let agent: V1CheckRequest['agent'];
  const a = body['agent'];
  if (a !== undefined && a !== null) {
    if (!isObj(a)) throw bad('agent', 'expected an object with `id`');
    only(a, AGENT, 'agent');
    agent = { id: text(a['id'], 'agent.id') };
    if (a['token'] !== undefined) agent.token = token(a['token'], 'agent.token');
    if (a['roles'] !== undefined) {
      agent.roles = roles(a['roles'], 'agent.roles');
      needsTrust = true;
    }
    if (a['attr'] !== undefined) {
      agent.attr = object(a['attr'], 'agent.attr');
      needsTrust = true;
    }
  }
  const d = body['delegation'];
  const delegation = d === undefined || d === null ? undefined : token(d, 'delegation');
  if (delegation !== undefined && agent === undefined) throw bad('agent', 'is required with `delegation`: the agent that holds it');
  const e = body['explain'];
  if (e !== undefined && typeof e !== 'boolean') throw bad('explain', 'expected true or false');
  const rid = body['requestId'];
  return {
    requestId: rid === undefined || rid === null || rid === '' ? undefined : text(rid, 'requestId'),
    token: tok,
    subject,
    agent,
    delegation,
    actions: actionsOf(body, limits),
    resources: resourcesOf(body, limits),
    context: object(body['context'], 'context'),
    explain: e === true,
    needsTrust,
  };
}
