/**
 * The SQLite driver's own schema, as numbered migrations. Each runs once, in order, in the same
 * transaction that records it, so a crash mid-migration leaves the previous version intact.
 */
import type Database from 'better-sqlite3';

interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'catalog, documents, index entries, commit clock',
    sql: `
      CREATE TABLE sleigh_meta (
        key TEXT PRIMARY KEY,
        value ANY NOT NULL
      ) STRICT;
      INSERT INTO sleigh_meta (key, value) VALUES ('ts', 0);

      CREATE TABLE sleigh_tables (
        number INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
      ) STRICT;

      CREATE TABLE sleigh_indexes (
        id INTEGER PRIMARY KEY,
        table_number INTEGER NOT NULL REFERENCES sleigh_tables (number),
        name TEXT NOT NULL,
        fields TEXT NOT NULL,
        UNIQUE (table_number, name)
      ) STRICT;

      -- The documents. Index entries point at the integer row id, which makes the join of a range
      -- scan an integer lookup; the unique (table_number, id_key) index serves gets and by_id.
      CREATE TABLE sleigh_documents (
        doc INTEGER PRIMARY KEY,
        table_number INTEGER NOT NULL,
        id_key BLOB NOT NULL,
        value TEXT NOT NULL,
        UNIQUE (table_number, id_key)
      ) STRICT;

      -- Every other index (by_creation_time and schema indexes): key -> document row.
      CREATE TABLE sleigh_index_entries (
        index_id INTEGER NOT NULL,
        key BLOB NOT NULL,
        doc INTEGER NOT NULL,
        PRIMARY KEY (index_id, key)
      ) STRICT, WITHOUT ROWID;
    `,
  },
];

export function migrate(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS sleigh_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const applied = new Set(
    db
      .prepare<[], { version: number }>('SELECT version FROM sleigh_migrations')
      .all()
      .map((row) => row.version),
  );
  const newest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
  const unknown = [...applied].filter((version) => version > newest);
  if (unknown.length > 0) {
    throw new Error(
      `This database was written by a newer Sleigh (schema version ${Math.max(...unknown)}; this build knows up to ${newest})`,
    );
  }
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare(
        'INSERT INTO sleigh_migrations (version, description, applied_at) VALUES (?, ?, ?)',
      ).run(migration.version, migration.description, new Date().toISOString());
    }).immediate();
  }
}
