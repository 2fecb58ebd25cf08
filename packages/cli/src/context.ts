/**
 * What the commands share: where the functions folder, the data directory and the database are,
 * opening the store, and the lock that keeps two servers off one SQLite file.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Store } from '@sleigh/storage';
import { openPostgresStore } from '@sleigh/storage-postgres';
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
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  tty: process.stderr.isTTY === true,
};

export interface Locations {
  readonly functionsDir: string;
  readonly dataDir: string;
  readonly db: string | null;
  readonly schema: string;
}

export function locations(values: {
  functionsDir?: string | undefined;
  dataDir?: string | undefined;
  db?: string | undefined;
  schema?: string | undefined;
}): Locations {
  const functionsDir = resolve(values.functionsDir ?? 'convex');
  const db = values.db ?? process.env.SLEIGH_DB ?? null;
  if (db !== null && !/^postgres(ql)?:\/\//.test(db)) {
    throw new CliError(
      `--db must be a PostgreSQL URL (postgres://user@host:5432/database), got "${db}"`,
    );
  }
  return {
    functionsDir,
    dataDir: resolve(values.dataDir ?? join(dirname(functionsDir), '.sleigh')),
    db,
    schema: values.schema ?? 'sleigh',
  };
}

export function describeStore(where: Locations): string {
  if (where.db === null) return `SQLite ${join(where.dataDir, 'sleigh.sqlite')}`;
  const url = new URL(where.db);
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One server per SQLite data directory: a second writer process would break the single-writer
 * design. Returns a release function. (PostgreSQL data is shared by any number of servers.)
 */
export function lockDataDir(where: Locations, purpose: string): () => void {
  if (where.db !== null) return () => undefined;
  mkdirSync(where.dataDir, { recursive: true });
  const file = join(where.dataDir, 'server.pid');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) {
      throw new CliError(
        `Another Sleigh process (pid ${pid}) is using ${where.dataDir}; stop it before ${purpose}, or use another --data-dir`,
      );
    }
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file);
    } catch {
      // Already gone.
    }
  };
}
