import { describe, expect, it } from 'vitest';
import { WardenError } from '@warden/core';
import { envoyCheckResponse, envoyForwardedRequest, envoyHttpAttributesOrThrow } from './envoy-check.js';

const http = (over: Record<string, unknown> = {}) => ({ attributes: { request: { http: { method: 'POST', path: '/v1/chat/completions', host: 'gw.local', headers: { authorization: 'Bearer t' }, ...over } } } });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WardenError);
    expect((err as WardenError).code).toBe('ERR_REQUEST_INVALID');
    return (err as WardenError).message;
  }
  throw new Error('accepted');
}

describe('Envoy ext_authz messages', () => {
  it('refuses a message that is no HTTP check', () => {
    expect(refusal(() => envoyHttpAttributesOrThrow({}))).toBe('`attributes` is required');
    expect(refusal(() => envoyHttpAttributesOrThrow({ attributes: { request: {} } }))).toContain('attributes.request.http');
  });

  it('reads the route settings, the host from :authority, and raw bodies and headers', () => {
    const a = envoyHttpAttributesOrThrow({ attributes: { ...http({ host: '', headers: { ':authority': 'api.local', Authorization: 'Bearer t' } }).attributes, contextExtensions: { 'warden.kind': 'tool' } } });
    const { request, headerNames } = envoyForwardedRequest(a, 100);
    expect(request).toMatchObject({ method: 'POST', host: 'api.local', headers: { authorization: 'Bearer t' }, settings: { 'warden.kind': 'tool' } });
    expect(headerNames).toEqual([':authority', 'authorization']);
    const raw = envoyForwardedRequest(envoyHttpAttributesOrThrow(http({ headers: undefined, headerMap: { headers: [{ key: 'Authorization', rawValue: Buffer.from('Bearer r') }] }, rawBody: Buffer.from('{"model":"m"}') })), 100);
    expect(raw.request.headers['authorization']).toBe('Bearer r');
    expect(raw.request.body).toBe('{"model":"m"}');
  });

  it('refuses a body over the limit and a raw header sent twice', () => {
    expect(refusal(() => envoyForwardedRequest(envoyHttpAttributesOrThrow(http({ body: 'x'.repeat(101) })), 100))).toBe('request body too large');
    expect(refusal(() => envoyForwardedRequest(envoyHttpAttributesOrThrow(http({ rawBody: Buffer.alloc(101) })), 100))).toBe('request body too large');
    const twice = http({ headers: undefined, headerMap: { headers: [{ key: 'x-warden-agent', value: 'a' }, { key: 'X-Warden-Agent', value: 'b' }] } });
    expect(refusal(() => envoyForwardedRequest(envoyHttpAttributesOrThrow(twice), 100))).toContain('more than once');
    expect(refusal(() => envoyForwardedRequest(envoyHttpAttributesOrThrow(http({ headers: { authorization: 'Bearer a', Authorization: 'Bearer b' } })), 100))).toContain('more than once');
  });

  it('answers an allow with replacing headers, metadata, and the removal of client-sent x-warden-* headers', () => {
    const hint = { header: 'x-warden-max-tokens', value: '10', key: 'maxTokens', typed: 10 };
    const sut = envoyCheckResponse(
      { allowed: true, decisionId: 'd1', policyVersion: 'sha256:x', hints: [hint] },
      { requestHeaderNames: ['authorization', 'x-warden-model', 'x-warden-max-tokens', 'x-warden-agent'], identityHeaders: new Set(['x-warden-agent', 'x-warden-delegation']) },
    );
    expect(sut).toEqual({
      status: { code: 0, message: '' },
      okResponse: {
        headers: [
          { header: { key: 'x-warden-decision-id', value: 'd1' }, append: { value: false } },
          { header: { key: 'x-warden-policy-version', value: 'sha256:x' }, append: { value: false } },
          { header: { key: 'x-warden-max-tokens', value: '10' }, append: { value: false } },
        ],
        headersToRemove: ['x-warden-model'],
      },
      dynamicMetadata: {
        fields: { decisionId: { stringValue: 'd1' }, policyVersion: { stringValue: 'sha256:x' }, hints: { structValue: { fields: { maxTokens: { numberValue: 10 } } } } },
      },
    });
  });

  it('hands a budget reservation to Envoy as metadata only, never as a header the upstream would see', () => {
    const sut = envoyCheckResponse(
      { allowed: true, decisionId: 'd1', policyVersion: 'sha256:x', hints: [], reservationId: 'rsv_1' },
      { requestHeaderNames: ['x-warden-reservation-id'], identityHeaders: new Set() },
    ) as { okResponse: { headers: Array<{ header: { key: string } }>; headersToRemove?: string[] }; dynamicMetadata: { fields: Record<string, unknown> } };
    expect(sut.dynamicMetadata.fields['reservationId']).toEqual({ stringValue: 'rsv_1' });
    expect(sut.okResponse.headers.map((h) => h.header.key)).not.toContain('x-warden-reservation-id');
    // One the client sent itself is removed before the request goes upstream.
    expect(sut.okResponse.headersToRemove).toEqual(['x-warden-reservation-id']);
  });

  it('answers a denial with the HTTP status, the challenge and the body', () => {
    const sut = envoyCheckResponse(
      { allowed: false, decisionId: undefined, policyVersion: undefined, status: { http: 429, grpc: 8 }, reasons: [{ code: 'budget_exhausted', message: 'm' }], challenge: undefined },
      { requestHeaderNames: [], identityHeaders: new Set() },
    );
    expect(sut).toEqual({
      status: { code: 8, message: 'budget_exhausted' },
      deniedResponse: { status: { code: 429 }, headers: [{ header: { key: 'content-type', value: 'application/json' }, append: { value: false } }], body: '{"decision":"DENY","reasons":[{"code":"budget_exhausted","message":"m"}]}' },
    });
  });
});
