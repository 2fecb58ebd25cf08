/**
 * Read and write transactions over one connection. better-sqlite3 is synchronous, so each method
 * does its work at once; they return promises only to honour the driver contract.
 *
 * A write transaction remembers the documents it got, scanned and parsed, or wrote, with their
 * rows: replacing or deleting one needs its old version (for its old index keys), and parsing it
 * again would cost as much as the write itself. What it remembers goes to the store's
 * `DocumentCache` when it commits, and the next write transactions start from there. Like the
 * PostgreSQL driver's cache, it relies on callers treating documents as values (writing a
 * changed copy, never changing one in place).
 */
import {
  checkDistinct,
  checkedIndexKey,
  BY_ID,
  type Catalog,
  diffIndexes,
  deserializeDocument,
  storedEntry,
  idKey,
  prepareDocument,
  StorageError,
  StorageErrorCode,
  type Document,
  type IndexEntry,
  type IndexInfo,
  type ScanRequest,
  type TableInfo,
  type WriteTransaction,
  type WrittenKey,
} from '@sleigh/storage';
import { MAX_KEY, MIN_KEY, toBuffer, type Connection, type DocumentRow } from './connection.js';
import type { DocumentCache, StoredRow } from './document-cache.js';

const BACKFILL_PAGE = 1000;

/** A document's entry in what a write transaction knows. */
function knownKey(table: TableInfo, id: string): string {
  return `${table.number}:${id}`;
}

/** A scanned entry that reports its document the first time it is parsed. */
class ReportingEntry implements IndexEntry {
  private reported = false;

  constructor(
    private readonly entry: IndexEntry,
    private readonly onParsed: (document: Document) => void,
  ) {}

  get document(): Document {
    const document = this.entry.document;
    if (!this.reported) {
      this.reported = true;
      this.onParsed(document);
    }
    return document;
  }

  get key(): Uint8Array {
    return this.entry.key;
  }

  json(): string {
    return this.entry.json();
  }
}

export class SqliteTransaction implements WriteTransaction {
  private ended = false;
  /** Old and new index keys of every write, in order: the commit's write set. */
  readonly writes: WrittenKey[] = [];
  catalogChanged = false;
  private savepoints = 0;
  /** What this write transaction knows of documents, by `table:id` (null: none there). */
  private known = new Map<string, StoredRow | null>();
  /**
   * Counts rollbacks of subtransactions: a row scanned inside one may be gone after it. (A batch
   * runs synchronously, so nothing is scanned inside its savepoint.)
   */
  private rollbacks = 0;

  /** `cache`: the writer's committed documents (write transactions only). */
  constructor(
    private readonly conn: Connection,
    private currentCatalog: Catalog,
    private readonly ts: bigint,
    private readonly writable: boolean,
    private readonly cache?: DocumentCache,
  ) {}

  /** What this transaction read or wrote, for the cache once it has committed. */
  knownDocuments(): ReadonlyMap<string, StoredRow | null> {
    return this.known;
  }

  end(): void {
    this.ended = true;
  }

  private check(write: boolean): void {
    if (this.ended) {
      throw new StorageError(
        StorageErrorCode.InvalidTransaction,
        'This transaction has already ended; keep its use inside the callback',
      );
    }
    if (write && !this.writable) {
      throw new StorageError(
        StorageErrorCode.InvalidTransaction,
        'Cannot write in a read transaction',
      );
    }
  }

  catalog(): Catalog {
    return this.currentCatalog;
  }

  async timestamp(): Promise<bigint> {
    this.check(false);
    return this.ts;
  }

  async getMany(table: string, ids: readonly string[]): Promise<Array<Document | null>> {
    const out: Array<Document | null> = [];
    for (const id of ids) out.push(await this.get(table, id));
    return out;
  }

  async get(table: string, id: string): Promise<Document | null> {
    this.check(false);
    const info = this.currentCatalog.requireTable(table);
    return (this.writable ? this.stored(info, id) : this.fetch(info, id))?.document ?? null;
  }

  /** A document and its row, from the database. */
  private fetch(table: TableInfo, id: string): StoredRow | null {
    const row = this.conn.getDocument(table.number, toBuffer(idKey(id)));
    return row === undefined
      ? null
      : { doc: row.doc, document: deserializeDocument(row.value), size: row.value.length };
  }

  /**
   * A document and its row, from what this write transaction knows, from the documents the last
   * commits left, or from the database.
   */
  private stored(table: TableInfo, id: string): StoredRow | null {
    const key = knownKey(table, id);
    let entry = this.known.get(key);
    if (entry === undefined) {
      entry = this.cache?.get(key);
      if (entry === undefined) entry = this.fetch(table, id);
      this.known.set(key, entry);
    }
    return entry;
  }

  private remember(table: TableInfo, id: string, entry: StoredRow | null): void {
    this.known.set(knownKey(table, id), entry);
  }

  async scan(request: ScanRequest): Promise<IndexEntry[]> {
    this.check(false);
    const table = this.currentCatalog.requireTable(request.table);
    const index = this.currentCatalog.requireIndex(request.table, request.index);
    if (!Number.isInteger(request.limit) || request.limit < 0) {
      throw new RangeError(`Scan limit must be a non-negative integer, got ${request.limit}`);
    }
    const params = {
      table: table.number,
      index: index.id,
      start: request.start === undefined ? MIN_KEY : toBuffer(request.start),
      end: request.end === undefined ? MAX_KEY : toBuffer(request.end),
      limit: request.limit,
    };
    const byId = index.name === BY_ID;
    if (!this.writable) {
      const texts = byId
        ? this.conn.scanDocuments(request.order, params)
        : this.conn.scanEntries(request.order, params);
      return texts.map((text) => storedEntry(index, text));
    }
    const rows = byId
      ? this.conn.scanDocumentRows(request.order, params)
      : this.conn.scanEntryRows(request.order, params);
    return rows.map((row) => this.reporting(table, storedEntry(index, row.value), row));
  }

  /**
   * A write transaction's scanned entry: once something parses its document, the transaction
   * knows it too, unless it has since written that document (it knows the newer version) or
   * rolled back to a savepoint (the row scanned may be gone).
   */
  private reporting(table: TableInfo, entry: IndexEntry, row: DocumentRow): IndexEntry {
    const rollbacks = this.rollbacks;
    return new ReportingEntry(entry, (document) => {
      if (this.ended || this.rollbacks !== rollbacks) return;
      const key = knownKey(table, document._id);
      if (!this.known.has(key)) {
        this.known.set(key, { doc: row.doc, document, size: row.value.length });
      }
    });
  }

  async count(table: string): Promise<number> {
    this.check(false);
    return this.conn.count(this.currentCatalog.requireTable(table).number);
  }

  async insert(table: string, document: Document): Promise<void> {
    this.check(true);
    this.insertNow(table, this.currentCatalog.requireTable(table), document);
  }

  /** Inserts a document and its index entries, synchronously. */
  private insertNow(table: string, info: TableInfo, document: Document): void {
    const serialized = prepareDocument(table, document);
    const key = toBuffer(idKey(document._id));
    const indexes = this.currentCatalog.indexes(table);
    const writes = this.writes.length;
    // Keys first: one too long to index refuses the document before anything is written.
    const { added } = diffIndexes(indexes, null, document, this.writes);
    let doc: number;
    try {
      doc = this.conn.insertDocument(info.number, key, serialized);
    } catch (error) {
      this.writes.length = writes;
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new StorageError(
          StorageErrorCode.DuplicateId,
          `Table "${table}" already has a document with _id ${document._id}`,
        );
      }
      throw error;
    }
    this.remember(info, document._id, { doc, document, size: serialized.length });
    for (const { index, key: entryKey } of added) {
      this.conn.insertEntry(index.id, toBuffer(entryKey), doc);
    }
  }

  async insertMany(table: string, documents: readonly Document[]): Promise<void> {
    this.check(true);
    checkDistinct(table, documents, 'insertMany');
    if (documents.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    // One process, no round trips: inserting one by one costs the same.
    this.batch(
      info,
      documents.map((document) => document._id),
      (i) => this.insertNow(table, info, documents[i]!),
    );
  }

  /**
   * Writes a batch one document at a time under a savepoint, so that it is all or nothing, as
   * PostgreSQL's single statement is. It all runs synchronously, so nothing else in the
   * transaction (a concurrent call of the same function) runs inside it.
   */
  private batch(info: TableInfo, ids: readonly string[], write: (i: number) => void): void {
    const db = this.conn.db;
    const writes = this.writes.length;
    const known = ids.map((id) => this.known.get(knownKey(info, id)));
    db.exec('SAVEPOINT sleigh_batch');
    try {
      for (let i = 0; i < ids.length; i++) write(i);
      db.exec('RELEASE sleigh_batch');
    } catch (error) {
      db.exec('ROLLBACK TO sleigh_batch');
      db.exec('RELEASE sleigh_batch');
      this.writes.length = writes;
      ids.forEach((id, i) => {
        const before = known[i];
        if (before === undefined) this.known.delete(knownKey(info, id));
        else this.remember(info, id, before);
      });
      throw error;
    }
  }

  /** The stored row of a document that must exist, or a NotFound error saying what was asked. */
  private existing(table: TableInfo, id: string, verb: string): { doc: number; old: Document } {
    const entry = this.stored(table, id);
    if (entry === null) {
      throw new StorageError(
        StorageErrorCode.NotFound,
        `Table "${table.name}" has no document with _id ${id} to ${verb}`,
      );
    }
    return { doc: entry.doc, old: entry.document };
  }

  async replace(table: string, document: Document): Promise<Document> {
    this.check(true);
    return this.replaceNow(table, this.currentCatalog.requireTable(table), document);
  }

  /** Replaces a document and moves its index entries, synchronously. */
  private replaceNow(table: string, info: TableInfo, document: Document): Document {
    const serialized = prepareDocument(table, document);
    const { doc, old } = this.existing(info, document._id, 'replace');
    const indexes = this.currentCatalog.indexes(table);
    // Keys first, as on insert.
    const { removed, added } = diffIndexes(indexes, old, document, this.writes);
    this.conn.updateDocument(doc, serialized);
    this.remember(info, document._id, { doc, document, size: serialized.length });
    for (const { index, key } of removed) this.conn.deleteEntry(index.id, toBuffer(key));
    for (const { index, key } of added) this.conn.insertEntry(index.id, toBuffer(key), doc);
    return old;
  }

  async replaceMany(table: string, documents: readonly Document[]): Promise<void> {
    this.check(true);
    checkDistinct(table, documents);
    if (documents.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    // One process, no round trips: replacing one by one costs the same.
    this.batch(
      info,
      documents.map((document) => document._id),
      (i) => this.replaceNow(table, info, documents[i]!),
    );
  }

  async delete(table: string, id: string): Promise<Document> {
    this.check(true);
    return this.deleteNow(table, this.currentCatalog.requireTable(table), id);
  }

  async deleteMany(table: string, ids: readonly string[]): Promise<void> {
    this.check(true);
    checkDistinct(table, ids, 'deleteMany');
    if (ids.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    this.batch(info, ids, (i) => this.deleteNow(table, info, ids[i]!));
  }

  /** Deletes a document and its index entries, synchronously. */
  private deleteNow(table: string, info: TableInfo, id: string): Document {
    const { doc, old } = this.existing(info, id, 'delete');
    const indexes = this.currentCatalog.indexes(table);
    this.conn.deleteDocument(doc);
    this.remember(info, id, null);
    for (const { index, key } of diffIndexes(indexes, old, null, this.writes).removed) {
      this.conn.deleteEntry(index.id, toBuffer(key));
    }
    return old;
  }

  async createTable(name: string, options?: { number?: number }): Promise<TableInfo> {
    this.check(true);
    const catalog = this.currentCatalog;
    const { table, indexes } = catalog.planTable(name, options?.number);
    const number = table.number;
    this.conn.insertTable(number, name);
    for (const index of indexes) this.conn.insertIndex(index.id, number, index.name, index.fields);
    this.currentCatalog = catalog.withTable(table, indexes);
    this.catalogChanged = true;
    return table;
  }

  async createIndex(table: string, name: string, fields: readonly string[]): Promise<IndexInfo> {
    this.check(true);
    const info = this.currentCatalog.requireTable(table);
    const index = this.currentCatalog.planIndex(table, name, fields);
    this.conn.insertIndex(index.id, info.number, name, index.fields);
    // Backfill in pages: better-sqlite3 cannot write while a statement is iterating.
    let after: Buffer = MIN_KEY;
    try {
      for (;;) {
        const rows = this.conn.backfillPage(info.number, after, BACKFILL_PAGE);
        for (const row of rows) {
          const key = checkedIndexKey(index, deserializeDocument(row.value), true);
          this.conn.insertEntry(index.id, toBuffer(key), row.doc);
        }
        if (rows.length < BACKFILL_PAGE) break;
        after = rows[rows.length - 1]!.id_key;
      }
    } catch (error) {
      // A document whose key is too long: the index, and the entries made so far, go away.
      this.conn.deleteIndex(index.id);
      throw error;
    }
    this.currentCatalog = this.currentCatalog.withIndex(index);
    this.catalogChanged = true;
    return index;
  }

  async dropIndex(table: string, name: string): Promise<void> {
    this.check(true);
    const index = this.currentCatalog.planDropIndex(table, name);
    this.conn.deleteIndex(index.id);
    this.currentCatalog = this.currentCatalog.withoutIndex(index.id);
    this.catalogChanged = true;
  }

  async subtransaction<T>(fn: () => Promise<T>): Promise<T> {
    this.check(true);
    const name = `sleigh_${++this.savepoints}`;
    const db = this.conn.db;
    const before = {
      writes: this.writes.length,
      catalog: this.currentCatalog,
      catalogChanged: this.catalogChanged,
      known: new Map(this.known),
    };
    db.exec(`SAVEPOINT ${name}`);
    try {
      const value = await fn();
      db.exec(`RELEASE ${name}`);
      return value;
    } catch (error) {
      db.exec(`ROLLBACK TO ${name}`);
      db.exec(`RELEASE ${name}`);
      this.rollbacks++;
      this.writes.length = before.writes;
      this.currentCatalog = before.catalog;
      this.catalogChanged = before.catalogChanged;
      this.known = before.known;
      throw error;
    } finally {
      this.savepoints--;
    }
  }
}
