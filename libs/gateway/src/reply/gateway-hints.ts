/**
 * Routing hints: what a policy's outputs tell the gateway to do with an allowed request, as
 * request headers (both ext_authz modes, nginx, Traefik) and as typed values (Envoy's
 * `dynamic_metadata`). A few output keys have a defined meaning:
 *
 * | output key | value | header |
 * |---|---|---|
 * | `regions` or `allowedRegions` | list of region names (or one) | `x-warden-allowed-regions: eu-west-1,eu-central-1` |
 * | `maxTokens` | positive integer | `x-warden-max-tokens: 1024` |
 * | `model` | model name | `x-warden-model: gpt-4o-mini` |
 * | `contentRestrictions` | list of names (or one) | `x-warden-content-restrictions: no-pii,no-code` |
 *
 * Any other key of an output object becomes `x-warden-<key, lower-cased>` (string, number,
 * boolean or list-of-strings values). Pure: no I/O, no policy logic.
 */
import type { JsonValue } from '@warden/core';

/** One hint: the header a gateway receives, and the typed value for metadata. */
export interface GatewayHint {
  /** Header name, lower-case (`x-warden-…`). */
  readonly header: string;
  /** Header value: printable ASCII, at most 512 characters. */
  readonly value: string;
  /** Metadata key (the well-known name, or the output key). */
  readonly key: string;
  /** The typed value (a list stays a list, a number a number). */
  readonly typed: JsonValue;
}

/** Hints of an allowed decision, and the well-known outputs that could not be carried. */
export interface GatewayHints {
  readonly hints: readonly GatewayHint[];
  /**
   * Well-known output keys whose value has the wrong shape or is not header-safe. SECURITY: a
   * restriction the gateway cannot receive must not be silently dropped (that would lift it):
   * callers deny when this is not empty.
   */
  readonly invalid: readonly string[];
}

/** Headers Warden sets itself or reads as identities: never produced by a generic output key. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'x-warden-decision-id',
  'x-warden-policy-version',
  'x-warden-reservation-id',
  'x-warden-agent',
  'x-warden-delegation',
  'x-warden-api-key',
]);

type WellKnown = { key: string; header: string; read: (v: unknown) => { text: string; typed: JsonValue } | undefined };

const KEY = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** Header-safe values: printable ASCII only, so nothing can end the header line or start another. */
const VALUE = /^[\x20-\x7e]{0,512}$/;
/** One item of a list header: no separator, no surrounding space. */
const ITEM = /^[\x21-\x2b\x2d-\x7e]([\x20-\x2b\x2d-\x7e]{0,126}[\x21-\x2b\x2d-\x7e])?$/;

function list(v: unknown): { text: string; typed: JsonValue } | undefined {
  const items = typeof v === 'string' ? [v] : Array.isArray(v) ? v : undefined;
  if (items === undefined || items.length === 0 || !items.every((i): i is string => typeof i === 'string' && ITEM.test(i))) return undefined;
  return { text: items.join(','), typed: items };
}

function positiveInt(v: unknown): { text: string; typed: JsonValue } | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? { text: String(v), typed: v } : undefined;
}

function oneName(v: unknown): { text: string; typed: JsonValue } | undefined {
  return typeof v === 'string' && ITEM.test(v) ? { text: v, typed: v } : undefined;
}

const WELL_KNOWN: ReadonlyMap<string, WellKnown> = new Map(
  (
    [
      ['regions', { key: 'allowedRegions', header: 'x-warden-allowed-regions', read: list }],
      ['allowedRegions', { key: 'allowedRegions', header: 'x-warden-allowed-regions', read: list }],
      ['maxTokens', { key: 'maxTokens', header: 'x-warden-max-tokens', read: positiveInt }],
      ['model', { key: 'model', header: 'x-warden-model', read: oneName }],
      ['contentRestrictions', { key: 'contentRestrictions', header: 'x-warden-content-restrictions', read: list }],
    ] as const
  ).map(([k, w]) => [k, w as WellKnown]),
);

const WELL_KNOWN_HEADERS: ReadonlySet<string> = new Set([...WELL_KNOWN.values()].map((w) => w.header));

function generic(v: unknown): { text: string; typed: JsonValue } | undefined {
  if (typeof v === 'string' || typeof v === 'boolean') return { text: String(v), typed: v };
  if (typeof v === 'number') return Number.isFinite(v) ? { text: String(v), typed: v } : undefined;
  if (Array.isArray(v) && v.every((e) => typeof e === 'string')) return { text: v.join(','), typed: v as string[] };
  return undefined;
}

/**
 * The routing hints in the outputs of a decided resource (each output's value that is an
 * object contributes its keys; a later output wins over an earlier one for the same header).
 * @example gatewayHints([{ val: { maxTokens: 1024, regions: ['eu-west-1'] } }]).hints
 * // [{ header: 'x-warden-max-tokens', value: '1024', key: 'maxTokens', typed: 1024 }, { header: 'x-warden-allowed-regions', ... }]
 */
export function gatewayHints(outputs: readonly { readonly val?: unknown }[]): GatewayHints {
  const byHeader = new Map<string, GatewayHint>();
  const invalid: string[] = [];
  for (const o of outputs) {
    const v = o.val;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) continue;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const known = WELL_KNOWN.get(k);
      if (known !== undefined) {
        const read = known.read(x);
        if (read === undefined || !VALUE.test(read.text)) {
          invalid.push(k);
          byHeader.delete(known.header);
          continue;
        }
        byHeader.delete(known.header);
        byHeader.set(known.header, { header: known.header, value: read.text, key: known.key, typed: read.typed });
        continue;
      }
      if (!KEY.test(k)) continue;
      const header = `x-warden-${k.toLowerCase()}`;
      // SECURITY: a generic key never produces Warden's own headers, an identity header, or a
      // well-known header without that key's checks (`max-tokens` is not `maxTokens`).
      if (RESERVED_HEADERS.has(header) || WELL_KNOWN_HEADERS.has(header)) continue;
      const read = generic(x);
      // SECURITY: a value that could end the header line is dropped, never sent.
      if (read === undefined || !VALUE.test(read.text)) continue;
      byHeader.delete(header);
      byHeader.set(header, { header, value: read.text, key: k, typed: read.typed });
    }
  }
  return { hints: [...byHeader.values()], invalid: [...new Set(invalid)] };
}
