/**
 * Small helpers the kinds that read JSON answers share (`http`, `graphql`): finding the result in
 * an answer and bounding how many requests one call has in flight.
 */

/** True for a plain JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value at `path` (object keys) in `data`, and whether every segment was there. */
export function pickPath(data: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let cur = data;
  for (const seg of path) {
    if (!isRecord(cur) || !Object.hasOwn(cur, seg)) return { found: false, value: undefined };
    cur = cur[seg];
  }
  return { found: true, value: cur };
}

/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping order.
 * @example await mapLimited(keys, 8, (k) => fetchOne(k))
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  // One item (a single key, the usual call of a fan-out): no workers to share out.
  if (items.length === 1) return [await fn(items[0] as T)];
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
