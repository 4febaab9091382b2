/**
 * Reads and compiles a policy directory. At boot any compile error refuses the start; on a reload
 * the errors are returned (structured: file, line, column, message, code) and the set in force
 * keeps serving. Either way the broker never serves a partial policy set (SECURITY: a missing
 * policy would silently turn into DENY or, worse, a missing DENY rule into an ALLOW elsewhere).
 */
import { createHash } from 'node:crypto';
import { WardenError } from '@warden/core';
import { compilePolicies, type CompileDiagnostic, type CompiledPolicySet } from '@warden/decision';
import { readPolicyDir, type PolicySource } from './read-policy-dir.js';

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
  /** How many policy files the set has. */
  policies: number;
}

/** The files of a policy directory as read, with their content hash. */
export interface ReadPolicies {
  readonly source: PolicySource;
  /** `sha256:<16 hex>` over every policy and schema file's path and text (sorted by path). */
  readonly contentHash: string;
}

/** The outcome of compiling a read policy directory: the set, or every error sorted by position. */
export type CompiledPolicies = { readonly ok: true; readonly loaded: LoadedPolicies } | { readonly ok: false; readonly errors: readonly CompileDiagnostic[] };

/** Reads `policyDir` and hashes its content (throws `ERR_POLICY_SET_INVALID` when it is no directory). */
export function readPolicies(policyDir: string): ReadPolicies {
  const source = readPolicyDir(policyDir);
  const hash = createHash('sha256');
  for (const f of [...source.policies, ...source.schemas.map((s) => ({ path: `_schemas/${s.path}`, text: s.text }))]) {
    hash.update(f.path).update('\0').update(f.text).update('\0');
  }
  return { source, contentHash: `sha256:${hash.digest('hex').slice(0, 16)}` };
}

/** Compiles what {@link readPolicies} read; errors are sorted by file, line and column. */
export function compileReadPolicies(read: ReadPolicies): CompiledPolicies {
  const { source } = read;
  const { policySet, errors } = compilePolicies(source.policies, { schemas: source.schemas });
  if (errors.length > 0 || policySet === undefined) {
    const sorted = [...errors].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column));
    return { ok: false, errors: sorted };
  }
  const readsRequestExtras = source.policies.some((f) => /\brequest\s*\.\s*(context|delegation)\b/.test(f.text));
  return { ok: true, loaded: { policySet, version: read.contentHash, readsRequestExtras, policies: source.policies.length } };
}

/** The `ERR_POLICY_COMPILE` error listing every diagnostic as `file:line:col message`. */
export function policyCompileError(where: string, errors: readonly CompileDiagnostic[]): WardenError {
  return new WardenError(
    'ERR_POLICY_COMPILE',
    `policies in \`${where}\` failed to compile (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.map(formatDiagnostic).join('\n')}`,
  );
}

/** Reads and compiles `policyDir`; throws `ERR_POLICY_COMPILE` listing every error. */
export function loadPolicySetOrThrow(policyDir: string): CompiledPolicySet {
  return loadPolicies(policyDir).policySet;
}

/** Like {@link loadPolicySetOrThrow}, with the content hash that identifies the set in decisions. */
export function loadPolicies(policyDir: string): LoadedPolicies {
  const compiled = compileReadPolicies(readPolicies(policyDir));
  if (!compiled.ok) throw policyCompileError(policyDir, compiled.errors);
  return compiled.loaded;
}
