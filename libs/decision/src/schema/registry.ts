/**
 * Compiles the JSON Schemas of a policy directory's `_schemas/` once, the way Cerbos's schema
 * manager loads them: every file is addressable as `cerbos:///<path>`, `$ref`s between files
 * resolve against that URL, and a schema whose reference chain reaches a missing document
 * fails to load (reported at validation time with Cerbos's wording).
 */
import Ajv2020Mod from 'ajv/dist/2020.js';
import Ajv07Mod from 'ajv';
import addFormatsMod from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import type { SchemaFile } from '../engine.types.js';

type AjvInstance = InstanceType<typeof Ajv2020Mod.default>;
type AjvCtor = new (opts: Record<string, unknown>) => AjvInstance;
const Ajv2020 = ((Ajv2020Mod as unknown as { default?: AjvCtor }).default ?? Ajv2020Mod) as unknown as AjvCtor;
const Ajv07 = ((Ajv07Mod as unknown as { default?: AjvCtor }).default ?? Ajv07Mod) as unknown as AjvCtor;
const addFormats = ((addFormatsMod as unknown as { default?: unknown }).default ?? addFormatsMod) as unknown as (
  ajv: AjvInstance,
) => void;

export const CERBOS_SCHEME = 'cerbos:';
const DIRECTORY = '_schemas';

/** Looks up compiled schemas by the ref a policy uses (e.g. `cerbos:///principal.json`). */
export interface SchemaRegistry {
  has(ref: string): boolean;
}

/** The outcome of loading one ref: a validator, or Cerbos's load-error text. */
export type LoadedSchema = { ok: true; validate: ValidateFunction } | { ok: false; error: string };

interface RegistryState {
  load(ref: string): LoadedSchema;
}

const states = new WeakMap<SchemaRegistry, RegistryState>();

/** Internal: the loader behind a registry made by {@link createSchemaRegistry}. */
export function registryState(registry: SchemaRegistry): RegistryState | undefined {
  return states.get(registry);
}

const DRAFT07_IDS = [
  'http://json-schema.org/draft-07/schema',
  'http://json-schema.org/draft-06/schema',
  'http://json-schema.org/draft-04/schema',
];

function isDraft07(doc: unknown): boolean {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return false;
  const s = (doc as Record<string, unknown>).$schema;
  return typeof s === 'string' && DRAFT07_IDS.some((id) => s.replace(/#$/, '') === id);
}

function stripUrlFragment(u: string): string {
  const i = u.indexOf('#');
  return i < 0 ? u : u.slice(0, i);
}

function resolveUrl(ref: string, base: string): string {
  try {
    return new URL(ref, base).href;
  } catch {
    return ref;
  }
}

/** How Cerbos names a document it could not find. */
function displayMissing(url: string): string {
  if (url.startsWith('cerbos:')) return `${DIRECTORY}/${url.replace(/^cerbos:\/*/, '')}`;
  if (url.startsWith('file:')) {
    try {
      return new URL(url).pathname;
    } catch {
      return url;
    }
  }
  return url;
}

/** Every `$ref` / `$dynamicRef` in document order, resolved against the enclosing `$id`s. */
function collectRefs(doc: unknown, base: string, out: string[]): void {
  if (Array.isArray(doc)) {
    for (const item of doc) collectRefs(item, base, out);
    return;
  }
  if (doc === null || typeof doc !== 'object') return;
  const obj = doc as Record<string, unknown>;
  let b = base;
  if (typeof obj.$id === 'string') b = resolveUrl(obj.$id, base);
  for (const [k, v] of Object.entries(obj)) {
    if ((k === '$ref' || k === '$dynamicRef' || k === '$recursiveRef') && typeof v === 'string') {
      out.push(stripUrlFragment(resolveUrl(v, b)));
    } else if (k !== 'enum' && k !== 'const' && k !== 'examples' && k !== 'default') {
      collectRefs(v, b, out);
    }
  }
}

function newAjv(ctor: AjvCtor): AjvInstance {
  const ajv = new ctor({
    allErrors: true,
    verbose: true,
    strict: false,
    logger: false,
    validateFormats: true,
    validateSchema: false,
  });
  addFormats(ajv);
  return ajv;
}

/**
 * Parses and compiles every schema file. Files that are not valid JSON or not valid schemas are
 * reported in `errors` (never thrown); refs to them then fail to load.
 */
export function createSchemaRegistry(files: SchemaFile[]): {
  registry: SchemaRegistry;
  errors: { path: string; message: string }[];
} {
  const errors: { path: string; message: string }[] = [];
  const docs = new Map<string, unknown>(); // cerbos:///path → parsed document
  const aliases = new Map<string, string>(); // $id → cerbos URL
  const broken = new Map<string, string>(); // cerbos URL → why it cannot be used
  const ajv2020 = newAjv(Ajv2020);
  const ajv07 = newAjv(Ajv07);

  for (const f of files) {
    const rel = f.path.replace(/^\/+/, '');
    if (!rel.toLowerCase().endsWith('.json')) continue;
    const url = `cerbos:///${rel}`;
    let doc: unknown;
    try {
      doc = JSON.parse(f.text);
    } catch (e) {
      const msg = `failed to parse schema: ${(e as Error).message}`;
      errors.push({ path: f.path, message: msg });
      broken.set(url, msg);
      continue;
    }
    if (typeof doc !== 'boolean' && (doc === null || typeof doc !== 'object' || Array.isArray(doc))) {
      const msg = 'invalid schema: a schema must be an object or a boolean';
      errors.push({ path: f.path, message: msg });
      broken.set(url, msg);
      continue;
    }
    const metaAjv = isDraft07(doc) ? ajv07 : ajv2020;
    const stripped = typeof doc === 'object' ? { ...(doc as Record<string, unknown>) } : doc;
    if (typeof stripped === 'object' && stripped !== null) delete (stripped as Record<string, unknown>).$schema;
    if (!metaAjv.validateSchema(stripped as object)) {
      const detail = (metaAjv.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? ''}`).join('; ');
      const msg = `invalid schema: ${detail}`;
      errors.push({ path: f.path, message: msg });
      broken.set(url, msg);
      continue;
    }
    docs.set(url, doc);
    if (typeof doc === 'object' && typeof (doc as Record<string, unknown>).$id === 'string') {
      const id = stripUrlFragment(resolveUrl((doc as Record<string, string>).$id as string, url));
      if (id !== url) aliases.set(id, url);
    }
  }

  // Every document is known to both dialect instances (without `$schema`, so cross-dialect refs work).
  for (const [url, doc] of docs) {
    const copy = typeof doc === 'object' ? { ...(doc as Record<string, unknown>) } : doc;
    if (typeof copy === 'object' && copy !== null) delete (copy as Record<string, unknown>).$schema;
    for (const a of [ajv2020, ajv07]) {
      try {
        a.addSchema(copy as object, url);
      } catch (e) {
        if (a === ajv2020) {
          errors.push({ path: url.slice('cerbos:///'.length), message: `invalid schema: ${(e as Error).message}` });
          broken.set(url, (e as Error).message);
        }
      }
    }
  }

  const canonical = (url: string): string => aliases.get(url) ?? url;

  /** The first missing document reachable from `root`, as Cerbos words it. */
  const missingRef = (root: string): string | undefined => {
    const seen = new Set<string>([root]);
    const queue = [root];
    while (queue.length > 0) {
      const cur = queue.shift() as string;
      const refs: string[] = [];
      collectRefs(docs.get(cur), cur, refs);
      for (const r of refs) {
        const target = canonical(r);
        if (seen.has(target)) continue;
        seen.add(target);
        if (!docs.has(target)) {
          return `schema ${displayMissing(r)} referenced by ${cur} doesn't exist`;
        }
        queue.push(target);
      }
    }
    return undefined;
  };

  const cache = new Map<string, LoadedSchema>();
  const loadUrl = (url: string): LoadedSchema => {
    const hit = cache.get(url);
    if (hit) return hit;
    let res: LoadedSchema;
    const why = broken.get(url);
    if (why !== undefined) res = { ok: false, error: why };
    else if (!docs.has(url)) res = { ok: false, error: `schema ${displayMissing(url)} doesn't exist` };
    else {
      const missing = missingRef(url);
      if (missing !== undefined) res = { ok: false, error: missing };
      else {
        try {
          const a = isDraft07(docs.get(url)) ? ajv07 : ajv2020;
          const v = a.getSchema(url);
          res = v ? { ok: true, validate: v } : { ok: false, error: `schema ${displayMissing(url)} doesn't exist` };
        } catch (e) {
          res = { ok: false, error: (e as Error).message };
        }
      }
    }
    cache.set(url, res);
    return res;
  };

  const load = (ref: string): LoadedSchema => {
    // Only `cerbos:` URLs reach the store; anything else is looked up as given and never found.
    if (!ref.startsWith(CERBOS_SCHEME)) {
      let shown = ref;
      if (ref.startsWith('file:')) shown = displayMissing(ref);
      return { ok: false, error: `schema ${shown} doesn't exist` };
    }
    let url: string;
    try {
      url = new URL(ref).href;
    } catch {
      return { ok: false, error: `schema ${ref} doesn't exist` };
    }
    return loadUrl(canonical(stripUrlFragment(url)));
  };

  // Compile everything once up front; report compile failures that are not plain missing refs.
  for (const url of docs.keys()) {
    const r = loadUrl(url);
    if (!r.ok && !r.error.endsWith("doesn't exist")) {
      errors.push({ path: url.slice('cerbos:///'.length), message: r.error });
    }
  }

  const registry: SchemaRegistry = { has: (ref: string) => load(ref).ok };
  states.set(registry, { load });
  return { registry, errors };
}
