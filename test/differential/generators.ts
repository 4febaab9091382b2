/**
 * fast-check generators for the Cerbos differential test: random policy sets (resource, principal
 * and role policies, derived roles, exported variables / constants, scopes, versions, outputs) and
 * random check requests against them. Every name a set defines is prefixed with `s<NN>_` so that
 * many sets can live side by side in one Cerbos disk store without influencing each other.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { CheckInput } from '../../libs/core/src/index.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface GenFile {
  path: string;
  doc: Record<string, Json>;
  /** What the file is about, used to pick the files involved in a mismatch. */
  tag: { kind?: string; principal?: string; role?: string; drSet?: string; exportName?: string };
}

export interface GenSet {
  idx: number;
  prefix: string;
  kinds: string[];
  roles: string[];
  principals: string[];
  files: GenFile[];
}

export const GLOBALS = { env: 'prod', maxLevel: 3, regions: ['eu', 'us'] } as const;

/** Scope tree used by all sets; the request side also uses scopes that have no policies. */
const BASE_SCOPES = ['acme', 'acme.hr', 'acme.hr.uk', 'acme.sales', 'beta'];
const BASE_REQUEST_ONLY_SCOPES = ['acme.hr.uk.london', 'acme.ops', 'gamma'];
/** Scopes are per set (root segment suffixed with the set index): scopePermissions are global per scope in Cerbos's index. */
const scopesFor = (idx: number, list: string[]) => list.map((s) => s.replace(/^([a-z]+)/, `$1${String(idx).padStart(2, '0')}`));
const SCOPE_MODES = ['SCOPE_PERMISSIONS_OVERRIDE_PARENT', 'SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS'];
const VERSIONS = ['default', 'v2'];
const ACTIONS = ['view', 'view:public', 'view:private', 'edit', 'delete', 'create', 'approve'];
const RULE_ACTIONS = [...ACTIONS, 'view:*', '*'];
const DEPTS = ['eng', 'sales', 'hr'];
const TAGS = ['eng', 'sales', 'hr', 'a1', 'b2'];
const STATUSES = ['draft', 'published', 'archived'];
const NAMES = ['alice', 'bob', 'ann', 'eve'];

export function toYaml(doc: Record<string, Json>): string {
  return stringify(doc, { lineWidth: 0 });
}

function ancestors(scope: string): string[] {
  const parts = scope.split('.');
  const out: string[] = [];
  for (let i = parts.length - 1; i >= 1; i--) out.push(parts.slice(0, i).join('.'));
  return out;
}

// ---------------------------------------------------------------- CEL -------------

interface CelCtx {
  vars: string[];
  consts: string[];
  roles: string[];
  principals: string[];
  /** Names for `runtime.effectiveDerivedRoles` checks (resource policy rules only). */
  derived: string[];
}

const cmp = fc.constantFrom('==', '!=', '<', '<=', '>', '>=');
const num = fc.constantFrom('2', '2.0', '2.5', '3', '1', '0', '-1', '1.5');
const dept = fc.constantFrom(...DEPTS).map((d) => JSON.stringify(d));

function atom(ctx: CelCtx): fc.Arbitrary<string> {
  const base: fc.Arbitrary<string>[] = [
    fc.constant('P.attr.dept == R.attr.dept'),
    fc.constant('R.attr.owner == P.id'),
    fc.constant('request.resource.attr.owner == request.principal.id'),
    dept.map((d) => `R.attr.dept == ${d}`),
    fc.tuple(cmp, num).map(([c, n]) => `P.attr.level ${c} ${n}`),
    fc.tuple(cmp, num).map(([c, n]) => `R.attr.level ${c} ${n}`),
    cmp.map((c) => `R.attr.level ${c} P.attr.level`),
    fc.constant('int(P.attr.level) == 2'),
    fc.constant('P.attr.level + 1 > 2'),
    fc.constant('P.attr.level + 1.0 > 2.5'),
    fc.constant('R.attr.status in ["draft", "published"]'),
    fc.constant('R.attr.level in [1, 2, 3]'),
    dept.map((d) => `${d} in P.attr.tags`),
    fc.constant('P.attr.dept in R.attr.tags'),
    fc.constant('R.attr.status.startsWith("dr")'),
    fc.constant('P.attr.name.endsWith("e")'),
    fc.constant('R.attr.status.contains("ub")'),
    fc.constant('P.attr.name.matches("^a")'),
    fc.constant('size(R.attr.tags) > 1'),
    fc.constant('R.attr.tags.exists(t, t.startsWith("a"))'),
    fc.constant('R.attr.tags.all(t, t in P.attr.tags)'),
    fc.constant('R.attr.public == true'),
    fc.constant('P.attr.active'),
    fc.constant('has(R.attr.owner)'),
    fc.constant('!has(P.attr.level)'),
    fc.constant('R.attr.meta.owner == P.id'),
    fc.constant('P.attr.dept + "-" + R.attr.status == "eng-draft"'),
    fc.constant('G.env == "prod"'),
    fc.constant('R.attr.level <= globals.maxLevel'),
    fc.constant('P.attr.region in G.regions'),
    fc.constant('R.id.startsWith("r1")'),
    fc.constant('R.kind.endsWith("_doc")'),
    fc.constantFrom(...ctx.roles).map((r) => `"${r}" in P.roles`),
    fc.constantFrom(...ctx.principals).map((p) => `P.id == "${p}"`),
  ];
  if (ctx.vars.length > 0) base.push(fc.constantFrom(...ctx.vars).map((v) => `V.${v}`), fc.constantFrom(...ctx.vars).map((v) => `variables.${v}`));
  if (ctx.consts.includes('minLevel')) base.push(fc.constant('R.attr.level >= C.minLevel'), fc.constant('P.attr.level > constants.minLevel'));
  if (ctx.consts.includes('depts')) base.push(fc.constant('R.attr.dept in C.depts'));
  if (ctx.derived.length > 0) base.push(fc.constantFrom(...ctx.derived).map((d) => `"${d}" in runtime.effectiveDerivedRoles`));
  return fc.oneof(...base);
}

function celExpr(ctx: CelCtx, depth = 2): fc.Arbitrary<string> {
  if (depth <= 0) return atom(ctx);
  return fc.oneof(
    { weight: 6, arbitrary: atom(ctx) },
    { weight: 1, arbitrary: celExpr(ctx, depth - 1).map((e) => `!(${e})`) },
    { weight: 1, arbitrary: fc.tuple(celExpr(ctx, depth - 1), celExpr(ctx, depth - 1)).map(([a, b]) => `(${a}) && (${b})`) },
    { weight: 1, arbitrary: fc.tuple(celExpr(ctx, depth - 1), celExpr(ctx, depth - 1)).map(([a, b]) => `(${a}) || (${b})`) },
  );
}

function matchArb(ctx: CelCtx, depth = 2): fc.Arbitrary<Json> {
  const expr = celExpr(ctx, 1).map((e) => ({ expr: e }) as Json);
  if (depth <= 0) return expr;
  const list = fc.array(matchArb(ctx, depth - 1), { minLength: 1, maxLength: 3 });
  return fc.oneof(
    { weight: 4, arbitrary: expr },
    { weight: 1, arbitrary: list.map((of) => ({ all: { of } }) as Json) },
    { weight: 1, arbitrary: list.map((of) => ({ any: { of } }) as Json) },
    { weight: 1, arbitrary: list.map((of) => ({ none: { of } }) as Json) },
  );
}

function conditionArb(ctx: CelCtx): fc.Arbitrary<Json | undefined> {
  return fc.option(matchArb(ctx).map((m) => ({ match: m }) as Json), { freq: 2, nil: undefined });
}

function outputExpr(ctx: CelCtx): fc.Arbitrary<string> {
  const list: fc.Arbitrary<string>[] = [
    fc.constant('"fixed"'),
    fc.constant('P.id'),
    fc.constant('"%s:%s".format([P.id, R.id])'),
    fc.constant('{"lvl": R.attr.level, "kind": R.kind}'),
    fc.constant('[P.id, R.kind]'),
    fc.constant('R.attr.level'),
    fc.constant('R.attr.nope'),
    fc.constant('R.attr.level * 2'),
    fc.constant('size(P.roles)'),
    fc.constant('P.attr.level > 1'),
    fc.constant('G.env'),
    fc.constant('null'),
  ];
  if (ctx.vars.length > 0) list.push(fc.constantFrom(...ctx.vars).map((v) => `V.${v}`));
  if (ctx.consts.length > 0) list.push(fc.constantFrom(...ctx.consts).map((c) => `C.${c}`));
  return fc.oneof(...list);
}

function outputArb(ctx: CelCtx): fc.Arbitrary<Json | undefined> {
  return fc.option(
    fc
      .record({ ra: fc.option(outputExpr(ctx), { nil: undefined }), cnm: fc.option(outputExpr(ctx), { nil: undefined }) })
      .filter((o) => o.ra !== undefined || o.cnm !== undefined)
      .map((o) => {
        const when: Record<string, Json> = {};
        if (o.ra !== undefined) when['ruleActivated'] = o.ra;
        if (o.cnm !== undefined) when['conditionNotMet'] = o.cnm;
        return { when } as Json;
      }),
    { freq: 3, nil: undefined },
  );
}

// ------------------------------------------------------- variables / constants -----

const LOCAL_VARS: Record<string, string> = {
  isOwner: 'R.attr.owner == P.id',
  sameDept: 'P.attr.dept == R.attr.dept',
  lvl: 'R.attr.level',
  highLvl: 'R.attr.level > 2',
  tagCount: 'size(R.attr.tags)',
};
const EXPORT_VARS: Record<string, string> = {
  xOwner: 'R.attr.owner == P.id',
  xPublic: 'R.attr.public == true',
  xSenior: 'P.attr.level >= 2',
};
const LOCAL_CONSTS: Record<string, Json> = { minLevel: 2, depts: ['eng', 'hr'], label: 'local' };
const EXPORT_CONSTS: Record<string, Json> = { minLevel: 1.5, depts: ['sales'], tag: 'exported' };

interface DefsChoice {
  localVars: string[];
  importVars: boolean;
  localConsts: string[];
  importConsts: boolean;
}

const defsChoiceArb = (hasVarExport: boolean, hasConstExport: boolean): fc.Arbitrary<DefsChoice> =>
  fc.record({
    localVars: fc.subarray(Object.keys(LOCAL_VARS)),
    importVars: hasVarExport ? fc.boolean() : fc.constant(false),
    localConsts: fc.subarray(Object.keys(LOCAL_CONSTS)),
    importConsts: hasConstExport ? fc.boolean() : fc.constant(false),
  }).filter((d) => !(d.importConsts && d.localConsts.some((c) => c in EXPORT_CONSTS)));

function applyDefs(body: Record<string, Json>, d: DefsChoice, prefix: string): { vars: string[]; consts: string[] } {
  const vars: string[] = [];
  const consts: string[] = [];
  const variables: Record<string, Json> = {};
  if (d.importVars) {
    variables['import'] = [`${prefix}vars`];
    vars.push(...Object.keys(EXPORT_VARS));
  }
  if (d.localVars.length > 0) {
    variables['local'] = Object.fromEntries(d.localVars.map((v) => [v, LOCAL_VARS[v] as string]));
    vars.push(...d.localVars);
  }
  if (Object.keys(variables).length > 0) body['variables'] = variables;
  const constants: Record<string, Json> = {};
  if (d.importConsts) {
    constants['import'] = [`${prefix}consts`];
    consts.push(...Object.keys(EXPORT_CONSTS));
  }
  if (d.localConsts.length > 0) {
    constants['local'] = Object.fromEntries(d.localConsts.map((c) => [c, LOCAL_CONSTS[c] as Json]));
    consts.push(...d.localConsts);
  }
  if (Object.keys(constants).length > 0) body['constants'] = constants;
  // Variable values that are not booleans are only used where a boolean is not required.
  return { vars: vars.filter((v) => v !== 'lvl' && v !== 'tagCount'), consts };
}

// -------------------------------------------------------------- policy sets --------

function ruleNameArb(j: number): fc.Arbitrary<string | undefined> {
  return fc.option(fc.constant(`rule_${j}`), { freq: 2, nil: undefined });
}

/** One set: structure first, then the policy bodies. */
export function policySetArb(idx: number): fc.Arbitrary<GenSet> {
  const prefix = `s${String(idx).padStart(2, '0')}_`;
  const roles = ['user', 'admin', 'guest', 'mgr'].map((r) => prefix + r);
  const principals = ['alice', 'bob'].map((p) => prefix + p);
  const baseCtx: CelCtx = { vars: [], consts: [], roles, principals, derived: [] };
  const SCOPES = scopesFor(idx, BASE_SCOPES);

  return fc
    .record({
      nKinds: fc.integer({ min: 1, max: 2 }),
      versions: fc.subarray(VERSIONS, { minLength: 1 }),
      scopes: fc.subarray(SCOPES, { maxLength: 3 }),
      hasVarExport: fc.boolean(),
      hasConstExport: fc.boolean(),
      nDrSets: fc.integer({ min: 0, max: 2 }),
      nRolePolicies: fc.integer({ min: 0, max: 2 }),
      nPrincipalPolicies: fc.integer({ min: 0, max: 2 }),
      // scopePermissions per scope (undefined = not set); individual policies deviate rarely.
      scopeModes: fc.array(fc.constantFrom<string | undefined>(undefined, ...SCOPE_MODES), { minLength: SCOPES.length, maxLength: SCOPES.length }),
    })
    .chain((s) => {
      const kinds = ['doc', 'file'].slice(0, s.nKinds).map((k) => prefix + k);
      // Every scoped policy needs all its ancestors (and the root) for the same kind/version.
      const scopeSet = new Set<string>();
      for (const sc of s.scopes) {
        scopeSet.add(sc);
        for (const a of ancestors(sc)) scopeSet.add(a);
      }
      const allScopes = ['', ...[...scopeSet].sort()];
      // All policies of one scope share one setting: where their effective settings disagree, Cerbos 0.55 picks one by Go map order, so its
      // answers there change from one server start to the next and cannot be compared.
      const modeArb = (scope: string): fc.Arbitrary<string | undefined> => {
        const mode = s.scopeModes[SCOPES.indexOf(scope)];
        return fc.constant(mode);
      };

      // ---- exports
      const exportFiles: GenFile[] = [];
      if (s.hasVarExport) {
        exportFiles.push({
          path: `${prefix}export_vars.yaml`,
          doc: { apiVersion: 'api.cerbos.dev/v1', exportVariables: { name: `${prefix}vars`, definitions: { ...EXPORT_VARS } } },
          tag: { exportName: `${prefix}vars` },
        });
      }
      if (s.hasConstExport) {
        exportFiles.push({
          path: `${prefix}export_consts.yaml`,
          doc: { apiVersion: 'api.cerbos.dev/v1', exportConstants: { name: `${prefix}consts`, definitions: { ...EXPORT_CONSTS } } },
          tag: { exportName: `${prefix}consts` },
        });
      }
      const defs = defsChoiceArb(s.hasVarExport, s.hasConstExport);

      // ---- derived roles sets
      const drNamesOf = (k: number) => ['owner', 'peer', 'boss'].map((n) => `${n}${k}`);
      const drSetArbs = Array.from({ length: s.nDrSets }, (_, k) =>
        defs.chain((d) => {
          const body: Record<string, Json> = { name: `${prefix}dr${k}` };
          const { vars, consts } = applyDefs(body, d, prefix);
          const ctx: CelCtx = { ...baseCtx, vars, consts };
          const defArb = (name: string) =>
            fc
              .record({
                parentRoles: fc.oneof(
                  { weight: 4, arbitrary: fc.subarray(roles, { minLength: 1, maxLength: 2 }) },
                  { weight: 1, arbitrary: fc.constant<string[]>(['*']) },
                ),
                condition: conditionArb(ctx),
              })
              .map((r) => {
                const o: Record<string, Json> = { name, parentRoles: r.parentRoles };
                if (r.condition !== undefined) o['condition'] = r.condition;
                return o as Json;
              });
          return fc.subarray(drNamesOf(k), { minLength: 1 }).chain((names) =>
            fc.tuple(...names.map(defArb)).map((definitions) => {
              body['definitions'] = definitions;
              return {
                file: {
                  path: `derived_roles/${prefix}dr${k}.yaml`,
                  doc: { apiVersion: 'api.cerbos.dev/v1', derivedRoles: body },
                  tag: { drSet: `${prefix}dr${k}` },
                } as GenFile,
                names,
              };
            }),
          );
        }),
      );

      return fc.tuple(fc.tuple(...drSetArbs), fc.constant(0)).chain(([drSets]) => {
        // ---- resource policies: every kind x version x scope (scopes are the closed set)
        const rpArbs: fc.Arbitrary<GenFile>[] = [];
        for (const kind of kinds) {
          for (const version of s.versions) {
            for (const scope of allScopes) {
              rpArbs.push(
                fc
                  .record({
                    imports: fc.subarray(drSets.map((_, k) => k)),
                    d: defs,
                    scopePermissions: modeArb(scope),
                  })
                  .chain(({ imports, d, scopePermissions }) => {
                    const body: Record<string, Json> = { resource: kind, version };
                    if (scope !== '') {
                      body['scope'] = scope;
                      if (scopePermissions !== undefined) body['scopePermissions'] = scopePermissions;
                    }
                    if (imports.length > 0) body['importDerivedRoles'] = imports.map((k) => `${prefix}dr${k}`);
                    const { vars, consts } = applyDefs(body, d, prefix);
                    const derived = imports.flatMap((k) => drSets[k]?.names ?? []);
                    const ctx: CelCtx = { ...baseCtx, vars, consts, derived };
                    const ruleArb = (j: number) =>
                      fc
                        .record({
                          actions: fc.subarray(RULE_ACTIONS, { minLength: 1, maxLength: 3 }),
                          effect: fc.constantFrom('EFFECT_ALLOW', 'EFFECT_ALLOW', 'EFFECT_DENY'),
                          roles: fc.oneof(
                            { weight: 4, arbitrary: fc.subarray(roles, { minLength: 1, maxLength: 2 }) },
                            { weight: 1, arbitrary: fc.constant<string[]>(['*']) },
                            { weight: derived.length > 0 ? 2 : 0, arbitrary: fc.constant([] as string[]) },
                          ),
                          derivedRoles: derived.length > 0 ? fc.subarray(derived, { maxLength: Math.min(2, derived.length) }) : fc.constant([] as string[]),
                          condition: conditionArb(ctx),
                          name: ruleNameArb(j),
                          output: outputArb(ctx),
                        })
                        .map((r) => {
                          const o: Record<string, Json> = { actions: r.actions, effect: r.effect };
                          if (r.roles.length > 0) o['roles'] = r.roles;
                          if (r.derivedRoles.length > 0 || r.roles.length === 0) {
                            o['derivedRoles'] = r.derivedRoles.length > 0 ? r.derivedRoles : derived.slice(0, 1);
                          }
                          if (r.condition !== undefined) o['condition'] = r.condition;
                          if (r.name !== undefined) o['name'] = r.name;
                          if (r.output !== undefined) o['output'] = r.output;
                          return o as Json;
                        });
                    return fc.integer({ min: 1, max: 5 }).chain((n) =>
                      fc.tuple(...Array.from({ length: n }, (_, j) => ruleArb(j))).map((rules) => {
                        body['rules'] = rules;
                        const suffix = `${version}${scope ? '_' + scope : ''}`;
                        return {
                          path: `resource_policies/${kind}_${suffix}.yaml`,
                          doc: { apiVersion: 'api.cerbos.dev/v1', resourcePolicy: body },
                          tag: { kind },
                        } as GenFile;
                      }),
                    );
                  }),
              );
            }
          }
        }

        // ---- principal policies: principal x version, optionally scoped (with ancestors)
        const ppArbs: fc.Arbitrary<GenFile[]>[] = principals.slice(0, s.nPrincipalPolicies).map((principal) =>
          fc
            .record({ version: fc.constantFrom(...s.versions), scope: fc.constantFrom('', ...scopeSet) })
            .chain(({ version, scope }) => {
              const chain = scope === '' ? [''] : ['', ...ancestors(scope).reverse(), scope];
              return fc.tuple(
                ...chain.map((sc) =>
                  fc
                    .record({
                      d: defs,
                      scopePermissions: modeArb(sc),
                    })
                    .chain(({ d, scopePermissions }) => {
                      const body: Record<string, Json> = { principal, version };
                      if (sc !== '') {
                        body['scope'] = sc;
                        if (scopePermissions !== undefined) body['scopePermissions'] = scopePermissions;
                      }
                      const { vars, consts } = applyDefs(body, d, prefix);
                      const ctx: CelCtx = { ...baseCtx, vars, consts };
                      const actionArb = (j: number) =>
                        fc
                          .record({
                            action: fc.constantFrom(...RULE_ACTIONS),
                            effect: fc.constantFrom('EFFECT_ALLOW', 'EFFECT_DENY'),
                            condition: conditionArb(ctx),
                            name: ruleNameArb(j),
                            output: outputArb(ctx),
                          })
                          .map((a) => {
                            const o: Record<string, Json> = { action: a.action, effect: a.effect };
                            if (a.condition !== undefined) o['condition'] = a.condition;
                            if (a.name !== undefined) o['name'] = a.name;
                            if (a.output !== undefined) o['output'] = a.output;
                            return o as Json;
                          });
                      let counter = 0;
                      const ruleArb = fc
                        .record({ resource: fc.constantFrom(...kinds, '*'), n: fc.integer({ min: 1, max: 3 }) })
                        .chain(({ resource, n }) =>
                          fc.tuple(...Array.from({ length: n }, () => actionArb(counter++))).map((actions) => ({ resource, actions }) as Json),
                        );
                      return fc.uniqueArray(ruleArb, { minLength: 1, maxLength: 3, selector: (r) => (r as { resource: string }).resource }).map((rules) => {
                        // rule names must be unique within the policy
                        let k = 0;
                        for (const r of rules as { actions: Record<string, Json>[] }[]) {
                          for (const a of r.actions) if (a['name'] !== undefined) a['name'] = `rule_${k++}`;
                        }
                        body['rules'] = rules;
                        return {
                          path: `principal_policies/${principal}_${version}${sc ? '_' + sc : ''}.yaml`,
                          doc: { apiVersion: 'api.cerbos.dev/v1', principalPolicy: body },
                          tag: { principal },
                        } as GenFile;
                      });
                    }),
                ),
              );
            }),
        );

        // ---- role policies: custom roles (the set's mgr/guest), optional scope
        const customRoles = [prefix + 'mgr', prefix + 'guest'].slice(0, s.nRolePolicies);
        const roleArbs: fc.Arbitrary<GenFile>[] = customRoles.map((role) =>
          fc
            .record({
              scope: fc.constantFrom('', ...scopeSet),
              version: fc.option(fc.constantFrom(...s.versions), { nil: undefined }),
              parentRoles: fc.subarray([prefix + 'user', prefix + 'admin'], { maxLength: 2 }),
              d: defs,
            })
            .chain(({ scope, version, parentRoles, d }) => {
              const body: Record<string, Json> = { role };
              if (scope !== '') body['scope'] = scope;
              if (version !== undefined) body['version'] = version;
              if (parentRoles.length > 0) body['parentRoles'] = parentRoles;
              const { vars, consts } = applyDefs(body, d, prefix);
              const ctx: CelCtx = { ...baseCtx, vars, consts };
              // One resource per role policy: Cerbos 0.55 visits a role policy's resource groups in
              // Go map order, and rules of different groups share condition-cache keys, so with
              // several groups its outputs (and some effects) vary from one start to the next.
              const ruleArb = (j: number, resource: string) =>
                fc
                  .record({
                    resource: fc.constant(resource),
                    allowActions: fc.subarray(RULE_ACTIONS, { minLength: 1, maxLength: 3 }),
                    condition: conditionArb(ctx),
                    name: ruleNameArb(j),
                    output: outputArb(ctx),
                  })
                  .map((r) => {
                    const o: Record<string, Json> = { resource: r.resource, allowActions: r.allowActions };
                    if (r.condition !== undefined) o['condition'] = r.condition;
                    if (r.name !== undefined) o['name'] = r.name;
                    if (r.output !== undefined) o['output'] = r.output;
                    return o as Json;
                  });
              return fc.tuple(fc.integer({ min: 1, max: 3 }), fc.constantFrom(...kinds, '*')).chain(([n, resource]) =>
                fc.tuple(...Array.from({ length: n }, (_, j) => ruleArb(j, resource))).map((rules) => {
                  body['rules'] = rules;
                  return {
                    path: `role_policies/${role}${scope ? '_' + scope : ''}.yaml`,
                    doc: { apiVersion: 'api.cerbos.dev/v1', rolePolicy: body },
                    tag: { role },
                  } as GenFile;
                }),
              );
            }),
        );

        return fc
          .tuple(fc.tuple(...rpArbs), fc.tuple(...ppArbs), fc.tuple(...roleArbs))
          .map(([rps, pps, rls]) => ({
            idx,
            prefix,
            kinds,
            roles,
            principals,
            files: [...exportFiles, ...drSets.map((d) => d.file), ...rps, ...pps.flat(), ...rls],
          }));
      });
    });
}

// ------------------------------------------------------------------ requests -------

export interface GenRequest {
  principal: CheckInput['principal'];
  resources: { resource: CheckInput['resource']; actions: string[] }[];
}

function maybe<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.option(arb, { freq: 4, nil: undefined });
}

function attrsArb(entries: Record<string, fc.Arbitrary<Json>>): fc.Arbitrary<Record<string, Json>> {
  const keys = Object.keys(entries);
  return fc.tuple(...keys.map((k) => maybe(entries[k] as fc.Arbitrary<Json>))).map((vals) => {
    const out: Record<string, Json> = {};
    vals.forEach((v, i) => {
      if (v !== undefined) out[keys[i] as string] = v;
    });
    return out;
  });
}

const levelArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<Json>(0, 1, 1.5, 2, 2.5, 3, 4) },
  { weight: 1, arbitrary: fc.constant<Json>('2') },
);

export function requestArb(set: GenSet): fc.Arbitrary<GenRequest> {
  const SCOPES = scopesFor(set.idx, BASE_SCOPES);
  const REQUEST_ONLY_SCOPES = scopesFor(set.idx, BASE_REQUEST_ONLY_SCOPES);
  const principalIds = [...set.principals, set.prefix + 'carol'];
  const versionArb = fc.constantFrom<string | undefined>(undefined, undefined, 'default', 'v2', 'v9');
  const scopeArb = fc.constantFrom<string | undefined>(undefined, undefined, '', ...SCOPES, ...REQUEST_ONLY_SCOPES);
  const principalArb = fc
    .record({
      id: fc.constantFrom(...principalIds),
      roles: fc.subarray(set.roles, { minLength: 1, maxLength: 3 }),
      attr: attrsArb({
        dept: fc.constantFrom(...DEPTS),
        level: levelArb,
        tags: fc.subarray(TAGS),
        active: fc.boolean(),
        name: fc.constantFrom(...NAMES),
        region: fc.constantFrom('eu', 'us', 'apac'),
      }),
      policyVersion: versionArb,
      scope: scopeArb,
    })
    .map((p) => {
      const o: CheckInput['principal'] = { id: p.id, roles: p.roles, attr: p.attr as never };
      if (p.policyVersion !== undefined) o.policyVersion = p.policyVersion;
      if (p.scope !== undefined) o.scope = p.scope;
      return o;
    });
  const resourceArb = fc
    .record({
      kind: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...set.kinds) }, { weight: 1, arbitrary: fc.constant(set.prefix + 'nokind') }),
      id: fc.constantFrom('r1', 'r2', 'x9'),
      attr: attrsArb({
        owner: fc.constantFrom<Json>(...principalIds, 'someone'),
        dept: fc.constantFrom(...DEPTS),
        level: levelArb,
        status: fc.constantFrom(...STATUSES),
        tags: fc.subarray(TAGS),
        public: fc.boolean(),
        meta: fc.record({ owner: fc.constantFrom(...principalIds) }),
      }),
      policyVersion: versionArb,
      scope: scopeArb,
      actions: fc.uniqueArray(fc.constantFrom(...ACTIONS, 'view:secret', 'other'), { minLength: 1, maxLength: 5 }),
    })
    .map((r) => {
      const o: CheckInput['resource'] = { kind: r.kind, id: r.id, attr: r.attr as never };
      if (r.policyVersion !== undefined) o.policyVersion = r.policyVersion;
      if (r.scope !== undefined) o.scope = r.scope;
      return { resource: o, actions: r.actions };
    });
  return fc.record({ principal: principalArb, resources: fc.array(resourceArb, { minLength: 1, maxLength: 3 }) });
}
