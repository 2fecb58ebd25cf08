/**
 * One better-sqlite3 connection with its prepared statements. The writer and every reader hold
 * one each; reads share code, only the writer prepares the write statements.
 */
import Database from 'better-sqlite3';

export interface DocumentRow {
  id_key: Buffer;
  value: string;
}

export interface EntryRow {
  key: Buffer;
  value: string;
}

export interface ScanParams {
  table: number;
  index: number;
  start: Buffer;
  end: Buffer;
  limit: number;
}

/** An empty blob sorts before every key; 0xff after every key (keys start with a tag < 0xff). */
export const MIN_KEY = Buffer.alloc(0);
export const MAX_KEY = Buffer.from([0xff]);

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

export class Connection {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(path: string, options: { readonly: boolean; synchronous: 'normal' | 'full' }) {
    this.db = new Database(path, { readonly: options.readonly, fileMustExist: options.readonly });
    // Another connection holding the write lock (a checkpoint, or a second process) waits, not fails.
    this.db.pragma('busy_timeout = 5000');
    if (!options.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    }
    this.db.pragma('cache_size = -32000');
  }

  private prepare<P extends unknown[], R>(sql: string): Database.Statement<P, R> {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement as unknown as Database.Statement<P, R>;
  }

  readTs(): bigint {
    const row = this.prepare<[], { value: bigint }>(
      "SELECT value FROM sleigh_meta WHERE key = 'ts'",
    )
      .safeIntegers(true)
      .get();
    return row?.value ?? 0n;
  }

  writeTs(ts: bigint): void {
    this.prepare<[bigint], unknown>("UPDATE sleigh_meta SET value = ? WHERE key = 'ts'").run(ts);
  }

  getDocument(table: number, idKey: Buffer): string | undefined {
    return this.prepare<[number, Buffer], string>(
      'SELECT value FROM sleigh_documents WHERE table_number = ? AND id_key = ?',
    )
      .pluck()
      .get(table, idKey);
  }

  scanDocuments(order: 'asc' | 'desc', p: ScanParams): DocumentRow[] {
    return this.prepare<[number, Buffer, Buffer, number], DocumentRow>(
      `SELECT id_key, value FROM sleigh_documents
       WHERE table_number = ? AND id_key >= ? AND id_key < ?
       ORDER BY id_key ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`,
    ).all(p.table, p.start, p.end, p.limit);
  }

  scanEntries(order: 'asc' | 'desc', p: ScanParams): EntryRow[] {
    return this.prepare<[number, number, Buffer, Buffer, number], EntryRow>(
      `SELECT e.key AS key, d.value AS value
       FROM sleigh_index_entries e
       JOIN sleigh_documents d ON d.table_number = ? AND d.id_key = e.id_key
       WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
       ORDER BY e.key ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`,
    ).all(p.table, p.index, p.start, p.end, p.limit);
  }

  count(table: number): number {
    return this.prepare<[number], number>(
      'SELECT count(*) FROM sleigh_documents WHERE table_number = ?',
    )
      .pluck()
      .get(table)!;
  }

  insertDocument(table: number, idKey: Buffer, value: string): void {
    this.prepare<[number, Buffer, string], unknown>(
      'INSERT INTO sleigh_documents (table_number, id_key, value) VALUES (?, ?, ?)',
    ).run(table, idKey, value);
  }

  updateDocument(table: number, idKey: Buffer, value: string): void {
    this.prepare<[string, number, Buffer], unknown>(
      'UPDATE sleigh_documents SET value = ? WHERE table_number = ? AND id_key = ?',
    ).run(value, table, idKey);
  }

  deleteDocument(table: number, idKey: Buffer): void {
    this.prepare<[number, Buffer], unknown>(
      'DELETE FROM sleigh_documents WHERE table_number = ? AND id_key = ?',
    ).run(table, idKey);
  }

  insertEntry(index: number, key: Buffer, idKey: Buffer): void {
    this.prepare<[number, Buffer, Buffer], unknown>(
      'INSERT INTO sleigh_index_entries (index_id, key, id_key) VALUES (?, ?, ?)',
    ).run(index, key, idKey);
  }

  deleteEntry(index: number, key: Buffer): void {
    this.prepare<[number, Buffer], unknown>(
      'DELETE FROM sleigh_index_entries WHERE index_id = ? AND key = ?',
    ).run(index, key);
  }

  loadCatalog(): {
    tables: { number: number; name: string }[];
    indexes: { id: number; table_number: number; name: string; fields: string }[];
  } {
    return {
      tables: this.prepare<[], { number: number; name: string }>(
        'SELECT number, name FROM sleigh_tables',
      ).all(),
      indexes: this.prepare<[], { id: number; table_number: number; name: string; fields: string }>(
        'SELECT id, table_number, name, fields FROM sleigh_indexes',
      ).all(),
    };
  }

  insertTable(number: number, name: string): void {
    this.prepare<[number, string], unknown>(
      'INSERT INTO sleigh_tables (number, name) VALUES (?, ?)',
    ).run(number, name);
  }

  insertIndex(id: number, table: number, name: string, fields: readonly string[]): void {
    this.prepare<[number, number, string, string], unknown>(
      'INSERT INTO sleigh_indexes (id, table_number, name, fields) VALUES (?, ?, ?, ?)',
    ).run(id, table, name, JSON.stringify(fields));
  }

  deleteIndex(id: number): void {
    this.prepare<[number], unknown>('DELETE FROM sleigh_index_entries WHERE index_id = ?').run(id);
    this.prepare<[number], unknown>('DELETE FROM sleigh_indexes WHERE id = ?').run(id);
  }

  close(): void {
    this.db.close();
  }
}
