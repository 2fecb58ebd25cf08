/**
 * The PostgreSQL driver's own schema, as numbered migrations, applied under an advisory lock so
 * that several Sleigh processes starting together migrate once.
 */
import type pg from 'pg';
import { quoteIdentifier } from './sql.js';

interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'catalog, documents, index entries, commit log',
    sql: `
      CREATE TABLE tables (
        number integer PRIMARY KEY,
        name text NOT NULL UNIQUE
      );

      CREATE TABLE indexes (
        id integer PRIMARY KEY,
        table_number integer NOT NULL REFERENCES tables (number),
        name text NOT NULL,
        fields jsonb NOT NULL,
        UNIQUE (table_number, name)
      );

      -- The documents. Index entries point at the integer doc column, which makes the join of a
      -- range scan an integer lookup; the unique (table_number, id_key) index serves gets and by_id.
      CREATE TABLE documents (
        doc bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        table_number integer NOT NULL,
        id_key bytea NOT NULL,
        value text NOT NULL,
        UNIQUE (table_number, id_key)
      );

      -- Every other index (by_creation_time and schema indexes): key -> document.
      CREATE TABLE index_entries (
        index_id integer NOT NULL,
        key bytea NOT NULL,
        doc bigint NOT NULL,
        PRIMARY KEY (index_id, key)
      );

      -- One row per commit, in timestamp order; ts comes from commit_ts under the commit lock.
      CREATE SEQUENCE commit_ts;
      CREATE TABLE commits (
        ts bigint PRIMARY KEY,
        committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        catalog_changed boolean NOT NULL DEFAULT false,
        writes bytea NOT NULL
      );
      INSERT INTO commits (ts, writes) VALUES (0, '\\x');
    `,
  },
  {
    version: 2,
    description: 'stale_snapshot(): the error of a commit whose snapshot fell behind',
    sql: `
      -- Raised under the commit lock by a commit that expected no other since its snapshot
      -- (store.ts, the unchanged-snapshot commit): it rolls back and runs again.
      CREATE FUNCTION stale_snapshot(snapshot bigint) RETURNS bigint LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'a commit landed after this transaction''s snapshot (%)', snapshot
          USING ERRCODE = 'SL001';
      END
      $$;
    `,
  },
  {
    version: 3,
    description: 'catalog_epoch: commits check they used the current tables and indexes',
    sql: `
      -- Drawn by every commit that changes tables or indexes, under the commit lock.
      CREATE SEQUENCE catalog_epoch;

      -- Under the commit lock: fails a commit whose process loaded the catalog before the last
      -- change (its writes would miss a new index's entries); draws the next epoch for a
      -- commit that changes the catalog itself. Returns the epoch the commit leaves.
      CREATE FUNCTION catalog_epoch_check(loaded bigint, changes boolean) RETURNS bigint
      LANGUAGE plpgsql AS $$
      DECLARE
        current bigint := coalesce(pg_sequence_last_value('catalog_epoch'), 0);
      BEGIN
        IF current <> loaded THEN
          RAISE EXCEPTION 'the tables or indexes changed (catalog epoch % to %) since this process loaded them',
            loaded, current USING ERRCODE = 'SL002';
        END IF;
        IF changes THEN
          RETURN nextval('catalog_epoch');
        END IF;
        RETURN current;
      END
      $$;
    `,
  },
];

/** A stable 32-bit key for advisory locks that belong to this schema. */
export function lockKey(schema: string, purpose: string): number {
  let hash = 0x811c9dc5;
  for (const char of `${schema}\u0000${purpose}`) {
    hash ^= char.codePointAt(0)!;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

export async function migrate(client: pg.ClientBase, schema: string): Promise<void> {
  const qs = quoteIdentifier(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey(schema, 'migrate')]);
    // Creating needs CREATE on the database and schema even when they exist: look first, so a
    // role granted only the use of a schema set up by its owner can open it.
    const { rows: found } = await client.query<{ table: string | null }>(
      'SELECT to_regclass($1)::text AS table',
      [`${qs}.migrations`],
    );
    if (found[0]?.table == null) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${qs}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${qs}.migrations (
        version integer PRIMARY KEY,
        description text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    }
    const { rows } = await client.query<{ version: number }>(
      `SELECT version FROM ${qs}.migrations`,
    );
    const applied = new Set(rows.map((row) => row.version));
    const newest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
    const unknown = [...applied].filter((version) => version > newest);
    if (unknown.length > 0) {
      throw new Error(
        `Schema "${schema}" was written by a newer Sleigh (schema version ${Math.max(...unknown)}; this build knows up to ${newest})`,
      );
    }
    await client.query(`SET LOCAL search_path TO ${qs}`);
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${qs}.migrations (version, description) VALUES ($1, $2)`, [
        migration.version,
        migration.description,
      ]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}
