/**
 * Replays Cerbos's own check, plan and AuthZEN API cases (`server/checks/{check_resources,
 * check_resource_set, check_resource_batch}/*.yaml`, `server/plan_resources/*.yaml` and
 * `server/authzen/{access_evaluation,access_evaluation_batch}` of the shared Cerbos conformance data) against the real broker,
 * configured as the data's README says: store `store/`, schema enforcement reject, JWT key set
 * `cerbos`, request limits 5/5, globals environment=test. Responses are compared as the README
 * says: `cerbosCallId` ignored, `effectiveDerivedRoles`, `outputs` and `validationErrors`
 * order-insensitive. Cases listed in `test/conformance/known-failures/server.txt`
 * (`<folder>/<case>.yaml  reason`) are skipped and printed; a summary per folder is printed at the
 * end. Skips, saying so, when the data is absent (`WARDEN_CERBOS_CONFORMANCE_DIR`, else
 * `WARDEN_CONFORMANCE_DIR`, else `../shared/conformance/cerbos`).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { startTestBroker } from '../support/broker.js';
import { conformanceDir, knownFailures } from '../support/conformance.js';

const DATA = resolve(process.env['WARDEN_CERBOS_CONFORMANCE_DIR'] ?? conformanceDir);
const SERVER_DIR = join(DATA, 'server');
const present = existsSync(join(SERVER_DIR, 'checks'));
if (!present) console.warn(`skipping Cerbos server conformance: ${SERVER_DIR} not found`);

/** The three check APIs: case folder, the case file's key for the call, and the route. */
const FOLDERS = [
  { dir: 'checks/check_resources', key: 'checkResources', path: '/api/check/resources' },
  { dir: 'checks/check_resource_set', key: 'checkResourceSet', path: '/api/check' },
  { dir: 'checks/check_resource_batch', key: 'checkResourceBatch', path: '/api/check_resource_batch' },
  { dir: 'plan_resources', key: 'planResources', path: '/api/plan/resources' },
  { dir: 'authzen/access_evaluation', key: 'accessEvaluation', path: '/access/v1/evaluation' },
  { dir: 'authzen/access_evaluation_batch', key: 'accessEvaluationBatch', path: '/access/v1/evaluations' },
] as const;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface ServerCase {
  description: string;
  wantStatus: { httpStatusCode: number };
  wantError?: boolean;
  checkResources?: { input: unknown; wantResponse?: Json };
  checkResourceSet?: { input: unknown; wantResponse?: Json };
  checkResourceBatch?: { input: unknown; wantResponse?: Json };
  planResources?: { input: unknown; wantResponse?: Json };
  accessEvaluation?: { input: unknown; wantResponse?: Json };
  accessEvaluationBatch?: { input: unknown; wantResponse?: Json };
}

function readCases(dir: string): [string, ServerCase][] {
  const full = join(SERVER_DIR, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => [f, parseYaml(readFileSync(join(full, f), 'utf8').split(/^---$/m).pop() ?? '') as ServerCase]);
}

const UNORDERED = new Set(['effectiveDerivedRoles', 'outputs', 'validationErrors']);

/** Sorts the arrays Cerbos treats as sets so comparisons are order-insensitive; drops `cerbosCallId`. */
function normalise(v: Json, key = ''): Json {
  if (Array.isArray(v)) {
    const items = v.map((x) => normalise(x));
    return UNORDERED.has(key) ? items.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) : items;
  }
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'cerbosCallId') out[k] = normalise(x, k);
    return out;
  }
  return v;
}

const skips = knownFailures('server');
const tally = new Map<string, { total: number; passed: number; skipped: string[] }>();

describe.skipIf(!present)('Cerbos server conformance: check, plan and AuthZEN APIs', () => {
  let app: NestFastifyApplication;
  let base: string;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-conf-'));
    writeFileSync(
      join(dir, 'warden.yaml'),
      `server:
  requestLimits: { maxResourcesPerRequest: 5, maxActionsPerResource: 5 }
engine:
  globals: { environment: test }
schema: { enforcement: reject }
auxData:
  jwt:
    keySets:
      - id: cerbos
        local: { file: ${JSON.stringify(join(DATA, 'auxdata/keys/verify_key.jwk'))} }
`,
    );
    ({ app, base } = await startTestBroker({ cwd: dir, policyDir: join(DATA, 'store') }));
  });

  afterAll(async () => {
    await app?.close();
    const lines: string[] = [];
    let total = 0;
    let passed = 0;
    for (const [dir, t] of tally) {
      total += t.total;
      passed += t.passed;
      lines.push(`  ${dir}: ${t.passed}/${t.total} passed${t.skipped.length > 0 ? `, known failures skipped: ${t.skipped.join(', ')}` : ''}`);
    }
    if (total > 0) {
      const pct = ((100 * passed) / total).toFixed(1);
      console.log(`Cerbos server conformance (check, plan and AuthZEN APIs): ${passed}/${total} passed (${pct}%)\n${lines.join('\n')}`);
    }
  });

  for (const folder of FOLDERS) {
    const cases = readCases(folder.dir);
    const t = { total: cases.length, passed: 0, skipped: [] as string[] };
    tally.set(folder.dir, t);

    describe(folder.dir, () => {
      for (const [file, c] of cases) {
        const id = `${folder.dir}/${file}`;
        const reason = skips.get(id);
        if (reason !== undefined) {
          t.skipped.push(file);
          it.skip(`${file}: ${c.description} (known failure: ${reason})`, () => {});
          console.warn(`known failure, skipped: ${id}: ${reason}`);
          continue;
        }
        it(`${file}: ${c.description}`, async () => {
          const call = c[folder.key];
          expect(call, `${id} has no ${folder.key}`).toBeDefined();
          const res = await fetch(`${base}${folder.path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(call?.input),
          });
          const body = (await res.json()) as Json;
          expect(res.status, c.description).toBe(c.wantStatus.httpStatusCode);
          if (c.wantError === true) {
            expect(body).toMatchObject({ code: 3, message: expect.any(String) });
            expect(JSON.stringify(body)).not.toContain('EFFECT_ALLOW');
          } else {
            expect(normalise(body), c.description).toEqual(normalise(call?.wantResponse as Json));
          }
          t.passed++;
        });
      }
    });
  }
});
