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

function scanDocuments(order: 'ASC' | 'DESC') {
  return statement(
    `scan_documents_${order}`,
    `SELECT id_key AS key, value FROM documents
     WHERE table_number = $1 AND id_key >= $2 AND id_key < $3
     ORDER BY id_key ${order} LIMIT $4`,
  );
}

function scanEntries(order: 'ASC' | 'DESC') {
  return statement(
    `scan_entries_${order}`,
    `SELECT e.key, d.value FROM index_entries e
     JOIN documents d ON d.table_number = $1 AND d.id_key = e.id_key
     WHERE e.index_id = $2 AND e.key >= $3 AND e.key < $4
     ORDER BY e.key ${order} LIMIT $5`,
  );
}

export const SCAN_DOCUMENTS = { asc: scanDocuments('ASC'), desc: scanDocuments('DESC') };
export const SCAN_ENTRIES = { asc: scanEntries('ASC'), desc: scanEntries('DESC') };

export const COUNT = statement(
  'count',
  'SELECT count(*)::integer AS n FROM documents WHERE table_number = $1',
);

export const INSERT_DOCUMENT = statement(
  'insert_document',
  'INSERT INTO documents (table_number, id_key, value) VALUES ($1, $2, $3)',
);

export const UPDATE_DOCUMENT = statement(
  'update_document',
  'UPDATE documents SET value = $3 WHERE table_number = $1 AND id_key = $2',
);

export const DELETE_DOCUMENT = statement(
  'delete_document',
  'DELETE FROM documents WHERE table_number = $1 AND id_key = $2',
);

export const INSERT_ENTRIES = statement(
  'insert_entries',
  `INSERT INTO index_entries (index_id, key, id_key)
   SELECT * FROM unnest($1::integer[], $2::bytea[], $3::bytea[])`,
);

export const DELETE_ENTRIES = statement(
  'delete_entries',
  `DELETE FROM index_entries WHERE (index_id, key) IN
   (SELECT * FROM unnest($1::integer[], $2::bytea[]))`,
);

export const COMMIT_LOCK = statement('commit_lock', 'SELECT pg_advisory_xact_lock($1)');

/**
 * Records the commit. Under the commit lock the timestamp is the larger of the last one plus one
 * and the wall clock in nanoseconds; sequences ignore transactions, so the last one is always
 * current even though this transaction's snapshot is older.
 */
export const INSERT_COMMIT = statement(
  'insert_commit',
  `INSERT INTO commits (ts, catalog_changed, writes)
   VALUES (setval('commit_ts', greatest(nextval('commit_ts'),
             (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)), $1, $2)
   RETURNING ts::text AS ts`,
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
