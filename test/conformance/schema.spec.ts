/**
 * Replays Cerbos's schema conformance cases (schema/test_cases/*.yaml): request attributes are
 * validated against `_schemas/` under schema/fs, and the validation errors must equal Cerbos's
 * (compared order-insensitively).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { CheckInput, ValidationError } from '@warden/core';
import type { SchemaFile } from '../../libs/decision/src/engine.types.js';
import {
  createSchemaRegistry,
  validateCheckInput,
  validatePlanResourcesInput,
  type PolicySchemas,
} from '../../libs/decision/src/schema/index.js';
import { conformanceDir, knownFailures } from '../support/conformance.js';

const root = conformanceDir;
const caseDir = join(root, 'schema', 'test_cases');
const schemaDir = join(root, 'schema', 'fs', '_schemas');
const present = existsSync(caseDir) && existsSync(schemaDir);

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)],
  );
}

interface RawRef {
  ref: string;
  ignoreWhen?: { actions?: string[] };
}

function toSchemas(raw: { principalSchema?: RawRef; resourceSchema?: RawRef } | undefined): PolicySchemas | undefined {
  if (!raw) return undefined;
  const conv = (r?: RawRef) => (r ? { ref: r.ref, ignoreWhenActions: r.ignoreWhen?.actions ?? [] } : undefined);
  const out: PolicySchemas = {};
  const p = conv(raw.principalSchema);
  const r = conv(raw.resourceSchema);
  if (p) out.principalSchema = p;
  if (r) out.resourceSchema = r;
  return out;
}

const key = (e: ValidationError) => `${e.source} | ${e.path} | ${e.message}`;

describe.skipIf(!present)('Cerbos schema conformance (schema/test_cases)', () => {
  if (!present) return;
  const files: SchemaFile[] = walk(schemaDir).map((f) => ({
    path: relative(schemaDir, f).split('\\').join('/'),
    text: readFileSync(f, 'utf8'),
  }));
  const { registry } = createSchemaRegistry(files);
  const skip = knownFailures('schema');
  const cases = readdirSync(caseDir).filter((f) => f.endsWith('.yaml')).sort();

  it('has cases', () => expect(cases.length).toBeGreaterThan(0));

  for (const name of cases) {
    const tc = parse(readFileSync(join(caseDir, name), 'utf8')) as Record<string, any>;
    const title = `${name}: ${String(tc.description ?? '')}`;
    it.skipIf(skip.has(name))(title, () => {
      const schemas = toSchemas(tc.schemaRefs);
      let got: ValidationError[];
      if (tc.checkInput) {
        const ci = tc.checkInput as Record<string, any>;
        const input: CheckInput = {
          principal: { id: ci.principal.id, roles: ci.principal.roles ?? [], attr: ci.principal.attr ?? {} },
          resource: { kind: ci.resource.kind, id: ci.resource.id ?? '', attr: ci.resource.attr ?? {} },
          actions: ci.actions ?? [],
        };
        got = validateCheckInput(registry, schemas, input, 'warn').errors;
      } else {
        const pi = tc.planResourcesInput as Record<string, any>;
        const actions: string[] = pi.actions ?? (pi.action ? [pi.action] : []);
        got = validatePlanResourcesInput(
          registry,
          schemas,
          { principal: { attr: pi.principal.attr ?? {} }, resource: { attr: pi.resource.attr ?? {} }, actions },
          'warn',
        ).errors;
      }
      const want: ValidationError[] = ((tc.wantValidationErrors ?? []) as Record<string, string>[]).map((w) => ({
        path: w.path ?? '',
        message: w.message ?? '',
        source: w.source as ValidationError['source'],
      }));
      expect(got.map(key).sort()).toEqual(want.map(key).sort());
    });
  }
});

if (!present) {
  describe('Cerbos schema conformance', () => {
    it.skip(`skipped: conformance cases not found under ${root}`, () => {});
  });
}
