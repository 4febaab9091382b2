/**
 * The CEL layer of the decision engine: a Cerbos 0.55-compatible CEL environment on
 * @marcbachmann/cel-js. Compile once with {@link compileCelExpression}, build one context per
 * request scope with {@link createCelContext}, evaluate many times.
 */
export { CelCompileError, CelEvaluationError } from './cel-errors.js';
export {
  compileCelExpression,
  createCelContext,
  createCelContextFor,
  prepareCelRequest,
  celReferences,
  celNamespaceIndexing,
  celUsesIdentifier,
  celVariableAlias,
} from './cel-program.js';
export type {
  CelContext,
  CelProgram,
  CelScope,
  PreparedCelRequest,
  CelRequest,
  CelPrincipal,
  CelResource,
} from './cel-program.js';
export { celValueToJson } from './cel-values.js';
