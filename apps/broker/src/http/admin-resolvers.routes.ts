/**
 * `/v1/admin/resolvers`: list, create, read, replace, delete, history, rollback and a dry run of
 * admin-registered resolvers. Every call is authenticated and authorised by the admin engine
 * (resource kind `warden:resolver`). A change is validated against the whole set (the file's
 * resolvers and every stored one) inside the store's transaction, committed as a new version, and
 * applied here at once and on every other instance through the store's notifications.
 *
 * Resolver configs hold no secrets by design (secrets live in operator-defined datasources); the
 * dry run never returns the subject root (it may carry a token).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WardenError, type Principal } from '@warden/core';
import type { JsonObject, ResolverChange, ResolverStore, StoredResolver } from '@warden/resolvers';
import { randomUUID } from 'node:crypto';
import type { AdminAuth } from '../admin/admin-auth.js';
import { recordDecision, type DecisionLog } from '../audit/decision-log.js';
import { eventAuditEntry, type AuditEvent } from '../audit/event-audit-entry.js';
import { withoutCredentials } from '../enrichment/enriched-check.js';
import type { ResolverRuntime } from '../enrichment/resolver-runtime.js';
import type { PolicySnapshots } from '../policy-source/policy-holder.js';
import { toWardenError } from './broker-error.filter.js';
import { useJsonBodies } from './json-body.parser.js';
import { isObj } from './request-common.js';

/** What the routes need. */
export interface AdminResolversDeps {
  runtime: ResolverRuntime;
  /** Absent when the broker has no database (the routes then answer 503). */
  store: ResolverStore | undefined;
  auth: AdminAuth;
  fileConfigs: readonly unknown[];
  /** The decision log (resolver changes, kind `admin`); undefined when off. */
  audit?: DecisionLog | undefined;
  /** The policy set in force, whose version the decision-log entries name. */
  policies: PolicySnapshots;
}

type Req = FastifyRequest<{ Params: { name?: string }; Querystring: Record<string, string | undefined> }>;

function view(s: StoredResolver): unknown {
  return { name: s.name, source: 'admin', version: s.version, updatedAt: s.updatedAt, updatedBy: s.updatedBy, config: { ...s.config, name: s.name } };
}

function bodyConfig(body: unknown, name?: string): Record<string, unknown> {
  if (!isObj(body)) throw new WardenError('ERR_REQUEST_INVALID', 'the body must be a resolver config (a JSON object)');
  const bodyName = body['name'];
  if (name !== undefined && bodyName !== undefined && bodyName !== name) {
    throw new WardenError('ERR_REQUEST_INVALID', `\`name\` in the body (\`${String(bodyName)}\`) differs from the path (\`${name}\`)`);
  }
  if (name === undefined && (typeof bodyName !== 'string' || bodyName === '')) throw new WardenError('ERR_REQUEST_INVALID', '`name` is required');
  return { ...body, name: name ?? bodyName };
}

function versionParam(raw: string | undefined, field: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(raw)) throw new WardenError('ERR_REQUEST_INVALID', `\`${field}\` must be a positive integer`);
  return Number(raw);
}

/** Registers the admin routes on `app`. */
export async function registerAdminResolvers(app: FastifyInstance, deps: AdminResolversDeps): Promise<void> {
  const { runtime, auth } = deps;

  const requireStore = (): ResolverStore => {
    if (deps.store === undefined) throw new WardenError('ERR_STORAGE_UNAVAILABLE', 'no database is configured for admin resolvers');
    return deps.store;
  };

  async function change(req: Req, c: ResolverChange, who: Principal): Promise<StoredResolver | undefined> {
    if (runtime.isFileResolver(c.name)) {
      throw new WardenError('ERR_READ_ONLY', `resolver \`${c.name}\` is defined in warden.yaml; change it there`);
    }
    const stored = await requireStore().apply(c, who.id, (next) => runtime.validate(next));
    await runtime.reload();
    req.log.info({ resolver: c.name, action: c.action, actor: who.id }, 'resolver changed');
    const log = deps.audit;
    if (log !== undefined) {
      // Resolver configs hold no secrets by design (datasources do); masked paths still apply.
      const e: AuditEvent = {
        decisionId: randomUUID(),
        kind: 'admin',
        source: '/v1/admin/resolvers',
        policyVersion: deps.policies.current.version,
        identities: { subject: who.id },
        input: { action: c.action, resolver: c.name, ...(stored !== undefined ? { version: stored.version } : {}) },
        at: Date.now(),
      };
      await recordDecision(log, () => eventAuditEntry(e, log.mask));
    }
    return stored;
  }

  const authz = (req: Req, action: string): Promise<Principal> => auth.authorize(req.headers.authorization, action, req.params.name ?? '*');

  await app.register(async (api) => {
    useJsonBodies(api, 256 * 1024, toWardenError);

    api.get('/v1/admin/resolvers', async (req: Req) => {
      await authz(req, 'list');
      const state = runtime.current();
      return {
        resolvers: [
          ...deps.fileConfigs.map((c) => ({ name: (c as { name?: unknown }).name, source: 'file', config: c })),
          ...runtime.storedResolvers().map(view),
        ],
        status: state.registry !== undefined ? { ok: true } : { ok: false, errors: state.errors.map((e) => ({ code: e.code, resolver: e.resolver, message: e.message })) },
      };
    });

    api.post('/v1/admin/resolvers', async (req: Req, reply) => {
      const who = await authz(req, 'create');
      const config = bodyConfig(req.body);
      const stored = await change(req, { action: 'create', name: config['name'] as string, config }, who);
      void reply.code(201);
      return stored === undefined ? {} : view(stored);
    });

    api.get('/v1/admin/resolvers/:name', async (req: Req) => {
      await authz(req, 'read');
      const name = req.params.name as string;
      const file = deps.fileConfigs.find((c) => (c as { name?: unknown }).name === name);
      if (file !== undefined) return { name, source: 'file', config: file };
      const stored = (await requireStore().list()).find((s) => s.name === name);
      if (stored === undefined) throw new WardenError('ERR_NOT_FOUND', `resolver \`${name}\` does not exist`);
      return view(stored);
    });

    api.get('/v1/admin/resolvers/:name/versions', async (req: Req) => {
      await authz(req, 'read');
      const versions = await requireStore().history(req.params.name as string);
      if (versions.length === 0) throw new WardenError('ERR_NOT_FOUND', `resolver \`${String(req.params.name)}\` has no history`);
      return { versions };
    });

    api.put('/v1/admin/resolvers/:name', async (req: Req) => {
      const who = await authz(req, 'update');
      const name = req.params.name as string;
      const expectedVersion = versionParam(req.query['expectedVersion'], 'expectedVersion');
      const config = bodyConfig(req.body, name);
      const stored = await change(req, { action: 'replace', name, config, ...(expectedVersion !== undefined ? { expectedVersion } : {}) }, who);
      return stored === undefined ? {} : view(stored);
    });

    api.delete('/v1/admin/resolvers/:name', async (req: Req, reply) => {
      const who = await authz(req, 'delete');
      const name = req.params.name as string;
      const expectedVersion = versionParam(req.query['expectedVersion'], 'expectedVersion');
      await change(req, { action: 'delete', name, ...(expectedVersion !== undefined ? { expectedVersion } : {}) }, who);
      void reply.code(204);
      return undefined;
    });

    api.post('/v1/admin/resolvers/:name/rollback', async (req: Req) => {
      const who = await authz(req, 'update');
      const name = req.params.name as string;
      const body = req.body;
      const toVersion = isObj(body) && typeof body['version'] === 'number' ? versionParam(String(body['version']), 'version') : undefined;
      if (toVersion === undefined) throw new WardenError('ERR_REQUEST_INVALID', 'the body must be `{ "version": <n> }`');
      const stored = await change(req, { action: 'rollback', name, toVersion }, who);
      return stored === undefined ? { name, deleted: true } : view(stored);
    });

    api.post('/v1/admin/resolvers/:name/test', async (req: Req) => {
      await authz(req, 'test');
      const name = req.params.name as string;
      const body = isObj(req.body) ? req.body : {};
      let config = body['config'];
      if (config === undefined) {
        const file = deps.fileConfigs.find((c) => (c as { name?: unknown }).name === name);
        config = file ?? runtime.storedResolvers().find((s) => s.name === name)?.config;
        if (config === undefined) throw new WardenError('ERR_NOT_FOUND', `resolver \`${name}\` does not exist; send \`config\` to test a new one`);
      }
      const input = body['input'];
      if (input !== undefined && !isObj(input)) throw new WardenError('ERR_REQUEST_INVALID', '`input` must be an object with principal, agent, subject, context and resources');
      const sample = (input ?? {}) as Record<string, unknown>;
      const resources = Array.isArray(sample['resources']) ? (sample['resources'] as JsonObject[]) : isObj(sample['resource']) ? [sample['resource'] as JsonObject] : [];
      const root = (k: string): JsonObject | undefined => (isObj(sample[k]) ? (sample[k] as JsonObject) : undefined);
      const { outcome } = await runtime.dryRun(bodyConfig(config, name), {
        requestId: 'dry-run',
        resources,
        ...(root('principal') ? { principal: root('principal') as JsonObject } : {}),
        ...(root('agent') ? { agent: root('agent') as JsonObject } : {}),
        ...(root('subject') ? { subject: root('subject') as JsonObject } : {}),
        ...(root('context') ? { context: root('context') as JsonObject } : {}),
      });
      return {
        items: outcome.items.map((item) => {
          return { input: withoutCredentials(item.input), attributes: item.provenance, failures: item.failures, denials: item.denials };
        }),
        runs: outcome.runs,
        durationMs: outcome.durationMs,
      };
    });
  });
}
