/**
 * Parses Cerbos policy files (YAML or JSON, one or more documents per file) into typed
 * {@link ParsedPolicy} objects. Structural problems (unknown fields, wrong types, missing required
 * fields, invalid names) are collected as diagnostics with 1-based line and column, never thrown.
 */
import { LineCounter, parseAllDocuments, isMap, isScalar, isPair, type Document, type Node } from 'yaml';
import type { JsonValue } from '@warden/core';
import type { CompileDiagnostic } from '../engine.types.js';
import type {
  ConstantsBlock,
  MatchNode,
  ParsedPolicy,
  PathSegment,
  PolicyBody,
  ResourceRule,
  RuleOutput,
  ScopePermissions,
  VariablesBlock,
} from './policy.types.js';

const API_VERSION = 'api.cerbos.dev/v1';
const POLICY_KINDS = ['resourcePolicy', 'principalPolicy', 'derivedRoles', 'exportVariables', 'exportConstants', 'rolePolicy'] as const;
const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'description', 'disabled', 'metadata', 'variables', '$schema', 'jsonSchema', ...POLICY_KINDS]);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set([
  'true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let',
  'loop', 'package', 'namespace', 'return', 'var', 'void', 'while',
]);
const VERSION_RE = /^[0-9A-Za-z_]+$/;
const SCOPE_RE = /^([0-9A-Za-z][\w-]*(\.[\w-]*)*)*$/;

/** Thrown internally to abandon a document after its first structural error. */
class DocError extends Error {
  constructor(
    readonly path: PathSegment[],
    message: string,
    readonly atKey = false,
  ) {
    super(message);
  }
}

type Obj = Record<string, unknown>;

/** Parses one file. Returns the policies it holds and the problems found. */
export function parsePolicyFile(file: string, text: string): { policies: ParsedPolicy[]; errors: CompileDiagnostic[] } {
  const lineCounter = new LineCounter();
  const errors: CompileDiagnostic[] = [];
  const policies: ParsedPolicy[] = [];
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false }) as Document.Parsed[];
  } catch (err) {
    errors.push({ file, line: 1, column: 1, message: `failed to parse YAML: ${(err as Error).message}`, code: 'ERR_POLICY_PARSE' });
    return { policies, errors };
  }
  if (!Array.isArray(docs)) docs = [docs as unknown as Document.Parsed];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lineCounter.linePos(e.pos[0]);
        errors.push({ file, line: pos.line, column: pos.col, message: `invalid YAML: ${firstLine(e.message)}`, code: 'ERR_POLICY_PARSE' });
      }
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue; // empty document
    const positionOf = (path: PathSegment[]): { line: number; column: number } => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
        if (node && typeof node === 'object' && 'range' in node && node.range) {
          // Cerbos points at a mapping through its first key; for a mapping that is a sequence
          // item it points at that first key's ':' (goccy/go-yaml positions).
          if (isMap(node) && node.items.length > 0) {
            const first = node.items[0];
            if (isPair(first) && isScalar(first.key) && first.key.range) {
              if (typeof path[n - 1] === 'number') {
                const colon = text.indexOf(':', first.key.range[1]);
                const p = lineCounter.linePos(colon >= 0 ? colon : first.key.range[0]);
                return { line: p.line, column: p.col };
              }
              const p = lineCounter.linePos(first.key.range[0]);
              return { line: p.line, column: p.col };
            }
          }
          const p = lineCounter.linePos(node.range[0]);
          return { line: p.line, column: p.col };
        }
        if (n > 0 && typeof path[n - 1] === 'string') {
          // point at the key when the value has no node
          const parent = doc.getIn(path.slice(0, n - 1), true);
          if (isMap(parent)) {
            const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === path[n - 1]);
            if (pair && isScalar(pair.key) && pair.key.range) {
              const p = lineCounter.linePos(pair.key.range[0]);
              return { line: p.line, column: p.col };
            }
          }
        }
      }
      return { line: 1, column: 1 };
    };
    const keyPositionOf = (path: PathSegment[]): { line: number; column: number } => {
      const parent = doc.getIn(path.slice(0, -1), true);
      const last = path[path.length - 1];
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(last));
        if (pair && isScalar(pair.key) && pair.key.range) {
          const p = lineCounter.linePos(pair.key.range[0]);
          return { line: p.line, column: p.col };
        }
      }
      return positionOf(path);
    };
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      errors.push({ file, line: 1, column: 1, message: `invalid YAML: ${firstLine((err as Error).message)}`, code: 'ERR_POLICY_PARSE' });
      continue;
    }
    const ctx: ParseContext = { file, errors, positionOf, keyPositionOf };
    try {
      const parsed = parseDocument(raw, ctx);
      if (parsed) policies.push(parsed);
    } catch (err) {
      if (err instanceof DocError) {
        const pos = err.atKey ? keyPositionOf(err.path) : positionOf(err.path);
        errors.push({ file, line: pos.line, column: pos.column, message: err.message, code: 'ERR_POLICY_PARSE' });
      } else {
        throw err;
      }
    }
  }
  return { policies, errors };
}

interface ParseContext {
  file: string;
  errors: CompileDiagnostic[];
  positionOf(path: PathSegment[]): { line: number; column: number };
  keyPositionOf(path: PathSegment[]): { line: number; column: number };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function report(ctx: ParseContext, path: PathSegment[], message: string, code = 'ERR_POLICY_PARSE', atKey = false): void {
  const pos = atKey ? ctx.keyPositionOf(path) : ctx.positionOf(path);
  ctx.errors.push({ file: ctx.file, line: pos.line, column: pos.column, message, code });
}

function jsonPath(path: PathSegment[]): string {
  let s = '$';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `.${p}`;
  return s;
}

function asObject(v: unknown, path: PathSegment[], allowed: readonly string[]): Obj {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new DocError(path, `${jsonPath(path)}: expected an object`);
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new DocError([...path, k], `${jsonPath(path)}: unknown field \`${k}\``);
  }
  return o;
}

function str(o: Obj, key: string, path: PathSegment[], required: boolean): string {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw new DocError(path, `${jsonPath([...path, key])}: missing required field \`${key}\``);
    return '';
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v !== 'string') throw new DocError([...path, key], `${jsonPath([...path, key])}: expected a string`);
  if (required && v === '') throw new DocError([...path, key], `${jsonPath([...path, key])}: value is required`);
  return v;
}

function strList(o: Obj, key: string, path: PathSegment[], opts: { required?: boolean; unique?: boolean } = {}): string[] {
  const v = o[key];
  if (v === undefined || v === null) {
    if (opts.required) throw new DocError(path, `${jsonPath([...path, key])}: missing required field \`${key}\``);
    return [];
  }
  if (!Array.isArray(v)) throw new DocError([...path, key], `${jsonPath([...path, key])}: expected a list`);
  if (opts.required && v.length === 0) throw new DocError([...path, key], `${jsonPath([...path, key])}: value must contain at least 1 item(s)`);
  const out: string[] = [];
  const seen = new Set<string>();
  v.forEach((item, i) => {
    if (typeof item !== 'string' && typeof item !== 'number') {
      throw new DocError([...path, key, i], `${jsonPath([...path, key, i])}: expected a string`);
    }
    const s = String(item);
    if (opts.unique && seen.has(s)) throw new DocError([...path, key, i], `${jsonPath([...path, key])}: repeated value \`${s}\` must be unique`);
    seen.add(s);
    out.push(s);
  });
  return out;
}

function list(o: Obj, key: string, path: PathSegment[], required = false): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw new DocError(path, `${jsonPath([...path, key])}: missing required field \`${key}\``);
    return [];
  }
  if (!Array.isArray(v)) throw new DocError([...path, key], `${jsonPath([...path, key])}: expected a list`);
  return v;
}

function effectOf(o: Obj, path: PathSegment[]): 'EFFECT_ALLOW' | 'EFFECT_DENY' {
  const e = str(o, 'effect', path, true);
  if (e !== 'EFFECT_ALLOW' && e !== 'EFFECT_DENY') {
    throw new DocError([...path, 'effect'], `${jsonPath([...path, 'effect'])}: invalid effect \`${e}\`, want EFFECT_ALLOW or EFFECT_DENY`);
  }
  return e;
}

function scopePermissionsOf(o: Obj, path: PathSegment[]): ScopePermissions {
  const v = str(o, 'scopePermissions', path, false);
  if (v === '') return 'SCOPE_PERMISSIONS_UNSPECIFIED';
  if (v === 'SCOPE_PERMISSIONS_UNSPECIFIED' || v === 'SCOPE_PERMISSIONS_OVERRIDE_PARENT' || v === 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS') return v;
  throw new DocError([...path, 'scopePermissions'], `${jsonPath([...path, 'scopePermissions'])}: invalid value \`${v}\``);
}

function versionOf(o: Obj, path: PathSegment[], required: boolean): string {
  const v = str(o, 'version', path, required);
  if (v === '') return 'default';
  if (!VERSION_RE.test(v)) throw new DocError([...path, 'version'], `${jsonPath([...path, 'version'])}: invalid version \`${v}\``);
  return v;
}

function scopeOf(o: Obj, path: PathSegment[]): string {
  const v = str(o, 'scope', path, false);
  if (v !== '' && !SCOPE_RE.test(v)) throw new DocError([...path, 'scope'], `${jsonPath([...path, 'scope'])}: invalid scope \`${v}\``);
  return v;
}

function condition(v: unknown, path: PathSegment[]): MatchNode | undefined {
  if (v === undefined || v === null) return undefined;
  const o = asObject(v, path, ['match', 'script']);
  if (o['script'] !== undefined) throw new DocError(path, 'scripts in conditions are no longer supported', true);
  if (o['match'] === undefined) throw new DocError(path, `${jsonPath(path)}: missing required field \`match\``);
  return match(o['match'], [...path, 'match']);
}

function match(v: unknown, path: PathSegment[]): MatchNode {
  const o = asObject(v, path, ['expr', 'all', 'any', 'none']);
  const keys = Object.keys(o);
  if (keys.length !== 1) throw new DocError(path, `${jsonPath(path)}: exactly one of expr, all, any or none is required`);
  const k = keys[0] as 'expr' | 'all' | 'any' | 'none';
  if (k === 'expr') {
    const e = o['expr'];
    if (typeof e === 'boolean' || typeof e === 'number') return { kind: 'expr', expr: String(e), path: [...path, 'expr'] };
    if (typeof e !== 'string' || e.trim() === '') throw new DocError([...path, 'expr'], `${jsonPath([...path, 'expr'])}: expected a non-empty expression`);
    return { kind: 'expr', expr: e, path: [...path, 'expr'] };
  }
  const inner = asObject(o[k], [...path, k], ['of']);
  const of = list(inner, 'of', [...path, k], true);
  if (of.length === 0) throw new DocError([...path, k, 'of'], `${jsonPath([...path, k, 'of'])}: value must contain at least 1 item(s)`);
  return { kind: k, of: of.map((m, i) => match(m, [...path, k, 'of', i])), path: [...path, k] };
}

function output(v: unknown, path: PathSegment[], ctx: ParseContext): RuleOutput | undefined {
  if (v === undefined || v === null) return undefined;
  const o = asObject(v, path, ['expr', 'when']);
  const out: RuleOutput = {};
  if (typeof o['expr'] === 'string' && o['expr'] !== '') out.ruleActivated = { expr: o['expr'], path: [...path, 'expr'] };
  if (o['when'] !== undefined && o['when'] !== null) {
    const w = asObject(o['when'], [...path, 'when'], ['ruleActivated', 'conditionNotMet']);
    if (typeof w['ruleActivated'] === 'string' && w['ruleActivated'] !== '') {
      out.ruleActivated = { expr: w['ruleActivated'], path: [...path, 'when', 'ruleActivated'] };
    }
    if (typeof w['conditionNotMet'] === 'string' && w['conditionNotMet'] !== '') {
      out.conditionNotMet = { expr: w['conditionNotMet'], path: [...path, 'when', 'conditionNotMet'] };
    }
  }
  if (!out.ruleActivated && !out.conditionNotMet) {
    report(ctx, path, 'empty output: output must have at least one expression', 'ERR_POLICY_COMPILE_EMPTY_OUTPUT', true);
    return undefined;
  }
  return out;
}

function checkIdentifier(name: string, what: string, path: PathSegment[], ctx: ParseContext): boolean {
  if (RESERVED.has(name)) {
    report(ctx, path, `invalid ${what} name: "${name}" is a reserved keyword and can't be used as an identifier`, 'ERR_POLICY_COMPILE_INVALID_IDENTIFIER', true);
    return false;
  }
  if (!IDENTIFIER.test(name)) {
    report(ctx, path, `invalid ${what} name: "${name}" is not a valid identifier`, 'ERR_POLICY_COMPILE_INVALID_IDENTIFIER', true);
    return false;
  }
  return true;
}

function variableDefs(v: unknown, path: PathSegment[], ctx: ParseContext): { name: string; expr: string; path: PathSegment[] }[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v)) throw new DocError(path, `${jsonPath(path)}: expected a map of variable definitions`);
  const out: { name: string; expr: string; path: PathSegment[] }[] = [];
  for (const [name, expr] of Object.entries(v as Obj)) {
    const p = [...path, name];
    if (typeof expr !== 'string' && typeof expr !== 'number' && typeof expr !== 'boolean') {
      throw new DocError(p, `${jsonPath(p)}: expected an expression string`);
    }
    if (!checkIdentifier(name, 'variable', p, ctx)) continue;
    out.push({ name, expr: String(expr), path: p });
  }
  return out;
}

function constantDefs(v: unknown, path: PathSegment[], ctx: ParseContext): { name: string; value: JsonValue; path: PathSegment[] }[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v)) throw new DocError(path, `${jsonPath(path)}: expected a map of constant definitions`);
  const out: { name: string; value: JsonValue; path: PathSegment[] }[] = [];
  for (const [name, value] of Object.entries(v as Obj)) {
    const p = [...path, name];
    if (!checkIdentifier(name, 'constant', p, ctx)) continue;
    out.push({ name, value: toJsonValue(value), path: p });
  }
  return out;
}

function toJsonValue(v: unknown): JsonValue {
  if (v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v as Obj)) o[k] = toJsonValue(x);
    return o;
  }
  if (typeof v === 'bigint') return Number(v);
  return v as JsonValue;
}

function variablesBlock(v: unknown, path: PathSegment[], ctx: ParseContext): VariablesBlock {
  const o = asObject(v, path, ['import', 'local']);
  return {
    import: strList(o, 'import', path).map((name, i) => ({ name, path: [...path, 'import', i] })),
    local: variableDefs(o['local'], [...path, 'local'], ctx),
  };
}

function constantsBlock(v: unknown, path: PathSegment[], ctx: ParseContext): ConstantsBlock {
  const o = asObject(v, path, ['import', 'local']);
  return {
    import: strList(o, 'import', path).map((name, i) => ({ name, path: [...path, 'import', i] })),
    local: constantDefs(o['local'], [...path, 'local'], ctx),
  };
}

function parseDocument(raw: unknown, ctx: ParseContext): ParsedPolicy | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new DocError([], 'policy document must be an object');
  const top = raw as Obj;
  for (const k of Object.keys(top)) {
    if (!TOP_LEVEL_FIELDS.has(k)) throw new DocError([k], `unknown field \`${k}\``);
  }
  const apiVersion = top['apiVersion'];
  if (apiVersion !== API_VERSION) {
    throw new DocError(['apiVersion'], apiVersion === undefined ? 'missing required field `apiVersion`' : `unsupported apiVersion \`${String(apiVersion)}\`, want \`${API_VERSION}\``);
  }
  const present = POLICY_KINDS.filter((k) => top[k] !== undefined && top[k] !== null);
  if (present.length === 0) throw new DocError([], 'policy document must define one of resourcePolicy, principalPolicy, derivedRoles, rolePolicy, exportVariables or exportConstants');
  if (present.length > 1) throw new DocError([present[1] as string], `policy document defines more than one policy kind: ${present.join(', ')}`);
  const kind = present[0] as (typeof POLICY_KINDS)[number];
  const disabled = top['disabled'] === true;
  const meta = asObject(top['metadata'], ['metadata'], ['annotations', 'hash', 'sourceFile', 'storeIdentifer', 'storeIdentifier', 'sourceAttributes']);
  const annotations: Record<string, string> = {};
  if (meta['annotations'] && typeof meta['annotations'] === 'object') {
    for (const [k, v] of Object.entries(meta['annotations'] as Obj)) annotations[k] = String(v);
  }
  const topVariables = variableDefs(top['variables'], ['variables'], ctx);
  const body = parseBody(kind, top[kind], [kind], ctx);
  return { file: ctx.file, disabled, topVariables, annotations, body, positionOf: ctx.positionOf };
}

function parseBody(kind: (typeof POLICY_KINDS)[number], v: unknown, path: PathSegment[], ctx: ParseContext): PolicyBody {
  switch (kind) {
    case 'resourcePolicy': {
      const o = asObject(v, path, ['resource', 'version', 'importDerivedRoles', 'rules', 'scope', 'schemas', 'variables', 'constants', 'scopePermissions']);
      const resource = str(o, 'resource', path, true);

      const rules: ResourceRule[] = list(o, 'rules', path).map((r, i) => {
        const rp = [...path, 'rules', i];
        const ro = asObject(r, rp, ['actions', 'derivedRoles', 'roles', 'condition', 'effect', 'name', 'output']);
        const name = str(ro, 'name', rp, false);
        if (name !== '' && !/^[A-Za-z][\w@.\-]*$/.test(name)) throw new DocError([...rp, 'name'], `${jsonPath([...rp, 'name'])}: invalid rule name \`${name}\``);
        const roles = strList(ro, 'roles', rp, { unique: true });
        const derivedRoles = strList(ro, 'derivedRoles', rp, { unique: true }).map((n, j) => ({ name: n, path: [...rp, 'derivedRoles', j] }));
        const rule: ResourceRule = {
          name: name !== '' ? name : `rule-${String(i + 1).padStart(3, '0')}`,
          actions: strList(ro, 'actions', rp, { required: true, unique: true }),
          roles,
          derivedRoles,
          effect: effectOf(ro, rp),
          path: rp,
        };
        const c = condition(ro['condition'], [...rp, 'condition']);
        if (c) rule.condition = c;
        const out = output(ro['output'], [...rp, 'output'], ctx);
        if (out) rule.output = out;
        if (roles.length === 0 && derivedRoles.length === 0) {
          report(ctx, rp, `invalid resource rule: Rule '${rule.name}' does not specify any roles or derived roles to be matched`, 'ERR_POLICY_COMPILE_INVALID_RULE');
        }
        return rule;
      });
      const schemas = asObject(o['schemas'], [...path, 'schemas'], ['principalSchema', 'resourceSchema']);
      const schemaRef = (key: string) => {
        const sp = [...path, 'schemas', key];
        const so = asObject(schemas[key], sp, ['ref', 'ignoreWhen']);
        if (schemas[key] === undefined || schemas[key] === null) return undefined;
        const iw = asObject(so['ignoreWhen'], [...sp, 'ignoreWhen'], ['actions']);
        return { ref: str(so, 'ref', sp, true), ignoreWhenActions: strList(iw, 'actions', [...sp, 'ignoreWhen']), path: [...sp, 'ref'] };
      };
      const principalSchema = schemaRef('principalSchema');
      const resourceSchema = schemaRef('resourceSchema');
      return {
        kind: 'resource',
        resource,
        version: versionOf(o, path, false),
        scope: scopeOf(o, path),
        scopePermissions: scopePermissionsOf(o, path),
        importDerivedRoles: strList(o, 'importDerivedRoles', path, { unique: true }).map((name, i) => ({ name, path: [...path, 'importDerivedRoles', i] })),
        rules,
        schemas: { ...(principalSchema ? { principalSchema } : {}), ...(resourceSchema ? { resourceSchema } : {}) },
        variables: variablesBlock(o['variables'], [...path, 'variables'], ctx),
        constants: constantsBlock(o['constants'], [...path, 'constants'], ctx),
      };
    }
    case 'principalPolicy': {
      const o = asObject(v, path, ['principal', 'version', 'rules', 'scope', 'variables', 'constants', 'scopePermissions']);
      const rules = list(o, 'rules', path).map((r, i) => {
        const rp = [...path, 'rules', i];
        const ro = asObject(r, rp, ['resource', 'actions']);
        const resource = str(ro, 'resource', rp, true);
        const actions = list(ro, 'actions', rp, true).map((a, j) => {
          const ap = [...rp, 'actions', j];
          const ao = asObject(a, ap, ['action', 'condition', 'effect', 'name', 'output']);
          const name = str(ao, 'name', ap, false);
          const rule = {
            name: name !== '' ? name : `${resource}_rule-${String(j + 1).padStart(3, '0')}`,
            action: str(ao, 'action', ap, true),
            effect: effectOf(ao, ap),
            path: ap,
          } as import('./policy.types.js').PrincipalActionRule;
          const c = condition(ao['condition'], [...ap, 'condition']);
          if (c) rule.condition = c;
          const out = output(ao['output'], [...ap, 'output'], ctx);
          if (out) rule.output = out;
          return rule;
        });
        if (actions.length === 0) throw new DocError([...rp, 'actions'], `${jsonPath([...rp, 'actions'])}: value must contain at least 1 item(s)`);
        return { resource, actions };
      });
      return {
        kind: 'principal',
        principal: str(o, 'principal', path, true),
        version: versionOf(o, path, false),
        scope: scopeOf(o, path),
        scopePermissions: scopePermissionsOf(o, path),
        rules,
        variables: variablesBlock(o['variables'], [...path, 'variables'], ctx),
        constants: constantsBlock(o['constants'], [...path, 'constants'], ctx),
      };
    }
    case 'derivedRoles': {
      const o = asObject(v, path, ['name', 'definitions', 'variables', 'constants']);
      const definitions = list(o, 'definitions', path, true).map((d, i) => {
        const dp = [...path, 'definitions', i];
        const d2 = asObject(d, dp, ['name', 'parentRoles', 'condition']);
        const def = {
          name: str(d2, 'name', dp, true),
          parentRoles: strList(d2, 'parentRoles', dp, { required: true, unique: true }),
          path: dp,
        } as import('./policy.types.js').DerivedRoleDefinition;
        const c = condition(d2['condition'], [...dp, 'condition']);
        if (c) def.condition = c;
        return def;
      });
      if (definitions.length === 0) throw new DocError([...path, 'definitions'], `${jsonPath([...path, 'definitions'])}: value must contain at least 1 item(s)`);
      return {
        kind: 'derivedRoles',
        name: str(o, 'name', path, true),
        definitions,
        variables: variablesBlock(o['variables'], [...path, 'variables'], ctx),
        constants: constantsBlock(o['constants'], [...path, 'constants'], ctx),
      };
    }
    case 'rolePolicy': {
      const o = asObject(v, path, ['role', 'version', 'parentRoles', 'scope', 'rules', 'variables', 'constants', 'scopePermissions']);
      const role = str(o, 'role', path, true);
      const rules = list(o, 'rules', path).map((r, i) => {
        const rp = [...path, 'rules', i];
        const ro = asObject(r, rp, ['resource', 'allowActions', 'condition', 'name', 'output']);
        const name = str(ro, 'name', rp, false);
        const rule = {
          name,
          resource: str(ro, 'resource', rp, true),
          allowActions: strList(ro, 'allowActions', rp, { required: true, unique: true }),
          path: rp,
        } as import('./policy.types.js').RoleRule;
        const c = condition(ro['condition'], [...rp, 'condition']);
        if (c) rule.condition = c;
        const out = output(ro['output'], [...rp, 'output'], ctx);
        if (out) rule.output = out;
        return rule;
      });
      return {
        kind: 'role',
        role,
        version: versionOf(o, path, false),
        scope: scopeOf(o, path),
        parentRoles: strList(o, 'parentRoles', path, { unique: true }),
        rules,
        variables: variablesBlock(o['variables'], [...path, 'variables'], ctx),
        constants: constantsBlock(o['constants'], [...path, 'constants'], ctx),
      };
    }
    case 'exportVariables': {
      const o = asObject(v, path, ['name', 'definitions']);
      return { kind: 'exportVariables', name: str(o, 'name', path, true), definitions: variableDefs(o['definitions'], [...path, 'definitions'], ctx) };
    }
    case 'exportConstants': {
      const o = asObject(v, path, ['name', 'definitions']);
      return { kind: 'exportConstants', name: str(o, 'name', path, true), definitions: constantDefs(o['definitions'], [...path, 'definitions'], ctx) };
    }
  }
}
