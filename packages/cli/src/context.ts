/**
 * What the commands share: where the functions folder, the data directory and the database are,
 * and opening the store. (The lock that keeps two servers off one SQLite file is in lock.ts.)
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface Output {
  out(line: string): void;
  err(line: string): void;
  /** True when stderr is a terminal (progress bars draw only there). */
  readonly tty: boolean;
}

export const consoleOutput: Output = {
  // A reader that went away (`sleigh dev | head`) leaves the stream closed: write no more.
  out: (line) => void (process.stdout.writable && process.stdout.write(`${line}\n`)),
  err: (line) => void (process.stderr.writable && process.stderr.write(`${line}\n`)),
  tty: process.stderr.isTTY === true,
};

export interface Locations {
  readonly functionsDir: string;
  readonly dataDir: string;
  readonly db: string | null;
  readonly schema: string;
}

/** The data directory: --data-dir, or `.sleigh` beside the functions folder. */
export function dataDirOf(values: {
  functionsDir?: string | undefined;
  dataDir?: string | undefined;
}): string {
  const functionsDir = resolve(values.functionsDir ?? 'convex');
  return resolve(values.dataDir ?? join(dirname(functionsDir), '.sleigh'));
}

/** Where a command that opens the store finds everything (--db, else SLEIGH_DB, else SQLite). */
export function locations(values: {
  functionsDir?: string | undefined;
  dataDir?: string | undefined;
  db?: string | undefined;
  schema?: string | undefined;
}): Locations {
  const db = values.db ?? process.env.SLEIGH_DB ?? null;
  if (db !== null) {
    const source = values.db === undefined ? 'SLEIGH_DB' : '--db';
    let url: URL | null = null;
    try {
      url = new URL(db);
    } catch {
      // Reported below.
    }
    if (url === null || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
      throw new CliError(
        `${source} must be a PostgreSQL URL (postgres://user@host:5432/database), got "${db}"`,
        2,
      );
    }
  }
  return {
    functionsDir: resolve(values.functionsDir ?? 'convex'),
    dataDir: dataDirOf(values),
    db,
    schema: values.schema ?? 'sleigh',
  };
}

export function describeStore(where: Locations): string {
  if (where.db === null) return `SQLite ${join(where.dataDir, 'sleigh.sqlite')}`;
  const url = new URL(where.db); // checked by locations()
  return `PostgreSQL ${url.hostname}:${url.port || '5432'}${url.pathname} (schema ${where.schema})`;
}

export async function openStore(where: Locations): Promise<Store> {
  try {
    if (where.db !== null) {
      return await openPostgresStore({ connectionString: where.db, schema: where.schema });
    }
    mkdirSync(where.dataDir, { recursive: true });
    return await openSqliteStore({ path: join(where.dataDir, 'sleigh.sqlite') });
  } catch (error) {
    throw new CliError(
      `Cannot open the database (${describeStore(where)}): ${(error as Error).message}`,
    );
  }
}

/**
 * Opens a store that must already exist (`sleigh export`): opening creates a missing SQLite
 * file or PostgreSQL schema, and a mistyped location must be refused, not exported as an empty
 * snapshot with an empty store left behind. PostgreSQL is asked before `openPostgresStore`,
 * which creates and migrates the schema.
 */
export async function openExistingStore(where: Locations): Promise<Store> {
  const missing = (why: string) =>
    new CliError(`No Sleigh data at ${describeStore(where)}: ${why}`);
  if (where.db === null) {
    const file = join(where.dataDir, 'sleigh.sqlite');
    if (!existsSync(file)) {
      throw missing(
        'the file does not exist (check --data-dir, or the functions folder it follows)',
      );
    }
    return openStore(where);
  }
  let state: 'absent' | 'sleigh' | 'other';
  try {
    state = await PostgresStore.inspectSchema(where.db, where.schema);
  } catch (error) {
    throw new CliError(
      `Cannot open the database (${describeStore(where)}): ${(error as Error).message}`,
    );
  }
  if (state === 'absent') {
    throw missing(`schema "${where.schema}" does not exist (check --schema and --db)`);
  }
  if (state === 'other') throw missing(`schema "${where.schema}" holds no Sleigh store`);
  return openStore(where);
}
