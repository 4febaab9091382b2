/**
 * Pinned minimal repros from the Cerbos differential test (FINDINGS.md): each runs through a fresh
 * Cerbos 0.55 server and Warden and must agree. These fail while the engine differs.
 */
import { describe, expect, it } from 'vitest';
import { FINDINGS } from './findings.js';
import { runBoth } from './run-both.js';

describe('cerbos differential findings (minimal repros)', () => {
  for (const f of FINDINGS) {
    it(`${f.id}: ${f.title}`, async () => {
      const r = await runBoth(f.files, f.request);
      if (f.kind === 'load') {
        expect(
          { cerbosLoads: r.cerbosLoads, wardenLoads: r.wardenErrors.length === 0 },
          `cerbos: ${r.cerbosCompileOutput}\nwarden: ${r.wardenErrors.join('\n')}`,
        ).toEqual({ cerbosLoads: r.cerbosLoads, wardenLoads: r.cerbosLoads });
      } else {
        expect(r.cerbosLoads, r.cerbosCompileOutput).toBe(true);
        expect(r.warden).toEqual(r.cerbos);
      }
    }, 30_000);
  }
});
