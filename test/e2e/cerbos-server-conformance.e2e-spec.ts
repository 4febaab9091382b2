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
 *
 * The check and plan cases are replayed over gRPC too, as Cerbos runs them against its own gRPC
 * server: the input is encoded with Cerbos's message schemas (`@cerbos/api`, protojson rules),
 * sent to `cerbos.svc.v1.CerbosService` on Warden's gRPC listener, and the answer (decoded and
 * printed as protojson) or the status code compared with the case's. An input protojson cannot
 * encode (an unknown field, a wrong type) has no gRPC form and is counted apart.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { fromBinary, fromJson, toBinary, toJson, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { Client as GrpcJsClient, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  CheckResourceBatchRequestSchema,
  CheckResourceSetRequestSchema,
  CheckResourcesRequestSchema,
  PlanResourcesRequestSchema,
} from '@cerbos/api/cerbos/request/v1/request_pb';
import {
  CheckResourceBatchResponseSchema,
  CheckResourceSetResponseSchema,
  CheckResourcesResponseSchema,
  PlanResourcesResponseSchema,
} from '@cerbos/api/cerbos/response/v1/response_pb';
import { startTestBroker, type TestBroker } from '../support/broker.js';
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

/** The folders served by `cerbos.svc.v1.CerbosService` (AuthZEN is HTTP only), with their method and schemas. */
const GRPC_FOLDERS: ReadonlyArray<{ dir: string; key: (typeof FOLDERS)[number]['key']; method: string; input: DescMessage; output: DescMessage }> = [
  { dir: 'checks/check_resources', key: 'checkResources', method: 'CheckResources', input: CheckResourcesRequestSchema, output: CheckResourcesResponseSchema },
  { dir: 'checks/check_resource_set', key: 'checkResourceSet', method: 'CheckResourceSet', input: CheckResourceSetRequestSchema, output: CheckResourceSetResponseSchema },
  { dir: 'checks/check_resource_batch', key: 'checkResourceBatch', method: 'CheckResourceBatch', input: CheckResourceBatchRequestSchema, output: CheckResourceBatchResponseSchema },
  { dir: 'plan_resources', key: 'planResources', method: 'PlanResources', input: PlanResourcesRequestSchema, output: PlanResourcesResponseSchema },
];

/** Field number of `aux_data` in CheckResourcesRequest and PlanResourcesRequest (the cases with `jwts` are of these two). */
const AUX_DATA_FIELD = 5;

/**
 * Encodes a case's input. `auxData.jwts` (Cerbos 0.55's `AuxData.jwts = 2`, a `map<string, JWT>`)
 * is newer than the `@cerbos/api` schemas, so it is appended by hand as a second `aux_data`
 * occurrence, which protobuf merges into the first.
 */
function encodeInput(schema: DescMessage, input: { auxData?: { jwts?: Record<string, { token?: string; keySetId?: string }> } }): Uint8Array {
  const jwts = input.auxData?.jwts;
  if (jwts === undefined) return toBinary(schema, fromJson(schema, input as JsonValue));
  const { jwts: _jwts, ...auxData } = input.auxData ?? {};
  const head = toBinary(schema, fromJson(schema, { ...input, auxData } as JsonValue));
  const aux = new BinaryWriter();
  for (const [name, jwt] of Object.entries(jwts)) {
    aux.tag(2, WireType.LengthDelimited).fork();
    aux.tag(1, WireType.LengthDelimited).string(name);
    aux.tag(2, WireType.LengthDelimited).fork();
    if (jwt.token !== undefined) aux.tag(1, WireType.LengthDelimited).string(jwt.token);
    if (jwt.keySetId !== undefined) aux.tag(2, WireType.LengthDelimited).string(jwt.keySetId);
    aux.join().join();
  }
  const tail = new BinaryWriter().tag(AUX_DATA_FIELD, WireType.LengthDelimited).bytes(aux.finish()).finish();
  return Buffer.concat([head, tail]);
}

/** One unary call to Warden's CerbosService with an already encoded request. */
function grpcCall(client: GrpcJsClient, method: string, request: Uint8Array): Promise<{ error?: ServiceError; response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/cerbos.svc.v1.CerbosService/${method}`,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => b,
      request,
      new Metadata(),
      (error, response) => resolve(error ? { error } : { response }),
    );
  });
}

const skips = knownFailures('server');
const tally = new Map<string, { total: number; passed: number; skipped: string[] }>();
const grpcTally = { total: 0, passed: 0, noGrpcForm: [] as string[] };

describe.skipIf(!present)('Cerbos server conformance: check, plan and AuthZEN APIs', () => {
  let broker: TestBroker | undefined;
  let base: string;
  let grpcAddr: string | undefined;
  let grpc: GrpcJsClient | undefined;

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
    ({ base, grpcAddr } = broker = await startTestBroker({ cwd: dir, policyDir: join(DATA, 'store'), grpc: true }));
    grpc = new GrpcJsClient(grpcAddr as string, credentials.createInsecure());
  });

  afterAll(async () => {
    grpc?.close();
    await broker?.close();
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
    if (grpcTally.total > 0) {
      console.log(
        `Cerbos server conformance over gRPC: ${grpcTally.passed}/${grpcTally.total - grpcTally.noGrpcForm.length} passed` +
          (grpcTally.noGrpcForm.length > 0 ? ` (${grpcTally.noGrpcForm.length} inputs have no gRPC form: ${grpcTally.noGrpcForm.join(', ')})` : ''),
      );
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

  for (const folder of GRPC_FOLDERS) {
    describe(`${folder.dir} over gRPC (${folder.method})`, () => {
      for (const [file, c] of readCases(folder.dir)) {
        const id = `${folder.dir}/${file}`;
        if (skips.has(id)) continue;
        grpcTally.total++;
        const call = c[folder.key];
        let request: Uint8Array | undefined;
        try {
          request = encodeInput(folder.input, call?.input as Parameters<typeof encodeInput>[1]);
        } catch {
          grpcTally.noGrpcForm.push(id);
          it.skip(`${file}: ${c.description} (no gRPC form: protojson cannot encode the input)`, () => {});
          continue;
        }
        const bytes = request;
        it(`${file}: ${c.description}`, async () => {
          const { error, response } = await grpcCall(grpc as GrpcJsClient, folder.method, bytes);
          const grpcStatusCode = (c.wantStatus as { grpcStatusCode?: number }).grpcStatusCode ?? 0;
          if (c.wantError === true || grpcStatusCode !== 0) {
            expect(response, c.description).toBeUndefined();
            expect(error?.code, c.description).toBe(grpcStatusCode);
          } else {
            expect(error, c.description).toBeUndefined();
            const body = toJson(folder.output, fromBinary(folder.output, response as Buffer)) as Json;
            expect(normalise(body), c.description).toEqual(normalise(call?.wantResponse as Json));
          }
          grpcTally.passed++;
        });
      }
    });
  }
});
