import { describe, expect, it } from 'vitest';
import { SignJWT, base64url } from 'jose';
import { WardenError } from '@warden/core';
import { chainAllows, checkChain, extendChain, type DelegationChain, type Hop } from './delegation-chain.js';
import { DelegationError } from './delegation-error.js';
import { actClaim, createDelegationVerifier, DELEGATION_TOKEN_TYPE, signDelegation } from './delegation-token.js';
import { cappedValue, grantCovers, parseScope, scopeAllows, type Grant } from './grants.js';
import { generateDelegationKey, loadDelegationKeys } from './signing-keys.js';

const ISSUER = 'http://127.0.0.1:3594';
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

const refund: Grant = { kind: 'tool', actions: ['invoke'], ids: ['issue_refund', 'lookup_order'], caps: { amount: 500 } };

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof DelegationError) return `${err.code}:${err.reason}`;
    throw err;
  }
  return undefined;
}

async function rejectionOf(p: unknown): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DelegationError) return `${err.code}:${err.reason}`;
    throw err;
  }
  return undefined;
}

describe('grants', () => {
  it('parses a scope and refuses malformed grants with the field named', () => {
    expect(parseScope([{ kind: 'tool', actions: ['*'] }], 'grants')).toEqual([{ kind: 'tool', actions: ['*'] }]);
    expect(() => parseScope([], 'grants')).toThrow(/`grants`: expected a non-empty list/);
    expect(() => parseScope([{ kind: 'tool', actions: ['invoke', '*'] }], 'grants')).toThrow(/`grants\[0\]\.actions`: `\*` stands alone/);
    expect(() => parseScope([{ kind: 'tool', actions: ['invoke'], ids: ['*'] }], 'grants')).toThrow(/`grants\[0\]\.ids\[0\]`: `\*` is not allowed/);
    expect(() => parseScope([{ kind: 'tool', actions: ['invoke'], caps: { amount: '5' } }], 'grants')).toThrow(/`grants\[0\]\.caps\.amount`: expected a finite number/);
    expect(() => parseScope([{ kind: 'tool', actions: ['invoke'], extra: 1 }], 'grants')).toThrow(WardenError);
  });

  it('a grant covers narrower actions, ids and caps, never wider ones', () => {
    const all: Grant = { kind: 'tool', actions: ['*'] };
    expect(grantCovers(all, refund)).toBe(true);
    expect(grantCovers(refund, all)).toBe(false);
    expect(grantCovers(refund, { ...refund, ids: ['issue_refund'], caps: { amount: 100 } })).toBe(true);
    expect(grantCovers(refund, { ...refund, caps: { amount: 501 } })).toBe(false);
    expect(grantCovers(refund, { ...refund, caps: {} })).toBe(false);
    expect(grantCovers(refund, { kind: 'tool', actions: ['invoke'], caps: { amount: 1 } })).toBe(false);
    expect(grantCovers(refund, { ...refund, actions: ['invoke', 'delete'] })).toBe(false);
    expect(grantCovers(refund, { ...refund, kind: 'model' })).toBe(false);
    expect(grantCovers(refund, { ...refund, caps: { amount: 10, count: 2 } })).toBe(true);
  });

  it('a request is inside a scope only when a grant covers kind, id, action and every cap', () => {
    const scope = [refund];
    const req = { kind: 'tool', id: 'issue_refund', action: 'invoke', attr: { amount: 500 } };
    expect(scopeAllows(scope, req)).toBe(true);
    expect(scopeAllows(scope, { ...req, attr: { amount: 500.01 } })).toBe(false);
    expect(scopeAllows(scope, { ...req, attr: {} })).toBe(false);
    expect(scopeAllows(scope, { ...req, attr: { amount: '5' } })).toBe(false);
    expect(scopeAllows(scope, { ...req, id: 'drop_table' })).toBe(false);
    expect(scopeAllows(scope, { ...req, action: 'call' })).toBe(false);
  });

  it('a cap bounds a call\'s argument when the resource carries the call\'s arguments', () => {
    const scope = [refund];
    const req = { kind: 'tool', id: 'issue_refund', action: 'invoke' };
    expect(scopeAllows(scope, { ...req, attr: { arguments: { amount: 499 } } })).toBe(true);
    expect(scopeAllows(scope, { ...req, attr: { arguments: { amount: 501 } } })).toBe(false);
    // With arguments, they are what the call does: a smaller stated attribute does not help.
    expect(scopeAllows(scope, { ...req, attr: { amount: 1, arguments: { amount: 501 } } })).toBe(false);
    expect(scopeAllows(scope, { ...req, attr: { amount: 1, arguments: {} } })).toBe(false);
    expect(cappedValue({ amount: 3 }, 'amount')).toBe(3);
    expect(cappedValue({ amount: 3, arguments: [1] }, 'amount')).toBe(3);
  });
});

describe('chains', () => {
  const root = (over: Partial<Parameters<typeof extendChain>[1]> = {}) =>
    extendChain({ subject: 'alice', session: 's-1' }, { id: 'd1', to: 'planner', grants: [refund], canSubDelegate: true, maxDepth: 3, ttlSeconds: 600, task: 'refunds', ...over }, T0);

  it('extends a subject to an agent and an agent to another, each hop inside its parent', () => {
    const one = root();
    expect(one).toMatchObject({ subject: 'alice', session: 's-1', hops: [{ id: 'd1', from: 'alice', to: 'planner', maxDepth: 3, task: 'refunds' }] });
    const two = extendChain({ chain: one }, { id: 'd2', to: 'executor', grants: [{ ...refund, ids: ['issue_refund'], caps: { amount: 100 } }], canSubDelegate: false, maxDepth: 2, ttlSeconds: 60 }, T0 + 1000);
    expect(two.hops.map((h) => `${h.from}->${h.to}`)).toEqual(['alice->planner', 'planner->executor']);
    expect(chainAllows(two, { kind: 'tool', id: 'issue_refund', action: 'invoke', attr: { amount: 99 } })).toBe(true);
    expect(chainAllows(two, { kind: 'tool', id: 'issue_refund', action: 'invoke', attr: { amount: 101 } })).toBe(false);
    expect(chainAllows(two, { kind: 'tool', id: 'lookup_order', action: 'invoke', attr: { amount: 1 } })).toBe(false);
  });

  it('a delegation never outlives its parent', () => {
    const two = extendChain({ chain: root({ ttlSeconds: 60 }) }, { id: 'd2', to: 'executor', grants: [refund], canSubDelegate: false, maxDepth: 2, ttlSeconds: 3600 }, T0);
    expect((two.hops[1] as Hop).exp).toBe((two.hops[0] as Hop).exp);
  });

  it('refuses, with a reason, what the parent does not allow', () => {
    const one = root();
    const next = (over: Partial<Parameters<typeof extendChain>[1]>, parent: DelegationChain = one) =>
      reasonOf(() => extendChain({ chain: parent }, { id: 'd2', to: 'executor', grants: [refund], canSubDelegate: false, maxDepth: 2, ttlSeconds: 60, ...over }, T0));
    expect(next({ grants: [{ ...refund, caps: { amount: 1000 } }] })).toBe('ERR_DELEGATION_REFUSED:delegation_scope_exceeded');
    expect(next({ grants: [{ kind: 'tool', actions: ['*'] }] })).toBe('ERR_DELEGATION_REFUSED:delegation_scope_exceeded');
    expect(next({ maxDepth: 4 })).toBe('ERR_DELEGATION_REFUSED:delegation_depth_exceeded');
    expect(next({ maxDepth: 1 })).toBe('ERR_DELEGATION_REFUSED:delegation_depth_exceeded');
    expect(next({ depthLimit: 1 })).toBe('ERR_DELEGATION_REFUSED:delegation_depth_exceeded');
    expect(next({ to: 'planner' })).toBe('ERR_DELEGATION_REFUSED:delegation_chain_broken');
    expect(next({}, root({ canSubDelegate: false }))).toBe('ERR_DELEGATION_REFUSED:delegation_subdelegation_forbidden');
    expect(reasonOf(() => extendChain({ chain: one }, { id: 'd2', to: 'x', grants: [refund], canSubDelegate: false, maxDepth: 2, ttlSeconds: 60 }, T0 + 601_000))).toBe(
      'ERR_DELEGATION_REFUSED:delegation_expired',
    );
  });

  it('checkChain rejects expired hops, broken links, widened grants, raised limits and forbidden onward hops', () => {
    const one = root();
    const hop2: Hop = { id: 'd2', from: 'planner', to: 'executor', grants: [refund], canSubDelegate: false, maxDepth: 2, iat: T0 / 1000, exp: T0 / 1000 + 60 };
    const chain = (h: Partial<Hop>, first: Partial<Hop> = {}): DelegationChain => ({ subject: 'alice', hops: [{ ...(one.hops[0] as Hop), ...first }, { ...hop2, ...h }] });
    expect(reasonOf(() => checkChain(chain({}), T0))).toBeUndefined();
    expect(reasonOf(() => checkChain(chain({}), T0 + 61_000))).toBe('ERR_DELEGATION_INVALID:delegation_expired');
    expect(reasonOf(() => checkChain(chain({ from: 'mallory' }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_chain_broken');
    expect(reasonOf(() => checkChain(chain({ grants: [{ ...refund, caps: { amount: 9999 } }] }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_scope_exceeded');
    expect(reasonOf(() => checkChain(chain({ maxDepth: 5 }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_depth_exceeded');
    expect(reasonOf(() => checkChain(chain({}, { maxDepth: 1 }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_depth_exceeded');
    expect(reasonOf(() => checkChain(chain({}, { canSubDelegate: false }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_subdelegation_forbidden');
    expect(reasonOf(() => checkChain({ subject: 'bob', hops: one.hops }, T0))).toBe('ERR_DELEGATION_INVALID:delegation_chain_broken');
  });
});

describe('delegation tokens', async () => {
  const key = await generateDelegationKey('ES256');
  const ring = await loadDelegationKeys([key], ISSUER);
  const other = await loadDelegationKeys([await generateDelegationKey('ES256')], ISSUER);
  const one = extendChain({ subject: 'alice', session: 's-1' }, { id: 'd1', to: 'planner', grants: [refund], canSubDelegate: true, maxDepth: 3, ttlSeconds: 600 }, T0);
  const two = extendChain({ chain: one }, { id: 'd2', to: 'executor', grants: [{ ...refund, caps: { amount: 100 } }], canSubDelegate: false, maxDepth: 2, ttlSeconds: 60 }, T0);
  const verifier = () => createDelegationVerifier({ issuer: ISSUER, jwks: ring.jwks });

  it('nests the actors as RFC 8693 does: the current actor outermost', () => {
    expect(actClaim(two)).toEqual({ sub: 'executor', act: { sub: 'planner' } });
  });

  it('round-trips a chain; the signature of one token is verified once, the chain at every call', async () => {
    const token = await signDelegation(two, ring.signer);
    const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(new TextDecoder().decode(base64url.decode(p as string))) as Record<string, unknown>);
    expect(header).toMatchObject({ alg: 'ES256', kid: key.kid, typ: DELEGATION_TOKEN_TYPE });
    expect(payload).toMatchObject({ iss: ISSUER, sub: 'alice', sid: 's-1', jti: 'd2', act: { sub: 'executor', act: { sub: 'planner' } }, wdn: { v: 1, id: 'd2', ancestors: ['d1'] } });
    const v = verifier();
    const first = v.verify(token, T0 + 1000);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toEqual(two);
    const second = v.verify(token, T0 + 2000);
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toEqual(two);
    // The remembered chain is still checked: past the hop's expiry it is rejected.
    expect(reasonOf(() => v.verify(token, T0 + 61_000))).toBe('ERR_DELEGATION_INVALID:delegation_expired');
  });

  it('rejects a tampered, forged, unsigned, mistyped or expired token', async () => {
    const token = await signDelegation(two, ring.signer);
    const [h, p, s] = token.split('.') as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as { wdn: { hops: Array<{ grants: Grant[] }> } };
    (claims.wdn.hops[1] as { grants: Grant[] }).grants = [refund];
    const tampered = `${h}.${base64url.encode(JSON.stringify(claims))}.${s}`;
    expect(await rejectionOf(verifier().verify(tampered, T0))).toBe('ERR_DELEGATION_INVALID:delegation_invalid');
    expect(await rejectionOf(verifier().verify(await signDelegation(two, other.signer), T0))).toBe('ERR_DELEGATION_INVALID:delegation_invalid');
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: DELEGATION_TOKEN_TYPE }))}.${p}.`;
    expect(await rejectionOf(verifier().verify(none, T0))).toBe('ERR_DELEGATION_INVALID:delegation_invalid');
    const plain = await new SignJWT({ wdn: { v: 1, hops: two.hops } }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(ISSUER).setSubject('alice').setJti('d2').sign(ring.signer.key);
    expect(await rejectionOf(verifier().verify(plain, T0))).toBe('ERR_DELEGATION_INVALID:delegation_invalid');
    expect(await rejectionOf(verifier().verify(token, T0 + 3_600_000))).toBe('ERR_DELEGATION_INVALID:delegation_expired');
  });

  it('re-checks the chain inside a validly signed token: widened grants, onward hops without the grant, depth, claims', async () => {
    const sign = (chain: DelegationChain, over: Record<string, unknown> = {}) =>
      new SignJWT({ act: actClaim(chain), wdn: { v: 1, id: (chain.hops[chain.hops.length - 1] as Hop).id, ancestors: chain.hops.slice(0, -1).map((h) => h.id), hops: chain.hops }, ...over })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: DELEGATION_TOKEN_TYPE })
        .setIssuer(ISSUER)
        .setSubject(chain.subject)
        .setJti((chain.hops[chain.hops.length - 1] as Hop).id)
        .setIssuedAt(T0 / 1000)
        .setExpirationTime(T0 / 1000 + 60)
        .sign(ring.signer.key);
    const h1 = one.hops[0] as Hop;
    const h2 = two.hops[1] as Hop;
    const wider = { subject: 'alice', hops: [h1, { ...h2, grants: [{ kind: 'tool', actions: ['*'] }] }] };
    expect(await rejectionOf(verifier().verify(await sign(wider), T0))).toBe('ERR_DELEGATION_INVALID:delegation_scope_exceeded');
    const noOnward = { subject: 'alice', hops: [{ ...h1, canSubDelegate: false }, h2] };
    expect(await rejectionOf(verifier().verify(await sign(noOnward), T0))).toBe('ERR_DELEGATION_INVALID:delegation_subdelegation_forbidden');
    const deep = { subject: 'alice', hops: [{ ...h1, maxDepth: 1 }, { ...h2, maxDepth: 1 }] };
    expect(await rejectionOf(verifier().verify(await sign(deep), T0))).toBe('ERR_DELEGATION_INVALID:delegation_depth_exceeded');
    expect(await rejectionOf(verifier().verify(await sign(two, { act: { sub: 'planner' } }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_chain_broken');
    expect(await rejectionOf(verifier().verify(await sign(two, { wdn: { v: 1, id: 'd2', ancestors: ['dX'], hops: two.hops } }), T0))).toBe('ERR_DELEGATION_INVALID:delegation_chain_broken');
  });

  it('rotates keys: the active key signs, every key of the ring verifies, a retired key stops verifying', async () => {
    const older = await generateDelegationKey('ES256');
    const newer = await generateDelegationKey('EdDSA');
    const before = await loadDelegationKeys([older], ISSUER);
    const oldToken = await signDelegation(two, before.signer);
    const rotated = await loadDelegationKeys([older, newer], ISSUER);
    expect([rotated.signer.kid, rotated.signer.alg]).toEqual([newer.kid, 'EdDSA']);
    expect(rotated.jwks.keys.map((k) => k.kid)).toEqual([older.kid, newer.kid]);
    expect(rotated.jwks.keys.every((k) => !('d' in k))).toBe(true);
    const v = createDelegationVerifier({ issuer: ISSUER, jwks: rotated.jwks });
    expect(await v.verify(oldToken, T0)).toEqual(two);
    expect(await v.verify(await signDelegation(two, rotated.signer), T0)).toEqual(two);
    expect((await loadDelegationKeys([older, newer], ISSUER, older.kid)).signer.kid).toBe(older.kid);
    const retired = createDelegationVerifier({ issuer: ISSUER, jwks: (await loadDelegationKeys([newer], ISSUER)).jwks });
    expect(await rejectionOf(retired.verify(oldToken, T0))).toBe('ERR_DELEGATION_INVALID:delegation_invalid');
    await expect(loadDelegationKeys([older], ISSUER, 'nope')).rejects.toThrow(/no key with kid `nope`/);
  });
});

