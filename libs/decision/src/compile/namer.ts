/**
 * Policy naming exactly as Cerbos prints it: fully-qualified names (`cerbos.resource.x.vdefault/acme`),
 * policy keys (the FQN without `cerbos.`) and rule FQNs used as output sources.
 */

const INVALID_IDENTIFIER_CHARS = /[^\w.]+/g;
/** Names of the pre-0.30 naming pattern; only these are rewritten (checked against the 0.55 binary). */
const LEGACY_NAME = /^[A-Za-z][\w@.\-/]*(:[A-Za-z][\w@.\-/]*)*$/;

/**
 * Cerbos's name sanitising: a name of the legacy pattern (letters first, `:`-separated parts of
 * word characters and `@ . - /`) has each run of other characters replaced by `_`
 * (`a:b` → `a_b`); any other name is kept as written (`arn:aws:sns:us-east-1:123:t` stays).
 */
export function sanitize(v: string): string {
  return LEGACY_NAME.test(v) ? v.replace(INVALID_IDENTIFIER_CHARS, '_') : v;
}

function withScope(base: string, scope: string): string {
  return scope === '' ? base : `${base}/${scope}`;
}

export function resourcePolicyFqn(kind: string, version: string, scope: string): string {
  return withScope(`cerbos.resource.${sanitize(kind)}.v${sanitize(version)}`, scope);
}

export function principalPolicyFqn(principal: string, version: string, scope: string): string {
  return withScope(`cerbos.principal.${sanitize(principal)}.v${sanitize(version)}`, scope);
}

export function rolePolicyFqn(role: string, version: string, scope: string): string {
  return withScope(`cerbos.role.${sanitize(role)}.v${sanitize(version)}`, scope);
}

export function derivedRolesFqn(name: string): string {
  return `cerbos.derived_roles.${sanitize(name)}`;
}

export function exportVariablesFqn(name: string): string {
  return `cerbos.export_variables.${sanitize(name)}`;
}

export function exportConstantsFqn(name: string): string {
  return `cerbos.export_constants.${sanitize(name)}`;
}

/** `cerbos.resource.x.vdefault` → `resource.x.vdefault`. */
export function policyKeyFromFqn(fqn: string): string {
  return fqn.startsWith('cerbos.') ? fqn.slice('cerbos.'.length) : fqn;
}

/** Parent scopes from nearest to the root: `a.b.c` → `a.b`, `a`, ``. */
export function scopeParents(scope: string): string[] {
  const out: string[] = [];
  if (scope === '') return out;
  let s = scope;
  for (;;) {
    const i = s.lastIndexOf('.');
    if (i < 0) break;
    s = s.slice(0, i);
    out.push(s);
  }
  out.push('');
  return out;
}
