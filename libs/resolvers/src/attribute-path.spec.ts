import { describe, expect, it } from 'vitest';
import { isWardenError } from '@warden/core';
import { getAttribute, parseAttributePath, pathsOverlap, setAttribute, type InputDocument } from './attribute-path.js';
import { parseDurationMs } from './duration.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isWardenError(err) ? err.code : 'not a WardenError';
  }
  return undefined;
}

describe(parseAttributePath.name, () => {
  it('parses root and segments', () => {
    expect(parseAttributePath('resource.attr.projectId')).toEqual({ text: 'resource.attr.projectId', root: 'resource', segments: ['attr', 'projectId'] });
    expect(parseAttributePath('principal.id').segments).toEqual(['id']);
    expect(parseAttributePath('context.region').root).toBe('context');
  });

  it.each([
    ['', 'empty'],
    ['user.id', 'unknown root'],
    ['principal', 'root alone'],
    ['principal..id', 'empty segment'],
    ['principal.attr.1x', 'segment starting with a digit'],
    ['principal.name', 'unknown principal field'],
    ['resource.kind.x', 'field under a scalar field'],
    ['resource.attr.a b', 'space'],
  ])('rejects `%s` (%s) with ERR_RESOLVER_PATH_INVALID', (text) => {
    expect(codeOf(() => parseAttributePath(text))).toBe('ERR_RESOLVER_PATH_INVALID');
  });
});

describe('getAttribute and setAttribute', () => {
  it('reads nested values and reports missing ones as undefined', () => {
    const doc: InputDocument = { principal: { id: 'alice', attr: { dept: 'sales' } } };
    expect(getAttribute(doc, parseAttributePath('principal.attr.dept'))).toBe('sales');
    expect(getAttribute(doc, parseAttributePath('principal.attr.missing'))).toBeUndefined();
    expect(getAttribute(doc, parseAttributePath('resource.id'))).toBeUndefined();
  });

  it('does not read inherited properties', () => {
    const doc: InputDocument = { principal: { attr: {} } };
    expect(getAttribute(doc, parseAttributePath('principal.attr.constructor'))).toBeUndefined();
  });

  it('creates missing objects on write', () => {
    const doc: InputDocument = {};
    setAttribute(doc, parseAttributePath('resource.attr.owner.team'), 'core');
    expect(doc).toEqual({ resource: { attr: { owner: { team: 'core' } } } });
  });

  it('refuses to write through a non-object', () => {
    const doc: InputDocument = { principal: { attr: { dept: 'sales' } } };
    expect(codeOf(() => setAttribute(doc, parseAttributePath('principal.attr.dept.x'), 1))).toBe('ERR_RESOLVER_PATH_INVALID');
    expect(doc.principal).toEqual({ attr: { dept: 'sales' } });
  });
});

describe(pathsOverlap.name, () => {
  const p = parseAttributePath;
  it('is true for equal paths and for a path and its parent', () => {
    expect(pathsOverlap(p('principal.attr.a'), p('principal.attr.a'))).toBe(true);
    expect(pathsOverlap(p('principal.attr'), p('principal.attr.a'))).toBe(true);
    expect(pathsOverlap(p('principal.attr.a.b'), p('principal.attr.a'))).toBe(true);
  });
  it('is false for siblings and other roots', () => {
    expect(pathsOverlap(p('principal.attr.a'), p('principal.attr.b'))).toBe(false);
    expect(pathsOverlap(p('principal.attr.a'), p('agent.attr.a'))).toBe(false);
  });
});

describe(parseDurationMs.name, () => {
  it.each([
    ['200ms', 200],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
  ])('parses %s', (text, ms) => expect(parseDurationMs(text)).toBe(ms));

  it.each(['', '10', 's', '10 s', '5d', '-1s', '1s2'])('rejects `%s`', (text) => expect(parseDurationMs(text)).toBeUndefined());
});
