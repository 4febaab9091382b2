/**
 * Compiles the policy directory once at boot. Any compile error refuses the start: the broker
 * never serves a partial policy set (SECURITY: a missing policy would silently turn into DENY or,
 * worse, a missing DENY rule into an ALLOW elsewhere).
 */
import { createHash } from 'node:crypto';
import { WardenError } from '@warden/core';
import { compilePolicies, type CompileDiagnostic, type CompiledPolicySet } from '@warden/decision';
import { readPolicyDir } from './read-policy-dir.js';

/** Formats one diagnostic as `file:line:col message`. */
export function formatDiagnostic(d: CompileDiagnostic): string {
  return `${d.file}:${d.line}:${d.column} ${d.message}`;
}

/** A compiled policy set and its version: `sha256:` of every policy and schema file (path and text). */
export interface LoadedPolicies {
  policySet: CompiledPolicySet;
  version: string;
  /**
   * True when some policy reads `request.context` or `request.delegation` (Warden's extensions,
   * which the planner does not see): tool discovery then denies what it would have to guess.
   */
  readsRequestExtras: boolean;
}

/** Reads and compiles `policyDir`; throws `ERR_POLICY_COMPILE` listing every error. */
export function loadPolicySetOrThrow(policyDir: string): CompiledPolicySet {
  return loadPolicies(policyDir).policySet;
}

/** Like {@link loadPolicySetOrThrow}, with the content hash that identifies the set in decisions. */
export function loadPolicies(policyDir: string): LoadedPolicies {
  const source = readPolicyDir(policyDir);
  const hash = createHash('sha256');
  for (const f of [...source.policies, ...source.schemas.map((s) => ({ path: `_schemas/${s.path}`, text: s.text }))]) {
    hash.update(f.path).update('\0').update(f.text).update('\0');
  }
  const version = `sha256:${hash.digest('hex').slice(0, 16)}`;
  const { policySet, errors } = compilePolicies(source.policies, { schemas: source.schemas });
  if (errors.length > 0 || policySet === undefined) {
    const sorted = [...errors].sort(
      (a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column),
    );
    const lines = sorted.map(formatDiagnostic);
    throw new WardenError(
      'ERR_POLICY_COMPILE',
      `policies in \`${policyDir}\` failed to compile (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    );
  }
  const readsRequestExtras = source.policies.some((f) => /\brequest\s*\.\s*(context|delegation)\b/.test(f.text));
  return { policySet, version, readsRequestExtras };
}
