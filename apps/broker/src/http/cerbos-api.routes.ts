/**
 * The Cerbos-compatible HTTP API (`POST /api/check/resources`, `GET /api/server_info`,
 * `GET /_cerbos/health`) as plain Fastify routes in an encapsulated plugin: no Nest pipes,
 * interceptors or guards on the hot path, its own body parser and error handler. These routes
 * are public like the Cerbos PDP's: the PDP is reached only from the gateway on 127.0.0.1.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuxData } from '@warden/core';
import type { Engine } from '@warden/decision';
import type { RequestLimitsConfig } from '../config/broker-config.js';
import type { AuxDataVerifier } from './aux-data.verifier.js';
import { toCerbosError } from './broker-error.filter.js';
import { newCallId } from './call-id.js';
import { parseCheckResourcesRequest, type CheckResourcesRequest } from './check-resources.request.js';
import { toCheckResourcesResponse } from './check-resources.response.js';
import { parseJsonBody } from './json-body.parser.js';

/** `GET /api/server_info`, as Cerbos prints it. */
export interface ServerInfo {
  version: string;
  commit: string;
  buildDate: string;
}

/** What the routes need, all built at boot. */
export interface CerbosApiDeps {
  engine: Engine;
  limits: RequestLimitsConfig;
  verifier: AuxDataVerifier;
  serverInfo: ServerInfo;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
}

/** Default body limit: far above 50 resources × 50 actions with generous attributes. */
export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

const HEALTH_BODY = JSON.stringify({ status: 'SERVING' });

function evaluate(deps: CerbosApiDeps, req: CheckResourcesRequest, reply: FastifyReply): void {
  const outputs = deps.engine.check(req.inputs, { now: new Date() });
  const body = toCheckResourcesResponse(req.requestId, req.inputs, outputs, req.includeMeta, newCallId());
  void reply.header('content-type', 'application/json').send(JSON.stringify(body));
}

async function verifyAuxData(deps: CerbosApiDeps, req: CheckResourcesRequest): Promise<void> {
  // SECURITY: every token is verified before evaluation; one bad token fails the request (as Cerbos).
  const auxData: AuxData = {};
  if (req.jwt !== undefined) auxData.jwt = await deps.verifier.verify(req.jwt.token, req.jwt.keySetId);
  if (req.jwts !== undefined) {
    const named: NonNullable<AuxData['jwts']> = {};
    for (const ref of req.jwts) named[ref.name] = { claims: await deps.verifier.verify(ref.token, ref.keySetId) };
    auxData.jwts = named;
  }
  for (const input of req.inputs) input.auxData = auxData;
}

/** Registers the Cerbos routes on `app` (call before the server is ready). */
export async function registerCerbosApi(app: FastifyInstance, deps: CerbosApiDeps): Promise<void> {
  await app.register(async (api) => {
    api.removeAllContentTypeParsers();
    api.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.bodyLimit }, (_req, body, done) => {
      try {
        done(null, parseJsonBody(body as Buffer));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    api.setErrorHandler((err, _req, reply) => {
      const { status, body } = toCerbosError(err);
      void reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
    });

    api.post('/api/check/resources', { bodyLimit: deps.bodyLimit }, (request: FastifyRequest, reply: FastifyReply) => {
      const req = parseCheckResourcesRequest(request.body === undefined ? {} : request.body, deps.limits);
      if (req.jwt === undefined && req.jwts === undefined) {
        evaluate(deps, req, reply);
        return reply;
      }
      return verifyAuxData(deps, req).then(() => {
        evaluate(deps, req, reply);
        return reply;
      });
    });

    const info = JSON.stringify(deps.serverInfo);
    api.get('/api/server_info', (_request, reply) => {
      void reply.header('content-type', 'application/json').send(info);
    });
    api.get('/_cerbos/health', (_request, reply) => {
      void reply.header('content-type', 'application/json').send(HEALTH_BODY);
    });
  });
}
