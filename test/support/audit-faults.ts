/**
 * Helpers of the decision-log fault tests. `runCheckLoad`: a bounded `/v1/check` load, `clients`
 * concurrent loops each sending its next check once the previous one is answered, for
 * `durationMs` (or until `stop` is called); every decision id a client received is kept with the
 * client, its sequence number and when it arrived; a request that failed (a status other than
 * 200, or no answer at all) returned no id. `spilledDecisionIds` reads a spill file,
 * `loggedDecisionIds` the Postgres sink's table; `expectLoggedExactlyOnce` is how the Postgres
 * scenarios end; `eventually` polls.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { expect } from 'vitest';
import type { BrokerProcess } from './broker-process.js';

/** The trusted gateway's key of the brokers these tests start (new per test file), and its header. */
export const GATEWAY_KEY = `gw-${randomBytes(4).toString('hex')}-0123456789abcdef`;
export const GATEWAY_HEADERS: Readonly<Record<string, string>> = { 'x-warden-api-key': GATEWAY_KEY };

/** A policy allowing role `user` to `invoke` any `tool`. */
export const INVOKE_TOOL_POLICY = `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: tool
  version: default
  rules:
    - actions: [invoke]
      effect: EFFECT_ALLOW
      roles: [user]
`;

/** A decision id a client received. */
export interface ReturnedId {
  readonly id: string;
  readonly client: number;
  /** The client's n-th answered check (0-based). */
  readonly seq: number;
  /** `Date.now()` when the answer arrived. */
  readonly at: number;
}

/** What a load returned. */
export interface CheckLoadResult {
  readonly returned: ReturnedId[];
  /** Requests answered with another status, or not answered (connection refused or reset). */
  readonly failed: number;
  /** The first few failures, for messages. */
  readonly failures: string[];
  /** Answers whose reasons include `audit_unavailable` (strict mode could not record them). */
  readonly auditUnavailable: string[];
}

/** Options of {@link runCheckLoad}. */
export interface CheckLoadOptions {
  readonly base: string;
  readonly clients: number;
  readonly durationMs: number;
  /**
   * Keeps the load going past `durationMs` until this many checks were answered (a slow or busy
   * machine answers fewer in the same time), for at most 10 x `durationMs` in all.
   */
  readonly minAnswers?: number;
  /** The body of a client's n-th request. */
  readonly body: (client: number, seq: number) => unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A running load: `done` resolves when every client has stopped. */
export interface CheckLoad {
  readonly done: Promise<CheckLoadResult>;
  /** Ends the load early (clients finish the request they are in). */
  stop(): void;
}

/** Starts the load. */
export function runCheckLoad(options: CheckLoadOptions): CheckLoad {
  const start = Date.now();
  const end = start + options.durationMs;
  const hardEnd = start + 10 * options.durationMs;
  const minAnswers = options.minAnswers ?? 0;
  let stopped = false;
  const returned: ReturnedId[] = [];
  const failures: string[] = [];
  const auditUnavailable: string[] = [];
  let failed = 0;
  const fail = (why: string): void => {
    failed += 1;
    if (failures.length < 10) failures.push(why);
  };
  const client = async (n: number): Promise<void> => {
    let seq = 0;
    let sent = 0;
    while (!stopped && (Date.now() < end || (returned.length < minAnswers && Date.now() < hardEnd))) {
      try {
        const res = await fetch(`${options.base}/v1/check`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...options.headers },
          body: JSON.stringify(options.body(n, sent++)),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        if (res.status !== 200) {
          fail(`${res.status} ${text.slice(0, 200)}`);
          continue;
        }
        const json = JSON.parse(text) as { decisionId?: unknown; reasons?: Array<{ code?: unknown }> };
        if (typeof json.decisionId !== 'string') {
          fail(`200 without a decision id: ${text.slice(0, 200)}`);
          continue;
        }
        returned.push({ id: json.decisionId, client: n, seq: seq++, at: Date.now() });
        if (json.reasons?.some((r) => r.code === 'audit_unavailable') === true) auditUnavailable.push(json.decisionId);
      } catch (err) {
        fail(`no answer: ${(err as Error).message}`);
        // The broker is gone or restarting: do not spin.
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.clients }, (_, i) => client(i))).then(() => ({ returned, failed, failures, auditUnavailable }));
  return {
    done,
    stop: () => {
      stopped = true;
    },
  };
}

/** Polls `probe` every `everyMs` until it returns true; false when `timeoutMs` passed first. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The decision ids in a spill file, in order (none when there is no file; a torn last line, from a process killed mid-append, is skipped). */
export function spilledDecisionIds(path: string): string[] {
  const ids: string[] = [];
  if (!existsSync(path)) return ids;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    try {
      ids.push((JSON.parse(line) as { decisionId: string }).decisionId);
    } catch {
      // torn
    }
  }
  return ids;
}

/** Rows of one statement on a connection of its own. */
export async function sqlRows<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end();
  }
}

/** Every decision id in `warden_audit_log`. */
export async function loggedDecisionIds(url: string): Promise<string[]> {
  return (await sqlRows<{ decision_id: string }>(url, 'select decision_id from warden_audit_log')).map((r) => r.decision_id);
}

/** `warden_audit_log` holds each of `expected` exactly once, and nothing else. */
export async function expectLoggedExactlyOnce(url: string, expected: ReadonlySet<string>): Promise<void> {
  expect(await sqlRows(url, 'select decision_id, count(*) from warden_audit_log group by decision_id having count(*) > 1')).toEqual([]);
  const ids = await loggedDecisionIds(url);
  expect(ids).toHaveLength(expected.size);
  expect(new Set(ids)).toEqual(expected);
}

/** A clean stop ends by SIGTERM (Nest's shutdown hooks close the app, then raise the signal again). */
export function expectStoppedCleanly(b: BrokerProcess): void {
  expect({ code: b.process.exitCode, signal: b.process.signalCode }, b.stderr().slice(-2000)).toEqual({ code: null, signal: 'SIGTERM' });
}
