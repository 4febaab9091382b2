/**
 * The decision-log entry: one per decision Warden returned (or per delegation, revocation and
 * admin change), keyed by the decision id the caller received. It holds what an auditor needs to
 * replay the decision: the sparse input (credentials removed), the enriched attributes with
 * their provenance, who acted, every action's effect with the policy that decided it, the
 * outputs, the reasons and the stage timings.
 */
import type { JsonValue } from '@warden/core';

/** What kind of event an entry records. */
export type AuditEventKind = 'check' | 'plan' | 'delegation' | 'revocation' | 'admin';

/** The effect of one action on one resource, with what decided it when known. */
export interface AuditActionEffect {
  effect: 'ALLOW' | 'DENY';
  /** The subject's matched policy (known when the engine reported it). */
  policy?: string;
  /** The rule that decided (`<policy key>#<rule name>`), when one rule did. */
  rule?: string;
  scope?: string;
  /** The acting agent's own effect and matched policy, when an agent acted. */
  agent?: { effect: 'ALLOW' | 'DENY'; policy: string; rule?: string; scope?: string };
  /** The delegation's verdict (its scope and depth), when one was presented. */
  delegation?: 'ALLOW' | 'DENY';
}

/** The decision for one resource. */
export interface AuditResult {
  resource: { kind: string; id: string };
  decision: 'ALLOW' | 'DENY';
  actions: Record<string, AuditActionEffect>;
  outputs?: JsonValue[];
}

/** Who acted: the subject, the agent and the delegation chain (ids only). */
export interface AuditIdentities {
  subject?: string;
  agent?: string;
  /** Delegation ids, root first. */
  delegationChain?: string[];
  /** The trusted gateway whose key was presented. */
  gateway?: string;
}

/** One decision-log entry. JSON-serialisable as it is. */
export interface AuditEntry {
  /** The decision id returned to the caller; unique, the sinks' idempotency key. */
  decisionId: string;
  /** When the decision was made (ISO 8601). */
  time: string;
  kind: AuditEventKind;
  /** The policy set's content hash. */
  policyVersion: string;
  /** The caller's request id, when it sent one. */
  requestId?: string;
  /** Which surface decided (`/v1/check`, `/api/check/resources`, ...). */
  source: string;
  /** `ALLOW` when every action on every resource was allowed. */
  decision: 'ALLOW' | 'DENY';
  identities: AuditIdentities;
  /** The sparse input as the caller sent it, credentials removed (see {@link maskInput}). */
  input: Record<string, JsonValue>;
  /** Enriched attributes: path → provenance (which resolver, cached, duration). */
  attributes?: Record<string, JsonValue>;
  results: AuditResult[];
  /** Deny reasons (stable codes and messages safe to show to an agent). */
  reasons: JsonValue[];
  /** Stage timings in ms, when they were measured. */
  timings?: Record<string, number>;
}

/**
 * An entry, a function that builds it (the writer calls it once: in the check phase after
 * `record`, at once for `recordDurable`), or an entry already serialised (by a writer's other
 * thread, see `createThreadedAuditWriter`).
 */
export type AuditRecord = AuditEntry | (() => AuditEntry) | SerializedEntry;

/**
 * An entry serialised once, when the writer builds it: the JSON every sink and the spill file take, and
 * the fields sinks key or index on. What waits in the writer's queue is this flat object and one
 * string, not the request's object graph (which, kept alive for a batch interval, survived the
 * young-generation collections and made the decision log's GC cost several times its own work).
 */
export interface SerializedEntry {
  readonly decisionId: string;
  readonly time: string;
  readonly kind: AuditEventKind;
  readonly policyVersion: string;
  readonly source: string;
  readonly decision: 'ALLOW' | 'DENY';
  readonly subject: string | undefined;
  readonly agent: string | undefined;
  /** `kind/id` of every resource decided. */
  readonly resources: readonly string[];
  /** The whole entry as JSON, one line. */
  readonly json: string;
}

function serializedFields(e: AuditEntry, json: string): SerializedEntry {
  const resources = new Array<string>(e.results.length);
  for (let i = 0; i < e.results.length; i++) {
    const r = (e.results[i] as AuditResult).resource;
    resources[i] = `${r.kind}/${r.id}`;
  }
  return { decisionId: e.decisionId, time: e.time, kind: e.kind, policyVersion: e.policyVersion, source: e.source, decision: e.decision, subject: e.identities.subject, agent: e.identities.agent, resources, json };
}

/**
 * `r` serialised (a builder is called, an entry serialised, a serialised entry taken as it is),
 * or why it could not be, reported through `onError`: a builder that throws is a bug, and must
 * take down neither the writer nor its caller.
 */
export function buildRecord(r: AuditRecord, onError: (message: string) => void): SerializedEntry | Error {
  try {
    if (typeof r === 'function') return serializeEntry(r());
    return 'json' in r ? r : serializeEntry(r);
  } catch (err) {
    onError(`audit: an entry could not be built: ${(err as Error).message}`);
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * Serialises an entry for the sinks.
 * @example const s = serializeEntry(entry); s.json // '{"decisionId":...}'
 */
export function serializeEntry(e: AuditEntry): SerializedEntry {
  return serializedFields(e, JSON.stringify(e));
}

/** The serialised entry of a spill-file line (the line is kept as the entry's JSON); throws on a torn line. */
export function entryFromLine(line: string): SerializedEntry {
  return serializedFields(JSON.parse(line) as AuditEntry, line);
}

/** Replaces a masked value (the key stays, so an auditor sees it was present). */
export const MASKED = '[masked]';

/**
 * Paths whose values are never stored: credentials of the subject, the agent and the
 * delegation. SECURITY: token values must never reach a log, whatever the configuration says.
 */
export const CREDENTIAL_PATHS: readonly string[] = ['subject.token', 'agent.token', 'delegation', 'token', 'context.headers.authorization', 'context.headers.cookie'];

/** A compiled list of masked paths. */
export interface InputMask {
  readonly paths: readonly (readonly string[])[];
}

/**
 * Compiles the masked paths: {@link CREDENTIAL_PATHS} plus `extra` (dotted paths into the input,
 * e.g. `context.prompt`, `resources.*.attr.ssn`, where `*` matches every key or array element).
 * @example const mask = createInputMask(['context.prompt']);
 */
export function createInputMask(extra: readonly string[] = []): InputMask {
  return { paths: [...CREDENTIAL_PATHS, ...extra].map((p) => p.split('.')) };
}

/**
 * The input with every masked path replaced by {@link MASKED}. Copies only along masked paths
 * (the rest is shared with `input`, which is never modified).
 * @example maskInput({ subject: { token: 'ey…' } }, createInputMask()) // { subject: { token: '[masked]' } }
 */
export function maskInput(input: Record<string, JsonValue>, mask: InputMask): Record<string, JsonValue> {
  let out: JsonValue = input;
  for (const path of mask.paths) out = maskPath(out, path, 0);
  return out as Record<string, JsonValue>;
}

function maskPath(v: JsonValue, path: readonly string[], i: number): JsonValue {
  if (v === null || typeof v !== 'object') return v;
  const key = path[i] as string;
  const last = i === path.length - 1;
  if (Array.isArray(v)) {
    if (key !== '*' && !/^\d+$/.test(key)) return v;
    let copy: JsonValue[] | undefined;
    for (let k = 0; k < v.length; k++) {
      if (key !== '*' && String(k) !== key) continue;
      const next = last ? MASKED : maskPath(v[k] as JsonValue, path, i + 1);
      if (next !== v[k]) (copy ??= v.slice())[k] = next;
    }
    return copy ?? v;
  }
  let copy: Record<string, JsonValue> | undefined;
  for (const k of key === '*' ? Object.keys(v) : Object.hasOwn(v, key) ? [key] : []) {
    const next = last ? MASKED : maskPath(v[k] as JsonValue, path, i + 1);
    if (next !== v[k]) (copy ??= { ...v })[k] = next;
  }
  return copy ?? v;
}
