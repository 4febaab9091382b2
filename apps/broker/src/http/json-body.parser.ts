/**
 * The Cerbos routes' body parser. Like Cerbos it accepts any content type and treats an empty
 * body as `{}`; unlike Fastify's default it rejects invalid UTF-8 (instead of replacing it) so the
 * engine never sees a different string than the gateway sent.
 */
import { isUtf8 } from 'node:buffer';
import { WardenError } from '@warden/core';

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
