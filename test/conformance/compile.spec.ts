/**
 * Replays Cerbos's compile-error cases (`compile/*.yaml` with a txtar `.input`): every error
 * Cerbos reports must be reported here for the same file, and at the same line and column where
 * Cerbos gives a position; nothing else may be flagged. A case without `wantErrors` must compile.
 * Wording may differ.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { classifyPolicyPath, compilePolicies, type PolicyFile, type SchemaFile } from '../../libs/decision/src/index.js';
import { parseTxtar } from '../../libs/decision/src/testing/txtar.js';
import { conformanceDir, conformancePresent, knownFailures, readPolicyDir } from '../support/conformance.js';

interface CompileCase {
  wantErrors?: { file: string; error: string; description?: string; position?: { line: number; column: number; path?: string } }[];
  mainDef?: string;
}

const present = conformancePresent('compile');
const suite = present ? describe : describe.skip;

suite(present ? `cerbos compile conformance (${conformanceDir})` : `cerbos compile conformance: SKIPPED, ${conformanceDir} not found`, () => {
  if (!present) {
    it.skip(`skipped: conformance folder ${conformanceDir} is absent (set WARDEN_CONFORMANCE_DIR)`, () => {});
    return;
  }
  const dir = join(conformanceDir, 'compile');
  const skips = knownFailures('compile');
  const names = readdirSync(dir).filter((f) => f.endsWith('.yaml') && existsSync(join(dir, `${f}.input`))).sort();
  for (const name of names) {
    const reason = skips.get(name);
    const test = reason !== undefined ? it.skip : it;
    test(`${name}${reason !== undefined ? ` (known failure: ${reason})` : ''}`, () => {
      const c = (parse(readFileSync(join(dir, name), 'utf8')) ?? {}) as CompileCase;
      const archive = parseTxtar(readFileSync(join(dir, `${name}.input`), 'utf8'));
      const files: PolicyFile[] = [];
      const schemas: SchemaFile[] = [];
      for (const f of archive) {
        const kind = classifyPolicyPath(f.name);
        if (kind === 'policy') files.push({ path: f.name, text: f.text });
        else if (kind === 'schema') schemas.push({ path: f.name.slice('_schemas/'.length), text: f.text });
      }
      // Cerbos's compile harness resolves schemas from its schema test store.
      for (const f of readPolicyDir(join(conformanceDir, 'schema/fs')).schemas) if (!schemas.some((s) => s.path === f.path)) schemas.push(f);
      const result = compilePolicies(files, { schemas });
      const want = c.wantErrors ?? [];
      if (want.length === 0) {
        expect(result.errors).toEqual([]);
        expect(result.policySet).toBeDefined();
        return;
      }
      expect(result.policySet).toBeUndefined();
      // Cerbos's harness compiles only the unit of \`mainDef\`: it, its scope ancestors and what it
      // imports. Errors in other resource or principal policies of the archive are not comparable.
      const unit = unitFiles(files, c.mainDef);
      const got = result.errors
        .filter((e) => unit.has(e.file))
        .map((e) => ({ file: e.file, line: e.line, column: e.column, message: e.message }));
      // every wanted error is flagged at the same file (and position, where Cerbos gives one)
      for (const w of want) {
        const hit = got.find((g) => g.file === w.file && (!w.position || (g.line === w.position.line && g.column === w.position.column)));
        expect(hit, `want ${w.file}${w.position ? `:${w.position.line}:${w.position.column}` : ''} ${w.error}: ${w.description ?? ''}\n got ${JSON.stringify(got, null, 1)}`).toBeDefined();
      }
      // nothing else is flagged
      for (const g of got) {
        const hit = want.find((w) => w.file === g.file && (!w.position || (g.line === w.position.line && g.column === w.position.column)));
        expect(hit, `unexpected error ${g.file}:${g.line}:${g.column} ${g.message}`).toBeDefined();
      }
    });
  }
});

/** The files of mainDef's compilation unit: mainDef, non-resource/principal files, and ancestors. */
function unitFiles(files: PolicyFile[], mainDef: string | undefined): Set<string> {
  const all = new Set(files.map((f) => f.path));
  if (!mainDef) return all;
  const out = new Set<string>();
  const main = files.find((f) => f.path === mainDef);
  const identity = (text: string): string | undefined => {
    const m = /(resource|principal)Policy:[\s\S]*?\n\s+(resource|principal):\s*"?([\w:.@-]+)"?/.exec(text);
    return m ? `${m[1]}:${m[3]}` : undefined;
  };
  const mainId = main ? identity(main.text) : undefined;
  for (const f of files) {
    const isMainKind = /(resource|principal)Policy:/.test(f.text);
    if (f.path === mainDef || !isMainKind || (mainId !== undefined && identity(f.text) === mainId)) out.add(f.path);
  }
  return out;
}
