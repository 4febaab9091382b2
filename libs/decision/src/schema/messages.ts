/**
 * Turns ajv's error list into the leaf errors jsonschema v5 reports (and Cerbos flattens):
 * same instance paths (JSON pointers, `/` for the root) and the same message wording.
 */
import type { ErrorObject } from 'ajv';
import { goFloat, goSharpV, goV, jsonType, pathEscapeToken, v5Quote } from './format.js';

export interface LeafError {
  path: string;
  message: string;
  /** ajv keyword, used to filter `required` errors for query plans. */
  keyword: string;
}

function toPath(instancePath: string): string {
  if (instancePath === '') return '/';
  return instancePath
    .split('/')
    .map((t, i) => (i === 0 ? t : pathEscapeToken(t)))
    .join('/');
}

function escapeToken(t: string): string {
  return pathEscapeToken(t.replaceAll('~', '~0').replaceAll('/', '~1'));
}

function childPath(instancePath: string, token: string): string {
  return `${instancePath === '' ? '' : toPath(instancePath)}/${escapeToken(token)}`;
}

function parentSchemaPath(schemaPath: string): string {
  const i = schemaPath.lastIndexOf('/');
  return i < 0 ? '' : schemaPath.slice(0, i);
}

function enumMessage(values: unknown): string {
  if (!Array.isArray(values)) return 'enum failed';
  if (values.some((v) => v !== null && typeof v === 'object')) return 'enum failed';
  if (values.length === 1) return `value must be ${goSharpV(values[0])}`;
  return `value must be one of ${values.map(goSharpV).join(', ')}`;
}

function num(v: unknown): string {
  return typeof v === 'number' ? goFloat(v) : goV(v);
}

/** Translate one ajv run's errors. */
export function translateErrors(errs: readonly ErrorObject[]): LeafError[] {
  // jsonschema v5 stops at a failed `type`: drop what ajv reported from the same schema object.
  const typeFails = errs.filter((e) => e.keyword === 'type');
  const suppressed = (e: ErrorObject): boolean =>
    e.keyword !== 'type' &&
    typeFails.some(
      (t) =>
        (e.instancePath === t.instancePath || e.instancePath.startsWith(`${t.instancePath}/`)) &&
        e.schemaPath.startsWith(`${parentSchemaPath(t.schemaPath)}/`),
    );

  const out: LeafError[] = [];
  const grouped = new Map<string, LeafError & { names: string[]; prefix: string; suffix: string }>();
  const group = (e: ErrorObject, name: string, prefix: string, suffix: string) => {
    const key = `${e.keyword}\u0000${e.instancePath}\u0000${e.schemaPath}`;
    let g = grouped.get(key);
    if (!g) {
      g = { path: toPath(e.instancePath), message: '', keyword: e.keyword, names: [], prefix, suffix };
      grouped.set(key, g);
      out.push(g);
    }
    if (!g.names.includes(name)) g.names.push(name);
  };

  for (const e of errs) {
    if (suppressed(e)) continue;
    const p = e.params as Record<string, unknown>;
    const path = toPath(e.instancePath);
    const push = (message: string, at = path) => out.push({ path: at, message, keyword: e.keyword });
    switch (e.keyword) {
      case 'type': {
        const types = Array.isArray(e.schema) ? (e.schema as string[]) : String(p.type).split(',');
        push(`expected ${types.join(' or ')}, but got ${jsonType(e.data)}`);
        break;
      }
      case 'required':
        group(e, v5Quote(String(p.missingProperty)), 'missing properties: ', '');
        break;
      case 'additionalProperties':
        group(e, v5Quote(String(p.additionalProperty)), 'additionalProperties ', ' not allowed');
        break;
      case 'enum':
        push(enumMessage(e.schema));
        break;
      case 'const': {
        const c = p.allowedValue ?? e.schema;
        push(c !== null && typeof c === 'object' ? 'const failed' : `value must be ${goSharpV(c)}`);
        break;
      }
      case 'format': {
        const val = typeof e.data === 'string' ? v5Quote(e.data) : goV(e.data);
        push(`${val} is not valid ${v5Quote(String(p.format))}`);
        break;
      }
      case 'minLength':
      case 'maxLength': {
        const len = typeof e.data === 'string' ? [...e.data].length : 0;
        push(`length must be ${e.keyword === 'minLength' ? '>=' : '<='} ${String(p.limit)}, but got ${len}`);
        break;
      }
      case 'minimum':
        push(`must be >= ${num(p.limit)} but found ${num(e.data)}`);
        break;
      case 'maximum':
        push(`must be <= ${num(p.limit)} but found ${num(e.data)}`);
        break;
      case 'exclusiveMinimum':
        push(`must be > ${num(p.limit)} but found ${num(e.data)}`);
        break;
      case 'exclusiveMaximum':
        push(`must be < ${num(p.limit)} but found ${num(e.data)}`);
        break;
      case 'multipleOf':
        push(`${num(e.data)} not multipleOf ${num(p.multipleOf)}`);
        break;
      case 'minItems':
        push(`minimum ${String(p.limit)} items required, but found ${Array.isArray(e.data) ? e.data.length : 0} items`);
        break;
      case 'maxItems':
        push(`maximum ${String(p.limit)} items required, but found ${Array.isArray(e.data) ? e.data.length : 0} items`);
        break;
      case 'minProperties':
      case 'maxProperties': {
        const n = e.data && typeof e.data === 'object' ? Object.keys(e.data).length : 0;
        const word = e.keyword === 'minProperties' ? 'minimum' : 'maximum';
        push(`${word} ${String(p.limit)} properties allowed, but found ${n} properties`);
        break;
      }
      case 'uniqueItems': {
        const i = Number(p.i);
        const j = Number(p.j);
        push(`items at index ${Math.min(i, j)} and ${Math.max(i, j)} are equal`);
        break;
      }
      case 'pattern':
        push(`does not match pattern ${v5Quote(String(p.pattern))}`);
        break;
      case 'dependencies':
      case 'dependentRequired':
        push(`property ${v5Quote(String(p.missingProperty))} is required, if ${v5Quote(String(p.property))} property exists`);
        break;
      case 'not':
        push('not failed');
        break;
      case 'false schema':
        push('not allowed');
        break;
      case 'unevaluatedProperties':
        push('not allowed', childPath(e.instancePath, String(p.unevaluatedProperty)));
        break;
      case 'unevaluatedItems':
      case 'items':
      case 'additionalItems': {
        // `false` for the rest of the array (2020 `items: false`, draft-07 `additionalItems: false`)
        const limit = Number(p.limit);
        const len = Array.isArray(e.data) ? e.data.length : 0;
        if (e.keyword === 'additionalItems') {
          push(`only ${limit} items are allowed, but found ${len} items`);
        } else {
          for (let k = limit; k < len; k++) push('not allowed', childPath(e.instancePath, String(k)));
        }
        break;
      }
      case 'contains': {
        const min = p.minContains === undefined ? 1 : Number(p.minContains);
        push(`valid must be >= ${min}, but got ${String(p.count ?? 0)}`);
        break;
      }
      case 'oneOf':
        if (Array.isArray(p.passingSchemas)) {
          push(`valid against schemas at indexes ${String(p.passingSchemas[0])} and ${String(p.passingSchemas[1])}`);
        }
        // otherwise a wrapper: the branches' own errors are the leaves
        break;
      case 'anyOf':
      case 'allOf':
      case 'if':
      case 'then':
      case 'else':
      case '$ref':
      case 'propertyNames':
      case 'dependentSchemas':
        break; // wrappers in jsonschema v5: only their causes are reported
      default:
        push(e.message ?? `${e.keyword} failed`);
    }
  }
  for (const g of grouped.values()) g.message = `${g.prefix}${g.names.join(', ')}${g.suffix}`;
  return out.map(({ path, message, keyword }) => ({ path, message, keyword }));
}
