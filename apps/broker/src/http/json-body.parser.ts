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

/**
 * Makes `api` (an encapsulated plugin) parse every body with {@link parseJsonBody} up to
 * `bodyLimit` bytes and answer errors through `toError`.
 * @example await app.register(async (api) => { useJsonBodies(api, 1 << 20, toWardenError); api.post(...) });
 */
export function useJsonBodies(api: FastifyInstance, bodyLimit: number, toError: (err: unknown) => MappedError<unknown>): void {
  api.removeAllContentTypeParsers();
  api.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    try {
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
