/**
 * The routes' body parser. Like Cerbos it accepts any content type and treats an empty body as
 * `{}`; unlike Fastify's default it rejects invalid UTF-8 (instead of replacing it) so the engine
 * never sees a different string than the gateway sent. `useJsonBodies` installs it, with the
 * error shape of the routes, on an encapsulated Fastify plugin.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { WardenError } from '@warden/core';
import type { MappedError } from './broker-error.filter.js';

/** Parses a raw request body. Throws `ERR_REQUEST_INVALID` with Cerbos-like messages. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return {};
  if (!isUtf8(body)) throw new WardenError('ERR_REQUEST_INVALID', 'proto: syntax error: invalid UTF-8 in string');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    const detail = err instanceof Error ? err.message : 'invalid JSON';
    throw new WardenError('ERR_REQUEST_INVALID', `proto: syntax error: ${detail}`);
  }
}

/** A request of a plugin that keeps its bodies' bytes ({@link useJsonBodies}): `rawBody`, null without a body. */
export type WithRawBody<Req> = Req & { rawBody: Buffer | null };

/**
 * Makes `api` (an encapsulated plugin) parse every body with {@link parseJsonBody} up to
 * `bodyLimit` bytes and answer errors through `toError`. `keepRaw`: each request also keeps the
 * bytes its body came as ({@link WithRawBody}; the decision log captures `/v1/check`'s entries from them).
 * @example await app.register(async (api) => { useJsonBodies(api, 1 << 20, toWardenError); api.post(...) });
 */
export function useJsonBodies(api: FastifyInstance, bodyLimit: number, toError: (err: unknown) => MappedError<unknown>, keepRaw = false): void {
  api.removeAllContentTypeParsers();
  // Declared on the plugin's requests, so that every one has the same shape.
  if (keepRaw) api.decorateRequest('rawBody', null);
  api.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (req, body, done) => {
    try {
      if (keepRaw) (req as WithRawBody<typeof req>).rawBody = body as Buffer;
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  api.setErrorHandler((err, _req, reply) => {
    const { status, body } = toError(err);
    void reply.code(status).header('content-type', 'application/json').send(JSON.stringify(body));
  });
}
