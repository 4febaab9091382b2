/**
 * The one place that knows how Warden errors look on the wire. Every error is first classified
 * (an exhaustive switch over `WardenError` codes) into an HTTP status, a gRPC code and a message
 * safe to return; then written in one of three shapes: Cerbos's `{"code": <gRPC code>, "message"}`
 * for the Cerbos-compatible routes (`toCerbosError`), `{"error": {"code": "ERR_…", "message"}}`
 * for Warden's own `/v1` API (`toWardenError`), and a gRPC status for the gRPC services
 * (`toGrpcStatus`). `BrokerErrorFilter` applies the right one to
 * everything Nest routes.
 */
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { assertNever, isWardenError, type WardenError, type WardenErrorCode } from '@warden/core';

/** Cerbos's (grpc-gateway's) error body. */
export interface CerbosErrorBody {
  code: number;
  message: string;
}

/** Status and body to send for an error. */
export interface MappedError<B = CerbosErrorBody> {
  status: number;
  body: B;
}

/** Warden's own error body on `/v1`: a stable code and a message naming the problem. */
export interface WardenErrorBody {
  error: { code: WardenErrorCode | 'ERR_NOT_FOUND' | 'ERR_METHOD_NOT_ALLOWED'; message: string };
}

// gRPC status codes, as grpc-gateway puts them in `code`.
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_NOT_FOUND = 5;
const GRPC_ALREADY_EXISTS = 6;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNIMPLEMENTED = 12;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;
const GRPC_UNAUTHENTICATED = 16;

const logger = new Logger('BrokerErrorFilter');

interface Classified {
  status: number;
  grpc: number;
  code: WardenErrorBody['error']['code'];
  message: string;
}

const INTERNAL: Omit<Classified, 'code'> = { status: 500, grpc: GRPC_INTERNAL, message: 'internal error' };

function fromWardenError(err: WardenError): Classified {
  const code = err.code;
  switch (code) {
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
      return { status: 400, grpc: GRPC_INVALID_ARGUMENT, code, message: err.message };
    case 'ERR_UNAUTHENTICATED':
    case 'ERR_TOKEN_INVALID':
    // A delegation token that does not verify is a bad credential.
    case 'ERR_DELEGATION_INVALID':
      return { status: 401, grpc: GRPC_UNAUTHENTICATED, code, message: err.message };
    case 'ERR_FORBIDDEN':
    // Minting refused: the parent credential does not allow what was asked.
    case 'ERR_DELEGATION_REFUSED':
      return { status: 403, grpc: GRPC_PERMISSION_DENIED, code, message: err.message };
    case 'ERR_NOT_FOUND':
    // A usage report for a reservation this store never made (or has forgotten).
    case 'ERR_BUDGET_RESERVATION_UNKNOWN':
      return { status: 404, grpc: GRPC_NOT_FOUND, code, message: err.message };
    case 'ERR_CONFLICT':
    case 'ERR_READ_ONLY':
      return { status: 409, grpc: GRPC_ALREADY_EXISTS, code, message: err.message };
    case 'ERR_STORAGE_UNAVAILABLE':
      logger.error(`${err.code}: ${err.message}`);
      return { status: 503, grpc: GRPC_UNAVAILABLE, code, message: 'storage unavailable' };
    case 'ERR_BUDGET_UNAVAILABLE':
      // The message names the failure class only (see usage.routes.ts).
      logger.warn(`${err.code}: ${err.message}`);
      return { status: 503, grpc: GRPC_UNAVAILABLE, code, message: err.message };
    case 'ERR_AUDIT_UNAVAILABLE':
      logger.error(`${err.code}: ${err.message}`);
      return { status: 503, grpc: GRPC_UNAVAILABLE, code, message: 'decision log unavailable' };
    case 'ERR_CATALOG_UNAVAILABLE':
      // The message names the catalog and the failure class only (see tool-discovery.ts).
      logger.warn(`${err.code}: ${err.message}`);
      return { status: 503, grpc: GRPC_UNAVAILABLE, code, message: err.message };
    case 'ERR_POLICY_PARSE':
    case 'ERR_POLICY_COMPILE':
    case 'ERR_POLICY_SET_INVALID':
    // The policy source (a git remote) could not be read: Warden's own failure, details in the log.
    case 'ERR_POLICY_SOURCE_UNAVAILABLE':
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
      return { ...INTERNAL, code: 'ERR_INTERNAL' };
    default:
      return assertNever(code);
  }
}

function fromStatus(status: number, message: string): Classified {
  if (status === 404) return { status, grpc: GRPC_NOT_FOUND, code: 'ERR_NOT_FOUND', message: 'Not Found' };
  if (status === 405) return { status: 501, grpc: GRPC_UNIMPLEMENTED, code: 'ERR_METHOD_NOT_ALLOWED', message: 'Method Not Allowed' };
  if (status === 503) return { status, grpc: GRPC_UNAVAILABLE, code: 'ERR_STORAGE_UNAVAILABLE', message };
  if (status >= 400 && status < 500) return { status: 400, grpc: GRPC_INVALID_ARGUMENT, code: 'ERR_REQUEST_INVALID', message };
  return { ...INTERNAL, code: 'ERR_INTERNAL' };
}

/** Fastify's own request errors (body parsing, size) by their `code`. */
function fromFastifyError(err: { code?: unknown; statusCode?: unknown; message?: unknown }): Classified | undefined {
  if (typeof err.code !== 'string' || !err.code.startsWith('FST_')) return undefined;
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 400, grpc: GRPC_INVALID_ARGUMENT, code: 'ERR_REQUEST_INVALID', message: 'request body too large' };
  }
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
  return fromStatus(status, typeof err.message === 'string' ? err.message : 'bad request');
}

function classify(err: unknown): Classified {
  if (isWardenError(err)) return fromWardenError(err);
  if (err instanceof HttpException) return fromStatus(err.getStatus(), err.message);
  if (typeof err === 'object' && err !== null) {
    const mapped = fromFastifyError(err as { code?: unknown });
    if (mapped !== undefined) return mapped;
  }
  logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return { ...INTERNAL, code: 'ERR_INTERNAL' };
}

/** Maps any thrown value to a Cerbos-shaped error; unknown errors are 500 and logged. */
export function toCerbosError(err: unknown): MappedError {
  const c = classify(err);
  return { status: c.status, body: { code: c.grpc, message: c.message } };
}

/** A gRPC status: the code and the message Cerbos sends as the status details. */
export interface GrpcStatus {
  code: number;
  message: string;
}

/** Maps any thrown value to the gRPC status the Cerbos PDP answers with; unknown errors are INTERNAL and logged. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  const c = classify(err);
  return { code: c.grpc, message: c.message };
}

/** Maps any thrown value to Warden's `/v1` error shape; unknown errors are 500 and logged. */
export function toWardenError(err: unknown): MappedError<WardenErrorBody> {
  const c = classify(err);
  return { status: c.status, body: { error: { code: c.code, message: c.message } } };
}

/** Global Nest filter: Cerbos's shape under `/api` and `/_cerbos`, Warden's elsewhere. */
@Catch()
export class BrokerErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<{
      status(code: number): { header(k: string, v: string): { send(b: string): void } };
    }>();
    const url = http.getRequest<{ url?: string }>().url ?? '';
    const cerbos = url.startsWith('/api/') || url.startsWith('/_cerbos/');
    const { status, body } = cerbos ? toCerbosError(exception) : toWardenError(exception);
    reply.status(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }
}
