/**
 * The one thing the `postgres` kind needs from a database: run one parameterised query in a
 * read-only transaction under a statement timeout, and stop waiting when a signal aborts. The app
 * owns the connections (one pool per datasource name) and hands a client per datasource to
 * {@link createPostgresResolverFactory}; implementations here are {@link createPgReadClient}
 * (node-postgres pool) and {@link createPgliteReadClient} (embedded PGlite).
 *
 * Failures are thrown as the driver raised them; {@link classifySqlFailure} reads only their
 * `code` (a SQLSTATE or a socket errno), never their text, which can quote key values or a URL.
 */

/** Options of one {@link SqlReadClient.readOnlyQuery} call. */
export interface SqlReadOptions {
  /** Server-side bound of the statement (`SET LOCAL statement_timeout`), in ms. */
  readonly timeoutMs: number;
  /** Aborts the wait: the client stops waiting, rejects, and abandons or cancels the query. */
  readonly signal: AbortSignal;
}

/**
 * A read-only SQL connection of one datasource.
 * @example const rows = await client.readOnlyQuery('select id as key from users where id = any($1)', [['a', 'b']], { timeoutMs: 200, signal });
 */
export interface SqlReadClient {
  /**
   * Runs `text` with `params` in a READ ONLY transaction whose `statement_timeout` is
   * `options.timeoutMs`, and answers its rows. Rejects with the driver's error on failure, and
   * with `options.signal.reason` when the signal aborts first.
   */
  readOnlyQuery(text: string, params: readonly unknown[], options: SqlReadOptions): Promise<ReadonlyArray<Record<string, unknown>>>;
}

/** What went wrong, as far as the resolver needs to know. */
export type SqlFailure =
  | { readonly kind: 'timeout' }
  | { readonly kind: 'connection'; readonly code?: string }
  | { readonly kind: 'sql'; readonly sqlState: string }
  | { readonly kind: 'unknown' };

const SQLSTATE = /^[0-9A-Z]{5}$/;
const ERRNO = /^E[A-Z0-9_]{2,30}$/;

/**
 * Classifies a driver error by its `code` only: `57014` (statement timeout or cancel) is a
 * timeout; SQLSTATE classes 08 (connection), 28 (authorisation), 3D (unknown database), 53300
 * (too many connections) and 57P0x (server shutting down) and socket errnos (`ECONNREFUSED`)
 * are connection failures; any other SQLSTATE is a SQL error; the rest (pg's code-less
 * "Connection terminated") is unknown.
 * @example classifySqlFailure({ code: '57014' }) // { kind: 'timeout' }
 */
export function classifySqlFailure(err: unknown): SqlFailure {
  const raw = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const code = typeof raw === 'string' ? raw : undefined;
  if (code === '57014') return { kind: 'timeout' };
  if (code !== undefined && SQLSTATE.test(code)) {
    if (/^(08|28|3D)/.test(code) || code === '53300' || /^57P0[1-4]$/.test(code)) return { kind: 'connection', code };
    return { kind: 'sql', sqlState: code };
  }
  return code !== undefined && ERRNO.test(code) ? { kind: 'connection', code } : { kind: 'unknown' };
}

/** Condition names of the SQLSTATEs operators most often meet, for messages. */
export const SQLSTATE_NAMES: Readonly<Record<string, string>> = {
  '25006': 'read_only_sql_transaction',
  '42501': 'insufficient_privilege',
  '42601': 'syntax_error',
  '42P01': 'undefined_table',
  '42703': 'undefined_column',
  '42883': 'undefined_function',
  '42804': 'datatype_mismatch',
  '42P08': 'ambiguous_parameter',
  '22P02': 'invalid_text_representation',
  '08P01': 'protocol_violation',
  '28P01': 'invalid_password',
  '3D000': 'invalid_catalog_name',
};
