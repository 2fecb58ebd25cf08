/**
 * Storage layer against the raw drivers: point reads, 100-row index range scans and
 * single-document insert transactions, on SQLite and on PostgreSQL.
 *
 * The raw side is what an application would write by hand: one table (text id primary key, a
 * numeric column with a b-tree index, the document as JSON text), plain statements, and
 * JSON.parse on every row it reads, since a document store hands back parsed documents.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { encodeKey, newDocumentId, type Document, type Store } from '@sleigh/storage';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { throughput, type Row } from './measure.js';

export const ROWS = 10_000;
export const PAYLOAD = 'x'.repeat(100);

/** Each operation returns a promise or a plain value; `throughput` awaits either. */
export interface Operations {
  readonly pointRead: (i: number) => unknown;
  readonly rangeScan: (i: number) => unknown;
  readonly insert: (i: number) => unknown;
}

let clock = Date.now();
function makeDocument(tableNumber: number, k: number): Document {
  return { _id: newDocumentId(tableNumber), _creationTime: clock++, k, body: PAYLOAD };
}

export async function seedStore(store: Store): Promise<{ ids: string[]; table: number }> {
  // The engine's schema may have made the table already.
  await store.write(async (tx) => {
    if (tx.catalog().table('items') === undefined) await tx.createTable('items');
    if (tx.catalog().index('items', 'by_k') === undefined)
      await tx.createIndex('items', 'by_k', ['k']);
  });
  const table = store.catalog().requireTable('items').number;
  const documents = Array.from({ length: ROWS }, (_, i) => makeDocument(table, i));
  await store.write(async (tx) => {
    for (const document of documents) await tx.insert('items', document);
  });
  return { ids: documents.map((d) => d._id), table };
}

export function sleighOperations(store: Store, ids: string[], table: number): Operations {
  return {
    pointRead: (i) => store.read((tx) => tx.get('items', ids[(i * 7919) % ids.length]!)),
    rangeScan: (i) =>
      store.read((tx) =>
        tx.scan({
          table: 'items',
          index: 'by_k',
          start: encodeKey([(i * 7919) % (ROWS - 100)]),
          order: 'asc',
          limit: 100,
        }),
      ),
    insert: (i) => store.write((tx) => tx.insert('items', makeDocument(table, ROWS + i))),
  };
}

function rawSqlite(path: string): { ops: Operations; ids: string[]; close(): void } {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, k REAL NOT NULL, value TEXT NOT NULL)');
  db.exec('CREATE INDEX items_k ON items (k)');
  const insert = db.prepare('INSERT INTO items (id, k, value) VALUES (?, ?, ?)');
  const ids: string[] = [];
  db.transaction(() => {
    for (let i = 0; i < ROWS; i++) {
      const doc = makeDocument(10001, i);
      ids.push(doc._id);
      insert.run(doc._id, i, JSON.stringify(doc));
    }
  })();
  const get = db.prepare<[string], string>('SELECT value FROM items WHERE id = ?').pluck();
  const range = db
    .prepare<[number], string>('SELECT value FROM items WHERE k >= ? ORDER BY k LIMIT 100')
    .pluck();
  return {
    ids,
    ops: {
      pointRead: (i) => JSON.parse(get.get(ids[(i * 7919) % ids.length]!)!) as unknown,
      rangeScan: (i) => range.all((i * 7919) % (ROWS - 100)).map((v) => JSON.parse(v) as unknown),
      insert: (i) => {
        const doc = makeDocument(10001, ROWS + i);
        db.exec('BEGIN');
        insert.run(doc._id, doc.k, JSON.stringify(doc));
        db.exec('COMMIT');
      },
    },
    close: () => db.close(),
  };
}

async function rawPostgres(
  url: string,
  schema: string,
): Promise<{ ops: Operations; close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 10, options: `-c search_path=${schema}` });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(
    'CREATE TABLE items (id text PRIMARY KEY, k double precision NOT NULL, value text NOT NULL)',
  );
  await pool.query('CREATE INDEX items_k ON items (k)');
  const docs = Array.from({ length: ROWS }, (_, i) => makeDocument(10001, i));
  await pool.query('INSERT INTO items SELECT * FROM unnest($1::text[], $2::float8[], $3::text[])', [
    docs.map((d) => d._id),
    docs.map((d) => d.k),
    docs.map((d) => JSON.stringify(d)),
  ]);
  const ids = docs.map((d) => d._id);
  return {
    ops: {
      pointRead: async (i) => {
        const { rows } = await pool.query<{ value: string }>({
          name: 'get',
          text: 'SELECT value FROM items WHERE id = $1',
          values: [ids[(i * 7919) % ids.length]],
        });
        return JSON.parse(rows[0]!.value) as unknown;
      },
      rangeScan: async (i) => {
        const { rows } = await pool.query<{ value: string }>({
          name: 'range',
          text: 'SELECT value FROM items WHERE k >= $1 ORDER BY k LIMIT 100',
          values: [(i * 7919) % (ROWS - 100)],
        });
        return rows.map((row) => JSON.parse(row.value) as unknown);
      },
      insert: async (i) => {
        const doc = makeDocument(10001, ROWS + i);
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await client.query({
            name: 'insert',
            text: 'INSERT INTO items (id, k, value) VALUES ($1, $2, $3)',
            values: [doc._id, doc.k, JSON.stringify(doc)],
          });
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      },
    },
    close: async () => {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
      await pool.end();
    },
  };
}

async function compare(
  driver: string,
  concurrency: number,
  sleigh: Operations,
  raw: Operations,
): Promise<Row[]> {
  const rows: Row[] = [];
  const cases: Array<[string, keyof Operations]> = [
    ['point read (get by id)', 'pointRead'],
    ['index range scan, 100 rows', 'rangeScan'],
    ['insert transaction, 1 document', 'insert'],
  ];
  for (const [label, key] of cases) {
    const ours = await throughput(sleigh[key], { concurrency });
    const theirs = await throughput(raw[key], { concurrency });
    rows.push({
      driver,
      operation: label,
      'in flight': concurrency,
      'sleigh ops/s': ours.opsPerSecond,
      'raw ops/s': theirs.opsPerSecond,
      ratio: ours.opsPerSecond / theirs.opsPerSecond,
    });
  }
  return rows;
}

export async function benchStorage(options: { tmp: string; postgresUrl: string }): Promise<Row[]> {
  const rows: Row[] = [];

  const sqlite = await openSqliteStore({ path: join(options.tmp, 'sleigh.sqlite') });
  const seeded = await seedStore(sqlite);
  const rawLite = rawSqlite(join(options.tmp, 'raw.sqlite'));
  rows.push(
    ...(await compare(
      'sqlite',
      1,
      sleighOperations(sqlite, seeded.ids, seeded.table),
      rawLite.ops,
    )),
  );
  await sqlite.close();
  rawLite.close();

  const suffix = randomBytes(4).toString('hex');
  const schema = `bench_${suffix}`;
  const postgres = await openPostgresStore({
    connectionString: options.postgresUrl,
    schema,
    maxConnections: 10,
  });
  const pgSeeded = await seedStore(postgres);
  const rawPg = await rawPostgres(options.postgresUrl, `bench_raw_${suffix}`);
  const ours = sleighOperations(postgres, pgSeeded.ids, pgSeeded.table);
  rows.push(...(await compare('postgres', 1, ours, rawPg.ops)));
  rows.push(...(await compare('postgres', 10, ours, rawPg.ops)));
  await postgres.close();
  await PostgresStore.dropSchema(options.postgresUrl, schema);
  await rawPg.close();
  return rows;
}
