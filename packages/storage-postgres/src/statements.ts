/**
 * Every statement the driver runs in a transaction, named so each connection parses it once.
 * Tables are unqualified: each connection's search_path is the store's schema.
 */
import type { QueryConfig } from 'pg';

function statement(name: string, text: string): (values: unknown[]) => QueryConfig {
  return (values) => ({ name: `sleigh_${name}`, text, values });
}

/** The newest commit visible to this transaction's snapshot. */
export const SNAPSHOT_TS = statement('snapshot_ts', 'SELECT max(ts)::text AS ts FROM commits');

export const GET_DOCUMENT = statement(
  'get_document',
  'SELECT value FROM documents WHERE table_number = $1 AND id_key = $2',
);

export const GET_DOCUMENTS = statement(
  'get_documents',
  // A lookup per key through the (table_number, id_key) index, whatever plan is cached.
  `SELECT d.value FROM unnest($2::bytea[]) AS k (id_key)
   CROSS JOIN LATERAL (
     SELECT value FROM documents WHERE table_number = $1 AND id_key = k.id_key
   ) AS d`,
);

function scanDocuments(order: 'ASC' | 'DESC') {
  return statement(
    `scan_documents_${order}`,
    `SELECT value FROM documents
     WHERE table_number = $1 AND id_key >= $2 AND id_key < $3
     ORDER BY id_key ${order} LIMIT $4`,
  );
}

function scanEntries(order: 'ASC' | 'DESC') {
  return statement(
    `scan_entries_${order}`,
    `SELECT d.value FROM index_entries e JOIN documents d ON d.doc = e.doc
     WHERE e.index_id = $1 AND e.key >= $2 AND e.key < $3
     ORDER BY e.key ${order} LIMIT $4`,
  );
}

export const SCAN_DOCUMENTS = { asc: scanDocuments('ASC'), desc: scanDocuments('DESC') };
export const SCAN_ENTRIES = { asc: scanEntries('ASC'), desc: scanEntries('DESC') };

/** A page of a table's documents, with the id key to continue after (index backfill). */
export const BACKFILL_PAGE = statement(
  'backfill_page',
  `SELECT doc::text AS doc, id_key, value FROM documents
   WHERE table_number = $1 AND id_key > $2 ORDER BY id_key LIMIT $3`,
);

export const COUNT = statement(
  'count',
  'SELECT count(*)::integer AS n FROM documents WHERE table_number = $1',
);

/** Inserts a document and its index entries ($4: index ids, $5: keys) in one statement. */
export const INSERT_DOCUMENT = statement(
  'insert_document',
  `WITH d AS (
     INSERT INTO documents (table_number, id_key, value) VALUES ($1, $2, $3) RETURNING doc
   )
   INSERT INTO index_entries (index_id, key, doc)
   SELECT u.index_id, u.key, d.doc FROM d, unnest($4::integer[], $5::bytea[]) AS u (index_id, key)`,
);

/**
 * Inserts many documents of one table ($2: id keys, $3: their values as a JSON array of
 * strings, in the same order) and their index entries ($4/$5: index ids and keys, $6: the id key
 * of each one's document).
 */
export const INSERT_DOCUMENTS = statement(
  'insert_documents',
  `WITH d AS (
     INSERT INTO documents (table_number, id_key, value)
     SELECT $1, k.id_key, v.value
     FROM unnest($2::bytea[]) WITH ORDINALITY AS k (id_key, n)
     JOIN json_array_elements_text($3::json) WITH ORDINALITY AS v (value, n) USING (n)
     ORDER BY n
     RETURNING doc, id_key
   )
   INSERT INTO index_entries (index_id, key, doc)
   SELECT a.index_id, a.key, d.doc
   FROM unnest($4::integer[], $5::bytea[], $6::bytea[]) AS a (index_id, key, id_key)
   JOIN d ON d.id_key = a.id_key`,
);

/** Replaces a document's value and moves the index entries whose keys changed. */
export const REPLACE_DOCUMENT = statement(
  'replace_document',
  `WITH d AS (
     UPDATE documents SET value = $3 WHERE table_number = $1 AND id_key = $2 RETURNING doc
   ), gone AS (
     DELETE FROM index_entries
     WHERE (index_id, key) IN (SELECT * FROM unnest($4::integer[], $5::bytea[]))
   )
   INSERT INTO index_entries (index_id, key, doc)
   SELECT u.index_id, u.key, d.doc FROM d, unnest($4::integer[], $6::bytea[]) AS u (index_id, key)`,
);

/**
 * Replaces many documents of one table ($2: id keys, $3: their values as a JSON array of
 * strings) and moves their index entries ($4/$5: entries to remove; $6/$7: entries to add, $8:
 * the id key of each one's document).
 */
export const REPLACE_DOCUMENTS = statement(
  'replace_documents',
  `WITH i AS (
     SELECT k.id_key, v.value
     FROM unnest($2::bytea[]) WITH ORDINALITY AS k (id_key, n)
     JOIN json_array_elements_text($3::json) WITH ORDINALITY AS v (value, n) USING (n)
   ), d AS (
     UPDATE documents SET value = i.value
     FROM i
     WHERE documents.table_number = $1 AND documents.id_key = i.id_key
     RETURNING documents.doc, documents.id_key
   ), gone AS (
     DELETE FROM index_entries
     WHERE (index_id, key) IN (SELECT * FROM unnest($4::integer[], $5::bytea[]))
   )
   INSERT INTO index_entries (index_id, key, doc)
   SELECT a.index_id, a.key, d.doc
   FROM unnest($6::integer[], $7::bytea[], $8::bytea[]) AS a (index_id, key, id_key)
   JOIN d ON d.id_key = a.id_key`,
);

/** Deletes a document and its index entries ($3: index ids, $4: keys). */
export const DELETE_DOCUMENT = statement(
  'delete_document',
  `WITH d AS (DELETE FROM documents WHERE table_number = $1 AND id_key = $2)
   DELETE FROM index_entries
   WHERE (index_id, key) IN (SELECT * FROM unnest($3::integer[], $4::bytea[]))`,
);

/** Deletes documents ($2: their id keys) and their index entries ($3: index ids, $4: keys). */
export const DELETE_DOCUMENTS = statement(
  'delete_documents',
  `WITH d AS (DELETE FROM documents WHERE table_number = $1 AND id_key = ANY($2::bytea[]))
   DELETE FROM index_entries
   WHERE (index_id, key) IN (SELECT * FROM unnest($3::integer[], $4::bytea[]))`,
);

export const INSERT_ENTRIES = statement(
  'insert_entries',
  `INSERT INTO index_entries (index_id, key, doc)
   SELECT * FROM unnest($1::integer[], $2::bytea[], $3::bigint[])`,
);

/**
 * Takes the commit lock ($1), then records the commit and notifies it (delivered by PostgreSQL
 * at COMMIT, in commit order): one statement, where the lock's subquery (fenced by OFFSET 0, so
 * it is not merged into the rest) yields its row before the catalog is checked and the
 * timestamp drawn. Under the lock the timestamp is the larger of the last one plus one and the
 * wall clock in nanoseconds; sequences ignore transactions, so the last one is always current
 * even though this transaction's snapshot is older. $4 is the channel, $5 the origin, $6 the
 * payload's tail.
 *
 * $7, when not null, is the snapshot of a transaction that read something and expects no commit
 * since: if the last timestamp drawn is no longer $7, stale_snapshot() fails with SQLSTATE
 * SL001, which rolls the transaction back. So COMMIT can go out with it, and the check costs no
 * round trip. With $9 true, the snapshot is the transaction's own, read here (the newest commit
 * it sees): a transaction may then send its commit without waiting for its snapshot's answer.
 *
 * $8 is the catalog epoch the transaction's catalog was loaded at: catalog_epoch_check() fails
 * with SL002 when tables or indexes changed since (the writes would miss a new index), and
 * draws the next epoch when $2 says this commit changes them. `epoch` is the epoch after it.
 */
export const RECORD_COMMIT = statement(
  'record_commit',
  `WITH snapshot AS MATERIALIZED (
     SELECT CASE WHEN $9::boolean THEN (SELECT coalesce(max(ts), 0) FROM commits)
                 ELSE $7::bigint END AS ts),
   checked AS MATERIALIZED (
     SELECT catalog_epoch_check($8, $2) AS epoch
     FROM (SELECT pg_advisory_xact_lock($1) OFFSET 0) AS locked),
   c AS (
     INSERT INTO commits (ts, catalog_changed, writes)
     SELECT setval('commit_ts', CASE
              WHEN snapshot.ts IS NULL
                OR coalesce(pg_sequence_last_value('commit_ts'), 0) <= snapshot.ts
              THEN greatest(nextval('commit_ts'),
                (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)
              ELSE stale_snapshot(snapshot.ts) END), $2, $3
     FROM checked, snapshot
     RETURNING ts)
   SELECT c.ts::text AS ts, checked.epoch::text AS epoch,
          pg_notify($4, $5 || ':' || c.ts::text || ':' || $6)
   FROM c, checked`,
);

/** Takes the commit lock until the transaction ends ($1); RECORD_COMMIT takes it again. */
export const TAKE_COMMIT_LOCK = statement('take_commit_lock', 'SELECT pg_advisory_xact_lock($1)');

/**
 * The last commit timestamp drawn (0: none yet). Sequences ignore snapshots, so this is current
 * even in a transaction whose snapshot is older.
 */
export const LAST_DRAWN_TS = statement(
  'last_drawn_ts',
  "SELECT coalesce(pg_sequence_last_value('commit_ts'), 0)::text AS ts",
);

/**
 * Commit records from $1 on, at most $2, for a conflict check: $1's own only says it is still
 * in the log (its write set, perhaps a job runner's thousands of keys, stays on the server).
 */
export const COMMITS_FROM = statement(
  'commits_from',
  `SELECT ts::text AS ts, catalog_changed, CASE WHEN ts > $1::bigint THEN writes END AS writes
   FROM commits WHERE ts >= $1::bigint ORDER BY ts LIMIT $2`,
);

/** Commit records from $1 on (that one included), up to $2 when not null, at most $3. */
export const READ_COMMITS = statement(
  'read_commits',
  `SELECT ts::text AS ts, catalog_changed, writes FROM commits
   WHERE ts >= $1::bigint AND ($2::bigint IS NULL OR ts <= $2::bigint)
   ORDER BY ts LIMIT $3`,
);

export const INSERT_TABLE = statement(
  'insert_table',
  'INSERT INTO tables (number, name) VALUES ($1, $2)',
);

export const INSERT_INDEX = statement(
  'insert_index',
  'INSERT INTO indexes (id, table_number, name, fields) VALUES ($1, $2, $3, $4)',
);

export const DELETE_INDEX_ENTRIES = statement(
  'delete_index_entries',
  'DELETE FROM index_entries WHERE index_id = $1',
);

export const DELETE_INDEX = statement('delete_index', 'DELETE FROM indexes WHERE id = $1');

/** Deletes commit records older than $1 seconds, never the newest (a snapshot's timestamp). */
export const TRIM_COMMITS = statement(
  'trim_commits',
  `DELETE FROM commits
   WHERE committed_at < clock_timestamp() - make_interval(secs => $1)
     AND ts < (SELECT max(ts) FROM commits)`,
);

/**
 * Whether this role may vacuum `index_entries`: it owns the table or the database (superusers
 * are members of every role). PostgreSQL does not refuse anyone else's VACUUM; it warns and
 * skips the table.
 */
export const MAY_VACUUM_INDEX_ENTRIES = statement(
  'may_vacuum_index_entries',
  `SELECT pg_has_role(c.relowner, 'MEMBER') OR pg_has_role(d.datdba, 'MEMBER') AS may
   FROM pg_class c, pg_database d
   WHERE c.oid = 'index_entries'::regclass AND d.datname = current_database()`,
);
