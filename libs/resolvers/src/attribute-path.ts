/**
 * Attribute paths: the dotted names (`principal.id`, `resource.attr.projectId`) resolvers read
 * their keys from and write their results to. A path starts at one root of the partially built
 * input; under `principal`, `agent` and `resource` the second segment must be one of their fields.
 */
import { WardenError, type JsonValue } from '@warden/core';

/** The roots of the partially built input a path may start at. */
export const ATTRIBUTE_ROOTS = ['principal', 'agent', 'resource', 'context', 'delegation', 'subject'] as const;

/** One root of the partially built input. */
export type AttributeRoot = (typeof ATTRIBUTE_ROOTS)[number];

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** The partially built input of one item: every root is an optional JSON object. */
export type InputDocument = { [R in AttributeRoot]?: JsonObject };

/** A parsed attribute path. */
export interface AttributePath {
  /** The path as written, e.g. `resource.attr.projectId`. */
  readonly text: string;
  readonly root: AttributeRoot;
  /** The segments after the root (at least one). */
  readonly segments: readonly string[];
}

const ENTITY_FIELDS: Partial<Record<AttributeRoot, ReadonlySet<string>>> = {
  principal: new Set(['id', 'roles', 'attr', 'policyVersion', 'scope']),
  agent: new Set(['id', 'roles', 'attr', 'policyVersion', 'scope']),
  resource: new Set(['kind', 'id', 'attr', 'policyVersion', 'scope']),
};
const ROOTS: ReadonlySet<string> = new Set(ATTRIBUTE_ROOTS);
const SEGMENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
const MAX_SEGMENTS = 16;

function invalid(text: string, why: string): WardenError {
  return new WardenError('ERR_RESOLVER_PATH_INVALID', `invalid attribute path \`${text}\`: ${why}`);
}

/**
 * Parses `text`. Throws `ERR_RESOLVER_PATH_INVALID` for an unknown root, an empty or malformed
 * segment, an unknown field of an entity root, or a path that names a root alone.
 * @example parseAttributePath('resource.attr.projectId').segments // ['attr', 'projectId']
 */
export function parseAttributePath(text: string): AttributePath {
  if (typeof text !== 'string' || text === '') throw invalid(String(text), 'empty');
  const parts = text.split('.');
  const [root, ...segments] = parts;
  if (root === undefined || !ROOTS.has(root)) {
    throw invalid(text, `unknown root \`${root ?? ''}\` (expected one of ${ATTRIBUTE_ROOTS.join(', ')})`);
  }
  if (segments.length === 0) throw invalid(text, 'a path names a field under its root');
  if (parts.length > MAX_SEGMENTS) throw invalid(text, `more than ${MAX_SEGMENTS} segments`);
  for (const s of segments) if (!SEGMENT.test(s)) throw invalid(text, `malformed segment \`${s}\``);
  const fields = ENTITY_FIELDS[root as AttributeRoot];
  const first = segments[0] as string;
  if (fields !== undefined && !fields.has(first)) {
    throw invalid(text, `\`${root}\` has no field \`${first}\` (expected one of ${[...fields].join(', ')})`);
  }
  if (fields !== undefined && first !== 'attr' && segments.length > 1) {
    throw invalid(text, `\`${root}.${first}\` has no fields`);
  }
  return { text, root: root as AttributeRoot, segments };
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy of a JSON value (much cheaper than `structuredClone` for the small values resolvers write). */
export function cloneJson<T extends JsonValue | undefined>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T;
  const out: JsonObject = {};
  for (const k of Object.keys(value)) {
    const v = cloneJson((value as JsonObject)[k] as JsonValue);
    // A parsed `__proto__` key is data: assigning it would set the copy's prototype instead.
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  return out as T;
}

/** The value at `path` in `doc`, or `undefined` when any segment is missing. */
export function getAttribute(doc: InputDocument, path: AttributePath): JsonValue | undefined {
  let cur: JsonValue | undefined = doc[path.root];
  for (const s of path.segments) {
    if (!isObject(cur) || !Object.hasOwn(cur, s)) return undefined;
    cur = cur[s];
  }
  return cur;
}

/**
 * Writes `value` at `path`, creating missing objects on the way. Throws `ERR_RESOLVER_PATH_INVALID`
 * when a segment on the way holds a non-object (the input is never silently reshaped).
 */
export function setAttribute(doc: InputDocument, path: AttributePath, value: JsonValue): void {
  let cur: JsonObject = doc[path.root] ?? (doc[path.root] = {});
  const last = path.segments.length - 1;
  for (let i = 0; i < last; i++) {
    const s = path.segments[i] as string;
    const next = cur[s];
    if (next === undefined) {
      const created: JsonObject = {};
      cur[s] = created;
      cur = created;
    } else if (isObject(next)) {
      cur = next;
    } else {
      throw invalid(path.text, `\`${[path.root, ...path.segments.slice(0, i + 1)].join('.')}\` is not an object`);
    }
  }
  cur[path.segments[last] as string] = value;
}

/** True when one path is the other or lies under it (reading one may observe a write to the other). */
export function pathsOverlap(a: AttributePath, b: AttributePath): boolean {
  if (a.root !== b.root) return false;
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) if (a.segments[i] !== b.segments[i]) return false;
  return true;
}
