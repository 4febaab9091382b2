import { describe, expect, it } from 'vitest';
import {
  CelCompileError,
  CelEvaluationError,
  celReferences,
  celValueToJson,
  compileCelExpression,
  createCelContext,
  type CelScope,
} from './index.js';

const scope = (over: Partial<CelScope> = {}): CelScope => ({
  request: {
    principal: { id: 'alice', roles: ['user', 'admin'], attr: { dept: 'eng', limit: 100, ip: '10.1.2.3' } },
    resource: { kind: 'doc', id: 'd1', attr: { owner: 'alice', amount: 50, tags: ['a', 'b'] } },
  },
  constants: { max: 10 },
  variables: { isOwner: true },
  globals: { env: 'test' },
  effectiveDerivedRoles: ['owner'],
  now: new Date('2024-01-01T00:00:00Z'),
  ...over,
});

const run = (expr: string, s: CelScope = scope()): unknown => compileCelExpression(expr).evaluate(createCelContext(s));

describe('compileCelExpression / evaluate', () => {
  it('evaluates a typical condition', () => {
    expect(run('R.attr.owner == P.id && "admin" in P.roles')).toBe(true);
    expect(run('R.attr.amount < P.attr.limit && R.attr.amount == 50')).toBe(true);
  });

  it('exposes every Cerbos variable', () => {
    expect(run('V.isOwner && variables.isOwner && C.max == 10 && constants.max == 10')).toBe(true);
    expect(run('G.env == "test" && globals.env == "test"')).toBe(true);
    expect(run('runtime.effectiveDerivedRoles == ["owner"] && runtime.effective_derived_roles == ["owner"]')).toBe(true);
    expect(run('request.principal.policyVersion == "" && request.resource.scope == ""')).toBe(true);
  });

  it('now() returns the scope time, never the wall clock', () => {
    expect(run('now() == timestamp("2024-01-01T00:00:00Z")')).toBe(true);
    const later = scope({ now: new Date('2024-01-03T00:00:00Z') });
    expect(run('timeSince(timestamp("2024-01-01T00:00:00Z")) == duration("48h")', later)).toBe(true);
    expect(run('timestamp("2024-01-02T00:00:00Z").timeSince() == duration("24h")', later)).toBe(true);
  });

  it('raises cel-go style evaluation errors', () => {
    expect(() => run('R.attr.missing == 1')).toThrow(CelEvaluationError);
    expect(() => run('R.attr.missing == 1')).toThrow('no such key: missing');
    expect(() => run('1 / 0 == 1')).toThrow(CelEvaluationError);
  });

  it('has() is false for a missing attribute and true for a present one', () => {
    expect(run('has(R.attr.missing)')).toBe(false);
    expect(run('has(R.attr.owner)')).toBe(true);
  });

  it('reports compile errors with 1-based positions', () => {
    expect(() => compileCelExpression('undeclared == 1')).toThrow(CelCompileError);
    expect(() => compileCelExpression('nosuchfn(1)')).toThrow(CelCompileError);
    try {
      compileCelExpression('1 +\n  + ');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CelCompileError);
      const e = err as CelCompileError;
      expect(e.code).toBe('ERR_POLICY_COMPILE');
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.column).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('Cerbos and extension functions', () => {
  it.each([
    ['hierarchy("a.b").ancestorOf(hierarchy("a.b.c"))', true],
    ['hierarchy("a.b.c").ancestorOf(hierarchy("a.b.c"))', false],
    ['hierarchy("a.b.c").commonAncestors(hierarchy("a.b.d")) == hierarchy("a.b")', true],
    ['hierarchy("a.b").commonAncestors(hierarchy("a.b")) == ["a"]', true],
    ['hierarchy("a.b.c").siblingOf(hierarchy("a.x.c"))', false],
    ['P.attr.ip.inIPAddrRange("10.0.0.0/8")', true],
    ['"11.0.0.1".inIPAddrRange("10.0.0.0/8")', false],
    ['"::ffff:10.0.0.1".inIPAddrRange("10.0.0.0/8")', true],
    ['intersect([1, 2, 3], [3, 4]) == [3]', true],
    ['[1, 2].except([2]) == [1]', true],
    ['[1, 2].isSubset([2, 1, 3])', true],
    ['hasIntersection(["a"], R.attr.tags)', true],
    ['"abc".charAt(3) == ""', true],
    ['"abc".reverse() == "cba"', true],
    ['strings.quote("a\\"b") == "\\"a\\\\\\"b\\""', true],
    ['"%s is %d".format(["x", 3]) == "x is 3"', true],
    ['math.greatest(1, 5, 3) == 5', true],
    ['math.least([2.5, 1.5]) == 1.5', true],
    ['math.abs(-3) == 3 && math.sign(-2.0) == -1.0', true],
    ['math.bitShiftLeft(1, 3) == 8 && math.bitAnd(6, 3) == 2', true],
    ['math.ceil(1.2) == 2.0 && math.round(-1.5) == -2.0', true],
    ['[3, 1, 2].sort() == [1, 2, 3] && [1, 2].last() == optional.of(2)', true],
    ['[].first() == optional.none()', true],
    ['lists.range(3) == [0, 1, 2]', true],
    ['[[1], [2, [3]]].flatten(2) == [1, 2, 3]', true],
    ['sets.equivalent([1, 2], [2, 1, 1])', true],
    ['optional.ofNonZeroValue("").hasValue()', false],
    ['base64.encode(b"hi") == "aGk="', true],
    ['regex.replace("aaa", "a", "b", 2) == "bba"', true],
    ['regex.extract("x", "y") == optional.none()', true],
    ['{"a": 1, "b": 2}.transformMap(k, v, v * 2) == {"a": 2, "b": 4}', true],
    ['[10, 20].transformList(i, v, i) == [0, 1]', true],
    ['cel.bind(x, 2, x * x) == 4', true],
    ['cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16") && !cidr("10.0.0.1/8").isMask()', true],
    ['ip.isCanonical("2001:db8::1")', true],
    ['timestamp("2021-04-20T15:05:20Z").getHours("+05:30") == 20', true],
    ['timestamp("2021-04-20T15:05:20Z").getHours("-05:00") == 10', true],
    ['[{"n": 2}, {"n": 1}].sortBy(e, e.n).map(e, e.n) == [1, 2]', true],
  ])('%s', (expr, want) => {
    expect(run(expr)).toBe(want);
  });

  it('slice() rejects out-of-range indexes', () => {
    expect(() => run('[1].slice(0, 2) == []')).toThrow(CelEvaluationError);
  });

  it('inIPAddrRange rejects bad input', () => {
    expect(() => run('"nope".inIPAddrRange("10.0.0.0/8")')).toThrow('invalid IP address: nope');
  });
});

describe('celReferences', () => {
  it('collects V/variables and C/constants names', () => {
    const p = compileCelExpression('V.a && variables.b && V["c"] && C.x == constants.y && has(V.d) && R.attr.z');
    expect(celReferences(p)).toEqual({ variables: ['a', 'b', 'c', 'd'], constants: ['x', 'y'] });
  });
});

describe('celValueToJson', () => {
  it('converts CEL runtime values', () => {
    expect(celValueToJson(run('[1, 2.5, "x", true, null]'))).toEqual([1, 2.5, 'x', true, null]);
    expect(celValueToJson(run('timestamp("2024-01-01T00:00:00Z")'))).toBe('2024-01-01T00:00:00Z');
    expect(celValueToJson(run('duration("1h")'))).toBe('3600s');
    expect(celValueToJson(run('duration("1.5s")'))).toBe('1.5s');
    expect(celValueToJson(run('9007199254740993'))).toBe('9007199254740993');
    expect(celValueToJson(run('b"hi"'))).toBe('aGk=');
    expect(celValueToJson(run('{"a": {"b": 1}}'))).toEqual({ a: { b: 1 } });
    expect(() => celValueToJson(run('optional.none()'))).toThrow('optional.none() dereference');
    expect(celValueToJson(run('optional.of(1)'))).toBe(1);
    expect(celValueToJson(new Map([['k', 1n]]))).toEqual({ k: 1 });
  });
});

describe('SPIFFE functions (Cerbos 0.55)', () => {
  const spiffeScope = scope({
    request: {
      principal: { id: 'svc', roles: ['user'], attr: { spiffe: 'spiffe://example.org/ns/prod/sa/api' } },
      resource: { kind: 'doc', id: 'd1' },
    },
  });
  const srun = (expr: string) => run(expr, spiffeScope);

  it('parses IDs and exposes path and trust domain', () => {
    expect(srun('spiffeID(P.attr.spiffe).path()')).toBe('/ns/prod/sa/api');
    expect(srun('spiffeID(P.attr.spiffe).trustDomain().name()')).toBe('example.org');
    expect(srun('spiffeID("spiffe://a.org").path()')).toBe('');
    expect(srun('spiffeID(P.attr.spiffe).isMemberOf(spiffeTrustDomain("example.org"))')).toBe(true);
    expect(srun('spiffeID(P.attr.spiffe).isMemberOf(spiffeTrustDomain("spiffe://other.org"))')).toBe(false);
    expect(srun('spiffeTrustDomain("spiffe://a.org/x/y").name()')).toBe('a.org');
  });

  it('rejects invalid IDs and trust domains with go-spiffe messages', () => {
    const cases: Array<[string, string]> = [
      ['spiffeID("")', 'failed to parse SPIFFE ID: cannot be empty'],
      ['spiffeID("SPIFFE://a.org")', 'failed to parse SPIFFE ID: scheme is missing or invalid'],
      ['spiffeID("spiffe://")', 'failed to parse SPIFFE ID: trust domain is missing'],
      ['spiffeID("spiffe://A.org/x")', 'trust domain characters are limited to lowercase letters'],
      ['spiffeID("spiffe://a.org:8443/x")', 'trust domain characters are limited to lowercase letters'],
      ['spiffeID("spiffe://a.org/")', 'path cannot have a trailing slash'],
      ['spiffeID("spiffe://a.org//x")', 'path cannot contain empty segments'],
      ['spiffeID("spiffe://a.org/./x")', 'path cannot contain dot segments'],
      ['spiffeID("spiffe://a.org/x/..")', 'path cannot contain dot segments'],
      ['spiffeID("spiffe://a.org/x%20y")', 'path segment characters are limited to letters, numbers, dots, dashes, and underscores'],
      ['spiffeTrustDomain("")', 'failed to parse SPIFFE trust domain: trust domain is missing'],
      ['spiffeTrustDomain("spiffe:/a.org")', 'failed to parse SPIFFE trust domain: scheme is missing or invalid'],
      ['spiffeMatchAny().matchesID("bad")', 'invalid SPIFFE ID: scheme is missing or invalid'],
    ];
    for (const [expr, msg] of cases) expect(() => srun(expr), expr).toThrow(msg);
    // Caught errors are memoised too: a second evaluation fails the same way.
    expect(() => srun('spiffeID("spiffe://a.org/")')).toThrow('trailing slash');
  });

  it('matchers', () => {
    expect(srun('spiffeMatchAny().matchesID(spiffeID("spiffe://a.org/x"))')).toBe(true);
    expect(srun('spiffeMatchExact("spiffe://a.org/x").matchesID("spiffe://a.org/x")')).toBe(true);
    expect(srun('spiffeMatchExact(spiffeID("spiffe://a.org/x")).matchesID("spiffe://a.org/y")')).toBe(false);
    expect(srun('spiffeMatchOneOf([spiffeID("spiffe://a.org/x"), "spiffe://b.org/y"]).matchesID("spiffe://b.org/y")')).toBe(true);
    expect(srun('spiffeMatchOneOf([]).matchesID("spiffe://b.org/y")')).toBe(false);
    expect(() => srun('spiffeMatchOneOf(["spiffe://a.org/x", "bad"]).matchesID("spiffe://a.org/x")')).toThrow('no such overload');
    expect(() => compileCelExpression('spiffeMatchOneOf([1])')).toThrow(CelCompileError);
    expect(srun('spiffeMatchTrustDomain("a.org").matchesID(P.attr.spiffe)')).toBe(false);
    expect(srun('spiffeMatchTrustDomain(spiffeTrustDomain(P.attr.spiffe)).matchesID(P.attr.spiffe)')).toBe(true);
  });

  it('equality as Cerbos defines it', () => {
    expect(srun('spiffeID(P.attr.spiffe) == spiffeID("spiffe://example.org/ns/prod/sa/api")')).toBe(true);
    expect(srun('spiffeID("spiffe://a.org/x") != spiffeID("spiffe://a.org/y")')).toBe(true);
    expect(srun('spiffeID("spiffe://a.org/x") in [spiffeID("spiffe://a.org/x")]')).toBe(true);
    expect(srun('spiffeTrustDomain("a.org") == spiffeTrustDomain("spiffe://a.org")')).toBe(true);
    expect(srun('dyn(spiffeTrustDomain("a.org")) == "spiffe://a.org/x"')).toBe(true);
    // Matchers are never equal, not even to themselves.
    expect(srun('spiffeMatchAny() == spiffeMatchAny()')).toBe(false);
    // Static type errors, as in cel-go.
    expect(() => compileCelExpression('spiffeID("spiffe://a.org/x") == "spiffe://a.org/x"')).toThrow(CelCompileError);
    expect(() => compileCelExpression('string(spiffeID("spiffe://a.org/x"))')).toThrow(CelCompileError);
  });

  it('trustDomain().id() is the trust domain itself, as Cerbos\'s id() shadows it', () => {
    expect(srun('spiffeTrustDomain("a.org").id() == "spiffe://a.org"')).toBe(true);
    expect(() => srun('spiffeTrustDomain("a.org").id().size()')).toThrow(CelEvaluationError);
  });

  it('SPIFFE values cannot be output', () => {
    expect(() => celValueToJson(srun('spiffeID(P.attr.spiffe)'))).toThrow("'*structpb.Value'");
    expect(() => celValueToJson(srun('spiffeMatchAny()'))).toThrow("'*structpb.Value'");
  });
});

describe('Cerbos path functions (crosspath)', () => {
  const cases: Array<[string, unknown]> = [
    ['basePath("/srv/data/report.pdf")', 'report.pdf'],
    ['basePath("")', '.'],
    ['basePath("a/b/")', 'b'],
    [String.raw`basePath("C:\\Users\\x\\doc.txt")`, 'doc.txt'],
    [String.raw`basePath("\\\\host\\share")`, 'share'],
    ['dirPath("/srv/data/report.pdf")', '/srv/data'],
    ['dirPath("a")', '.'],
    [String.raw`dirPath("C:\\a")`, 'C:'],
    ['dirPath("C:")', 'C:\\'],
    [String.raw`dirPath("\\\\host\\share\\a")`, String.raw`\\host\share`],
    [String.raw`dirPath("\\a")`, ''],
    ['extPath("a.tar.gz")', '.gz'],
    ['extPath(".bashrc")', '.bashrc'],
    ['extPath("a/b.c/d")', ''],
    [String.raw`volumeName("C:\\a")`, 'C:'],
    ['volumeName("C:foo")', 'C:'],
    [String.raw`volumeName("\\\\host\\share\\x")`, String.raw`\\host\share`],
    [String.raw`volumeName("\\\\host\\")`, ''],
    ['volumeName("/a")', ''],
    ['joinPath(["a", "b", "c"])', 'a/b/c'],
    ['joinPath(["/a", "../b"])', '/b'],
    ['joinPath(["a/./b/"])', 'a/./b/'],
    ['joinPath([])', ''],
    ['joinPath(["", ""])', '.'],
    ['joinPath(["C:", "x"])', 'C:\\x'],
    [String.raw`joinPath(["\\\\host", "share", "x"])`, String.raw`\\host\share\x`],
    [String.raw`joinPath(["C:\\a", "..", "..", ".."])`, ''],
    ['relPath("/a", "/a/b/c")', 'b/c'],
    ['relPath("/a/b", "/a")', '..'],
    ['relPath("a", "")', '..'],
    ['relPath("a", ".")', '..'],
    [String.raw`relPath("C:\\a", "C:\\b\\c")`, String.raw`..\b\c`],
    [String.raw`relPath("/a", "\\\\h\\s")`, String.raw`..\h\s`],
    [String.raw`relPath("x/y", "x\\y\\z\\w")`, String.raw`z\w`],
    ['pathHasPrefix("/a/b", "/a")', true],
    ['"/a/b".pathHasPrefix("/a/")', true],
    ['pathHasPrefix("/a", "/a")', true],
    ['pathHasPrefix("/a/", "/a")', false],
    ['pathHasPrefix("/ab", "/a")', false],
    ['pathHasPrefix("a/.b", "a")', false],
    ['pathHasPrefix(".", "")', false],
    [String.raw`pathHasPrefix("C:\\a\\b", "C:\\a")`, true],
    [String.raw`pathHasPrefix("C:\\a", "D:\\")`, false],
    ['pathMatch("a/b", "a/*")', true],
    ['pathMatch("a/b/c", "a/*")', false],
    ['pathMatch("a/b/c", "a/**")', false],
    ['pathMatch("a/b/c", "a/**/c")', true],
    ['pathMatch("a/c", "a?c")', false],
    ['pathMatch("a/c", "a[^b]c")', true],
    ['pathMatch("x", "[!x]")', true],
    ['pathMatch("é", "?")', true],
    ['pathMatch("a/b", "*[^z]*b")', false],
    ['pathMatch("/a/b.txt/", "/a/./*.txt")', true],
    [String.raw`pathMatch("C:\\a\\b.txt", "C:\\a\\*.txt")`, true],
    ['pathMatch("..", "/a*/[-]")', false],
    ['"a.txt".pathMatch("*.txt")', true],
    ['pathMatchAnyOf("a.txt", ["*.md", "*.txt"])', true],
    ['"a".pathMatchAnyOf([])', false],
    ['pathMatchAnyOf("D:x", [])', false],
  ];
  it.each(cases)('%s', (expr, want) => {
    expect(run(expr)).toBe(want);
  });

  it('fails like Cerbos', () => {
    const errs: Array<[string, string]> = [
      ['basePath("D:x")', 'failed to encode path D:x: unsupported Win32 path'],
      ['joinPath(["D:x", "y"])', 'failed to encode first path D:x: unsupported Win32 path'],
      ['joinPath(["a", "C:/x"])', 'failed to encode path C:/x: unsupported Win32 path'],
      ['joinPath(["a", 1])', 'failed to convert list to string slice'],
      ['dirPath("a\\\\")', 'slice bounds out of range [:-1]'],
      ['pathMatch("a", "[")', 'failed to match pattern "[" on path "a": syntax error in pattern'],
      ['pathMatch("xbc", "a[b")', 'failed to match pattern "a[b" on path "xbc": syntax error in pattern'],
      ['pathMatch("a", "C:/a")', 'failed to encode pattern C:/a: unsupported Win32 path'],
      ['pathMatchAnyOf("a", ["[", "a"])', 'failed to match pattern "["'],
      ['relPath("a", "/b")', "failed to determine relative path of /b: Rel: can't make /b relative to a"],
      ['relPath("../a", "b")', "Rel: can't make b relative to ../a"],
      ['pathHasPrefix("D:x", "D:")', 'failed to encode target path D:x: unsupported Win32 path'],
    ];
    for (const [expr, msg] of errs) expect(() => run(expr), expr).toThrow(msg);
    // Like Go filepath.Match, a malformed tail is only reported when matching reaches it.
    expect(() => run('pathMatch("b", "a[b")')).toThrow('syntax error in pattern');
    expect(run('pathMatch("x", "b*[")')).toBe(false);
  });

  it('rejects what Cerbos rejects at compile time', () => {
    for (const expr of ['joinPath([1, 2])', 'joinPath("a")', 'pathMatchAnyOf("a", [1])', '"a".pathMatchAnyOf([1])', 'pathMatch("a", 1)', '"x".relPath("y")', '"a".basePath()']) {
      expect(() => compileCelExpression(expr), expr).toThrow(CelCompileError);
    }
    expect(run('basePath(dyn("a/b"))')).toBe('b');
  });
});
