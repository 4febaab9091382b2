/**
 * The one error base of Warden. Every lib throws a `WardenError` (or a subclass) with a stable
 * `code`; only the broker's error filter and the adapters translate codes into wire formats.
 */

/** Stable error codes. Never renamed or reused. */
export type WardenErrorCode =
  | 'ERR_INTERNAL'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_REQUEST_INVALID'
  | 'ERR_REQUEST_LIMIT_EXCEEDED'
  | 'ERR_POLICY_PARSE'
  | 'ERR_POLICY_COMPILE'
  | 'ERR_POLICY_SET_INVALID'
  | 'ERR_POLICY_SOURCE_UNAVAILABLE'
  | 'ERR_SCHEMA_INVALID'
  | 'ERR_AUX_DATA_INVALID'
  | 'ERR_TEST_SUITE_INVALID'
  | 'ERR_RESOLVER_CONFIG_INVALID'
  | 'ERR_RESOLVER_PATH_INVALID'
  | 'ERR_RESOLVER_KIND_UNKNOWN'
  | 'ERR_RESOLVER_DATASOURCE_UNKNOWN'
  | 'ERR_RESOLVER_NAME_DUPLICATE'
  | 'ERR_RESOLVER_PROVIDES_CONFLICT'
  | 'ERR_RESOLVER_DEPENDENCY_CYCLE'
  | 'ERR_RESOLVER_CEL_INVALID'
  | 'ERR_RESOLVER_TIMEOUT'
  | 'ERR_RESOLVER_ABORTED'
  | 'ERR_RESOLVER_FAILED'
  | 'ERR_RESOLVER_RESULT_INVALID'
  | 'ERR_TOKEN_INVALID'
  | 'ERR_DELEGATION_INVALID'
  | 'ERR_DELEGATION_REFUSED'
  | 'ERR_NOT_FOUND'
  | 'ERR_CONFLICT'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_FORBIDDEN'
  | 'ERR_STORAGE_UNAVAILABLE'
  | 'ERR_READ_ONLY'
  | 'ERR_CATALOG_UNAVAILABLE'
  | 'ERR_BUDGET_RESERVATION_UNKNOWN'
  | 'ERR_BUDGET_UNAVAILABLE'
  | 'ERR_AUDIT_UNAVAILABLE';

/** Base class for every error Warden raises on purpose. */
export class WardenError extends Error {
  readonly code: WardenErrorCode;

  constructor(code: WardenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `err` is a {@link WardenError}. */
export function isWardenError(err: unknown): err is WardenError {
  return err instanceof WardenError;
}

/** Exhaustiveness helper for `switch` statements over unions. */
export function assertNever(value: never): never {
  throw new WardenError('ERR_INTERNAL', `BUG: unexpected value \`${String(value)}\``);
}
