/**
 * The decision-log entry: one per decision Warden returned (or per delegation, revocation and
 * admin change), keyed by the decision id the caller received. It holds what an auditor needs to
 * replay the decision: the sparse input (credentials removed), the enriched attributes with
 * their provenance, who acted, every action's effect with the policy that decided it, the
 * outputs, the reasons and the stage timings.
 */
import type { JsonValue } from '@warden/core';
import { TextJsonOut, type JsonOut } from './json-out.js';
import { jsonString } from './mask.js';

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
 * An entry that writes its own {@link packEntry} text (the fields line, a newline, the JSON) into
 * a {@link JsonOut}: the threaded writer has it write straight into the ring's bytes, with no string
 * made (see `EntryRingWriter.compose`); elsewhere it is written as text ({@link composedEntry}).
 */
export interface ComposedEntry {
  compose(out: JsonOut): void;
  /**
   * Writes the entry as a captured record into `buf` from `start` up to `end`, where the writer's
   * ring decodes captured records ({@link CaptureDecoder}): the first byte {@link CAPTURED}, then
   * what only the answering thread holds (the decision as codes, the request as the bytes it came
   * in as), for the writer's thread to compose the entry from. Returns the offset after the
   * record, {@link CAPTURE_NO_ROOM} when it does not fit (nothing of use written), or
   * {@link CAPTURE_NONE} when this entry is composed instead (`compose`).
   */
  capture?(buf: Buffer, start: number, end: number): number;
}

/** The first byte of a captured record in the writer's ring (a composed one starts with its fields line's `[`). */
export const CAPTURED = 0x01;
/** {@link ComposedEntry.capture}: the record did not fit. */
export const CAPTURE_NO_ROOM = -1;
/** {@link ComposedEntry.capture}: this entry is not captured (compose it). */
export const CAPTURE_NONE = -2;

/**
 * Composes the entry a captured record ({@link ComposedEntry.capture}) stands for: the UTF-8 of
 * {@link packEntry}'s text, exactly what `compose` would have written. Given to both ends of the
 * writer's ring (its thread reads the records, the answering thread takes back those a stopped
 * thread did not); throws only on bytes no `capture` wrote.
 */
export type CaptureDecoder = (record: Buffer) => Buffer;

/**
 * An entry, a function that builds it (the writer calls it once: in the check phase after
 * `record`, at once for `recordDurable`) as an object or already serialised, an entry already
 * serialised (by a writer's other thread, see `createThreadedAuditWriter`), or one that composes
 * itself (called as a builder is).
 */
export type AuditRecord = AuditEntry | (() => AuditEntry | SerializedEntry) | SerializedEntry | ComposedEntry;

/** Whether `r` composes itself. */
export const isComposed = (r: AuditRecord): r is ComposedEntry => typeof (r as Partial<ComposedEntry>).compose === 'function';

/** The entry `c` composes, as text. */
export function composedEntry(c: ComposedEntry): SerializedEntry {
  const out = new TextJsonOut();
  c.compose(out);
  return unpackEntry(out.text);
}

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
  /** {@link fieldsLine}'s text, when the entry came packed with it (see {@link readPackedUtf8}). */
  readonly fieldsJson?: string;
  /**
   * The packed record's UTF-8 ({@link packEntry}'s text: the fields line, a newline, the JSON) when
   * the entry was read from the writer's ring ({@link readPackedUtf8}): sinks copy these bytes
   * ({@link Utf8Batch}) instead of decoding them into `json` and encoding that again.
   */
  readonly utf8?: Buffer;
  /** With {@link utf8}: the offset of the newline that ends the fields line. */
  readonly utf8Nl?: number;
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
    if (isComposed(r)) return composedEntry(r);
    const e = typeof r === 'function' ? r() : r;
    return 'json' in e ? e : serializeEntry(e);
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

/**
 * An entry as one line of text for the ring: a JSON array of the fields sinks key on, a newline,
 * then the entry's JSON (which holds no raw newline).
 */
export function packEntry(e: SerializedEntry): string {
  return `${fieldsLine(e)}\n${e.json}`;
}

/**
 * The fields sinks key on as one JSON array: `[decisionId, time, kind, policyVersion, source,
 * decision, subject | null, agent | null, [resources]]` (the first line {@link packEntry} writes).
 */
export function fieldsLine(e: SerializedEntry): string {
  if (e.fieldsJson !== undefined) return e.fieldsJson;
  let resources = '';
  for (let i = 0; i < e.resources.length; i++) resources += (i === 0 ? '' : ',') + jsonString(e.resources[i] as string);
  const subject = e.subject === undefined ? 'null' : jsonString(e.subject);
  const agent = e.agent === undefined ? 'null' : jsonString(e.agent);
  return `[${jsonString(e.decisionId)},${jsonString(e.time)},${jsonString(e.kind)},${jsonString(e.policyVersion)},${jsonString(e.source)},${jsonString(e.decision)},${subject},${agent},[${resources}]]`;
}

type PackedFieldValues = [string, string, AuditEventKind, string, string, 'ALLOW' | 'DENY', string | null, string | null, string[]];

/**
 * The entry {@link packEntry} packed, as a plain object (one that survives a structured clone,
 * unlike {@link readPackedUtf8}'s); throws on text it did not write.
 */
export function unpackEntry(text: string): SerializedEntry {
  const nl = text.indexOf('\n');
  if (nl < 0 || text.charCodeAt(0) !== 0x5b || text.charCodeAt(nl - 1) !== 0x5d) throw new Error('a ring record without its fields line');
  const f = JSON.parse(text.slice(0, nl)) as PackedFieldValues;
  return { decisionId: f[0], time: f[1], kind: f[2], policyVersion: f[3], source: f[4], decision: f[5], subject: f[6] ?? undefined, agent: f[7] ?? undefined, resources: f[8], json: text.slice(nl + 1) };
}

/**
 * An entry {@link packEntry} packed, read lazily from the record's UTF-8 as it was in the writer's
 * ring (a copy the entry owns): one object over the bytes, whose fields are parsed from its fields
 * line on first use, and only by a sink that uses them (the NDJSON sink never does; the Postgres
 * sink copies the fields line as it is). In the writer's thread an entry waits in the queue as
 * this object and its bytes, outside the heap, not as a dozen objects more (the queue outlives
 * young-generation collections at the peak, and copying it was most of that thread's collections:
 * bench/README.md); a sink writes the bytes as they are (see {@link SerializedEntry.utf8}), and
 * `json` is decoded only where the spill file asks for it. Throws, as {@link unpackEntry}, on
 * bytes without a fields line; fields that do not parse throw where they are first read.
 * INVARIANT: for the thread that read it only (a structured clone keeps the bytes, not the getters).
 */
export function readPackedUtf8(bytes: Buffer): SerializedEntry {
  const nl = bytes.indexOf(0x0a);
  if (nl < 0 || bytes[0] !== 0x5b || bytes[nl - 1] !== 0x5d) throw new Error('a ring record without its fields line');
  return new PackedUtf8Entry(bytes, nl);
}

class PackedUtf8Entry implements SerializedEntry {
  private parsed: PackedFieldValues | undefined;

  constructor(
    readonly utf8: Buffer,
    readonly utf8Nl: number,
  ) {}

  private get f(): PackedFieldValues {
    this.parsed ??= JSON.parse(this.fieldsJson) as PackedFieldValues;
    return this.parsed;
  }
  get fieldsJson(): string {
    return this.utf8.toString('utf8', 0, this.utf8Nl);
  }
  get json(): string {
    return this.utf8.toString('utf8', this.utf8Nl + 1);
  }
  get decisionId(): string {
    // The first field without parsing the others (the NATS sink reads only this one), where it
    // needs no unescaping: `["<id>",...`.
    if (this.parsed === undefined && this.utf8[1] === 0x22) {
      const end = this.utf8.indexOf(0x22, 2);
      if (end > 0 && end < this.utf8Nl && this.utf8.lastIndexOf(0x5c, end) < 2) return this.utf8.toString('utf8', 2, end);
    }
    return this.f[0];
  }
  get time(): string {
    return this.f[1];
  }
  get kind(): AuditEventKind {
    return this.f[2];
  }
  get policyVersion(): string {
    return this.f[3];
  }
  get source(): string {
    return this.f[4];
  }
  get decision(): 'ALLOW' | 'DENY' {
    return this.f[5];
  }
  get subject(): string | undefined {
    return this.f[6] ?? undefined;
  }
  get agent(): string | undefined {
    return this.f[7] ?? undefined;
  }
  get resources(): readonly string[] {
    return this.f[8];
  }
}

/** The serialised entry of a spill-file line (the line is kept as the entry's JSON); throws on a torn line. */
export function entryFromLine(line: string): SerializedEntry {
  return serializedFields(JSON.parse(line) as AuditEntry, line);
}
