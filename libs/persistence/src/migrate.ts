/**
 * Forward-only migrations (`migrations/NNNN_name.sql`), applied in name order, each in its own
 * transaction, under an advisory lock so that brokers starting together apply each file once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WardenError } from '@warden/core';
import type { SqlDb } from './sql-db.js';

const FILE = /^\d{4}_[a-z0-9_]+\.sql$/;
// Any constant shared by every Warden instance; names the lock in pg_locks.
const LOCK_ID = 0x57617264;

/**
 * Applies the migrations of `dir` not yet recorded in `warden_migrations`; returns their names.
 * @example await migrate(db, 'migrations');
 */
export async function migrate(db: SqlDb, dir: string): Promise<string[]> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  for (const f of files) {
    if (!FILE.test(f)) throw new WardenError('ERR_CONFIG_INVALID', `migration \`${f}\` is not named NNNN_snake_case.sql`);
  }
  // INVARIANT: even the bookkeeping table is created under the lock (`if not exists` races otherwise).
  await db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query('create table if not exists warden_migrations (name text primary key, applied_at timestamptz not null default now())');
  });
  const applied: string[] = [];
  for (const f of files) {
    const sql = readFileSync(join(dir, f), 'utf8');
    const done = await db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock($1)', [LOCK_ID]);
      const seen = await tx.query('select 1 from warden_migrations where name = $1', [f]);
      if (seen.rows.length > 0) return false;
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query('insert into warden_migrations (name) values ($1)', [f]);
      return true;
    });
    if (done) applied.push(f);
  }
  return applied;
}

/** Splits a migration on `;` at line ends (migrations hold no functions with inner semicolons). */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s !== '');
}
