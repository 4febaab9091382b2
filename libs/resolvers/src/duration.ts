/**
 * Durations as configuration writes them: Go-style sequences of a number and a unit
 * (`200ms`, `30s`, `5m`, `1h30m`). Units: `ms`, `s`, `m`, `h`.
 */
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds of `text`, or `undefined` when it is not a duration (callers raise their own
 * coded error naming the field).
 * @example parseDurationMs('1m30s') // 90000
 */
export function parseDurationMs(text: string): number | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let end = 0;
  for (let m = PART.exec(text); m !== null; m = PART.exec(text)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    end = PART.lastIndex;
  }
  if (end !== text.length) return undefined;
  return Math.round(total);
}
