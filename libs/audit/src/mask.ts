/**
 * Credential masking of the decision log's inputs: the masked paths compiled into a tree, and the
 * input (or its JSON text) with every masked value replaced by {@link MASKED}.
 */
import type { JsonValue } from '@warden/core';

/** Text JSON.stringify writes as it is: no quote, backslash, control character or surrogate. */
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** `s` as a JSON string: JSON.stringify's text (plain names, the usual case, take half its time). */
export const jsonString = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

/** Replaces a masked value (the key stays, so an auditor sees it was present). */
export const MASKED = '[masked]';

/**
 * Paths whose values are never stored: credentials of the subject, the agent and the
 * delegation. SECURITY: token values must never reach a log, whatever the configuration says.
 */
export const CREDENTIAL_PATHS: readonly string[] = ['subject.token', 'agent.token', 'delegation', 'token', 'context.headers.authorization', 'context.headers.cookie'];

/**
 * One level of a compiled mask: what a value's keys (or elements) match below it. Each path's
 * `*` is merged into the explicit keys beside it, so one lookup per key finds every path that
 * applies there.
 */
export interface MaskNode {
  /** The value here is replaced by {@link MASKED}. */
  readonly masked: boolean;
  /** Explicit keys (array indexes as decimal text), each with the `*` paths beside it merged in. */
  readonly keys: ReadonlyMap<string, MaskNode> | undefined;
  /** The explicit keys' names (those of `keys`), to look for in a value without iterating the map. */
  readonly names: readonly string[];
  /** What any other key or element matches (`*`). */
  readonly star: MaskNode | undefined;
}

/** A compiled list of masked paths. */
export interface InputMask {
  readonly paths: readonly (readonly string[])[];
  /** The paths as a tree, walked once per value (see {@link maskChild}). */
  readonly root: MaskNode;
}

function compileMask(paths: readonly (readonly string[])[], depth: number): MaskNode | undefined {
  if (paths.length === 0) return undefined;
  const below: (readonly string[])[] = [];
  for (const p of paths) {
    // A masked value is replaced whole: paths further down it change nothing.
    if (p.length === depth) return { masked: true, keys: undefined, names: [], star: undefined };
    below.push(p);
  }
  const names = new Set<string>();
  for (const p of below) if (p[depth] !== '*') names.add(p[depth] as string);
  let keys: Map<string, MaskNode> | undefined;
  for (const name of names) {
    const node = compileMask(
      below.filter((p) => p[depth] === name || p[depth] === '*'),
      depth + 1,
    ) as MaskNode;
    (keys ??= new Map()).set(name, node);
  }
  return { masked: false, keys, names: [...names], star: compileMask(below.filter((p) => p[depth] === '*'), depth + 1) };
}

/**
 * Compiles the masked paths: {@link CREDENTIAL_PATHS} plus `extra` (dotted paths into the input,
 * e.g. `context.prompt`, `resources.*.attr.ssn`, where `*` matches every key or array element).
 * @example const mask = createInputMask(['context.prompt']);
 */
export function createInputMask(extra: readonly string[] = []): InputMask {
  const paths = [...CREDENTIAL_PATHS, ...extra].map((p) => p.split('.'));
  return { paths, root: compileMask(paths, 0) as MaskNode };
}

/**
 * What the key (or the array index, as decimal text) `key` of a value under `node` matches:
 * undefined when no masked path goes through it.
 */
export function maskChild(node: MaskNode | undefined, key: string): MaskNode | undefined {
  if (node === undefined) return undefined;
  return node.keys === undefined ? node.star : (node.keys.get(key) ?? node.star);
}

/** {@link maskChild} for the array element at `index` (its decimal text made only when a key may name it). */
export function maskElement(node: MaskNode, index: number): MaskNode | undefined {
  return node.keys === undefined ? node.star : maskChild(node, String(index));
}

/**
 * The input with every masked path replaced by {@link MASKED}. Copies only along masked paths
 * (the rest is shared with `input`, which is never modified).
 * @example maskInput({ subject: { token: 'ey…' } }, createInputMask()) // { subject: { token: '[masked]' } }
 */
export function maskInput(input: Record<string, JsonValue>, mask: InputMask): Record<string, JsonValue> {
  return maskValue(input, mask.root) as Record<string, JsonValue>;
}

function maskValue(v: JsonValue, node: MaskNode): JsonValue {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let copy: JsonValue[] | undefined;
    for (let k = 0; k < v.length; k++) {
      const c = maskElement(node, k);
      if (c === undefined) continue;
      const next = c.masked ? MASKED : maskValue(v[k] as JsonValue, c);
      if (next !== v[k]) (copy ??= v.slice())[k] = next;
    }
    return copy ?? v;
  }
  let copy: Record<string, JsonValue> | undefined;
  const visit = (k: string, c: MaskNode): void => {
    const next = c.masked ? MASKED : maskValue(v[k] as JsonValue, c);
    if (next !== v[k]) (copy ??= { ...v })[k] = next;
  };
  if (node.star === undefined) {
    // Only the named keys can change: no walk over the others.
    if (node.keys !== undefined) for (const [k, c] of node.keys) if (Object.hasOwn(v, k)) visit(k, c);
  } else {
    for (const k of Object.keys(v)) visit(k, maskChild(node, k) as MaskNode);
  }
  return copy ?? v;
}

/** {@link MASKED} as JSON text. */
export const MASKED_JSON = JSON.stringify(MASKED);

function hasAnyOf(o: object, names: readonly string[]): boolean {
  for (let i = 0; i < names.length; i++) if (Object.hasOwn(o, names[i] as string)) return true;
  return false;
}

/**
 * The JSON text of `value` with the paths under `node` masked: what
 * `JSON.stringify(maskInput(value, ...))` gives, written without building the masked copy (the
 * decision log composes entries as text, see `v1CheckAuditJson`). Undefined where JSON.stringify
 * would give undefined.
 */
export function maskedJson(value: unknown, node: MaskNode | undefined): string | undefined {
  if (node === undefined) return JSON.stringify(value);
  if (node.masked) return MASKED_JSON;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let s = '[';
    for (let k = 0; k < value.length; k++) {
      s += (k === 0 ? '' : ',') + (maskedJson(value[k], maskElement(node, k)) ?? 'null');
    }
    return s + ']';
  }
  const o = value as Record<string, unknown>;
  // Only named keys can change here: a value that has none of them is written as it is, in one
  // JSON.stringify (the usual case: a subject or a context without a token or headers).
  if (node.star === undefined && !hasAnyOf(o, node.names)) return JSON.stringify(o);
  let s = '';
  for (const k of Object.keys(o)) {
    const v = maskedJson(o[k], maskChild(node, k));
    if (v !== undefined) s += (s === '' ? '' : ',') + JSON.stringify(k) + ':' + v;
  }
  return '{' + s + '}';
}
