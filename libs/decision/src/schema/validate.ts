/**
 * Cerbos's request validation: `principal.attr` / `resource.attr` against the resource policy's
 * `schemas.principalSchema` / `schemas.resourceSchema`, with `ignoreWhen.actions`.
 */
import type { CheckInput, JsonValue, ValidationError } from '@warden/core';
import type { SchemaEnforcement } from '../engine.types.js';
import { registryState, type SchemaRegistry } from './registry.js';
import { translateErrors } from './messages.js';
import { goQuote } from './format.js';

export interface SchemaRefSpec {
  ref: string;
  ignoreWhenActions: string[];
}

/** A resource policy's `schemas` block. */
export interface PolicySchemas {
  principalSchema?: SchemaRefSpec;
  resourceSchema?: SchemaRefSpec;
}

export interface SchemaValidationResult {
  errors: ValidationError[];
  /** True when enforcement is `reject` and there is at least one error. */
  reject: boolean;
}

type Source = ValidationError['source'];

const globCache = new Map<string, RegExp>();

/** Cerbos action globs: `:` separates segments; `*` alone matches everything. */
function globRegex(glob: string): RegExp {
  const hit = globCache.get(glob);
  if (hit) return hit;
  let re = '';
  let inClass = false;
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (inClass) {
      if (ch === ']') inClass = false;
      re += ch === '\\' ? '\\\\' : ch;
      continue;
    }
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^:]*';
    } else if (ch === '?') re += '[^:]';
    else if (ch === '[') {
      inClass = true;
      re += '[';
      if (glob[i + 1] === '!') {
        re += '^';
        i++;
      }
    } else if (ch === '{') {
      braces++;
      re += '(?:';
    } else if (ch === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (ch === ',' && braces > 0) re += '|';
    else if (ch === '\\' && i + 1 < glob.length) re += `\\${glob[++i] as string}`;
    else re += ch.replace(/[.+^$()|\\/]/g, '\\$&');
  }
  let rx: RegExp;
  try {
    rx = new RegExp(`^${re}$`, 's');
  } catch {
    rx = new RegExp(`^${glob.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  }
  globCache.set(glob, rx);
  return rx;
}

/** True when `action` matches a Cerbos action glob. */
export function actionMatches(glob: string, action: string): boolean {
  if (glob === '*' || glob === action) return true;
  return globRegex(glob).test(action);
}

/** Whether validation is skipped: every requested action matches an `ignoreWhen` glob. */
export function ignoredForActions(ignore: readonly string[], actions: readonly string[]): boolean {
  if (ignore.length === 0) return false;
  return actions.every((a) => ignore.some((g) => actionMatches(g, a)));
}

function validateAttr(
  registry: SchemaRegistry,
  source: Source,
  spec: SchemaRefSpec | undefined,
  attr: Record<string, JsonValue> | undefined,
  actions: readonly string[],
  dropRequired: boolean,
  out: ValidationError[],
): void {
  if (!spec || spec.ref === '') return;
  if (ignoredForActions(spec.ignoreWhenActions, actions)) return;
  const which = source === 'SOURCE_PRINCIPAL' ? 'principal' : 'resource';
  const loaded = registryState(registry)?.load(spec.ref) ?? {
    ok: false as const,
    error: `schema ${spec.ref} doesn't exist`,
  };
  if (!loaded.ok) {
    out.push({ path: '', message: `Failed to load ${which} schema ${goQuote(spec.ref)}: ${loaded.error}`, source });
    return;
  }
  const data = attr ?? {};
  if (loaded.validate(data)) return;
  for (const e of translateErrors(loaded.validate.errors ?? [])) {
    if (dropRequired && e.keyword === 'required') continue;
    out.push({ path: e.path, message: e.message, source });
  }
}

function run(
  registry: SchemaRegistry,
  schemas: PolicySchemas | undefined,
  principalAttr: Record<string, JsonValue> | undefined,
  resourceAttr: Record<string, JsonValue> | undefined,
  actions: readonly string[],
  enforcement: SchemaEnforcement,
  plan: boolean,
): SchemaValidationResult {
  if (enforcement === 'none' || !schemas) return { errors: [], reject: false };
  const errors: ValidationError[] = [];
  validateAttr(registry, 'SOURCE_PRINCIPAL', schemas.principalSchema, principalAttr, actions, false, errors);
  validateAttr(registry, 'SOURCE_RESOURCE', schemas.resourceSchema, resourceAttr, actions, plan, errors);
  return { errors, reject: enforcement === 'reject' && errors.length > 0 };
}

/** Validates a check request's attributes (no work at all when enforcement is `none`). */
export function validateCheckInput(
  registry: SchemaRegistry,
  schemas: PolicySchemas | undefined,
  input: CheckInput,
  enforcement: SchemaEnforcement,
): SchemaValidationResult {
  return run(registry, schemas, input.principal.attr, input.resource.attr, input.actions, enforcement, false);
}

/** The shape of a PlanResources request that validation reads. */
export interface PlanValidationInput {
  principal: { attr?: Record<string, JsonValue> };
  resource: { attr?: Record<string, JsonValue> };
  actions: string[];
}

/**
 * Validates a PlanResources request: as for checks, except that resource attributes are
 * partial, so `required` errors for the resource are dropped (as Cerbos does).
 */
export function validatePlanResourcesInput(
  registry: SchemaRegistry,
  schemas: PolicySchemas | undefined,
  input: PlanValidationInput,
  enforcement: SchemaEnforcement,
): SchemaValidationResult {
  return run(registry, schemas, input.principal.attr, input.resource.attr, input.actions, enforcement, true);
}
