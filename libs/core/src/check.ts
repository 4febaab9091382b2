/**
 * The vocabulary of a decision, shaped after the Cerbos engine's CheckInput / CheckOutput so the
 * Cerbos-compatible API maps onto it one to one.
 */

/** A JSON value as it arrives on the wire. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Attribute map of a principal or a resource. */
export type Attributes = Record<string, JsonValue>;

/** The identity on whose behalf an action is evaluated. */
export interface Principal {
  id: string;
  roles: string[];
  attr: Attributes;
  policyVersion?: string;
  scope?: string;
}

/** The thing being acted on. */
export interface Resource {
  kind: string;
  id: string;
  attr: Attributes;
  policyVersion?: string;
  scope?: string;
}

/** Auxiliary data: verified JWT claims today. */
export interface AuxData {
  /** Claims of the request's single JWT (`request.auxData.jwt`). */
  jwt?: Record<string, JsonValue>;
  /** Named JWTs (`request.auxData.jwts.<name>.claims`), as Cerbos 0.55 accepts them. */
  jwts?: Record<string, { claims: Record<string, JsonValue> }>;
}

/** One hop of a verified delegation chain, as policies see it. */
export interface DelegationHopView {
  id: string;
  from: string;
  to: string;
  canSubDelegate: boolean;
  task?: string;
}

/**
 * A verified delegation, as policies see it (`request.delegation`, a Warden extension): the human
 * or service it acts for, the acting agent, the hops root first and their number.
 */
export interface DelegationView {
  subject: string;
  actor: string;
  chain: DelegationHopView[];
  depth: number;
}

/** One principal, one resource, many actions: the unit the engine evaluates. */
export interface CheckInput {
  requestId?: string;
  principal: Principal;
  resource: Resource;
  actions: string[];
  auxData?: AuxData;
  /** The gateway's context (`request.context`, a Warden extension; absent in Cerbos requests). */
  context?: Record<string, JsonValue>;
  /** The verified delegation (`request.delegation`, a Warden extension). */
  delegation?: DelegationView;
}

/** Effect names exactly as Cerbos prints them. */
export type Effect = 'EFFECT_ALLOW' | 'EFFECT_DENY';

/** The decision for one action. */
export interface ActionEffect {
  effect: Effect;
  policy: string;
  scope?: string;
  /** The rule that decided (`<policy key>#<rule name>`), only when asked for (`includeRules`). */
  rule?: string;
}

/** A value produced by a rule's `output`. */
export interface OutputEntry {
  src: string;
  val?: JsonValue;
  action: string;
  /** Set instead of `val` when the output expression failed to evaluate. */
  error?: string;
}

/** A JSON Schema violation found in the request. */
export interface ValidationError {
  path: string;
  message: string;
  source: 'SOURCE_PRINCIPAL' | 'SOURCE_RESOURCE';
}

/** The engine's answer for one {@link CheckInput}. */
export interface CheckOutput {
  requestId?: string;
  resourceId: string;
  actions: Record<string, ActionEffect>;
  effectiveDerivedRoles: string[];
  validationErrors: ValidationError[];
  outputs: OutputEntry[];
}
