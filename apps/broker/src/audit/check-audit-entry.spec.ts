import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '@warden/core';
import { BytesJsonOut, composedEntry, createInputMask, serializeEntry, TextJsonOut, type JsonOut, type SerializedEntry } from '@warden/audit';
import { v1CheckAuditObject } from '../../../../test/support/check-audit-oracle.js';
import { V1CheckEntry, writeMs, writeTime, type AuditedCheck } from './check-audit-entry.js';

// Names that masks and attribute paths hit, array indexes among them, text JSON escapes (quotes,
// backslashes, control characters, a lone surrogate), and any text besides.
const NAMES = ['a', 'b', '0', '1', '10', 'x', 'prompt', 'ssn', 'owner', 'tags', 'read', 'write', 'say "hi"', 'C:\\tmp', 'tab\there', '\u0000', '\u2028', '\ud800', 'a\udfffb', '😀'];
const name = fc.oneof(fc.constantFrom(...NAMES), fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), fc.string({ unit: fc.constantFrom('a', '"', '\\', '\n', '\ud83d', '\ude00'), minLength: 1, maxLength: 4 })).filter((s) => s !== '__proto__');
const json: fc.Arbitrary<JsonValue> = fc.letrec<{ v: JsonValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(name, tie('v'), { maxKeys: 4 }),
  ),
})).v;
const attr = fc.dictionary(name, json, { maxKeys: 4 });
// Longer than any other generated text: found in the entry only if it leaked.
const secret = fc.string({ minLength: 1 }).map((s) => `secret:${s}`);
const effect = fc.constantFrom('EFFECT_ALLOW', 'EFFECT_DENY');
const actionEffect = fc.record({ effect, policy: name, rule: fc.option(name, { nil: undefined }), scope: fc.option(name, { nil: undefined }) }, { requiredKeys: ['effect', 'policy'] });
const reason = fc.record({ code: name, message: fc.string({ unit: 'binary', maxLength: 8 }), actions: fc.option(fc.array(name, { maxLength: 2 }), { nil: undefined }) }, { requiredKeys: ['code', 'message'] });
const MASKS = [
  'context.prompt',
  'context.*',
  'context.a.0',
  'context.*.x',
  'resources.*.id',
  'resources.0',
  'resources',
  'subject.attr.ssn',
  'subject',
  'agent.attr',
  'agent.roles.*',
  'principal.attr.ssn',
  'principal',
  'resource.attr',
  'resource.attr.*',
  'resource.attr.tags.1',
  'actions',
  'actions.0',
  'requestId',
  '*',
];
const ATTRIBUTE_PATHS = ['principal.attr.ssn', 'principal.attr.department', 'principal.attr', 'resource.attr.owner', 'resource.attr.tags', 'resource.attr.missing', 'principal'];

/** A decided check as the route holds it: any request, enrichment outcome, decision and identities. */
const auditedCheck: fc.Arbitrary<{ d: AuditedCheck; mask: string[]; source: string; at: number }> = fc
  .record({
    actions: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    resources: fc.array(fc.record({ kind: name, id: name }), { minLength: 1, maxLength: 3 }),
    context: attr,
    requestId: fc.option(name, { nil: undefined }),
    identity: fc.oneof(fc.record({ token: secret }), fc.record({ subject: fc.record({ id: name, roles: fc.array(name, { minLength: 1, maxLength: 2 }), attr }) }), fc.constant({})),
    agent: fc.option(fc.record({ id: name, token: fc.option(secret, { nil: undefined }), roles: fc.option(fc.array(name, { maxLength: 2 }), { nil: undefined }), attr: fc.option(attr, { nil: undefined }) }, { requiredKeys: ['id'] }), { nil: undefined }),
    delegation: fc.option(secret, { nil: undefined }),
    sent: fc.option(fc.record({ subject: fc.option(fc.record({ id: name, roles: fc.array(name, { maxLength: 2 }), attr }), { nil: undefined }), agent: fc.option(fc.record({ id: name, attr }), { nil: undefined }) }), { nil: undefined }),
    gateway: fc.option(name, { nil: undefined }),
    principalIds: fc.array(fc.oneof(name, fc.constant('')), { minLength: 3, maxLength: 3 }),
    denied: fc.array(fc.option(fc.array(reason, { maxLength: 2 }), { nil: undefined }), { minLength: 3, maxLength: 3 }),
    outcome: fc.option(fc.array(fc.record({ doc: fc.record({ principal: fc.record({ attr }), resource: fc.record({ attr }) }), provenance: fc.dictionary(fc.constantFrom(...ATTRIBUTE_PATHS), fc.record({ resolver: name, durationMs: fc.double({ min: 0, max: 100, noNaN: true }), cache: fc.option(fc.constantFrom('hit', 'miss'), { nil: undefined }) }, { requiredKeys: ['resolver', 'durationMs'] }), { maxKeys: 3 }) }), { minLength: 3, maxLength: 3 }), { nil: undefined }),
    verdicts: fc.array(fc.array(fc.constantFrom('ALLOW', 'DENY', undefined), { minLength: 3, maxLength: 3 }), { minLength: 3, maxLength: 3 }),
    details: fc.array(fc.option(fc.array(fc.record({ effect: fc.constantFrom('ALLOW', 'DENY'), subject: actionEffect, agent: fc.option(actionEffect, { nil: undefined }), delegation: fc.option(fc.constantFrom('ALLOW', 'DENY'), { nil: undefined }) }, { requiredKeys: ['effect', 'subject'] }), { minLength: 3, maxLength: 3 }), { nil: undefined }), { minLength: 3, maxLength: 3 }),
    reasons: fc.array(fc.array(reason, { maxLength: 2 }), { minLength: 3, maxLength: 3 }),
    outputs: fc.array(fc.array(fc.record({ src: name, val: json, action: name }), { maxLength: 2 }), { minLength: 3, maxLength: 3 }),
    idsAgent: fc.option(fc.oneof(fc.record({ id: name, roles: fc.array(name, { maxLength: 2 }), attr }), reason), { nil: undefined }),
    idsDelegation: fc.option(
      fc.oneof(
        fc.record({ subject: name, hops: fc.array(fc.record({ id: name }), { minLength: 1, maxLength: 3 }) }),
        fc.record({ issuer: name, subject: name, actors: fc.array(name, { minLength: 1, maxLength: 2 }) }),
        reason,
      ),
      { nil: undefined },
    ),
    stamps: fc.record({ start: fc.double({ min: 0, max: 1e6, noNaN: true }), parsed: fc.double({ min: 0, max: 1e6, noNaN: true }), enriched: fc.double({ min: 0, max: 1e6, noNaN: true }), evaluated: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e6, noNaN: true })) }),
    decisionId: name,
    policyVersion: name,
    source: fc.constantFrom('/v1/check', '/envoy.service.auth.v3.Authorization/Check', 'a "quoted" source'),
    at: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    mask: fc.subarray(MASKS),
  })
  .map((g) => {
    const actions = g.actions;
    const req = {
      requestId: g.requestId,
      token: 'token' in g.identity ? g.identity.token : undefined,
      subject: 'subject' in g.identity ? g.identity.subject : undefined,
      agent: g.agent,
      delegation: g.delegation,
      actions,
      resources: g.resources.map((r) => ({ ...r, attr: {} })),
      context: g.context,
      explain: false,
      needsTrust: false,
      gateway: g.gateway,
      sent: g.sent,
    };
    const items = g.resources.map((r, i) => {
      const input = { principal: { id: g.principalIds[i] as string, roles: ['user'], attr: {} }, resource: { kind: r.kind, id: r.id, attr: {} }, actions };
      const denied = g.denied[i];
      return denied === undefined ? { input } : { input, denied };
    });
    const outcome = g.outcome === undefined ? undefined : { items: g.resources.map((_, i) => ({ input: g.outcome?.[i]?.doc, provenance: g.outcome?.[i]?.provenance ?? {}, denials: [], failures: [] })), runs: [], durationMs: 1 };
    const decisions = g.resources.map((_, i) => {
      const effects: Record<string, string> = {};
      actions.forEach((a, j) => {
        const v = g.verdicts[i]?.[j];
        if (v !== undefined) effects[a] = v;
      });
      const details = g.details[i];
      const detailed = details === undefined ? undefined : Object.fromEntries(actions.map((a, j) => [a, details[j]]));
      return { effects, ...(detailed !== undefined ? { details: detailed } : {}), reasons: g.reasons[i] ?? [], outputs: g.outputs[i] ?? [] };
    });
    const ids = { agent: g.idsAgent, delegation: g.idsDelegation, context: {} };
    const d = { req, decisionId: g.decisionId, policyVersion: g.policyVersion, enriched: { items, outcome, enrichMs: 1 }, decisions, ids, stamps: g.stamps } as unknown as AuditedCheck;
    return { d, mask: g.mask, source: g.source, at: g.at };
  });

const isIndex = (k: string): boolean => String(Number(k) >>> 0) === k && k !== '4294967295';

/** The entry as the text path builds it (strict mode, the in-thread writer, a ring without room). */
const v1CheckAuditJson = (d: AuditedCheck, mask: ReturnType<typeof createInputMask>, source: string, at: number): SerializedEntry => composedEntry(new V1CheckEntry(d, mask, source, at));

/** What `write` writes, as text. */
const written = (write: (out: JsonOut) => void): string => {
  const out = new TextJsonOut();
  write(out);
  return out.text;
};

describe('V1CheckEntry', () => {
  it('writes the entry the objects of v1CheckAuditObject serialise to, for any request, mask and decision', () => {
    fc.assert(
      fc.property(auditedCheck, ({ d, mask, source, at }) => {
        const m = createInputMask(mask);
        const text = v1CheckAuditJson(d, m, source, at);
        const reference = serializeEntry(v1CheckAuditObject(d, m, source, at));
        expect(JSON.parse(text.json)).toStrictEqual(JSON.parse(reference.json));
        // Objects put index-like keys first; the text keeps the request's order. Otherwise the
        // two are the same text, byte for byte.
        if (!d.req.actions.some(isIndex)) expect(text.json).toBe(reference.json);
        expect({ ...text, json: '' }).toStrictEqual({ ...reference, json: '' });
      }),
      { numRuns: 2_000 },
    );
  });

  it('never writes a token, whatever the masks configured', () => {
    fc.assert(
      fc.property(auditedCheck, ({ d, mask, source, at }) => {
        const secrets = [d.req.token, d.req.agent?.token, d.req.delegation].filter((s): s is string => s !== undefined);
        const { json } = v1CheckAuditJson(d, createInputMask(mask), source, at);
        const input = (JSON.parse(json) as { input: Record<string, unknown> }).input;
        if (d.req.token !== undefined && !(mask.includes('subject') || mask.includes('*'))) expect(input['subject']).toEqual({ token: '[masked]' });
        if (d.req.delegation !== undefined) expect(input['delegation']).toBe('[masked]');
        for (const s of secrets) expect(json).not.toContain(JSON.stringify(s).slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });

  it('writes into bytes the UTF-8 of the text it writes, and flags a range too small with nothing past its end', () => {
    const buf = new Uint8Array(1 << 16);
    const out = new BytesJsonOut();
    fc.assert(
      fc.property(auditedCheck, fc.nat(), ({ d, mask, source, at }, cut) => {
        const entry = new V1CheckEntry(d, createInputMask(mask), source, at);
        const text = written((o) => entry.compose(o));
        const bytes = Buffer.from(text, 'utf8');
        out.reset(buf, 8, buf.length);
        entry.compose(out);
        expect(out.over).toBe(false);
        expect(Buffer.from(buf.subarray(8, out.pos)).equals(bytes)).toBe(true);
        // A range shorter than the text: flagged, and the byte after the range untouched.
        const end = 8 + (cut % bytes.length);
        buf[end] = 0xaa;
        out.reset(buf, 8, end);
        entry.compose(out);
        expect(out.over).toBe(true);
        expect(buf[end]).toBe(0xaa);
      }),
      { numRuns: 1_000 },
    );
  });
});

const isoTime = (at: number): string => written((o) => writeTime(o, at));
const msJson = (ms: number): string => written((o) => writeMs(o, ms));

describe('writeTime', () => {
  it('is toISOString, within a second, across seconds and days, and for fractional times', () => {
    const day = Date.UTC(2026, 10, 28, 23, 59, 59);
    const times = [day, day + 1, day + 9, day + 10, day + 99, day + 100, day + 999, day + 1000, day + 1001, day - 1, 0, 5, 1.5, day + 0.25, 253402300799999, 253402300800000];
    for (const at of [...times, ...times.reverse()]) expect(isoTime(at)).toBe(new Date(at).toISOString());
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 4_102_444_800_000 }), { minLength: 1, maxLength: 20 }), (ats) => ats.every((at) => isoTime(at) === new Date(at).toISOString())));
  });
});

describe('writeMs', () => {
  it('is the JSON of the value rounded to the µs, for any double (negative, huge, non-finite included)', () => {
    const json = (ms: number): string => JSON.stringify(Math.round(ms * 1000) / 1000);
    for (const ms of [0, -0, 0.0004, 0.0005, 0.012, 0.5, 1, 1.0125, 999.9994, 999.9995, 1000, -0.012, 1e21, Number.NaN, Infinity, -Infinity]) expect(msJson(ms)).toBe(json(ms));
    fc.assert(fc.property(fc.oneof(fc.double(), fc.double({ min: 0, max: 2000, noNaN: true })), (ms) => msJson(ms) === json(ms)), { numRuns: 5000 });
  });
});
