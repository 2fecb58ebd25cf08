/**
 * One process per SQLite data directory: a second writer would break the single-writer design.
 * The lock is an exclusive transaction held open on a small SQLite database, `server.lock`.
 * SQLite is a dependency already (no further native module); its POSIX lock is dropped by the
 * kernel when the process dies, so a crash leaves nothing that blocks the next start; and unlike
 * pid files or proper-lockfile style mtime locks it stays exclusive when processes race.
 * `server.pid` only tells the loser who holds the lock.
 *
 * Caveats of POSIX locks: closing ANY descriptor of `server.lock` in this process drops the lock,
 * so nothing but this module may open it; and it must never be deleted while a server may run
 * (a lock on a deleted file excludes nobody).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CliError, type Locations } from './context.js';

function createDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const why =
      code === 'EEXIST'
        ? 'it is a file, not a folder'
        : code === 'ENOTDIR'
          ? 'a part of its path is a file, not a folder'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : message;
    throw new CliError(`Cannot use ${dir} as the data directory: ${why}; use another --data-dir`);
  }
}

/** " (pid N)" from the holder's pid file, or "" when it is missing or unreadable. */
function holder(pidFile: string): string {
  try {
    const text = readFileSync(pidFile, 'utf8').trim();
    return /^[1-9]\d*$/.test(text) ? ` (pid ${text})` : '';
  } catch {
    return '';
  }
}

function lockError(error: unknown, dir: string, pidFile: string, purpose: string): CliError {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const sqliteCode = typeof code === 'string' ? code : '';
  if (sqliteCode.startsWith('SQLITE_BUSY')) {
    return new CliError(
      `Another Sleigh process${holder(pidFile)} is using ${dir}; stop it before ${purpose}, or use another --data-dir`,
    );
  }
  const hint = /^SQLITE_(READONLY|CANTOPEN|PERM|AUTH)/.test(sqliteCode)
    ? '; check that it is writable, or use another --data-dir'
    : '';
  return new CliError(`Cannot lock the data directory ${dir}: ${String(message)}${hint}`);
}

/**
 * Locks the SQLite data directory for this process; throws a CliError when another process (or
 * another lock in this one) holds it. Returns the release function, which may be called more
 * than once. (PostgreSQL data is shared by any number of servers: nothing to lock.)
 */
export function lockDataDir(where: Locations, purpose: string): () => void {
  if (where.db !== null) return () => undefined;
  const dir = where.dataDir;
  createDataDir(dir);
  const pidFile = join(dir, 'server.pid');
  let db: Database.Database | null = null;
  try {
    db = new Database(join(dir, 'server.lock'), { timeout: 0 });
    db.pragma('journal_mode = DELETE');
    db.exec('BEGIN EXCLUSIVE');
    // A connection that fell back to read-only "locks" without excluding anyone: prove it can
    // write (the change is never committed).
    db.pragma('user_version = 1');
  } catch (error) {
    try {
      db?.close();
    } catch {
      // Nothing was held.
    }
    throw lockError(error, dir, pidFile, purpose);
  }
  const lock = db;
  try {
    writeFileSync(pidFile, `${process.pid}\n`);
  } catch {
    // Informative only; at least do not let a stale one name someone else.
    try {
      rmSync(pidFile, { force: true });
    } catch {
      // The loser's message will name a stale pid, or none.
    }
  }
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    // The pid file is ours while the lock is: remove it before letting go, never after.
    try {
      if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile);
    } catch {
      // Already gone.
    }
    try {
      lock.exec('ROLLBACK');
    } catch {
      // Closing rolls back too.
    }
    lock.close();
  };
}
