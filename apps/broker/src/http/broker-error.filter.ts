/**
 * The one place that knows how Warden errors look on the wire. `toCerbosError` maps a
 * `WardenError` code to an HTTP status and Cerbos's error body `{"code": <gRPC code>, "message"}`
 * (an exhaustive switch); `BrokerErrorFilter` applies it to everything Nest routes, and the
 * Fastify-level Cerbos routes call `toCerbosError` directly.
 */
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { assertNever, isWardenError, type WardenError } from '@warden/core';

/** Cerbos's (grpc-gateway's) error body. */
export interface CerbosErrorBody {
  code: number;
  message: string;
}

/** Status and body to send for an error. */
export interface MappedError {
  status: number;
  body: CerbosErrorBody;
}

// gRPC status codes, as grpc-gateway puts them in `code`.
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_NOT_FOUND = 5;
const GRPC_UNIMPLEMENTED = 12;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;

const logger = new Logger('BrokerErrorFilter');

function fromWardenError(err: WardenError): MappedError {
  switch (err.code) {
    case 'ERR_REQUEST_INVALID':
    case 'ERR_REQUEST_LIMIT_EXCEEDED':
    case 'ERR_AUX_DATA_INVALID':
    // Resolver configuration errors reach HTTP only through the admin API (a bad request body).
    case 'ERR_RESOLVER_CONFIG_INVALID':
    case 'ERR_RESOLVER_PATH_INVALID':
    case 'ERR_RESOLVER_KIND_UNKNOWN':
    case 'ERR_RESOLVER_DATASOURCE_UNKNOWN':
    case 'ERR_RESOLVER_NAME_DUPLICATE':
    case 'ERR_RESOLVER_PROVIDES_CONFLICT':
    case 'ERR_RESOLVER_DEPENDENCY_CYCLE':
    case 'ERR_RESOLVER_CEL_INVALID':
      return { status: 400, body: { code: GRPC_INVALID_ARGUMENT, message: err.message } };
    case 'ERR_POLICY_PARSE':
    case 'ERR_POLICY_COMPILE':
    case 'ERR_POLICY_SET_INVALID':
    case 'ERR_SCHEMA_INVALID':
    case 'ERR_TEST_SUITE_INVALID':
    case 'ERR_CONFIG_INVALID':
    case 'ERR_INTERNAL':
    // Resolver failures become deny reasons, not HTTP errors; one that escapes is internal.
    case 'ERR_RESOLVER_TIMEOUT':
    case 'ERR_RESOLVER_ABORTED':
    case 'ERR_RESOLVER_FAILED':
    case 'ERR_RESOLVER_RESULT_INVALID':
      // SECURITY: internal details stay in the log, not in the response.
      logger.error(`${err.code}: ${err.message}`);
      return { status: 500, body: { code: GRPC_INTERNAL, message: 'internal error' } };
    default:
      return assertNever(err.code);
  }
}

function fromStatus(status: number, message: string): MappedError {
  if (status === 404) return { status, body: { code: GRPC_NOT_FOUND, message: 'Not Found' } };
  if (status === 405) return { status: 501, body: { code: GRPC_UNIMPLEMENTED, message: 'Method Not Allowed' } };
  if (status === 503) return { status, body: { code: GRPC_UNAVAILABLE, message } };
  if (status >= 400 && status < 500) return { status: 400, body: { code: GRPC_INVALID_ARGUMENT, message } };
  return { status: 500, body: { code: GRPC_INTERNAL, message: 'internal error' } };
}

/** Fastify's own request errors (body parsing, size) by their `code`. */
function fromFastifyError(err: { code?: unknown; statusCode?: unknown; message?: unknown }): MappedError | undefined {
  if (typeof err.code !== 'string' || !err.code.startsWith('FST_')) return undefined;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 400, body: { code: GRPC_INVALID_ARGUMENT, message: 'request body too large' } };
  }
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
  return fromStatus(status, typeof err.message === 'string' ? err.message : 'bad request');
}

/** Maps any thrown value to a Cerbos-shaped error; unknown errors are 500 and logged. */
export function toCerbosError(err: unknown): MappedError {
  if (isWardenError(err)) return fromWardenError(err);
  if (err instanceof HttpException) return fromStatus(err.getStatus(), err.message);
  if (typeof err === 'object' && err !== null) {
    const mapped = fromFastifyError(err as { code?: unknown });
    if (mapped !== undefined) return mapped;
  }
  logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return { status: 500, body: { code: GRPC_INTERNAL, message: 'internal error' } };
}

/** Global Nest filter: every error leaves as `{code, message}` with the mapped status. */
@Catch()
export class BrokerErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<{
      status(code: number): { header(k: string, v: string): { send(b: string): void } };
    }>();
    const { status, body } = toCerbosError(exception);
    reply.status(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }
}
