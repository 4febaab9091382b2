/**
 * Runs one small policy directory + CheckResources request through a fresh Cerbos server and
 * through Warden, returning both answers normalised the same way (for the pinned findings).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { compilePolicies, createEngine, DEFAULT_ENGINE_CONFIG } from '../../libs/decision/src/index.js';
import type { CheckInput } from '../../libs/core/src/index.js';
import { cerbosCompile, startCerbos } from '../support/cerbos-process.js';

export interface CaseRequest {
  principal: CheckInput['principal'];
  resources: { resource: CheckInput['resource']; actions: string[] }[];
}

export interface Normalised {
  actions: Record<string, { effect: string; policy: string; scope: string }>;
  effectiveDerivedRoles: string[];
  outputs: { src: string; action: string; val: unknown; error: boolean }[];
}

export interface BothAnswers {
  cerbosLoads: boolean;
  cerbosCompileOutput: string;
  wardenErrors: string[];
  cerbos?: Normalised[];
  warden?: Normalised[];
}

function sortOutputs(o: Normalised['outputs']): Normalised['outputs'] {
  return [...o].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

export async function runBoth(files: Record<string, string>, request: CaseRequest, globals: Record<string, unknown> = {}): Promise<BothAnswers> {
  const root = mkdtempSync(join(tmpdir(), 'warden-finding-'));
  const store = join(root, 'store');
  try {
    for (const [p, text] of Object.entries(files)) {
      const full = join(store, p);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, text);
    }
    const compiled = compilePolicies(
      Object.entries(files).map(([path, text]) => ({ path, text })),
      {},
    );
    const wardenErrors = compiled.errors.map((e) => `${e.code} ${e.message}`);
    const cc = await cerbosCompile(store);
    const out: BothAnswers = { cerbosLoads: cc.ok, cerbosCompileOutput: cc.output, wardenErrors };
    if (compiled.policySet) {
      const engine = createEngine(compiled.policySet, { ...DEFAULT_ENGINE_CONFIG, globals: globals as never });
      const inputs: CheckInput[] = request.resources.map((r) => ({ principal: request.principal, resource: r.resource, actions: r.actions }));
      out.warden = engine.check(inputs).map((w) => ({
        actions: Object.fromEntries(Object.entries(w.actions).map(([a, e]) => [a, { effect: e.effect, policy: e.policy, scope: e.scope ?? '' }])),
        effectiveDerivedRoles: [...w.effectiveDerivedRoles].sort(),
        outputs: sortOutputs(w.outputs.map((o) => ({ src: o.src, action: o.action, val: o.error !== undefined ? null : (o.val ?? null), error: o.error !== undefined }))),
      }));
    }
    if (cc.ok) {
      const server = await startCerbos({ storeDir: store, workDir: root, globals });
      try {
        const res = await fetch(`${server.url}/api/check/resources`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ requestId: 'finding', includeMeta: true, principal: request.principal, resources: request.resources }),
          signal: AbortSignal.timeout(10_000),
        });
        const json = (await res.json()) as {
          results: {
            actions: Record<string, string>;
            meta?: { actions?: Record<string, { matchedPolicy?: string; matchedScope?: string }>; effectiveDerivedRoles?: string[] };
            outputs?: { src: string; action?: string; val?: unknown; error?: string }[];
          }[];
        };
        out.cerbos = json.results.map((r) => ({
          actions: Object.fromEntries(
            Object.entries(r.actions).map(([a, e]) => [a, { effect: e, policy: r.meta?.actions?.[a]?.matchedPolicy ?? '', scope: r.meta?.actions?.[a]?.matchedScope ?? '' }]),
          ),
          effectiveDerivedRoles: [...(r.meta?.effectiveDerivedRoles ?? [])].sort(),
          outputs: sortOutputs((r.outputs ?? []).map((o) => ({ src: o.src, action: o.action ?? '', val: o.error !== undefined ? null : (o.val ?? null), error: o.error !== undefined }))),
        }));
      } finally {
        await server.stop();
      }
    }
    return out;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
