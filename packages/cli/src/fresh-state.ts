/**
 * What a command is about to create, so that a command that fails leaves no trace: a start that
 * fails on a bundle error or a taken port must not leave a new `.sleigh/` folder, an admin key
 * or a migrated PostgreSQL schema behind for the user to wonder about.
 *
 * Noted before anything is opened; `discard()` runs after the store is closed and before the
 * data-directory lock is let go (after, another server could be using the files). Only what did not
 * exist before is removed, and a PostgreSQL schema only while no other Sleigh process uses it
 * (another server may have started on the same new schema meanwhile).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PostgresStore } from '@sleigh/storage-postgres';
import type { Locations } from './context.js';

export interface FreshState {
  /** Removes what the command created; best effort, as the command is failing anyway. */
  discard(): Promise<void>;
}

const SQLITE_FILES = ['sleigh.sqlite', 'sleigh.sqlite-wal', 'sleigh.sqlite-shm', 'admin_key'];

export async function noteFreshState(where: Locations): Promise<FreshState> {
  if (where.db !== null) {
    const { db, schema } = where;
    // When the database cannot be reached, opening the store will say so; nothing to undo.
    const existed = await PostgresStore.inspectSchema(db, schema).then(
      (state) => state !== 'absent',
      () => true,
    );
    return {
      discard: async () => {
        if (existed) return;
        try {
          if (!(await PostgresStore.othersUsing(db, schema))) {
            await PostgresStore.dropSchema(db, schema);
          }
        } catch {
          // The database went away: the schema stays, and the next start will use it.
        }
      },
    };
  }
  const dirExisted = existsSync(where.dataDir);
  const created = SQLITE_FILES.filter((file) => !existsSync(join(where.dataDir, file)));
  const discard = () => {
    try {
      if (!dirExisted) rmSync(where.dataDir, { recursive: true, force: true });
      else for (const file of created) rmSync(join(where.dataDir, file), { force: true });
    } catch {
      // Left behind: harmless, and the next start reuses it.
    }
  };
  return { discard: () => Promise.resolve(discard()) };
}
