/**
 * Renders JSON values the way Cerbos prints output values: object keys sorted (proto JSON writes
 * struct fields in key order), compact for JUnit, `, `-separated for the tree view.
 */
import type { JsonValue } from '@warden/core';

/** Compact JSON with sorted keys: `{"a":1,"b":[1,2]}`. */
export function renderCompactJson(value: JsonValue): string {
  return render(value, ',');
}

/** JSON with sorted keys and `, ` between elements, as Cerbos's tree output: `{"a":1, "b":[1, 2]}`. */
export function renderSpacedJson(value: JsonValue): string {
  return render(value, ', ');
}

function render(value: JsonValue, separator: string): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => render(v, separator)).join(separator)}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${render(value[k] ?? null, separator)}`).join(separator)}}`;
}
