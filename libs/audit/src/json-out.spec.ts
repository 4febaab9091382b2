import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BytesJsonOut, NotPlainJson, TextJsonOut, type JsonOut } from './json-out.js';
import { createInputMask, maskChild, type MaskNode } from './mask.js';

// Text JSON escapes (quotes, backslashes, control characters, lone and paired surrogates), and any text besides.
const text = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('a', 'é', '€', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud83d', '\ude00'), maxLength: 8 }));
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 1e21, 1e-7, Number.NaN, Infinity));
const value: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    text,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(text, fc.constantFrom('0', '1', 'prompt', 'token')), tie('v'), { maxKeys: 4 }),
  ),
})).v;
const masks = fc.subarray(['prompt', '*', '0', '1.token', '*.prompt', 'token', '*.*.0']);

/** What `write` writes through each writer: the text, and the bytes as UTF-8 text. */
function both(write: (out: JsonOut) => void): { text: string; bytes: string } {
  const t = new TextJsonOut();
  write(t);
  const buf = new Uint8Array(1 << 16);
  const b = new BytesJsonOut();
  b.reset(buf, 0, buf.length);
  write(b);
  expect(b.over).toBe(false);
  return { text: t.text, bytes: Buffer.from(buf.subarray(0, b.pos)).toString('utf8') };
}

/** The mask node a path list compiles to, as the input's root sees one key (`v`) below it. */
const under = (paths: string[]): MaskNode | undefined => maskChild(createInputMask(paths.map((p) => `v.${p}`)).root, 'v');

describe('BytesJsonOut', () => {
  it('writes the UTF-8 of what JSON.stringify writes, for any plain JSON data (undefined members dropped, elements null)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const { text, bytes } = both((o) => o.value(v, undefined));
        expect(text).toBe(JSON.stringify(v) ?? 'null');
        expect(bytes).toBe(text);
      }),
      { numRuns: 3_000 },
    );
  });

  it('masks as maskedJson does, for any value and masked paths', () => {
    fc.assert(
      fc.property(value, masks, fc.constantFrom('"k":', ',"v":', ',"é€😀":'), (v, paths, prefix) => {
        const node = under(paths);
        const { text, bytes } = both((o) => {
          o.value(v, node);
          o.member(prefix, v, node);
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) o.members(v);
        });
        expect(bytes).toBe(text);
      }),
      { numRuns: 3_000 },
    );
  });

  it('writes strings and their bodies as JSON.stringify escapes them: lone surrogates as \\udXXX, pairs as UTF-8', () => {
    for (const s of ['', 'plain', 'say "hi"', 'C:\\tmp', '\b\t\n\f\r\u0000\u001f', '\u007f\u2028\u2029', '\ud800', 'a\udfffb', '\ud83d\ude00', '\ude00\ud83d', 'é€😀']) {
      const { text, bytes } = both((o) => {
        o.str(s);
        o.strBody(s);
      });
      expect(text).toBe(JSON.stringify(s) + JSON.stringify(s).slice(1, -1));
      expect(bytes).toBe(text);
    }
  });

  it('throws NotPlainJson for what only JSON.stringify can write (toJSON, a class instance, a bigint, nesting past its limit)', () => {
    const deep: unknown[] = [];
    let at = deep;
    for (let i = 0; i < 300; i++) at.push((at = []));
    class Point {
      x = 1;
    }
    for (const v of [new Date(0), { toJSON: () => 'x' }, new Point(), new Map(), [1, { a: 10n }], deep]) {
      const b = new BytesJsonOut();
      b.reset(new Uint8Array(4096), 0, 4096);
      expect(() => b.value(v, undefined)).toThrow(NotPlainJson);
    }
    // An object without a prototype is plain.
    const bare = Object.assign(Object.create(null) as object, { a: 1 });
    expect(both((o) => o.value(bare, undefined)).bytes).toBe('{"a":1}');
  });

  it('flags a range too small and writes nothing past its end', () => {
    fc.assert(
      fc.property(value, fc.nat(), (v, cut) => {
        const full = Buffer.from(JSON.stringify(v) ?? 'null', 'utf8');
        const end = cut % (full.length + 1);
        const buf = new Uint8Array(full.length + 8).fill(0xaa);
        const b = new BytesJsonOut();
        b.reset(buf, 0, end);
        b.value(v, undefined);
        if (!b.over) expect(Buffer.from(buf.subarray(0, b.pos)).equals(full)).toBe(true);
        else expect(end).toBeLessThan(6 * full.length);
        expect(buf.subarray(end).every((x) => x === 0xaa)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});
