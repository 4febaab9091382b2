/**
 * Checks the GraphQL document of a `graphql` resolver when the config is parsed, with `graphql`'s
 * own parser: exactly one operation (fragments may accompany it), a `query` (a resolver must never
 * change upstream state, so mutations and subscriptions are refused), a declared list variable for
 * the batch keys, and every static variable declared.
 */
import { GraphQLError, Kind, parse, type DocumentNode, type OperationDefinitionNode, type TypeNode } from 'graphql';
import { configError } from '../../resolver.types.js';

/** A checked query. */
export interface CheckedGraphQLQuery {
  /** The document as written (sent verbatim). */
  readonly document: string;
  /** The operation's name, when it has one (for messages). */
  readonly operationName?: string;
  /** Response keys (alias or field name) of the operation's root fields, or undefined when fragments make them unknown. */
  readonly rootFields?: ReadonlySet<string>;
}

const MAX_QUERY_CHARS = 64 * 1024;

function isList(type: TypeNode): boolean {
  return type.kind === Kind.NON_NULL_TYPE ? type.type.kind === Kind.LIST_TYPE : type.kind === Kind.LIST_TYPE;
}

function syntaxError(err: GraphQLError): string {
  const at = err.locations?.[0];
  const why = err.message.replace(/^Syntax Error: /, '').replace(/\.$/, '');
  return `invalid GraphQL${at !== undefined ? ` at line ${at.line}, column ${at.column}` : ''}: ${why.charAt(0).toLowerCase()}${why.slice(1)}`;
}

function rootFieldsOf(op: OperationDefinitionNode): Set<string> | undefined {
  const names = new Set<string>();
  for (const s of op.selectionSet.selections) {
    if (s.kind !== Kind.FIELD) return undefined;
    names.add(s.alias?.value ?? s.name.value);
  }
  return names;
}

/**
 * Parses and checks `raw` as the `query` of resolver `resolver`; throws `ERR_RESOLVER_CONFIG_INVALID`
 * naming `query` (or `variables.<name>`).
 * @example checkGraphQLQuery('projects', 'query($keys: [ID!]!) { projects(ids: $keys) { id } }', 'keys', {})
 */
export function checkGraphQLQuery(
  resolver: string,
  raw: unknown,
  keysVariable: string,
  staticVariables: Readonly<Record<string, unknown>>,
): CheckedGraphQLQuery {
  if (typeof raw !== 'string' || raw.trim() === '') throw configError(resolver, 'query', 'expected a GraphQL query');
  if (raw.length > MAX_QUERY_CHARS) throw configError(resolver, 'query', `longer than ${MAX_QUERY_CHARS} characters`);
  let doc: DocumentNode;
  try {
    doc = parse(raw);
  } catch (err) {
    if (err instanceof GraphQLError) throw configError(resolver, 'query', syntaxError(err));
    throw err;
  }
  const operations: OperationDefinitionNode[] = [];
  for (const def of doc.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION) operations.push(def);
    else if (def.kind !== Kind.FRAGMENT_DEFINITION) throw configError(resolver, 'query', 'expected one query and its fragments only');
  }
  const [op] = operations;
  if (op === undefined || operations.length !== 1) throw configError(resolver, 'query', `expected exactly one operation, found ${operations.length}`);
  // SECURITY: authorization reads must never write upstream.
  if (op.operation !== 'query') throw configError(resolver, 'query', `expected a query, not a ${op.operation}`);
  const declared = new Map((op.variableDefinitions ?? []).map((v) => [v.variable.name.value, v]));
  const keysDef = declared.get(keysVariable);
  if (keysDef === undefined) throw configError(resolver, 'query', `the query does not declare the keys variable \`$${keysVariable}\``);
  if (!isList(keysDef.type)) throw configError(resolver, 'query', `the keys variable \`$${keysVariable}\` must be a list, such as \`[ID!]!\``);
  for (const name of Object.keys(staticVariables)) {
    if (!declared.has(name)) throw configError(resolver, `variables.${name}`, 'the query does not declare this variable');
  }
  for (const [name, def] of declared) {
    const required = def.type.kind === Kind.NON_NULL_TYPE && def.defaultValue === undefined;
    if (required && name !== keysVariable && !Object.hasOwn(staticVariables, name)) {
      throw configError(resolver, 'variables', `the query requires \`$${name}\`, which is not given`);
    }
  }
  const rootFields = rootFieldsOf(op);
  return {
    document: raw,
    ...(op.name !== undefined ? { operationName: op.name.value } : {}),
    ...(rootFields !== undefined ? { rootFields } : {}),
  };
}
