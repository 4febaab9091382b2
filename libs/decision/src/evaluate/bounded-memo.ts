/**
 * Memo tables for values derived from request input (kinds, principal ids, scopes, roles). The
 * keys come from callers, so each table holds at most `limit` entries in total and starts over
 * when full: memory stays bounded whatever requests arrive, and a hot working set refills fast.
 * Keys nest (maps of maps), so lookups build neither key strings nor key arrays.
 */
export class BoundedMemo<V> {
  private root = new Map<string, unknown>();
  private size = 0;

  constructor(private readonly limit: number) {}

  /** The value under one key. */
  get1(a: string, compute: () => V): V {
    const hit = this.root.get(a) as V | undefined;
    if (hit !== undefined) return hit;
    const v = compute();
    this.reserve().set(a, v);
    return v;
  }

  /** The value under two keys. */
  get2(a: string, b: string, compute: () => V): V {
    const m = this.root.get(a) as Map<string, V> | undefined;
    const hit = m?.get(b);
    if (hit !== undefined) return hit;
    const v = compute();
    this.child(this.reserve(), a).set(b, v);
    return v;
  }

  /** The value under three keys. */
  get3(a: string, b: string, c: string, compute: () => V): V {
    const m = (this.root.get(a) as Map<string, Map<string, V>> | undefined)?.get(b);
    const hit = m?.get(c);
    if (hit !== undefined) return hit;
    const v = compute();
    this.child(this.child(this.reserve(), a), b).set(c, v);
    return v;
  }

  /** Makes room for one entry and returns the root (a fresh one when the table was full). */
  private reserve(): Map<string, unknown> {
    if (this.size >= this.limit) {
      this.root = new Map();
      this.size = 0;
    }
    this.size++;
    return this.root;
  }

  private child<M extends Map<string, unknown>>(parent: Map<string, unknown>, key: string): M {
    let m = parent.get(key) as M | undefined;
    if (m === undefined) {
      m = new Map() as M;
      parent.set(key, m);
    }
    return m;
  }
}
