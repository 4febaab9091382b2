/**
 * Rows of a `postgres` resolver's query, matched back to the keys of the batch and made JSON.
 *
 * A row belongs to the key equal to the string form of its key column (`42` and `"42"` match, so
 * a number key finds an `int` or a `text` column alike); rows of keys not asked for are ignored.
 * Column values become JSON the way the rest of the broker sees them: a timestamp becomes its ISO
 * string, an `int8` a number (a string beyond 2^53), `json`/`jsonb` stay as parsed; a value JSON
 * cannot hold (`bytea`, `interval` objects, NaN) is refused, naming the column (never the value).
 */
import type { JsonValue } from '@warden/core';

/** Why a batch's rows cannot be used, or one row's value cannot. */
export class RowShapeError extends Error {}

/**
 * The string form a key is matched by, or undefined when the key cannot be a column value.
 * @example keyString(42) === keyString('42') // true
 */
export function keyString(key: unknown): string | undefined {
  if (typeof key === 'string') return key;
  if ((typeof key === 'number' && Number.isFinite(key)) || typeof key === 'boolean' || typeof key === 'bigint') return String(key);
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Converts one column value to JSON; throws {@link RowShapeError} naming `column`. */
function toJson(value: unknown, column: string): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RowShapeError(`column \`${column}\` holds a non-finite number`);
    return value;
  }
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new RowShapeError(`column \`${column}\` holds an invalid timestamp`);
    return value.toISOString();
  }
  if (Array.isArray(value)) return value.map((v) => toJson(v, column));
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJson(v, column);
    return out;
  }
  throw new RowShapeError(`column \`${column}\` has a type JSON cannot hold (cast it to text or json in the query)`);
}

/** One row as a JSON object; throws {@link RowShapeError}. */
function rowToJson(row: Record<string, unknown>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [column, value] of Object.entries(row)) out[column] = toJson(value, column);
  return out;
}

/** A key's rows after matching: found rows as JSON, or why that key's rows are unusable. */
export type KeyRows = { readonly rows: ReadonlyArray<Record<string, JsonValue>> } | { readonly invalid: string };

/**
 * Groups `rows` by the string form of `keyColumn`, keeping only keys in `wanted`. Throws
 * {@link RowShapeError} when a row is not an object or its key column is missing, null or not a
 * scalar (the batch cannot be matched then); a value that cannot become JSON spoils only its key.
 * @example groupRows([{ key: 1, limit: 5 }], 'key', new Set(['1'])).get('1') // { rows: [{ key: 1, limit: 5 }] }
 */
export function groupRows(rows: ReadonlyArray<unknown>, keyColumn: string, wanted: ReadonlySet<string>): Map<string, KeyRows> {
  const found = new Map<string, Record<string, JsonValue>[]>();
  const invalid = new Map<string, string>();
  for (const row of rows) {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new RowShapeError('a row is not an object');
    const record = row as Record<string, unknown>;
    if (!Object.hasOwn(record, keyColumn)) throw new RowShapeError(`a row has no column \`${keyColumn}\``);
    const k = keyString(record[keyColumn]);
    if (k === undefined) throw new RowShapeError(`a row's column \`${keyColumn}\` is null or not a string or number`);
    if (!wanted.has(k) || invalid.has(k)) continue;
    try {
      const json = rowToJson(record);
      const list = found.get(k);
      if (list === undefined) found.set(k, [json]);
      else list.push(json);
    } catch (err) {
      if (!(err instanceof RowShapeError)) throw err;
      invalid.set(k, err.message);
    }
  }
  const out = new Map<string, KeyRows>();
  for (const [k, list] of found) if (!invalid.has(k)) out.set(k, { rows: list });
  for (const [k, why] of invalid) out.set(k, { invalid: why });
  return out;
}
