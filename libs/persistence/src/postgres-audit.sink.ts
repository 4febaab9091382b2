/**
 * The decision log in Warden's Postgres (`warden_audit_log`, migrations 0003 and 0004: partitioned
 * by day). Where the driver has COPY (node-postgres) each batch is one `COPY` (its rows built from the entries' bytes); a
 * batch that holds a decision id already written (a replay after a partial failure, or the same
 * entry twice) is refused whole by the primary key and then goes as one insert that is idempotent
 * on the decision id and its time (`on conflict do nothing`; a replayed entry keeps its time), so
 * nothing is written twice. Also the day partitions and the retention.
 */
import { fieldsUtf8, jsonUtf8, Utf8Batches, type AuditEntry, type AuditSink, type SerializedEntry, type Utf8Batch } from '@warden/audit';
import type { SqlDb, SqlQueryable } from './sql-db.js';

// COPY in its text format: Postgres parses each row once, with no JSON array of the batch to split
// and no `->>` per field. Its backend took 10.0-10.5 µs per row (batches of 256 entries of the
// decision-log bench) against 17.8-18.8 for the insert below, which, on a machine whose cores
// the broker and its load share, was what kept the sink from keeping up (bench/README.md).
const COPY = 'copy warden_audit_log (decision_id, time, kind, policy_version, source, decision, subject, agent, resources, entry) from stdin';
/** Postgres's code for a unique violation: the batch holds a row already written. */
const UNIQUE_VIOLATION = '23505';
const TAB = 0x09;
const NL = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;
const BACKSLASH = 0x5c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
/** `\N`, COPY's null. */
const NULL_FIELD = Buffer.from('\\N', 'latin1');
const NULL_JSON = Buffer.from('null', 'latin1');

/**
 * `e` appended to `b` as a row of COPY's text format; false (with part of it written: the caller
 * discards the batch) when its fields line is not the plain form this reads: one with a backslash
 * (a JSON escape, which only a JSON parser reads right) or any other shape.
 *
 * Without a backslash, each string of the fields line is the bytes between two quotes, as they
 * are: JSON escapes every quote, backslash and control character (tab, newline) a value holds, so
 * none of the bytes COPY or an array literal treat specially is in them. The entry's JSON is
 * copied with each backslash doubled (COPY's escape); it holds no raw tab or newline.
 */
function copyRow(b: Utf8Batch, e: SerializedEntry): boolean {
  const f = fieldsUtf8(e);
  if (f.indexOf(BACKSLASH) >= 0 || f[0] !== LBRACKET) return false;
  let i = 1;
  // decision id, time, kind, policy version, source, decision, subject | null, agent | null
  for (let k = 0; k < 8; k++) {
    if (k > 0) b.byte(TAB);
    if (f[i] === QUOTE) {
      const end = f.indexOf(QUOTE, i + 1);
      if (end < 0) return false;
      b.append(f, i + 1, end);
      i = end + 1;
    } else if (k >= 6 && f.compare(NULL_JSON, 0, 4, i, i + 4) === 0) {
      b.append(NULL_FIELD, 0, NULL_FIELD.length);
      i += 4;
    } else return false;
    if (f[i++] !== COMMA) return false;
  }
  // the resources: a JSON array of strings, as an array literal of quoted elements
  if (f[i++] !== LBRACKET) return false;
  b.byte(TAB).byte(LBRACE);
  if (f[i] !== RBRACKET) {
    for (;;) {
      if (f[i] !== QUOTE) return false;
      const end = f.indexOf(QUOTE, i + 1);
      if (end < 0) return false;
      b.append(f, i, end + 1);
      i = end + 1;
      if (f[i] !== COMMA) break;
      b.byte(COMMA);
      i++;
    }
  }
  if (f[i] !== RBRACKET || f[i + 1] !== RBRACKET || i + 2 !== f.length) return false;
  b.byte(RBRACE).byte(TAB);
  const json = jsonUtf8(e);
  let at = 0;
  for (let bs = json.indexOf(BACKSLASH, at); bs >= 0; bs = json.indexOf(BACKSLASH, at)) {
    b.append(json, at, bs + 1).byte(BACKSLASH);
    at = bs + 1;
  }
  b.append(json, at, json.length).byte(NL);
  return true;
}

// One row per entry: the filter columns from the entries' fields lines (`fieldsLine`) as one JSON
// array text, the entries as another (a `json` column keeps each element's text; no jsonb
// conversion per row), joined by position. An entry read from the writer's ring hands its fields
// line on as it is: nothing parsed, escaped or built per entry in the writer's thread, where the
// arrays below cost a dozen strings per entry and their array-literal escaping (bench/README.md).
const INSERT_FIELDS = `
insert into warden_audit_log (decision_id, time, kind, policy_version, source, decision, subject, agent, resources, entry)
select f.a->>0, (f.a->>1)::timestamptz, f.a->>2, f.a->>3, f.a->>4, f.a->>5, f.a->>6, f.a->>7,
       array(select json_array_elements_text(f.a->8)), e.doc
  from json_array_elements($1::json) with ordinality as f(a, n)
  join json_array_elements($2::json) with ordinality as e(doc, n) using (n)
on conflict (decision_id, time) do nothing`;

// A batch whose fields hold a \u escape (a control character, a lone surrogate, U+0000: Postgres
// refuses to unescape the last two into text) goes as parallel arrays, the driver encoding each
// string as before: a lone surrogate becomes U+FFFD there, and one request cannot stop the log.
const INSERT = `
insert into warden_audit_log (decision_id, time, kind, policy_version, source, decision, subject, agent, resources, entry)
select x.d, x.t, x.k, x.pv, x.src, x.dec, x.sub, x.ag, string_to_array(x.rs, chr(31)), e.doc
  from unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
         with ordinality as x(d, t, k, pv, src, dec, sub, ag, rs, n)
  join json_array_elements($10::json) with ordinality as e(doc, n) using (n)
on conflict (decision_id, time) do nothing`;

/** `kind/id` of each resource decided, joined by U+001F (which the ids lose, for the filter column only). */
function resourcesColumn(e: SerializedEntry): string {
  let out = '';
  for (let i = 0; i < e.resources.length; i++) {
    if (i > 0) out += '\x1f';
    out += (e.resources[i] as string).replaceAll('\x1f', '');
  }
  return out;
}

/** Options of {@link createPostgresAuditSink}. */
export interface PostgresAuditSinkOptions {
  db: SqlDb;
  /** Closes `db` with the sink (when the sink owns its pool). */
  ownsDb?: boolean;
}

/**
 * A sink writing to `warden_audit_log`.
 * @example const sink = createPostgresAuditSink({ db: createPgDb({ url }), ownsDb: true });
 */
export function createPostgresAuditSink(options: PostgresAuditSinkOptions): AuditSink {
  const { db } = options;
  const batches = new Utf8Batches();
  return {
    name: 'postgres',
    // Writes of 50 rather than the writer's 200 while it keeps up: each batch's COPY goes through
    // the driver and loopback TCP in one piece on the writer's thread, whose core may be the event
    // loop's. At 30% of the peak with every thread on one core, p99 lower in 14 of 16 rounds paired
    // against 200 (medians 2.15 and 2.31 ms against 2.81 and 2.52; bench/README.md, 2026-12-01).
    batchSize: 50,
    async write(batch: readonly SerializedEntry[]) {
      if (batch.length === 0) return;
      const b = batches.take();
      try {
        if (db.copyFrom !== undefined) {
          let plain = true;
          for (let i = 0; i < batch.length && plain; i++) plain = copyRow(b, batch[i] as SerializedEntry);
          if (plain) {
            try {
              return await db.copyFrom(COPY, b.bytes());
            } catch (err) {
              if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
              // Some of the batch was written before (a replay): the insert below skips those rows.
            }
          }
          b.reset();
        }
        // Both arrays as UTF-8 in one buffer, bound as binary parameters (a `json` parameter's
        // binary form is its text): the driver copies the bytes, with no string to flatten and encode.
        b.byte(0x5b);
        for (let i = 0; i < batch.length; i++) (i === 0 ? b : b.byte(0x2c)).fields(batch[i] as SerializedEntry);
        b.byte(0x5d);
        const fieldsEnd = b.length;
        if (b.bytes(0, fieldsEnd).includes('\\u')) return await writeColumns(db, batch);
        b.byte(0x5b);
        for (let i = 0; i < batch.length; i++) (i === 0 ? b : b.byte(0x2c)).json(batch[i] as SerializedEntry);
        b.byte(0x5d);
        const fields = b.bytes(0, fieldsEnd);
        const entries = b.bytes(fieldsEnd);
        // PGlite binds a byte array as bytea: text for it (the embedded database, a light load).
        await db.query(INSERT_FIELDS, db.kind === 'pg' ? [fields, entries] : [fields.toString('utf8'), entries.toString('utf8')]);
      } finally {
        batches.give(b);
      }
    },
    async close() {
      if (options.ownsDb === true) await db.close();
    },
  };
}

/** The entries of a batch as one JSON array text, in order. */
function entriesJson(batch: readonly SerializedEntry[]): string {
  let entries = '[';
  for (let i = 0; i < batch.length; i++) entries += i === 0 ? (batch[i] as SerializedEntry).json : `,${(batch[i] as SerializedEntry).json}`;
  return `${entries}]`;
}

/** A batch as parallel arrays of its fields ({@link INSERT}). */
async function writeColumns(db: SqlQueryable, batch: readonly SerializedEntry[]): Promise<void> {
  const cols: [string[], string[], string[], string[], string[], string[], (string | null)[], (string | null)[], string[]] = [[], [], [], [], [], [], [], [], []];
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i] as SerializedEntry;
    cols[0].push(e.decisionId);
    cols[1].push(e.time);
    cols[2].push(e.kind);
    cols[3].push(e.policyVersion);
    cols[4].push(e.source);
    cols[5].push(e.decision);
    cols[6].push(e.subject ?? null);
    cols[7].push(e.agent ?? null);
    cols[8].push(resourcesColumn(e));
  }
  await db.query(INSERT, [...cols, entriesJson(batch)]);
}

const DAY_MS = 86_400_000;
/** Held while partitions are created or dropped, so replicas doing it together take turns. */
const PARTITION_LOCK_ID = 0x57617268;
const PARTITION = /^warden_audit_log_p(\d{4})(\d{2})(\d{2})$/;

/** `warden_audit_log_pYYYYMMDD` of the UTC day starting at `dayStart` (epoch ms). */
function partitionName(dayStart: number): string {
  return `warden_audit_log_p${new Date(dayStart).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The day partitions that exist, with the start of their day (epoch ms). */
async function dayPartitions(db: SqlQueryable): Promise<Array<{ name: string; day: number }>> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'warden_audit_log'`,
  );
  const out: Array<{ name: string; day: number }> = [];
  for (const { name } of rows) {
    const m = PARTITION.exec(name);
    if (m !== null) out.push({ name, day: Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) });
  }
  return out;
}

/**
 * Creates the day partitions from yesterday to `daysAhead` days after `now` (UTC) that do not
 * exist yet, moving any of their rows out of the default partition first; returns the names
 * created. Safe to run from several replicas at once (an advisory lock serialises them).
 * @example await ensureAuditPartitions(db, { now: Date.now() });
 */
export async function ensureAuditPartitions(db: SqlDb, options: { now: number; daysAhead?: number }): Promise<string[]> {
  const today = Math.floor(options.now / DAY_MS) * DAY_MS;
  const created: string[] = [];
  await db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [PARTITION_LOCK_ID]);
    const existing = new Set((await dayPartitions(tx)).map((p) => p.name));
    for (let day = today - DAY_MS; day <= today + (options.daysAhead ?? 3) * DAY_MS; day += DAY_MS) {
      const name = partitionName(day);
      if (existing.has(name)) continue;
      const from = new Date(day).toISOString();
      const to = new Date(day + DAY_MS).toISOString();
      // Postgres refuses a partition whose range the default partition holds rows of: move them.
      await tx.query(
        `create temporary table warden_audit_moving on commit drop as
           with moved as (delete from warden_audit_log_default where time >= $1::timestamptz and time < $2::timestamptz returning *) select * from moved`,
        [from, to],
      );
      await tx.query(`create table ${name} partition of warden_audit_log for values from ('${from}') to ('${to}')`);
      await tx.query('insert into warden_audit_log select * from warden_audit_moving');
      await tx.query('drop table warden_audit_moving');
      created.push(name);
    }
  });
  return created;
}

/**
 * Removes decision-log rows older than `days` days: day partitions wholly older are dropped (no
 * row-by-row delete), the older rows of the partition straddling the cutoff and of the default
 * partition are deleted. Returns the partitions dropped and the rows deleted.
 * @example await pruneAuditLog(db, 90);
 */
export async function pruneAuditLog(db: SqlDb, days: number, now = Date.now()): Promise<{ droppedPartitions: string[]; deletedRows: number }> {
  const cutoff = now - days * DAY_MS;
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [PARTITION_LOCK_ID]);
    const droppedPartitions: string[] = [];
    for (const p of await dayPartitions(tx)) {
      if (p.day + DAY_MS > cutoff) continue;
      await tx.query(`drop table ${p.name}`);
      droppedPartitions.push(p.name);
    }
    const { rows } = await tx.query<{ n: string }>(`with gone as (delete from warden_audit_log where time < $1::timestamptz returning 1) select count(*)::text as n from gone`, [new Date(cutoff).toISOString()]);
    return { droppedPartitions: droppedPartitions.sort(), deletedRows: Number(rows[0]?.n ?? 0) };
  });
}

/** Filters of {@link queryAuditLog}; all optional, combined with `and`. */
export interface AuditLogQuery {
  subject?: string;
  agent?: string;
  resourceKind?: string;
  /** With `resourceKind`: one resource. */
  resourceId?: string;
  decision?: 'ALLOW' | 'DENY';
  /** Inclusive lower bound (ISO 8601). */
  from?: string;
  /** Exclusive upper bound (ISO 8601). */
  to?: string;
  /** The `nextCursor` of the previous page. */
  cursor?: { time: string; decisionId: string };
  /** Page size (the caller bounds it). */
  limit: number;
}

/**
 * One page of decision-log entries, newest first, and the cursor of the next page (undefined on
 * the last one). Keyset pagination on (time, decision id): stable while rows are being added.
 * @example const { entries, next } = await queryAuditLog(db, { subject: 'alice', limit: 100 });
 */
export async function queryAuditLog(db: SqlDb, q: AuditLogQuery): Promise<{ entries: AuditEntry[]; next: { time: string; decisionId: string } | undefined }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.subject !== undefined) where.push(`subject = ${p(q.subject)}`);
  if (q.agent !== undefined) where.push(`agent = ${p(q.agent)}`);
  if (q.decision !== undefined) where.push(`decision = ${p(q.decision)}`);
  if (q.resourceKind !== undefined && q.resourceId !== undefined) where.push(`resources @> array[${p(`${q.resourceKind}/${q.resourceId}`)}]::text[]`);
  else if (q.resourceKind !== undefined) where.push(`exists (select 1 from unnest(resources) r where left(r, length(${p(q.resourceKind)}) + 1) = $${params.length} || '/')`);
  if (q.from !== undefined) where.push(`time >= ${p(q.from)}::timestamptz`);
  if (q.to !== undefined) where.push(`time < ${p(q.to)}::timestamptz`);
  if (q.cursor !== undefined) where.push(`(time, decision_id) < (${p(q.cursor.time)}::timestamptz, ${p(q.cursor.decisionId)})`);
  const sql = `select entry from warden_audit_log ${where.length > 0 ? `where ${where.join(' and ')}` : ''} order by time desc, decision_id desc limit ${p(q.limit + 1)}`;
  const { rows } = await db.query<{ entry: AuditEntry }>(sql, params);
  const entries = rows.slice(0, q.limit).map((r) => r.entry);
  const last = entries[entries.length - 1];
  return { entries, next: rows.length > q.limit && last !== undefined ? { time: last.time, decisionId: last.decisionId } : undefined };
}
