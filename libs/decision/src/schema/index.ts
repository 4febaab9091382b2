/** JSON Schema validation of request attributes, as Cerbos's `schema.enforcement` does it. */
export { createSchemaRegistry, type SchemaRegistry } from './registry.js';
export {
  validateCheckInput,
  validatePlanResourcesInput,
  ignoredForActions,
  actionMatches,
  type PolicySchemas,
  type SchemaRefSpec,
  type SchemaValidationResult,
  type PlanValidationInput,
} from './validate.js';
