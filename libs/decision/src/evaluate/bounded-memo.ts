/**
 * Memo tables for values derived from request input (kinds, principal ids, scopes, roles). The
 * keys come from callers, so each table holds at most `limit` entries in total and starts over
 * when full: memory stays bounded whatever requests arrive, and a hot working set refills fast.
 * Keys nest (map of maps) so lookups build no combined key string.
 */
export class BoundedMemo<V> {
  private root = new Map<string, unknown>();
  private size = 0;

  constructor(
    private readonly limit: number,
    private readonly depth: 1 | 2 | 3,
  ) {}

  /** The value under `keys` (exactly `depth` of them), computing and storing it when absent. */
  get(keys: readonly string[], compute: () => V): V {
    let node: Map<string, unknown> = this.root;
    for (let i = 0; i < this.depth - 1; i++) {
      const next = node.get(keys[i] as string) as Map<string, unknown> | undefined;
      if (next === undefined) return this.store(keys, compute());
      node = next;
    }
    const hit = node.get(keys[this.depth - 1] as string) as V | undefined;
    return hit !== undefined ? hit : this.store(keys, compute());
  }

  private store(keys: readonly string[], value: V): V {
    if (this.size >= this.limit) {
      this.root = new Map();
      this.size = 0;
    }
    let node = this.root;
    for (let i = 0; i < this.depth - 1; i++) {
      const k = keys[i] as string;
      let next = node.get(k) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(k, next);
      }
      node = next;
    }
    node.set(keys[this.depth - 1] as string, value);
    this.size++;
    return value;
  }
}
