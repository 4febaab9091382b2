import { WardenError } from '@warden/core';

/** A CEL expression failed to parse or type-check. `line`/`column` are 1-based inside the expression text. */
export class CelCompileError extends WardenError {
  readonly line: number;
  readonly column: number;

  constructor(message: string, line: number, column: number, options?: { cause?: unknown }) {
    super('ERR_POLICY_COMPILE', message, options);
    this.line = line;
    this.column = column;
  }
}

/**
 * A CEL expression failed at evaluation time (missing key, no such overload, division by zero...).
 * The message follows cel-go's wording where it matters (e.g. `no such key: ip_address`).
 */
export class CelEvaluationError extends WardenError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INTERNAL', message, options);
  }
}
