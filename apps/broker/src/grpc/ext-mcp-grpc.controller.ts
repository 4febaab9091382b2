/**
 * agentgateway's external MCP policy service (`agentgateway.dev.ext_mcp.ExtMcp`) on Warden's gRPC
 * listener: agentgateway's `extMcp` policy calls `CheckRequest` before it forwards an MCP request
 * and `CheckResponse` before it returns an upstream's result. Each method converts the message
 * (its `google.protobuf.Struct` fields to JSON), parses it with `@warden/gateway`
 * (`parseExtMcpRequest` / `parseExtMcpResponse`: who calls, from `metadata_context`, and what is
 * asked), admits the caller, and decides (`ext-mcp-grpc.decide.ts`).
 *
 * A subject or agent attributes stated in `metadata_context` are accepted only from a trusted
 * gateway: one presenting a configured `gateways[].apiKey` as the gRPC metadata
 * `x-warden-api-key` (the header `/v1/check` reads). A message without any credential is refused.
 * Every outcome, errors included, is a result message (see `ext-mcp-grpc.answer.ts`). Reached only
 * from 127.0.0.1 unless `WARDEN_GRPC_ADDR` says otherwise.
 */
import type { Metadata } from '@grpc/grpc-js';
import { Controller, Inject, Logger } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import { isWardenError, type JsonValue } from '@warden/core';
import { parseExtMcpRequest, parseExtMcpResponse, type ExtMcpIdentity, type ExtMcpMessage } from '@warden/gateway';
import { GATEWAY_KEY_HEADER } from '../http/v1-check.routes.js';
import { valueMapToJson, type ValueMessage } from './cerbos-grpc.convert.js';
import { PASS, refusedWith } from './ext-mcp-grpc.answer.js';
import { decideCall, filterListing, identify, type ExtMcpDeps } from './ext-mcp-grpc.decide.js';

export type { ExtMcpDeps } from './ext-mcp-grpc.decide.js';

/** DI token of the service's dependencies. */
export const EXT_MCP_GRPC_DEPS = Symbol('EXT_MCP_GRPC_DEPS');

type Msg = Record<string, unknown>;

const logger = new Logger('ExtMcp');

const isMsg = (v: unknown): v is Msg => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A decoded `google.protobuf.Struct` as JSON, or undefined when absent. */
function structToJson(v: unknown): Record<string, JsonValue> | undefined {
  if (!isMsg(v)) return undefined;
  return valueMapToJson(isMsg(v['fields']) ? (v['fields'] as Record<string, ValueMessage>) : undefined);
}

function messageOf(m: unknown, body: 'mcpRequest' | 'mcpResponse'): ExtMcpMessage {
  const msg = isMsg(m) ? m : {};
  return { serviceName: msg['serviceName'], method: msg['method'], metadataContext: structToJson(msg['metadataContext']), body: structToJson(msg[body]) };
}

/** Runs one call; an error becomes an `error` result (never a gRPC status, never `pass`). */
async function settle(call: () => Promise<Msg>): Promise<Msg> {
  try {
    return await call();
  } catch (err) {
    if (isWardenError(err)) {
      if (err.code === 'ERR_REQUEST_INVALID' || err.code === 'ERR_REQUEST_LIMIT_EXCEEDED') return refusedWith('INVALID', `Warden refused a malformed extMcp message: ${err.message}`, { reason: 'request_invalid' });
      if (err.code === 'ERR_UNAUTHENTICATED') return refusedWith('PERMISSION_DENIED', `Warden denied this request: ${err.message}`, { reason: 'unauthenticated' });
      if (err.code === 'ERR_STORAGE_UNAVAILABLE' || err.code === 'ERR_CATALOG_UNAVAILABLE') return refusedWith('UNKNOWN', 'Warden cannot decide right now; try again later', { reason: 'resolvers_unavailable' });
    }
    logger.error(`extMcp check failed: ${(err as Error)?.name ?? 'error'}: ${(err as Error)?.message ?? String(err)}`);
    return refusedWith('UNKNOWN', 'Warden could not decide (internal error)', { reason: 'internal' });
  }
}

@Controller()
export class ExtMcpGrpcController {
  constructor(@Inject(EXT_MCP_GRPC_DEPS) private readonly deps: ExtMcpDeps) {}

  @GrpcMethod('ExtMcp', 'CheckRequest')
  checkRequest(message: unknown, metadata: Metadata): Promise<Msg> {
    return settle(async () => {
      const c = parseExtMcpRequest(messageOf(message, 'mcpRequest'));
      const refused = this.admit(c.identity, metadata);
      if (refused !== undefined) return refused;
      if (c.kind === 'check') return decideCall(this.deps, c, metadata);
      return (await identify(this.deps, c.identity, `\`${c.method}\``)) ?? PASS;
    });
  }

  @GrpcMethod('ExtMcp', 'CheckResponse')
  checkResponse(message: unknown, metadata: Metadata): Promise<Msg> {
    return settle(async () => {
      const c = parseExtMcpResponse(messageOf(message, 'mcpResponse'));
      const refused = this.admit(c.identity, metadata);
      if (refused !== undefined) return refused;
      return c.kind === 'filter' ? filterListing(this.deps, c) : PASS;
    });
  }

  /** Refuses callers without credentials, and stated identities from untrusted callers. */
  private admit(identity: ExtMcpIdentity, metadata: Metadata | undefined): Msg | undefined {
    if (identity.needsTrust) {
      const keys = metadata?.get(GATEWAY_KEY_HEADER) ?? [];
      // One value only: two keys are a misconfiguration, never "the first that matches".
      const presented = keys.length === 1 && typeof keys[0] === 'string' ? keys[0] : undefined;
      if (this.deps.check.matchGateway(presented) === undefined) {
        return refusedWith('PERMISSION_DENIED', `Warden denied this request: a subject or agent stated directly (id, roles, attr) needs a trusted gateway's \`${GATEWAY_KEY_HEADER}\` (gRPC metadata)`, { reason: 'gateway_untrusted' });
      }
    }
    if (!identity.present) {
      return refusedWith('PERMISSION_DENIED', 'Warden denied this request: it carries no credentials (`metadata_context` has no `authorization`, `token`, `agent`, `delegation` or `subject`)', { reason: 'credentials_missing' });
    }
    return undefined;
  }
}
