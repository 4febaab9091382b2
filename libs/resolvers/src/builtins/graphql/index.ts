/**
 * The `graphql` resolver kind: public names, re-exported by `libs/resolvers/src/index.ts`.
 */
export { createGraphQLResolverFactory, createGraphQLResolver, parseGraphQLResolverConfig } from './graphql.resolver.js';
export type { GraphQLResolverConfig, GraphQLResolverFactoryOptions } from './graphql.resolver.js';
export { parseGraphQLDatasource } from './graphql-datasource.js';
export type { GraphQLDatasource } from './graphql-datasource.js';
export { checkGraphQLQuery } from './graphql-query.js';
export type { CheckedGraphQLQuery } from './graphql-query.js';
export { createGuardedFetch, GraphQLFetchError } from './graphql-fetch.js';
export type { GuardedFetchOptions, GraphQLFetchFailure } from './graphql-fetch.js';
