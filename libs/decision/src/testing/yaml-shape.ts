/**
 * Reads a YAML or JSON document against a declared shape, the way Cerbos's proto loader does:
 * unknown fields, wrong types and bad timestamps are reported with the `line:col` of the offending
 * node, snake_case field names are accepted as aliases of the camelCase ones, and YAML merge keys
 * (`<<: *anchor`) are expanded. The result is plain data plus a table of node positions that the
 * semantic checks (which run only when reading succeeded) use for their own messages.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { JsonValue } from '@warden/core';

/** What a node must look like. */
export type Shape =
  | { kind: 'string' }
  | { kind: 'bool' }
  | { kind: 'any' }
  | { kind: 'timestamp' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'array'; items: Shape }
  | { kind: 'map'; values: Shape }
  | { kind: 'object'; fields: Readonly<Record<string, Shape>> };

/** 1-based position of a node in its source text. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A problem found while reading or checking a document. */
export interface ShapeProblem {
  position?: SourcePosition;
  /** Field path such as `tests[0].expected[0].actions["approve"]`; empty for reader errors. */
  path: string;
  message: string;
}

/** The outcome of {@link readShaped}. */
export interface ShapedDocument {
  value: unknown;
  problems: ShapeProblem[];
  /** Position of the value at a field path (scalars: the value; mappings: the first key's colon). */
  positionOf(path: string): SourcePosition | undefined;
}

/** Formats problems as Cerbos does: one per line, `line:col path: message`. */
export function formatProblems(problems: readonly ShapeProblem[]): string {
  return problems
    .map((p) => {
      const where = p.position ? `${p.position.line}:${p.position.column} ` : '';
      return p.path === '' ? `${where}${p.message}` : `${where}${p.path}: ${p.message}`;
    })
    .join('\n');
}

const INVALID_DOCUMENT = 'invalid document: contents are not valid YAML or JSON';
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses `text` (YAML or JSON) and reads it against `shape`. */
export function readShaped(text: string, shape: Shape): ShapedDocument {
  const lineCounter = new LineCounter();
  const positions = new Map<string, SourcePosition>();
  const positionOf = (path: string): SourcePosition | undefined => positions.get(path);
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: false, prettyErrors: false });
  } catch {
    return { value: undefined, problems: [{ position: { line: 1, column: 1 }, path: '', message: INVALID_DOCUMENT }], positionOf };
  }
  if (doc.errors.length > 0 || !isMap(doc.contents)) {
    return { value: undefined, problems: [{ position: { line: 1, column: 1 }, path: '', message: INVALID_DOCUMENT }], positionOf };
  }
  const reader = new ShapeReader(doc, text, lineCounter, positions);
  const value = reader.read(doc.contents, shape, '');
  return { value, problems: reader.problems, positionOf };
}

class ShapeReader {
  readonly problems: ShapeProblem[] = [];

  constructor(
    private readonly doc: Document,
    private readonly text: string,
    private readonly lineCounter: LineCounter,
    private readonly positions: Map<string, SourcePosition>,
  ) {}

  read(node: unknown, shape: Shape, path: string): unknown {
    const resolved = this.resolve(node);
    if (resolved === undefined || (isScalar(resolved) && resolved.value === null && shape.kind !== 'any')) return undefined;
    const position = this.nodePosition(resolved);
    if (position !== undefined) this.positions.set(path, position);
    switch (shape.kind) {
      case 'any':
        return resolved.toJS(this.doc, { maxAliasCount: -1 }) as JsonValue;
      case 'string':
      case 'timestamp':
      case 'enum': {
        if (!isScalar(resolved) || typeof resolved.value === 'object') {
          return this.fail(resolved, path, `invalid value for string field: expected a string`);
        }
        const value = String(resolved.value);
        if (shape.kind === 'timestamp' && !RFC3339.test(value)) {
          return this.fail(
            resolved,
            '',
            `invalid timestamp value "${value}": parsing time "${value}" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "${value}" as "2006"`,
          );
        }
        if (shape.kind === 'enum' && !shape.values.includes(value)) {
          return this.fail(resolved, '', `invalid value for enum field ${lastSegment(path)}: "${value}"`);
        }
        return value;
      }
      case 'bool': {
        if (!isScalar(resolved) || typeof resolved.value !== 'boolean') {
          return this.fail(resolved, '', `invalid value for bool field ${lastSegment(path)}: expected true or false`);
        }
        return resolved.value;
      }
      case 'array': {
        if (!isSeq(resolved)) return this.fail(resolved, '', `invalid value for list field ${lastSegment(path)}: expected a list`);
        return resolved.items.map((item, i) => this.read(item, shape.items, `${path}[${i}]`));
      }
      case 'map': {
        if (!isMap(resolved)) return this.fail(resolved, '', `invalid value for map field ${lastSegment(path)}: expected a mapping`);
        const out: Record<string, unknown> = {};
        for (const pair of this.pairsOf(resolved)) {
          const key = this.keyOf(pair);
          out[key] = this.read(pair.value, shape.values, `${path}[${JSON.stringify(key)}]`);
        }
        return out;
      }
      case 'object': {
        if (!isMap(resolved)) return this.fail(resolved, '', `invalid value for message field ${lastSegment(path)}: expected a mapping`);
        const out: Record<string, unknown> = {};
        for (const pair of this.pairsOf(resolved)) {
          const rawKey = this.keyOf(pair);
          const key = shape.fields[rawKey] !== undefined ? rawKey : snakeToCamel(rawKey);
          const fieldShape = shape.fields[key];
          // Editors' schema hint (`"$schema": "…"`) is allowed at the top of a document.
          if (fieldShape === undefined && path === '' && rawKey === '$schema') continue;
          if (fieldShape === undefined) {
            this.problems.push({ position: this.nodePosition(pair.key), path: '', message: `unknown field "${rawKey}"` });
            continue;
          }
          const value = this.read(pair.value, fieldShape, path === '' ? key : `${path}.${key}`);
          if (value !== undefined) out[key] = value;
        }
        return out;
      }
    }
  }

  private fail(node: unknown, path: string, message: string): undefined {
    this.problems.push({ position: this.nodePosition(node), path, message });
    return undefined;
  }

  private resolve(node: unknown): Node | undefined {
    let current: unknown = node;
    for (let depth = 0; isAlias(current) && depth < 100; depth++) current = current.resolve(this.doc);
    return current === null || current === undefined ? undefined : (current as Node);
  }

  private keyOf(pair: Pair): string {
    const key = this.resolve(pair.key);
    return isScalar(key) ? String(key.value) : String(key);
  }

  /** The pairs of a mapping with merge keys expanded (explicit keys win over merged ones). */
  private pairsOf(map: YAMLMap): Pair[] {
    const merged: Pair[] = [];
    const own: Pair[] = [];
    for (const pair of map.items) {
      const key = this.resolve(pair.key);
      if (isScalar(key) && (key.value === '<<' || typeof key.value === 'symbol')) {
        const sources = this.resolve(pair.value);
        const list = isSeq(sources) ? sources.items : [sources];
        for (const source of list) {
          const src = this.resolve(source);
          if (isMap(src)) merged.push(...this.pairsOf(src));
        }
      } else {
        own.push(pair);
      }
    }
    const ownKeys = new Set(own.map((p) => this.keyOf(p)));
    const seen = new Set<string>();
    const result: Pair[] = [];
    for (const pair of merged) {
      const key = this.keyOf(pair);
      if (ownKeys.has(key) || seen.has(key)) continue;
      seen.add(key);
      result.push(pair);
    }
    return [...result, ...own];
  }

  /** Scalars: where the value starts. Mappings: the colon after the first key (as Cerbos reports). */
  private nodePosition(node: unknown): SourcePosition | undefined {
    const n = this.resolve(node);
    if (n === undefined) return undefined;
    if (isMap(n)) {
      const first = n.items[0];
      const keyNode = first ? this.resolve(first.key) : undefined;
      const keyEnd = keyNode?.range?.[1];
      if (keyEnd !== undefined) {
        const colon = this.text.indexOf(':', keyEnd);
        if (colon >= 0) return this.at(colon);
      }
    }
    const start = n.range?.[0];
    return start === undefined ? undefined : this.at(start);
  }

  private at(offset: number): SourcePosition {
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }
}

function snakeToCamel(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function lastSegment(path: string): string {
  const m = /([A-Za-z_]+)(\[[^\]]*\])*$/.exec(path);
  return m?.[1] ?? path;
}
