import { describe, expect, it } from 'vitest';
import { compilePolicies } from '../compile/compile-policies.js';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { createEngine } from '../engine.js';
import { evaluatePlanFilter } from './filter-eval.js';
import { filterDebug } from './plan-filter.js';

// Scope `a` requires parental consent for its ALLOWs; `a.b` below it leaves scopePermissions unset
// (OVERRIDE_PARENT). `approve`: allowed in `a.b` and, unconditionally, in `a`, never at the root.
// `view`: `a.b` allows when x == 1, `a` when ok (a conditional ALLOW under consent, compiled into a
// DENY when ok is not true), the root always.
const policy = (scope: string, extra: string, rules: string): { path: string; text: string } => ({
  path: `doc${scope === '' ? '' : `_${scope}`}.yaml`,
  text: `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
${scope === '' ? '' : `  scope: ${scope}\n`}${extra}  rules:
${rules}`,
});
/** An ALLOW rule for every role, with a condition when `expr` is given. */
const allow = (action: string, expr?: string): string =>
  `    - actions: [${action}]\n      effect: EFFECT_ALLOW\n      roles: ["*"]\n${expr === undefined ? '' : `      condition:\n        match:\n          expr: ${expr}\n`}`;
const FILES = [
  policy('', '', allow('view')),
  policy('a', '  scopePermissions: SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS\n', allow('approve') + allow('view', 'R.attr.ok == true')),
  policy('a.b', '', allow('approve') + allow('view', 'R.attr.x == 1')),
];

function engine() {
  const { policySet, errors } = compilePolicies(FILES, {});
  expect(errors).toEqual([]);
  return createEngine(policySet!, DEFAULT_ENGINE_CONFIG);
}

const principal = { id: 'p', roles: ['user'], attr: {} };
const now = new Date('2026-01-01T00:00:00Z');

describe('planResources under REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS', () => {
  it('keeps what a more specific OVERRIDE_PARENT scope allowed when no parent confirms the consenting scope', () => {
    const e = engine();
    // The check: `a.b` allows and decides. The plan used to drop it with `a`'s unconfirmed ALLOW.
    expect(e.check([{ principal, resource: { kind: 'doc', id: '1', attr: {}, scope: 'a.b' }, actions: ['approve'] }])[0]?.actions['approve']?.effect).toBe('EFFECT_ALLOW');
    expect(e.plan({ principal, resource: { kind: 'doc', scope: 'a.b' }, actions: ['approve'] }, { now }).filter).toEqual({ kind: 'KIND_ALWAYS_ALLOWED' });
    // In `a` itself nothing above confirms its ALLOW: denied by both.
    expect(e.check([{ principal, resource: { kind: 'doc', id: '1', attr: {}, scope: 'a' }, actions: ['approve'] }])[0]?.actions['approve']?.effect).toBe('EFFECT_DENY');
    expect(e.plan({ principal, resource: { kind: 'doc', scope: 'a' }, actions: ['approve'] }, { now }).filter).toEqual({ kind: 'KIND_ALWAYS_DENIED' });
  });

  it('allows exactly what the check allows when every scope of the walk is conditional', () => {
    const e = engine();
    for (const scope of ['a.b', 'a']) {
      const { filter } = e.plan({ principal, resource: { kind: 'doc', scope }, actions: ['view'] }, { now });
      for (const x of [0, 1]) {
        for (const ok of [false, true]) {
          const attr = { x, ok };
          const checked = e.check([{ principal, resource: { kind: 'doc', id: '1', attr, scope }, actions: ['view'] }])[0]?.actions['view']?.effect === 'EFFECT_ALLOW';
          expect(evaluatePlanFilter(filter, { kind: 'doc', attr, scope }, now), `${scope} x=${x} ok=${ok}`).toBe(checked);
        }
      }
    }
    // x == 1 decides in `a.b`; otherwise `a` lets the root's ALLOW through only when ok.
    const inB = e.plan({ principal, resource: { kind: 'doc', scope: 'a.b' }, actions: ['view'] }, { now }).filter;
    expect(evaluatePlanFilter(inB, { kind: 'doc', attr: { x: 1, ok: false }, scope: 'a.b' }, now)).toBe(true);
    expect(evaluatePlanFilter(inB, { kind: 'doc', attr: { x: 0, ok: true }, scope: 'a.b' }, now)).toBe(true);
    expect(evaluatePlanFilter(inB, { kind: 'doc', attr: { x: 0, ok: false }, scope: 'a.b' }, now)).toBe(false);
  });
});

describe('planResources of `all`, `any` and `none` conditions', () => {
  // As Cerbos's planner builds them (seed 20261201's set14 in the plan differential): a known part
  // decides the block or drops out, and a `none` negates each part on its own, so a `none` whose
  // only unknown part is another `none` unwraps it.
  const rule = (match: string): { path: string; text: string } => ({
    path: 'doc.yaml',
    text: `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: ["*"]
      condition:
        match:
${match}`,
  });
  const plan = (match: string): string => {
    const { policySet, errors } = compilePolicies([rule(match)], {});
    expect(errors).toEqual([]);
    const filter = createEngine(policySet!, DEFAULT_ENGINE_CONFIG).plan({ principal, resource: { kind: 'doc' }, actions: ['view'] }, { now }).filter;
    return filterDebug(filter);
  };

  it('unwraps a `none` of a `none` with known parts to the inner condition', () => {
    const nested = `          none:
            of:
              - none:
                  of:
                    - expr: R.attr.level > 2
                    - expr: P.id == "q"
                    - expr: P.id == "r"
              - expr: R.attr.owner == P.id
`;
    expect(plan(nested)).toBe('(and (gt request.resource.attr.level 2) (not (eq request.resource.attr.owner "p")))');
  });

  it('lets a known part decide an `any`, an `all` or a `none`, and drops the others', () => {
    expect(plan('          any:\n            of:\n              - expr: R.attr.x == 1\n              - expr: P.id == "p"\n')).toBe('(true)');
    expect(plan('          all:\n            of:\n              - expr: R.attr.x == 1\n              - expr: P.id == "q"\n')).toBe('(false)');
    expect(plan('          none:\n            of:\n              - expr: R.attr.x == 1\n              - expr: P.id == "p"\n')).toBe('(false)');
    expect(plan('          none:\n            of:\n              - expr: R.attr.x == 1\n              - expr: P.id == "q"\n')).toBe('(not (eq request.resource.attr.x 1))');
  });
});

describe("planResources when one role's ALLOW is unconditional", () => {
  // Probed on the Cerbos 0.55 binary (2026-12-02): `user` is denied in `a` when x == 1; `admin` is
  // allowed unconditionally at the root. A lone unconditional ALLOW overrides every role's DENY;
  // the same ALLOW OR-ed with an ALLOW row whose condition is known false (`admin` in `a.b`) does
  // not, though it simplifies to true, and the plan keeps `user`'s DENY. (Cerbos's check allows
  // both: the plan and the check disagree there, and Warden's plan follows Cerbos's plan.)
  const files = (leafRow: string): { path: string; text: string }[] => [
    policy('', '', allow('create').replace('["*"]', '[admin]')),
    policy('a', '', '    - actions: [create]\n      effect: EFFECT_DENY\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.x == 1\n'),
    policy('a.b', '', leafRow),
  ];
  const plan = (leafRow: string, asCheck = false): string => {
    const { policySet, errors } = compilePolicies(files(leafRow), {});
    expect(errors).toEqual([]);
    const e = createEngine(policySet!, DEFAULT_ENGINE_CONFIG);
    return filterDebug(e.plan({ principal: { id: 'p', roles: ['user', 'admin'], attr: {} }, resource: { kind: 'doc', scope: 'a.b' }, actions: ['create'], ...(asCheck ? { asCheck } : {}) }, { now }).filter);
  };

  it('overrides the DENY of another role when it is the only ALLOW row of its walk', () => {
    expect(plan(allow('other').replace('["*"]', '[admin]'))).toBe('(true)');
  });

  it('does not when an ALLOW row known to be false joins it', () => {
    expect(plan(allow('create', 'P.id == "nobody"').replace('["*"]', '[admin]'))).toBe('(not (eq request.resource.attr.x 1))');
  });

  it('does not when a conditional ALLOW row joins it; does when a second unconditional one does', () => {
    expect(plan(allow('create', 'R.attr.z == 3').replace('["*"]', '[admin]'))).toBe('(not (eq request.resource.attr.x 1))');
    expect(plan(allow('create', 'P.id == "p"').replace('["*"]', '[admin]'))).toBe('(true)');
  });

  it('does, as the check allows, with `asCheck` (tool discovery)', () => {
    expect(plan(allow('create', 'P.id == "nobody"').replace('["*"]', '[admin]'), true)).toBe('(true)');
  });
});

describe("planResources when one role's DENY is unconditional", () => {
  // Probed on the Cerbos 0.55 binary (2026-12-02), roles user and emp, `view` planned in `a.b`:
  // a role whose DENY is unconditional is left out of the plan only when none of its DENY rows is
  // conditional (known-false ones do not count), and a role's walk ends at the first
  // OVERRIDE_PARENT scope with an unconditional ALLOW (a conditional one does not end it).
  const row = (effect: 'EFFECT_ALLOW' | 'EFFECT_DENY', roles: string, expr?: string): string =>
    `    - actions: [view]\n      effect: ${effect}\n      roles: [${roles}]\n${expr === undefined ? '' : `      condition:\n        match:\n          expr: ${expr}\n`}`;
  const OTHER = '    - actions: [other]\n      effect: EFFECT_ALLOW\n      roles: [x]\n';
  const plan = (root: string, leaf = OTHER): string => {
    const { policySet, errors } = compilePolicies([policy('', '', root), policy('a', '', OTHER), policy('a.b', '', leaf)], {});
    expect(errors).toEqual([]);
    const e = createEngine(policySet!, DEFAULT_ENGINE_CONFIG);
    return filterDebug(e.plan({ principal: { id: 'p', roles: ['user', 'emp'], attr: {} }, resource: { kind: 'doc', scope: 'a.b' }, actions: ['view'] }, { now }).filter);
  };

  it('leaves the role out when its other DENY rows are unconditional or known false', () => {
    expect(plan(row('EFFECT_DENY', 'emp') + row('EFFECT_DENY', 'emp', 'P.id == "nobody"') + row('EFFECT_ALLOW', 'user', 'R.attr.o == 1'))).toBe('(eq request.resource.attr.o 1)');
  });

  it('keeps its DENY when a conditional `"*"` DENY row reaches its walk', () => {
    expect(plan(row('EFFECT_ALLOW', 'user') + row('EFFECT_DENY', '"*"', 'R.attr.c == 1'), row('EFFECT_DENY', 'emp'))).toBe('(false)');
  });

  it('ends a walk at an unconditional ALLOW in an OVERRIDE_PARENT scope, not at a conditional one', () => {
    const root = (userAllow: string): string => userAllow + row('EFFECT_DENY', '"*"', 'R.attr.c == 1') + row('EFFECT_DENY', 'emp');
    expect(plan(root(row('EFFECT_ALLOW', 'user', 'R.attr.o == 1')), row('EFFECT_ALLOW', 'user'))).toBe('(true)');
    expect(plan(root(row('EFFECT_ALLOW', 'user')), row('EFFECT_ALLOW', 'user', 'R.attr.o == 1'))).toBe('(false)');
  });
});
