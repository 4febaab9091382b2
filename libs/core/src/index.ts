/**
 * `@warden/core`: the vocabulary every Warden lib shares. Imports nothing.
 */
export { WardenError, isWardenError, assertNever } from './warden-error.js';
export type { WardenErrorCode } from './warden-error.js';
export type {
  JsonValue,
  Attributes,
  Principal,
  Resource,
  AuxData,
  CheckInput,
  DelegationView,
  DelegationHopView,
  Effect,
  ActionEffect,
  OutputEntry,
  ValidationError,
  CheckOutput,
} from './check.js';
