/**
 * `/v1/admin/policies`: the policy set this instance serves and what became of the latest change.
 *
 * - `GET /v1/admin/policies` (action `read` on `warden:policy`: admins and viewers): the source,
 *   the set in force (version, commit for git, when it was loaded, how many policies, which
 *   resource kinds), the newest refused change with every error's file, line, column, message and
 *   code (`null` once a newer set is in force or the source is back to the one in force), a
 *   failure to read the source (`null` once it reads again), and the counts of reloads and failed
 *   attempts since boot.
 * - `POST /v1/admin/policies/reload` (action `reload`: admins): reads the source now instead of
 *   waiting for the watcher or the next poll; answers the attempt's `result` (`ok`, `unchanged`,
 *   `refused`, `error`) with the status after it. A refusal is a 200 answer: the call worked, the
 *   set did not.
 *
 * Each instance answers for itself (it follows the source on its own); in a cluster of workers
 * the answering worker's state is shown.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AdminAuth } from '../admin/admin-auth.js';
import type { PolicyStatus, ReloadOutcome } from '../policy-source/policy-reloader.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';

/** What the routes need: the reloader's two operations, and the admin gate. */
export interface AdminPoliciesDeps {
  readonly auth: AdminAuth;
  readonly reloader: { status(): PolicyStatus; reload(): Promise<ReloadOutcome> };
}

/** Registers `GET /v1/admin/policies` and `POST /v1/admin/policies/reload` on `app`. */
export async function registerAdminPolicies(app: FastifyInstance, deps: AdminPoliciesDeps): Promise<void> {
  await app.register(async (api) => {
    // Warden's error shape for everything thrown here (the reload takes no body).
    useJsonBodies(api, 1024, toWardenError);
    api.get('/v1/admin/policies', async (req: FastifyRequest) => {
      await deps.auth.authorize(req.headers.authorization, 'read', '*', 'warden:policy');
      return deps.reloader.status();
    });
    api.post('/v1/admin/policies/reload', async (req: FastifyRequest) => {
      const who = await deps.auth.authorize(req.headers.authorization, 'reload', '*', 'warden:policy');
      const outcome = await deps.reloader.reload();
      req.log.info({ actor: who.id, result: outcome.result, version: outcome.version }, 'policy reload requested');
      return { result: outcome.result, status: deps.reloader.status() };
    });
  });
}
