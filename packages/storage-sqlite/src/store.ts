/**
 * The embedded SQLite store: one file in WAL mode, one writer connection, a few readers.
 *
 * Write transactions run one at a time on the writer (BEGIN IMMEDIATE … COMMIT), queued in
 * arrival order: SQLite has a single writer anyway, and serial execution is trivially
 * serializable, so a write transaction never fails with a conflict here. Reads run on reader
 * connections against WAL snapshots (readers.ts) and never wait for the writer.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  Catalog,
  StorageError,
  StorageErrorCode,
  type Commit,
  type CommitListener,
  type ProcessInfo,
  type ReadTransaction,
  type Store,
  type WriteResult,
  type WriteTransaction,
} from '@sleigh/storage';
import { Connection } from './connection.js';
import { DocumentCache } from './document-cache.js';
import { migrate } from './migrations.js';
import { ReaderPool } from './readers.js';
import { SqliteTransaction } from './transaction.js';

export interface SqliteStoreOptions {
  /** The database file; created if missing. Its directory must exist. */
  readonly path: string;
  /**
   * `normal` (the default): a commit survives a crash of the process, and the database is never
   * corrupted, but a power loss may lose the last commits. `full`: a commit survives power loss
   * too, at the cost of an fsync per commit.
   */
  readonly synchronous?: 'normal' | 'full';
  /** Most reader connections open at once (default 4). */
  readonly maxReaders?: number;
  /**
   * Bytes of stored documents the writer keeps parsed after they commit (default 1 MiB; 0: none),
   * so that a write transaction reading what a recent one wrote need not read and parse it again.
   */
  readonly documentCacheBytes?: number;
}

/** A FIFO lock: write transactions run one after another, in the order they asked. */
class WriteQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** Enough for a pool's claimed batch; 4 MiB was no faster and peaked 30–50 MB higher (README). */
const DEFAULT_CACHE_BYTES = 1024 * 1024;

function nextTimestamp(previous: bigint): bigint {
  const now = BigInt(Date.now()) * 1_000_000n;
  return now > previous ? now : previous + 1n;
}

export class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  private readonly self: ProcessInfo = {
    id: randomBytes(4).toString('hex'),
    host: hostname(),
    pid: process.pid,
    startedAt: Date.now(),
    self: true,
  };
  private readonly writer: Connection;
  private readonly readers: ReaderPool;
  private readonly queue = new WriteQueue();
  private readonly cache: DocumentCache | undefined;
  private readonly listeners = new Set<CommitListener>();
  private currentCatalog: Catalog;
  private head: bigint;
  private closed = false;

  private constructor(options: SqliteStoreOptions) {
    const synchronous = options.synchronous ?? 'normal';
    this.writer = new Connection(options.path, { readonly: false, synchronous });
    try {
      migrate(this.writer.db);
      this.head = this.writer.readTs();
      this.currentCatalog = loadCatalog(this.writer);
    } catch (error) {
      this.writer.close();
      throw error;
    }
    const cacheBytes = options.documentCacheBytes ?? DEFAULT_CACHE_BYTES;
    this.cache = cacheBytes > 0 ? new DocumentCache(cacheBytes) : undefined;
    this.readers = new ReaderPool(
      () => new Connection(options.path, { readonly: true, synchronous }),
      options.maxReaders ?? 4,
    );
  }

  static open(options: SqliteStoreOptions): Promise<SqliteStore> {
    try {
      return Promise.resolve(new SqliteStore(options));
    } catch (error) {
      return Promise.reject(
        new StorageError(
          StorageErrorCode.Unavailable,
          `Cannot open SQLite database at ${options.path}: ${(error as Error).message}`,
          { cause: error },
        ),
      );
    }
  }

  /** A SQLite file is served by one process (its job runners count on it): this one. */
  processes(): Promise<ProcessInfo[]> {
    return Promise.resolve([this.self]);
  }

  catalog(): Catalog {
    return this.currentCatalog;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError(StorageErrorCode.Unavailable, 'The store is closed');
  }

  async read<T>(fn: (tx: ReadTransaction) => Promise<T>): Promise<T> {
    this.checkOpen();
    const reader = await this.readers.acquire(this.head);
    const tx = new SqliteTransaction(reader.conn, this.currentCatalog, reader.ts!, false);
    try {
      return await fn(tx);
    } finally {
      tx.end();
      this.readers.release(reader, this.head);
    }
  }

  write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<WriteResult<T>> {
    return this.queue.run(async () => {
      this.checkOpen();
      const db = this.writer.db;
      this.readers.closeIdle();
      db.exec('BEGIN IMMEDIATE');
      const tx = new SqliteTransaction(
        this.writer,
        this.currentCatalog,
        this.head,
        true,
        this.cache,
      );
      let value: T;
      try {
        value = await fn(tx);
      } catch (error) {
        tx.end();
        db.exec('ROLLBACK');
        throw error;
      }
      tx.end();
      if (tx.writes.length === 0 && !tx.catalogChanged) {
        db.exec('COMMIT');
        this.cache?.absorb(tx.knownDocuments());
        return { value, commit: { ts: this.head, writes: [], catalogChanged: false } };
      }
      const ts = nextTimestamp(this.head);
      try {
        this.writer.writeTs(ts);
        db.exec('COMMIT');
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw new StorageError(
          StorageErrorCode.Unavailable,
          `Commit failed: ${(error as Error).message}`,
          { cause: error, retryable: true },
        );
      }
      this.head = ts;
      this.currentCatalog = tx.catalog();
      if (tx.catalogChanged) this.cache?.clear();
      else this.cache?.absorb(tx.knownDocuments());
      this.readers.closeIdle();
      const commit: Commit = { ts, writes: tx.writes, catalogChanged: tx.catalogChanged };
      this.notify(commit);
      return { value, commit };
    });
  }

  private notify(commit: Commit): void {
    for (const listener of this.listeners) {
      try {
        listener(commit);
      } catch (error) {
        // A listener's bug must not turn a durable commit into a reported failure.
        console.error('sleigh: a commit listener threw', error);
      }
    }
  }

  /**
   * One process owns the file, so every commit is delivered as it commits, in order: whatever
   * has not been delivered has not happened.
   */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  whenDelivered(ts: bigint): Promise<boolean> {
    return Promise.resolve(ts <= this.head);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued write transactions finish first.
    await this.queue.run(() => Promise.resolve());
    this.closed = true;
    this.readers.close();
    this.writer.close();
  }
}

function loadCatalog(conn: Connection): Catalog {
  const { tables, indexes } = conn.loadCatalog();
  const names = new Map(tables.map((t) => [t.number, t.name]));
  return new Catalog(
    tables,
    indexes.map((index) => ({
      id: index.id,
      table: names.get(index.table_number)!,
      name: index.name,
      fields: JSON.parse(index.fields) as string[],
    })),
  );
}

export function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  return SqliteStore.open(options);
}
