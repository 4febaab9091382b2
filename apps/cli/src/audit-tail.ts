/**
 * `warden audit tail`: the newest decision-log entries from a broker's `GET /v1/audit`, oldest
 * first, and with `--follow` every entry recorded after them as it arrives (polling).
 *
 *   warden audit tail [--url URL] [--token TOKEN] [-n N] [--follow] [--interval MS]
 *                     [--subject ID | --human ID] [--agent ID] [--resource KIND[/ID]]
 *                     [--decision ALLOW|DENY] [--since ISO] [--output json|text]
 *
 * `--url` defaults to `WARDEN_URL` (else http://127.0.0.1:3594), `--token` to
 * `WARDEN_ADMIN_TOKEN`. Entries are NDJSON (one entry per line) or, with `--output text`, one
 * summary line each. Following re-reads a window of `LOOKBACK_MS` behind the newest entry seen
 * and prints only ids not printed yet, so an entry that reaches the log a little late (a batch
 * written after a newer one, a short spill replay) is still shown once; an entry older than that
 * window when it arrives (a long outage's replay) is not: query `GET /v1/audit` with `from`/`to`.
 */

/** Where the command writes, and what stops `--follow`. */
export interface AuditTailIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Ends `--follow` (the process's SIGINT by default). */
  signal?: AbortSignal;
  env?: Readonly<Record<string, string | undefined>>;
}

/** Exit codes, as the rest of the CLI uses them. */
const EXIT = { ok: 0, failure: 1, usage: 80 } as const;

/** How far behind the newest entry seen a follow poll reads again. */
const LOOKBACK_MS = 10_000;
const PAGE = 1000;

const TAIL_USAGE = `Usage:
  warden audit tail [--url URL] [--token TOKEN] [-n N] [--follow] [--interval MS]
                    [--subject ID | --human ID] [--agent ID] [--resource KIND[/ID]]
                    [--decision ALLOW|DENY] [--since ISO-8601] [--output json|text]

--url defaults to WARDEN_URL (else http://127.0.0.1:3594), --token to WARDEN_ADMIN_TOKEN.
Exit codes: 0 ok, 1 the broker refused or could not be reached, 80 bad usage`;

interface TailOptions {
  url: string;
  token: string | undefined;
  count: number;
  follow: boolean;
  intervalMs: number;
  output: 'json' | 'text';
  filters: URLSearchParams;
}

/** An entry as `GET /v1/audit` returns it (only what tail reads). */
interface Entry {
  decisionId: string;
  time: string;
  kind?: string;
  decision?: string;
  source?: string;
  identities?: { subject?: string; agent?: string };
  results?: Array<{ resource?: { kind?: string; id?: string }; decision?: string }>;
}

class TailUsageError extends Error {}
class TailFailure extends Error {}

function parseTailArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): TailOptions {
  const opts: TailOptions = {
    url: env['WARDEN_URL'] ?? 'http://127.0.0.1:3594',
    token: env['WARDEN_ADMIN_TOKEN'],
    count: 20,
    follow: false,
    intervalMs: 1000,
    output: 'json',
    filters: new URLSearchParams(),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new TailUsageError(`flag ${flag} needs a value`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new TailUsageError(`${flag} must be an integer from ${min} to ${max} (got \`${v}\`)`);
      return Number(v);
    };
    switch (flag) {
      case '--url': {
        const v = value();
        if (!/^https?:\/\/[^/]+/.test(v)) throw new TailUsageError(`--url must be an http(s) URL (got \`${v}\`)`);
        opts.url = v.replace(/\/+$/, '');
        break;
      }
      case '--token':
        opts.token = value();
        break;
      case '-n':
      case '--lines':
        opts.count = int(0, PAGE);
        break;
      case '-f':
      case '--follow':
        opts.follow = true;
        break;
      case '--interval':
        opts.intervalMs = int(100, 3_600_000);
        break;
      case '--subject':
      case '--human':
        if (opts.filters.has('subject')) throw new TailUsageError('give --subject (or --human) once');
        opts.filters.set('subject', value());
        break;
      case '--agent':
        opts.filters.set('agent', value());
        break;
      case '--resource': {
        const v = value();
        const slash = v.indexOf('/');
        opts.filters.set('resourceKind', slash < 0 ? v : v.slice(0, slash));
        if (slash >= 0) opts.filters.set('resourceId', v.slice(slash + 1));
        break;
      }
      case '--decision': {
        const v = value().toUpperCase();
        if (v !== 'ALLOW' && v !== 'DENY') throw new TailUsageError(`--decision must be ALLOW or DENY (got \`${v}\`)`);
        opts.filters.set('decision', v);
        break;
      }
      case '--since': {
        const v = value();
        if (Number.isNaN(Date.parse(v))) throw new TailUsageError(`--since must be an ISO 8601 time such as 2026-11-28T09:00:00Z (got \`${v}\`)`);
        opts.filters.set('from', new Date(v).toISOString());
        break;
      }
      case '--output':
      case '-o': {
        const v = value();
        if (v !== 'json' && v !== 'text') throw new TailUsageError(`--output must be json or text (got \`${v}\`)`);
        opts.output = v;
        break;
      }
      default:
        throw new TailUsageError(`unknown ${arg.startsWith('-') ? 'flag' : 'argument'} ${arg}`);
    }
  }
  return opts;
}

/** One page of `GET /v1/audit` (newest first). */
async function fetchPage(opts: TailOptions, params: URLSearchParams, signal: AbortSignal | undefined): Promise<{ entries: Entry[]; nextCursor?: string }> {
  let res: Response;
  try {
    res = await fetch(`${opts.url}/v1/audit?${params.toString()}`, {
      headers: opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {},
      signal: signal === undefined ? AbortSignal.timeout(10_000) : AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
    });
  } catch (err) {
    if (signal?.aborted === true) throw err;
    throw new TailFailure(`cannot reach ${opts.url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let detail = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.message !== undefined) detail = `${body.error.code ?? ''} ${body.error.message}`.trim();
    } catch {
      // not JSON: the raw text is shown
    }
    throw new TailFailure(`GET /v1/audit answered ${res.status}: ${detail}`);
  }
  return JSON.parse(text) as { entries: Entry[]; nextCursor?: string };
}

/** Every entry at or after `from` (all pages), oldest first. */
async function fetchSince(opts: TailOptions, from: string, signal: AbortSignal | undefined): Promise<Entry[]> {
  const params = new URLSearchParams(opts.filters);
  // A `--since` later than the lookback start wins.
  const since = params.get('from');
  params.set('from', since !== null && since > from ? since : from);
  params.set('limit', String(PAGE));
  const out: Entry[] = [];
  for (;;) {
    const page = await fetchPage(opts, params, signal);
    out.push(...page.entries);
    if (page.nextCursor === undefined) break;
    params.set('cursor', page.nextCursor);
  }
  return out.reverse();
}

function render(e: Entry, output: 'json' | 'text'): string {
  if (output === 'json') return `${JSON.stringify(e)}\n`;
  const resources = (e.results ?? []).map((r) => `${r.resource?.kind ?? '?'}/${r.resource?.id ?? '?'}=${r.decision ?? '?'}`).join(' ');
  const who = [e.identities?.subject !== undefined ? `subject=${e.identities.subject}` : '', e.identities?.agent !== undefined ? `agent=${e.identities.agent}` : ''].filter((x) => x !== '').join(' ');
  return `${e.time} ${e.decision ?? '-'} ${e.kind ?? '-'} ${e.source ?? '-'} ${who} ${resources} ${e.decisionId}`.replace(/ {2,}/g, ' ') + '\n';
}

function sleepUnless(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Runs `warden audit tail`; resolves to the exit code. */
export async function runAuditTail(argv: readonly string[], io: AuditTailIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(`${TAIL_USAGE}\n`);
    return EXIT.ok;
  }
  let opts: TailOptions;
  try {
    opts = parseTailArgs(argv, io.env ?? process.env);
  } catch (err) {
    if (err instanceof TailUsageError) {
      io.stderr(`warden: error: ${err.message}\n\n${TAIL_USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const signal = io.signal;
  const stopped = (): boolean => signal?.aborted === true;
  try {
    const first = new URLSearchParams(opts.filters);
    first.set('limit', String(Math.max(opts.count, 1)));
    const newest = opts.count === 0 ? [] : (await fetchPage(opts, first, signal)).entries.reverse();
    // Ids printed (or present at the start) within the lookback window, with their times
    // (pruned as the window moves).
    const printed = new Map<string, string>();
    let high = newest.length > 0 ? (newest[newest.length - 1] as Entry).time : new Date().toISOString();
    for (const e of newest) {
      io.stdout(render(e, opts.output));
      printed.set(e.decisionId, e.time);
    }
    if (opts.follow) {
      if (opts.count === 0) {
        // Nothing printed: follow from the newest entry that exists (not shown).
        const latest = (await fetchPage(opts, new URLSearchParams({ ...Object.fromEntries(opts.filters), limit: '1' }), signal)).entries[0];
        if (latest !== undefined) high = latest.time;
      }
      // What the log held when we started counts as seen: the first poll's lookback must not
      // print the entries `-n` left out.
      for (const e of await fetchSince(opts, new Date(Date.parse(high) - LOOKBACK_MS).toISOString(), signal)) printed.set(e.decisionId, e.time);
    }
    while (opts.follow && !stopped()) {
      await sleepUnless(opts.intervalMs, signal);
      if (stopped()) break;
      const from = new Date(Date.parse(high) - LOOKBACK_MS).toISOString();
      for (const e of await fetchSince(opts, from, signal)) {
        if (printed.has(e.decisionId)) continue;
        io.stdout(render(e, opts.output));
        printed.set(e.decisionId, e.time);
        if (e.time > high) high = e.time;
      }
      for (const [id, t] of printed) if (t < from) printed.delete(id);
    }
    return EXIT.ok;
  } catch (err) {
    if (stopped()) return EXIT.ok;
    if (err instanceof TailFailure) {
      io.stderr(`warden: error: ${err.message}\n`);
      return EXIT.failure;
    }
    throw err;
  }
}
