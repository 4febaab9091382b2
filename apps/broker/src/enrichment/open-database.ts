/**
 * Warden's own database at boot: `DATABASE_URL` (a pool) or the embedded PGlite, migrated, then
 * seeded with the configured SQL files (demo data; each must be idempotent).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WardenError } from '@warden/core';
import { createPgDb, createPgliteDb, migrate, type SqlDb } from '@warden/persistence';
import type { DatabaseConfig } from '../config/broker-config.js';

/** The repository's `migrations/` folder, found upwards from this file (source or build output). */
export function findMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new WardenError('ERR_CONFIG_INVALID', 'cannot find the `migrations/` folder next to package.json');
    dir = up;
  }
}

/** Advisory lock held while a seed file runs (distinct from the migrations' and stores' locks). */
const SEED_LOCK_ID = 0x57617267;

/** Opens, migrates and seeds the database. */
export async function openDatabase(config: DatabaseConfig, onError: (message: string) => void): Promise<SqlDb> {
  const db = config.url !== undefined ? createPgDb({ url: config.url, onError }) : await createPgliteDb(config.dataDir);
  try {
    await migrate(db, findMigrationsDir());
    for (const file of config.seedFiles) await db.transaction(async (tx) => {
      // Replicas starting together seed one at a time (concurrent `create table if not exists`
      // can still collide in the catalogue).
      await tx.query('select pg_advisory_xact_lock($1)', [SEED_LOCK_ID]);
      for (const statement of readFileSync(file, 'utf8').split(/;\s*(?:\n|$)/)) {
        const sql = statement.replace(/^\s*--.*$/gm, '').trim();
        if (sql !== '') await tx.query(sql);
      }
    });
  } catch (err) {
    await db.close().catch(() => undefined);
    if (err instanceof WardenError) throw err;
    const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'unknown';
    // SECURITY: the driver's message may name the host; the URL itself never appears.
    throw new WardenError('ERR_STORAGE_UNAVAILABLE', `cannot prepare the database (${code}): ${(err as Error).message.split('\n')[0] ?? ''}`, { cause: err });
  }
  return db;
}
