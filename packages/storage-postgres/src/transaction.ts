/**
 * Read and write transactions on one pooled connection in pipeline mode.
 *
 * Statements go out without waiting for the previous answer, so a transaction costs about one
 * round trip per awaited read rather than one per statement:
 *
 * - BEGIN is sent lazily, together with the transaction's first statement.
 * - Writes are sent and not awaited; the connection keeps their order, so a later read sees
 *   them. Their failures are collected and fail the commit (a failed statement aborts the
 *   PostgreSQL transaction anyway).
 * - The documents a transaction reads or writes are cached, so replace and delete know the old
 *   version (for its old index keys) without another round trip.
 *
 * Both kinds run at REPEATABLE READ (one snapshot, whose timestamp is read with the first
 * statement). A write transaction records what it read (`reads`); at commit the store checks it
 * against the commits after its snapshot (store.ts), and PostgreSQL fails concurrent updates of
 * one row on its own.
 */
import {
  checkDistinct,
  checkedIndexKey,
  BY_ID,
  diffIndexes,
  deserializeDocument,
  documentEntry,
  storedEntry,
  conflict,
  idKey,
  keySuccessor,
  prepareDocument,
  ReadIntervals,
  StorageError,
  StorageErrorCode,
  type Catalog,
  type Document,
  type IndexEntry,
  type IndexInfo,
  type ScanRequest,
  type TableInfo,
  type WriteTransaction,
  type WrittenKey,
} from '@sleigh/storage';
import type pg from 'pg';
import { inOneWrite, translateError } from './sql.js';
import * as sql from './statements.js';

const MIN_KEY = Buffer.alloc(0);
const MAX_KEY = Buffer.from([0xff]);
const BACKFILL_PAGE = 1000;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * A unique violation of an insert, as DuplicateId naming the document (PostgreSQL's detail
 * names the id key); any other error as it is. `foundAbsent`: ids this transaction had read and
 * not found; another transaction inserted such an id after this one's snapshot, a conflict (a
 * derived id, such as a unique job key's, inserted by two at once).
 */
function duplicateId(
  error: unknown,
  table: string,
  documents: readonly Document[],
  foundAbsent: ReadonlySet<string>,
): unknown {
  const { code, detail } = error as { code?: string; detail?: string };
  if (code !== '23505') return error;
  const hex = /\\x([0-9a-f]+)/.exec(detail ?? '')?.[1];
  const document =
    documents.length === 1
      ? documents[0]
      : documents.find((doc) => Buffer.from(idKey(doc._id)).toString('hex') === hex);
  if (document !== undefined && foundAbsent.has(document._id)) {
    return conflict(
      `Table "${table}": another transaction inserted _id ${document._id} after this one read it`,
      error,
    );
  }
  const which = document === undefined ? 'one of these _ids' : `_id ${document._id}`;
  return new StorageError(
    StorageErrorCode.DuplicateId,
    `Table "${table}" already has a document with ${which}`,
  );
}

export class PostgresTransaction implements WriteTransaction {
  private begun = false;
  private ended = false;
  private snapshot: Promise<bigint> | null = null;
  private readonly inFlight: Promise<void>[] = [];
  /** Scans whose answers (and so their reads' extent) have not come back yet. */
  private readonly scansInFlight = new Set<Promise<unknown>>();
  private failure: unknown = null;
  private readonly cache = new Map<string, Document | null>();
  readonly writes: WrittenKey[] = [];
  /** What a write transaction read, for the commit's conflict check (empty in a read one). */
  readonly reads = new ReadIntervals();
  catalogChanged = false;
  private savepoints = 0;

  constructor(
    readonly client: pg.PoolClient,
    private currentCatalog: Catalog,
    private readonly mode: 'read' | 'write',
  ) {}

  get hasBegun(): boolean {
    return this.begun;
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
    if (write && this.mode !== 'write') {
      throw new StorageError(
        StorageErrorCode.InvalidTransaction,
        'Cannot write in a read transaction',
      );
    }
  }

  private begin(): void {
    if (this.begun) return;
    this.begun = true;
    this.send(
      this.mode === 'read'
        ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'
        : 'BEGIN ISOLATION LEVEL REPEATABLE READ',
    );
    // Pin the snapshot and learn its timestamp in the same round trip: a reader may ask for it,
    // and a writer's commit checks what it read against the commits after it.
    this.snapshot = this.snapshotQuery();
    // Nobody may ask for it; a failure also surfaces through the statement that follows.
    this.snapshot.catch(() => undefined);
  }

  private async snapshotQuery(): Promise<bigint> {
    const { rows } = await this.query<{ ts: string }>(sql.SNAPSHOT_TS([]));
    return BigInt(rows[0]!.ts);
  }

  /**
   * Issues the statement `issue` sends, beginning the transaction first if it has not begun:
   * BEGIN, the snapshot's query and this first statement then leave in one write.
   */
  private withBegin<T>(issue: () => T): T {
    if (this.begun) return issue();
    return inOneWrite(this.client, () => {
      this.begin();
      return issue();
    });
  }

  /** Sends a statement nobody waits for now; its failure fails the transaction. */
  send(statement: string | pg.QueryConfig, onError?: (error: unknown) => unknown): void {
    this.inFlight.push(
      this.withBegin(() => this.client.query(statement)).then(
        () => undefined,
        (error: unknown) => {
          this.failure ??= onError === undefined ? error : onError(error);
        },
      ),
    );
  }

  private async query<R extends pg.QueryResultRow>(
    statement: pg.QueryConfig,
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.withBegin(() => this.client.query<R>(statement));
    } catch (error) {
      // After an earlier failure PostgreSQL refuses everything with 25P02; report the cause.
      if (this.failure !== null) throw translateError(this.failure);
      this.failure = error;
      throw translateError(error);
    }
  }

  /** Waits for every statement sent; throws the first failure. */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
    this.inFlight.length = 0;
    if (this.failure !== null) throw translateError(this.failure);
  }

  catalog(): Catalog {
    return this.currentCatalog;
  }

  async timestamp(): Promise<bigint> {
    this.check(false);
    return this.snapshotTimestamp();
  }

  /** The snapshot's timestamp, also after the callback ended (for a commit that wrote nothing). */
  snapshotTimestamp(): Promise<bigint> {
    // BEGIN sends the snapshot's query with it (once: asking first must not send a second).
    if (!this.begun) inOneWrite(this.client, () => this.begin());
    return this.snapshot!;
  }

  private cacheKey(table: TableInfo, id: string): string {
    return `${table.number}:${id}`;
  }

  /** Of these documents, the ids this transaction read and did not find. */
  private foundAbsent(table: TableInfo, documents: readonly Document[]): Set<string> {
    const absent = new Set<string>();
    for (const { _id } of documents) {
      if (this.cache.get(this.cacheKey(table, _id)) === null) absent.add(_id);
    }
    return absent;
  }

  /** Records a read of documents by their id keys (found or not: one may appear). */
  private readIds(table: string, keys: readonly Uint8Array[]): void {
    if (this.mode !== 'write') return;
    const byId = this.currentCatalog.requireIndex(table, BY_ID).id;
    for (const key of keys) this.reads.addPoint(byId, key);
  }

  async getMany(table: string, ids: readonly string[]): Promise<Array<Document | null>> {
    this.check(false);
    const info = this.currentCatalog.requireTable(table);
    const keys = ids.map((id) => idKey(id));
    this.readIds(table, keys);
    const missing = ids.flatMap((id, i) => (this.cache.has(this.cacheKey(info, id)) ? [] : [i]));
    const found = new Map<string, Document>();
    if (missing.length > 0) {
      // One statement for all of them, not one per document.
      const { rows } = await this.query<{ value: string }>(
        sql.GET_DOCUMENTS([info.number, missing.map((i) => toBuffer(keys[i]!))]),
      );
      for (const row of rows) {
        const document = deserializeDocument(row.value);
        found.set(document._id, document);
      }
      if (this.mode === 'write') {
        for (const i of missing) {
          const id = ids[i]!;
          this.cache.set(this.cacheKey(info, id), found.get(id) ?? null);
        }
      }
    }
    return ids.map((id) => {
      const cached = this.cache.get(this.cacheKey(info, id));
      return cached !== undefined ? cached : (found.get(id) ?? null);
    });
  }

  async get(table: string, id: string): Promise<Document | null> {
    this.check(false);
    const info = this.currentCatalog.requireTable(table);
    this.readIds(table, [idKey(id)]);
    return this.load(info, id);
  }

  private async load(table: TableInfo, id: string): Promise<Document | null> {
    const key = this.cacheKey(table, id);
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const { rows } = await this.query<{ value: string }>(
      sql.GET_DOCUMENT([table.number, toBuffer(idKey(id))]),
    );
    const document = rows.length === 0 ? null : deserializeDocument(rows[0]!.value);
    if (this.mode === 'write') this.cache.set(key, document);
    return document;
  }

  /** Whether the transaction read anything, or may have (a scan whose answer is still out). */
  get mayHaveRead(): boolean {
    return !this.reads.empty || this.scansInFlight.size > 0;
  }

  /**
   * Waits for scans still in flight, so that `reads` holds every read of the transaction (a
   * caller may send a scan and not wait for it before its callback ends).
   */
  async readsRecorded(): Promise<void> {
    while (this.scansInFlight.size > 0) await Promise.allSettled([...this.scansInFlight]);
  }

  scan(request: ScanRequest): Promise<IndexEntry[]> {
    const scanning = this.runScan(request);
    if (this.mode === 'write') {
      this.scansInFlight.add(scanning);
      void scanning.finally(() => this.scansInFlight.delete(scanning)).catch(() => undefined);
    }
    return scanning;
  }

  private async runScan(request: ScanRequest): Promise<IndexEntry[]> {
    this.check(false);
    const table = this.currentCatalog.requireTable(request.table);
    const index = this.currentCatalog.requireIndex(request.table, request.index);
    if (!Number.isInteger(request.limit) || request.limit < 0) {
      throw new RangeError(`Scan limit must be a non-negative integer, got ${request.limit}`);
    }
    const start = request.start === undefined ? MIN_KEY : toBuffer(request.start);
    const end = request.end === undefined ? MAX_KEY : toBuffer(request.end);
    const statement =
      index.name === BY_ID
        ? sql.SCAN_DOCUMENTS[request.order]([table.number, start, end, request.limit])
        : sql.SCAN_ENTRIES[request.order]([index.id, start, end, request.limit]);
    const { rows } = await this.query<{ value: string }>(statement);
    if (this.mode === 'read') return rows.map((row) => storedEntry(index, row.value));
    // A write transaction caches what it read, for later replaces and deletes.
    const entries = rows.map((row) => {
      const document = deserializeDocument(row.value);
      this.cache.set(this.cacheKey(table, document._id), document);
      return documentEntry(index, document);
    });
    // It read up to the last key it pulled, or the whole range when it ran out.
    const last = entries.length === request.limit ? entries[entries.length - 1] : undefined;
    if (request.limit === 0) return entries;
    if (last === undefined) this.reads.addRange(index.id, start, end);
    else if (request.order === 'asc') this.reads.addRange(index.id, start, keySuccessor(last.key));
    else this.reads.addRange(index.id, last.key, end);
    return entries;
  }

  /** Records a read of a whole table (a count, or an index's backfill). */
  private readTable(table: string): void {
    if (this.mode !== 'write') return;
    this.reads.addRange(this.currentCatalog.requireIndex(table, BY_ID).id, MIN_KEY, MAX_KEY);
  }

  async count(table: string): Promise<number> {
    this.check(false);
    const info = this.currentCatalog.requireTable(table);
    this.readTable(table);
    const { rows } = await this.query<{ n: number }>(sql.COUNT([info.number]));
    return rows[0]!.n;
  }

  async insert(table: string, document: Document): Promise<void> {
    this.check(true);
    const info = this.currentCatalog.requireTable(table);
    const serialized = prepareDocument(table, document);
    const absent = this.foundAbsent(info, [document]);
    const { added } = diffIndexes(this.currentCatalog.indexes(table), null, document, this.writes);
    this.send(
      sql.INSERT_DOCUMENT([
        info.number,
        toBuffer(idKey(document._id)),
        serialized,
        added.map((entry) => entry.index.id),
        added.map((entry) => toBuffer(entry.key)),
      ]),
      (error) => duplicateId(error, table, [document], absent),
    );
    this.cache.set(this.cacheKey(info, document._id), document);
  }

  async insertMany(table: string, documents: readonly Document[]): Promise<void> {
    this.check(true);
    checkDistinct(table, documents, 'insertMany');
    if (documents.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    // Checked and serialized before anything is sent: a bad document sends nothing.
    const serialized = documents.map((document) => prepareDocument(table, document));
    const absent = this.foundAbsent(info, documents);
    const { idKeys, added } = this.entryChanges(info, documents, null);
    this.send(
      sql.INSERT_DOCUMENTS([info.number, idKeys, JSON.stringify(serialized), ...added]),
      (error) => duplicateId(error, table, documents, absent),
    );
  }

  /** The current version of a document that must exist, or NotFound saying what was asked. */
  private async existing(table: TableInfo, id: string, verb: string): Promise<Document> {
    const old = await this.load(table, id);
    if (old === null) {
      throw new StorageError(
        StorageErrorCode.NotFound,
        `Table "${table.name}" has no document with _id ${id} to ${verb}`,
      );
    }
    return old;
  }

  async replace(table: string, document: Document): Promise<Document> {
    this.check(true);
    const info = this.currentCatalog.requireTable(table);
    const serialized = prepareDocument(table, document);
    const old = await this.existing(info, document._id, 'replace');
    const { removed, added } = diffIndexes(
      this.currentCatalog.indexes(table),
      old,
      document,
      this.writes,
    );
    // Entries move in pairs: an index whose key changed loses the old key and gains the new one.
    this.send(
      sql.REPLACE_DOCUMENT([
        info.number,
        toBuffer(idKey(document._id)),
        serialized,
        removed.map((entry) => entry.index.id),
        removed.map((entry) => toBuffer(entry.key)),
        added.map((entry) => toBuffer(entry.key)),
      ]),
    );
    this.cache.set(this.cacheKey(info, document._id), document);
    return old;
  }

  async replaceMany(table: string, documents: readonly Document[]): Promise<void> {
    this.check(true);
    checkDistinct(table, documents);
    if (documents.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    const serialized = documents.map((document) => prepareDocument(table, document));
    // The old versions, fetched together (most are in the cache already).
    const olds = await Promise.all(
      documents.map((document) => this.existing(info, document._id, 'replace')),
    );
    const { idKeys, removed, added } = this.entryChanges(info, documents, olds);
    this.send(
      sql.REPLACE_DOCUMENTS([
        info.number,
        idKeys,
        // One JSON array rather than a text[]: pg escapes array elements in JavaScript, six
        // times slower than JSON.stringify for documents full of quotes.
        JSON.stringify(serialized),
        ...removed,
        ...added,
      ]),
    );
  }

  /**
   * The index entries a batch of writes moves, as the bulk statements take them: entries
   * removed (index ids, keys) and added (index ids, keys, the id key of each one's document).
   * Records them in the write set and caches the documents as written. `olds` is null for
   * inserts.
   */
  private entryChanges(
    info: TableInfo,
    documents: readonly Document[],
    olds: readonly Document[] | null,
  ): {
    idKeys: Buffer[];
    removed: [indexIds: number[], keys: Buffer[]];
    added: [indexIds: number[], keys: Buffer[], owners: Buffer[]];
  } {
    const indexes = this.currentCatalog.indexes(info.name);
    const idKeys = documents.map((document) => toBuffer(idKey(document._id)));
    const removed: [number[], Buffer[]] = [[], []];
    const added: [number[], Buffer[], Buffer[]] = [[], [], []];
    // Every document's keys are checked before the batch records anything: a document whose
    // key is too long refuses the whole batch, which leaves no trace.
    const writes: WrittenKey[] = [];
    const changes = documents.map((document, i) =>
      diffIndexes(indexes, olds?.[i] ?? null, document, writes),
    );
    changes.forEach(({ removed: gone, added: made }, i) => {
      for (const entry of gone) {
        removed[0].push(entry.index.id);
        removed[1].push(toBuffer(entry.key));
      }
      for (const entry of made) {
        added[0].push(entry.index.id);
        added[1].push(toBuffer(entry.key));
        added[2].push(idKeys[i]!);
      }
      this.cache.set(this.cacheKey(info, documents[i]!._id), documents[i]!);
    });
    for (const write of writes) this.writes.push(write);
    return { idKeys, removed, added };
  }

  async delete(table: string, id: string): Promise<Document> {
    this.check(true);
    const info = this.currentCatalog.requireTable(table);
    const old = await this.existing(info, id, 'delete');
    const { removed } = diffIndexes(this.currentCatalog.indexes(table), old, null, this.writes);
    this.send(
      sql.DELETE_DOCUMENT([
        info.number,
        toBuffer(idKey(id)),
        removed.map((entry) => entry.index.id),
        removed.map((entry) => toBuffer(entry.key)),
      ]),
    );
    this.cache.set(this.cacheKey(info, id), null);
    return old;
  }

  async deleteMany(table: string, ids: readonly string[]): Promise<void> {
    this.check(true);
    checkDistinct(table, ids, 'deleteMany');
    if (ids.length === 0) return;
    const info = this.currentCatalog.requireTable(table);
    // The old versions, fetched together (most are in the cache already): their index keys.
    const olds = await Promise.all(ids.map((id) => this.existing(info, id, 'delete')));
    const indexes = this.currentCatalog.indexes(table);
    const indexIds: number[] = [];
    const keys: Buffer[] = [];
    for (const old of olds) {
      for (const entry of diffIndexes(indexes, old, null, this.writes).removed) {
        indexIds.push(entry.index.id);
        keys.push(toBuffer(entry.key));
      }
    }
    this.send(
      sql.DELETE_DOCUMENTS([info.number, ids.map((id) => toBuffer(idKey(id))), indexIds, keys]),
    );
    for (const id of ids) this.cache.set(this.cacheKey(info, id), null);
  }

  async createTable(name: string, options?: { number?: number }): Promise<TableInfo> {
    this.check(true);
    const { table, indexes } = this.currentCatalog.planTable(name, options?.number);
    this.send(sql.INSERT_TABLE([table.number, table.name]));
    for (const index of indexes) {
      this.send(
        sql.INSERT_INDEX([index.id, table.number, index.name, JSON.stringify(index.fields)]),
      );
    }
    await this.settle();
    this.currentCatalog = this.currentCatalog.withTable(table, indexes);
    this.catalogChanged = true;
    return table;
  }

  async createIndex(table: string, name: string, fields: readonly string[]): Promise<IndexInfo> {
    this.check(true);
    const info = this.currentCatalog.requireTable(table);
    const index = this.currentCatalog.planIndex(table, name, fields);
    this.readTable(table);
    this.send(sql.INSERT_INDEX([index.id, info.number, name, JSON.stringify(index.fields)]));
    let after: Buffer = MIN_KEY;
    for (;;) {
      const { rows } = await this.query<{ doc: string; id_key: Buffer; value: string }>(
        sql.BACKFILL_PAGE([info.number, after, BACKFILL_PAGE]),
      );
      let keys: Buffer[];
      try {
        keys = rows.map((row) =>
          toBuffer(checkedIndexKey(index, deserializeDocument(row.value), true)),
        );
      } catch (error) {
        // A document whose key is too long: the index, and the pages sent so far, go away.
        this.send(sql.DELETE_INDEX_ENTRIES([index.id]));
        this.send(sql.DELETE_INDEX([index.id]));
        throw error;
      }
      if (rows.length > 0) {
        this.send(sql.INSERT_ENTRIES([rows.map(() => index.id), keys, rows.map((row) => row.doc)]));
      }
      if (rows.length < BACKFILL_PAGE) break;
      after = rows[rows.length - 1]!.id_key;
    }
    await this.settle();
    this.currentCatalog = this.currentCatalog.withIndex(index);
    this.catalogChanged = true;
    return index;
  }

  async dropIndex(table: string, name: string): Promise<void> {
    this.check(true);
    const index = this.currentCatalog.planDropIndex(table, name);
    this.send(sql.DELETE_INDEX_ENTRIES([index.id]));
    this.send(sql.DELETE_INDEX([index.id]));
    await this.settle();
    this.currentCatalog = this.currentCatalog.withoutIndex(index.id);
    this.catalogChanged = true;
  }

  async subtransaction<T>(fn: () => Promise<T>): Promise<T> {
    this.check(true);
    const name = `sleigh_${++this.savepoints}`;
    const before = {
      writes: this.writes.length,
      catalog: this.currentCatalog,
      catalogChanged: this.catalogChanged,
      cache: new Map(this.cache),
      failure: this.failure,
    };
    this.send(`SAVEPOINT ${name}`);
    try {
      const value = await fn();
      // A write of the nested transaction may still fail; that fails the nested transaction.
      await this.settle();
      this.send(`RELEASE SAVEPOINT ${name}`);
      return value;
    } catch (error) {
      await Promise.all(this.inFlight);
      this.inFlight.length = 0;
      const cause = this.failure === null ? null : translateError(this.failure);
      // A conflict dooms the whole transaction; anything else is undone to the savepoint.
      if (StorageError.is(cause, StorageErrorCode.Conflict)) throw cause;
      this.failure = before.failure;
      this.send(`ROLLBACK TO SAVEPOINT ${name}`);
      this.send(`RELEASE SAVEPOINT ${name}`);
      this.writes.length = before.writes;
      this.currentCatalog = before.catalog;
      this.catalogChanged = before.catalogChanged;
      this.cache.clear();
      for (const [key, value] of before.cache) this.cache.set(key, value);
      throw error;
    } finally {
      this.savepoints--;
    }
  }
}
