/**
 * OpenID AuthZEN 1.0 access evaluation requests (`POST /access/v1/evaluation` and
 * `POST /access/v1/evaluations`), read as the Cerbos PDP reads them: a subject
 * `{type, id, properties}` is the principal (`properties["cerbos.roles"]`,
 * `["cerbos.policyVersion"]` and `["cerbos.scope"]` set those fields, every other property is an
 * attribute), a resource `{type, id, properties}` likewise (`type` is the kind), an action
 * `{name}`; `context["cerbos.requestId"]`, `["cerbos.includeMeta"]` and `["cerbos.auxData"]`
 * carry what Cerbos's own requests carry. A batch gives defaults for subject, resource, action
 * and context that each evaluation may override, and an `options.evaluations_semantic`.
 *
 * The evaluations become the engine inputs of one check: one input per distinct (subject,
 * resource), with the actions asked of it in order. Messages follow Cerbos's.
 */
import type { CheckInput, JsonValue, Principal } from '@warden/core';
import { WardenError } from '@warden/core';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import { bool, checkValue, enforceLimits, isObj, newInput, parseAuxData, requireObjectBody, str, typeError, unknownField, Violations, type CheckRequest, type Obj } from './request-common.js';

/** How a batch ends: every evaluation, or at the first denial or the first permit (inclusive). */
export type EvaluationsSemantic = 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit';

/** One evaluation: the input it is answered from, its action, and the subject group it belongs to. */
export interface AuthzenEvaluation {
  readonly input: number;
  readonly action: string;
  readonly group: number;
}

/** A validated AuthZEN request, as a check request plus how to answer it. */
export interface AuthzenRequest extends CheckRequest {
  readonly authzen: {
    readonly single: boolean;
    readonly semantic: EvaluationsSemantic;
    readonly evaluations: readonly AuthzenEvaluation[];
    /** Per subject group, the indexes of its inputs (Cerbos answers each subject's resources together). */
    readonly groups: readonly (readonly number[])[];
  };
}

const SEMANTICS: readonly string[] = ['', 'execute_all', 'deny_on_first_deny', 'permit_on_first_permit'];

interface Entity {
  type: string;
  id: string;
  properties: Obj;
}

function parseEntity(v: unknown, path: string, out: Violations): Entity | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError('message', path, v);
  let type: string | undefined;
  let id: string | undefined;
  let properties: Obj = {};
  for (const k in v) {
    const x = v[k];
    if (k === 'type') type = str(x, 'type');
    else if (k === 'id') id = str(x, 'id');
    else if (k === 'properties') {
      if (x === undefined || x === null) continue;
      if (!isObj(x)) throw typeError('message', 'properties', x);
      for (const key in x) checkValue(x[key], 1);
      properties = x;
    } else throw unknownField(k);
  }
  if (type === undefined || type === '') out.add(`${path}.type`, 'value is required');
  if (id === undefined || id === '') out.add(`${path}.id`, 'value is required');
  return { type: type ?? '', id: id ?? '', properties };
}

function parseAction(v: unknown, path: string, out: Violations): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError('message', path, v);
  let name: string | undefined;
  for (const k in v) {
    const x = v[k];
    if (k === 'name') name = str(x, 'name');
    else if (k === 'properties') {
      if (x !== undefined && x !== null && !isObj(x)) throw typeError('message', 'properties', x);
    } else throw unknownField(k);
  }
  if (name === undefined || name === '') out.add(`${path}.name`, 'value is required');
  return name ?? '';
}

function parseContext(v: unknown): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError('message', 'context', v);
  for (const k in v) checkValue(v[k], 1);
  return v;
}

/** A property that must be a string (the Cerbos ones), or absent. */
function stringProperty(props: Obj, key: string): string | undefined {
  const v = props[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new WardenError('ERR_REQUEST_INVALID', `validation error: property ${JSON.stringify(key)} must be a string`);
  return v;
}

function attributes(props: Obj, skip: readonly string[]): Record<string, JsonValue> {
  const attr: Record<string, JsonValue> = {};
  for (const k in props) if (!skip.includes(k)) Object.defineProperty(attr, k, { value: props[k] as JsonValue, enumerable: true, writable: true, configurable: true });
  return attr;
}

function toPrincipal(s: Entity): Principal {
  const rolesRaw = s.properties['cerbos.roles'];
  let roles: string[] = [];
  if (rolesRaw !== undefined && rolesRaw !== null) {
    if (!Array.isArray(rolesRaw) || rolesRaw.some((r) => typeof r !== 'string')) {
      throw new WardenError('ERR_REQUEST_INVALID', 'validation error: property "cerbos.roles" must be a list of strings');
    }
    roles = rolesRaw as string[];
  }
  const p: Principal = { id: s.id, roles, attr: attributes(s.properties, ['cerbos.roles', 'cerbos.policyVersion', 'cerbos.scope']) };
  const pv = stringProperty(s.properties, 'cerbos.policyVersion');
  const scope = stringProperty(s.properties, 'cerbos.scope');
  if (pv !== undefined) p.policyVersion = pv;
  if (scope !== undefined) p.scope = scope;
  return p;
}

/** The Cerbos fields of a request's context. */
function applyContext(ctx: Obj | undefined, req: CheckRequest, out: Violations): void {
  if (ctx === undefined) return;
  const requestId = ctx['cerbos.requestId'];
  if (requestId !== undefined && requestId !== null) {
    if (typeof requestId !== 'string') throw typeError('string', 'cerbos.requestId', requestId);
    if (requestId !== '') req.requestId = requestId;
  }
  req.includeMeta = bool(ctx['cerbos.includeMeta'], 'cerbos.includeMeta');
  parseAuxData(ctx['cerbos.auxData'], req, out);
}

interface Parsed {
  subject?: Entity;
  resource?: Entity;
  action?: string;
  context?: Obj;
  evaluations?: unknown;
  semantic?: string;
}

function parseTop(body: unknown, batch: boolean, out: Violations): Parsed {
  const obj = requireObjectBody(body);
  const p: Parsed = {};
  for (const k in obj) {
    const x = obj[k];
    switch (k) {
      case 'subject':
        p.subject = parseEntity(x, 'subject', out);
        break;
      case 'resource':
        p.resource = parseEntity(x, 'resource', out);
        break;
      case 'action':
        p.action = parseAction(x, 'action', out);
        break;
      case 'context':
        p.context = parseContext(x);
        break;
      case 'evaluations':
        if (!batch) throw unknownField(k);
        p.evaluations = x;
        break;
      case 'options': {
        if (!batch) throw unknownField(k);
        if (x === undefined || x === null) break;
        if (!isObj(x)) throw typeError('message', 'options', x);
        for (const o in x) {
          if (o !== 'evaluations_semantic' && o !== 'evaluationsSemantic') throw unknownField(o);
          p.semantic = str(x[o], 'evaluations_semantic') ?? '';
        }
        break;
      }
      default:
        throw unknownField(k);
    }
  }
  return p;
}

/** Builds the check inputs: one per (subject, resource) pair, actions in the order asked. */
function build(items: { subject: Entity; resource: Entity; action: string }[], req: CheckRequest): { evaluations: AuthzenEvaluation[]; groups: number[][] } {
  const bySubject = new Map<string, { group: number; principal: Principal }>();
  const byPair = new Map<string, number>();
  const groups: number[][] = [];
  const evaluations: AuthzenEvaluation[] = [];
  for (const it of items) {
    const sk = JSON.stringify(it.subject);
    let s = bySubject.get(sk);
    if (s === undefined) {
      s = { group: groups.length, principal: toPrincipal(it.subject) };
      bySubject.set(sk, s);
      groups.push([]);
    }
    const pk = `${sk}\u0000${JSON.stringify(it.resource)}`;
    let idx = byPair.get(pk);
    if (idx === undefined) {
      idx = req.inputs.length;
      byPair.set(pk, idx);
      const r = it.resource;
      const attr = attributes(r.properties, ['cerbos.policyVersion', 'cerbos.scope']);
      req.inputs.push(newInput(s.principal, r.type, r.id, attr, stringProperty(r.properties, 'cerbos.policyVersion'), stringProperty(r.properties, 'cerbos.scope'), [], req.requestId));
      (groups[s.group] as number[]).push(idx);
    }
    const input = req.inputs[idx] as CheckInput;
    if (!input.actions.includes(it.action)) input.actions.push(it.action);
    evaluations.push({ input: idx, action: it.action, group: s.group });
  }
  return { evaluations, groups };
}

/**
 * Validates a parsed JSON body as an AuthZEN access evaluation request.
 * @example parseAccessEvaluationRequest({ subject: { type: 'user', id: 'alice', properties: { 'cerbos.roles': ['user'] } }, resource: { type: 'tool', id: 'web_search' }, action: { name: 'invoke' } }, limits)
 */
export function parseAccessEvaluationRequest(body: unknown, limits: RequestLimitsConfig): AuthzenRequest {
  const out = new Violations();
  const p = parseTop(body, false, out);
  if (p.subject === undefined) out.add('subject', 'value is required');
  if (p.resource === undefined) out.add('resource', 'value is required');
  if (p.action === undefined) out.add('action', 'value is required');
  const req: CheckRequest = { requestId: undefined, includeMeta: false, inputs: [], jwt: undefined, jwts: undefined };
  applyContext(p.context, req, out);
  out.throwIfAny();
  const built = build([{ subject: p.subject as Entity, resource: p.resource as Entity, action: p.action as string }], req);
  enforceLimits(req.inputs, limits);
  return Object.assign(req, { authzen: { single: true, semantic: 'execute_all' as const, ...built } });
}

/**
 * Validates a parsed JSON body as an AuthZEN access evaluations (batch) request. Each evaluation's
 * subject, resource, action and context default to the request's.
 */
export function parseAccessEvaluationsRequest(body: unknown, limits: RequestLimitsConfig): AuthzenRequest {
  const out = new Violations();
  const p = parseTop(body, true, out);
  const raw = p.evaluations;
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) throw typeError('repeated message', 'evaluations', raw);
  const list = (raw ?? []) as unknown[];
  if (list.length === 0) out.add('evaluations', 'must contain at least 1 item(s)');
  if (p.semantic !== undefined && !SEMANTICS.includes(p.semantic)) out.add('options.evaluations_semantic', 'must be in list [, execute_all, deny_on_first_deny, permit_on_first_permit]');
  const items: { subject: Entity; resource: Entity; action: string }[] = [];
  let missingResource = false;
  list.forEach((e, i) => {
    const at = `evaluations[${i}]`;
    if (!isObj(e)) throw typeError('message', 'evaluations', e);
    let subject = p.subject;
    let resource = p.resource;
    let action = p.action;
    for (const k in e) {
      const x = e[k];
      if (k === 'subject') subject = parseEntity(x, `${at}.subject`, out) ?? subject;
      else if (k === 'resource') resource = parseEntity(x, `${at}.resource`, out) ?? resource;
      else if (k === 'action') action = parseAction(x, `${at}.action`, out) ?? action;
      // An evaluation's own context is accepted; the Cerbos fields are read from the request's.
      else if (k === 'context') parseContext(x);
      else throw unknownField(k);
    }
    if (subject === undefined) out.add(`${at}.subject`, 'value is required');
    if (resource === undefined) missingResource = true;
    if (action === undefined) out.add(`${at}.action`, 'value is required');
    if (subject !== undefined && resource !== undefined && action !== undefined) items.push({ subject, resource, action });
  });
  if (missingResource) (out.list ??= []).push('either the default resource must be set or all evaluations must have a resource');
  const req: CheckRequest = { requestId: undefined, includeMeta: false, inputs: [], jwt: undefined, jwts: undefined };
  applyContext(p.context, req, out);
  out.throwIfAny();
  const built = build(items, req);
  enforceLimits(req.inputs, limits);
  const semantic = (p.semantic === undefined || p.semantic === '' ? 'execute_all' : p.semantic) as EvaluationsSemantic;
  return Object.assign(req, { authzen: { single: false, semantic, ...built } });
}
