/**
 * The storage driver contract: what the engine needs from a database, and nothing about SQL.
 *
 * Terminology
 *
 * - store: one database holding a deployment's tables (a SQLite file, or a PostgreSQL schema).
 * - table: a named collection of documents. Each table has a number, which every document id of
 *   the table encodes (ids.ts), so an id alone names its table.
 * - document: a Convex object with the system fields `_id` and `_creationTime`.
 * - index: an ordered list of field paths of one table. Every index's key fields end with
 *   `_creationTime` and `_id`, so every key is unique. `by_id` and `by_creation_time` are built in;
 *   other indexes come from the app's schema and are backfilled when created.
 * - key: the order-preserving byte encoding (keys.ts) of a document's values for an index's fields.
 * - interval: the keys `[start, end)` of one index. A scan reads one; a read set is a list of them.
 * - commit timestamp (ts): a bigint, strictly increasing from commit to commit in a store.
 * - write set: for a commit, every index key it removed or added (old and new), which is how later
 *   layers find the subscriptions a commit invalidates.
 *
 * Transactions are callbacks: `write(fn)` commits when `fn` resolves and rolls back when it
 * throws, so nothing is ever half-written. Read transactions see one snapshot; write
 * transactions are serializable and see their own writes. A write transaction that lost a race
 * fails with a StorageError whose code is `conflict`; running it again is the caller's choice.
 */
import type { Value } from 'convex/values';
import type { Catalog, IndexInfo, TableInfo } from './catalog.js';

/** A stored document: user fields plus the system fields. */
export type Document = { _id: string; _creationTime: number } & { [field: string]: Value };

export interface ScanRequest {
  readonly table: string;
  /** An index name of the table: `by_id`, `by_creation_time` or a schema index. */
  readonly index: string;
  /** Inclusive lower bound; omitted means from the first key. */
  readonly start?: Uint8Array | undefined;
  /** Exclusive upper bound; omitted means to the last key. */
  readonly end?: Uint8Array | undefined;
  readonly order: 'asc' | 'desc';
  /** At most this many entries; scans resume from the last key returned (see keySuccessor). */
  readonly limit: number;
}

/**
 * An entry of a scan. Drivers may produce the key and the parsed document lazily (see
 * `storedEntry`): most callers need the key of only the last entry, and a caller passing
 * documents on as JSON (`json()`) need never parse them.
 */
export interface IndexEntry {
  readonly key: Uint8Array;
  readonly document: Document;
  /** The document as Convex-encoded JSON text. */
  json(): string;
}

/** One index key a commit removed or added. */
export interface WrittenKey {
  readonly indexId: number;
  readonly key: Uint8Array;
}

export interface Commit {
  /** The commit's timestamp; for a transaction that wrote nothing, the snapshot it read. */
  readonly ts: bigint;
  /** Old and new keys of every index entry the commit touched, in write order. */
  readonly writes: readonly WrittenKey[];
  /** True when the commit created or dropped tables or indexes. */
  readonly catalogChanged: boolean;
  /**
   * True when this process could not learn what was written up to `ts` (it fell behind the
   * commit log's retention): listeners must assume anything may have changed.
   */
  readonly writesUnknown?: boolean;
}

export interface ReadTransaction {
  /** The catalog as of this transaction's start (plus its own changes, in a write transaction). */
  catalog(): Catalog;
  /**
   * The commit timestamp of the snapshot this transaction reads. A write transaction that asks
   * is serialized in commit order with every other that asks (see the PostgreSQL driver's notes):
   * the engine asks in every mutation.
   */
  timestamp(): Promise<bigint>;
  get(table: string, id: string): Promise<Document | null>;
  /** Many documents of one table by id, in the order asked (null where missing). */
  getMany(table: string, ids: readonly string[]): Promise<Array<Document | null>>;
  scan(request: ScanRequest): Promise<IndexEntry[]>;
  /** Number of documents in the table. */
  count(table: string): Promise<number>;
}

export interface WriteTransaction extends ReadTransaction {
  /** Inserts a document whose `_id` and `_creationTime` the caller chose. */
  insert(table: string, document: Document): Promise<void>;
  /**
   * Inserts many documents of one table at once (distinct ids), as one statement where the
   * database allows: batch enqueues. A duplicate id fails it as `insert` would.
   */
  insertMany(table: string, documents: readonly Document[]): Promise<void>;
  /** Replaces the document with the same `_id`; returns the previous version. */
  replace(table: string, document: Document): Promise<Document>;
  /**
   * Replaces many documents of one table at once (distinct ids), as one statement where the
   * database allows: the job runners' batched state changes.
   */
  replaceMany(table: string, documents: readonly Document[]): Promise<void>;
  /** Deletes the document; returns it. */
  delete(table: string, id: string): Promise<Document>;
  /**
   * Deletes many documents of one table at once (distinct ids, each of which must exist), as
   * one statement where the database allows: pool jobs that keep no result once finished. A
   * missing one fails it as `delete` would, and nothing of the batch is deleted.
   */
  deleteMany(table: string, ids: readonly string[]): Promise<void>;
  /** Creates a table with its built-in indexes. `number` is for restoring ids from an export. */
  createTable(name: string, options?: { number?: number }): Promise<TableInfo>;
  /** Creates an index on `fields` (without the implied `_creationTime`, `_id`) and backfills it. */
  createIndex(table: string, name: string, fields: readonly string[]): Promise<IndexInfo>;
  dropIndex(table: string, name: string): Promise<void>;
  /**
   * Runs `fn` as a nested transaction: when it throws, its writes (documents, catalog changes,
   * write set) are undone and the error is rethrown, and the outer transaction goes on. A
   * conflict is not undone: it dooms the whole transaction. Nested transactions of one
   * transaction must not overlap in time.
   */
  subtransaction<T>(fn: () => Promise<T>): Promise<T>;
}

export interface WriteResult<T> {
  readonly value: T;
  readonly commit: Commit;
}

export type CommitListener = (commit: Commit) => void;

export interface CommitListenerOptions {
  /**
   * Wake-up listeners: this process's commits arrive the moment they commit, other processes'
   * as soon as they are heard of, in no guaranteed order. The default delivers every commit in
   * timestamp order, which is what consistent snapshots need.
   */
  readonly unordered?: boolean;
}

/** A Sleigh process using the store (the dashboard's list of servers). */
export interface ProcessInfo {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  /** This process. */
  readonly self: boolean;
}

export interface Store {
  /** Which driver this is, for logs and for the rare test that must know. */
  readonly driver: 'sqlite' | 'postgres';
  /** The processes using this store now: this one, and on a shared database the others. */
  processes(): Promise<ProcessInfo[]>;
  /** The catalog as of the latest commit this process knows of. */
  catalog(): Catalog;
  /** Runs `fn` against one consistent snapshot. */
  read<T>(fn: (tx: ReadTransaction) => Promise<T>): Promise<T>;
  /** Runs `fn` in a serializable transaction and commits it when `fn` resolves. */
  write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<WriteResult<T>>;
  /**
   * Calls `listener` after each commit of the store, including those of other processes sharing
   * the database, in timestamp order (unless `unordered`). Returns an unsubscribe.
   */
  onCommit(listener: CommitListener, options?: CommitListenerOptions): () => void;
  /**
   * Resolves true once every commit up to `ts` has been delivered to the (ordered) listeners,
   * or false after `timeoutMs` (default 10 s). With one process per database that is at once;
   * with several, it waits to hear of the others'.
   */
  whenDelivered(ts: bigint, timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}
