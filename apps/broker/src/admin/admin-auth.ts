/**
 * Who is calling the admin API, and may they. The credential is `Authorization: Bearer <token>`:
 * the configured bootstrap token (principal `bootstrap`, role `admin`), or an IdP token verified
 * by a `jwt` resolver built from `admin.jwt` (roles from its `rolesClaim`). The decision is the
 * admin engine's (resource kinds `warden:resolver`, `warden:revocation`, `warden:audit`,
 * `warden:policy`), never a hard-coded role check.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { WardenError, type Principal } from '@warden/core';
import type { Engine } from '@warden/decision';
import { isResolverError, type ContextResolver } from '@warden/resolvers';

/** Options of {@link createAdminAuth}. */
export interface AdminAuthOptions {
  readonly engine: Engine;
  /** SECURITY: a secret. */
  readonly bootstrapToken: string | undefined;
  /** Verifies IdP admin tokens into claims (a `jwt` resolver), when configured. */
  readonly jwt?: { readonly resolver: ContextResolver; readonly rolesClaim: string };
}

/** Authenticates and authorises admin calls. */
/** What the admin API manages. */
export type AdminResourceKind = 'warden:resolver' | 'warden:revocation' | 'warden:audit' | 'warden:policy';

/** How a forbidden call names what it was about. */
const KIND_NAMES: Record<AdminResourceKind, string> = {
  'warden:resolver': 'resolvers',
  'warden:revocation': 'revocations',
  'warden:audit': 'the decision log',
  'warden:policy': 'the policy set',
};

export interface AdminAuth {
  /** Resolves to the caller, or throws `ERR_UNAUTHENTICATED` / `ERR_FORBIDDEN`. */
  authorize(authorization: string | undefined, action: string, resourceId: string, kind?: AdminResourceKind): Promise<Principal>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Builds the admin gate. */
export function createAdminAuth(options: AdminAuthOptions): AdminAuth {
  const bootstrap = options.bootstrapToken === undefined ? undefined : digest(options.bootstrapToken);

  async function authenticate(authorization: string | undefined): Promise<Principal> {
    const m = authorization === undefined ? null : /^Bearer\s+(\S+)$/i.exec(authorization);
    if (m === null) throw new WardenError('ERR_UNAUTHENTICATED', 'admin calls need `Authorization: Bearer <admin token>`');
    const token = m[1] as string;
    if (bootstrap !== undefined && timingSafeEqual(digest(token), bootstrap)) return { id: 'bootstrap', roles: ['admin'], attr: {} };
    if (options.jwt !== undefined) {
      const [claims] = await options.jwt.resolver.resolveMany([token], { requestId: 'admin', signal: AbortSignal.timeout(5000) });
      if (isResolverError(claims)) {
        throw new WardenError('ERR_UNAUTHENTICATED', claims.code === 'ERR_TOKEN_INVALID' ? `admin token refused: ${claims.message}` : 'admin token could not be verified');
      }
      const c = (claims ?? {}) as Record<string, unknown>;
      const roles = c[options.jwt.rolesClaim];
      const sub = c['sub'];
      if (typeof sub === 'string' && sub !== '' && Array.isArray(roles) && roles.length > 0 && roles.every((r) => typeof r === 'string' && r !== '')) {
        return { id: sub, roles: roles as string[], attr: {} };
      }
      throw new WardenError('ERR_FORBIDDEN', 'the admin token carries no roles');
    }
    throw new WardenError('ERR_UNAUTHENTICATED', 'admin token refused');
  }

  return {
    async authorize(authorization, action, resourceId, kind = 'warden:resolver') {
      const principal = await authenticate(authorization);
      const [out] = options.engine.check([{ principal, resource: { kind, id: resourceId, attr: {} }, actions: [action] }]);
      if (out?.actions[action]?.effect !== 'EFFECT_ALLOW') {
        throw new WardenError('ERR_FORBIDDEN', `\`${principal.id}\` may not \`${action}\` ${KIND_NAMES[kind]}`);
      }
      return principal;
    },
  };
}
