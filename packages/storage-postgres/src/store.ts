/**
 * The PostgreSQL store: one schema of one database, shared by any number of Sleigh processes.
 *
 * Commit order. A write transaction takes a transaction-scoped advisory lock (the commit lock)
 * just before COMMIT, draws its timestamp, records itself in `commits`, and commits; the lock is
 * released only once the commit is visible. So timestamps increase in the order commits become
 * visible, and a snapshot that sees commit t sees every commit before t: a read transaction's
 * timestamp is simply the newest commit its snapshot contains.
 *
 *   BEGIN REPEATABLE READ + snapshot ts ─ reads, writes (pipelined)
 *     ─ [it read something: check commits since the snapshot ─ lock ─ check those since]
 *     ─ lock ─ ts ─ INSERT commits + NOTIFY ─ COMMIT ─ unlock
 *
 * A quiet commit (nothing else under way here, nothing heard since it began) sends the last
 * line with its statements, on the condition that no commit landed since its snapshot.
 *
 * Conflicts: the check fails a transaction when a commit after its snapshot wrote a key it read
 * (checkReads); PostgreSQL fails concurrent updates of one row.
 *
 * Commit listeners hear every process's commits through the commit feed (commit-feed.ts), in
 * timestamp order; unordered listeners hear this process's own at once.
 */
import {
  Catalog,
  conflict,
  keyToHex,
  StorageError,
  StorageErrorCode,
  type Commit,
  type CommitListener,
  type ProcessInfo,
  type CommitListenerOptions,
  type ReadTransaction,
  type Store,
  type WriteResult,
  type WriteTransaction,
  type WrittenKey,
} from '@sleigh/storage';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { CommitFeed, decodeWrites, notificationTail } from './commit-feed.js';
import { lockKey, migrate } from './migrations.js';
import { fitName, inOneWrite, isStaleSnapshot, quoteIdentifier, translateError } from './sql.js';
import * as sql from './statements.js';
import { PostgresTransaction } from './transaction.js';
import { ChurnVacuum } from './vacuum.js';

export interface PostgresStoreOptions {
  /** A PostgreSQL connection URL, e.g. postgres://user@host:5432/db. */
  readonly connectionString: string;
  /** The schema holding Sleigh's tables (default `sleigh`); one schema is one deployment. */
  readonly schema?: string;
  /** Most connections this process opens (default 20). */
  readonly maxConnections?: number;
  /**
   * How long commit records (timestamps and write sets, which other processes read to learn what
   * changed) are kept; older ones are trimmed in the background. Default 10 minutes.
   */
  readonly commitRetentionMs?: number;
  /**
   * Vacuum the index table once this process's commits have written this many index keys since
   * the last time, at most a tenth of the time (vacuum.ts says why). Default 20,000; 0 leaves it
   * all to autovacuum.
   */
  readonly vacuumAfterKeys?: number;
  /**
   * How long connecting may take, or waiting for a free connection, before it fails (default
   * 30 s). Without it, a server that accepts connections and never answers hangs everything.
   */
  readonly connectTimeoutMs?: number;
}

/** A transaction that saw more commits land while it ran is failed rather than checked. */
const CHECK_LIMIT = 5000;

/** Trim the commit log after this many local commits. */
const TRIM_EVERY = 1000;
/**
 * How long since another process's last commit was heard before this one's commits stop
 * waiting for their snapshot (see commit()): while others commit often, one of theirs is
 * likely to land unheard in that time, and the commit would fail rather than check.
 */
const QUIET_MS = 100;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// bigint columns arrive as strings; counts and ids we cast to integer in SQL.
function encodeWrites(writes: readonly WrittenKey[]): Buffer {
  let size = 0;
  for (const write of writes) size += 8 + write.key.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const write of writes) {
    out.writeUInt32BE(write.indexId, at);
    out.writeUInt32BE(write.key.length, at + 4);
    out.set(write.key, at + 8);
    at += 8 + write.key.length;
  }
  return out;
}

/** How a Sleigh process names its commit-feed connection, so the others can see it. */
const PROCESS_TAG = 'sleigh';

/**
 * The schema as a session name gives it, at most 16 bytes: PostgreSQL keeps 63 bytes of a
 * session's name, and a long schema name must not push the process id and start time out.
 */
function schemaTag(schema: string): string {
  return fitName(schema, 16);
}

export class PostgresStore implements Store {
  readonly driver = 'postgres' as const;
  private readonly processId = randomBytes(4).toString('hex');
  private readonly startedAt = Date.now();
  private readonly listeners = new Set<CommitListener>();
  private readonly wakeListeners = new Set<CommitListener>();
  private readonly feed: CommitFeed;
  private readonly commitLock: number;
  /** Connections still finishing a read transaction's COMMIT after the reader moved on. */
  private readonly closing = new Set<Promise<void>>();
  private closed = false;
  private commitsSinceTrim = 0;
  /** The newest commit this process made or heard of. */
  private newestSeen: bigint;
  /** When this process last heard of another's commit (performance.now()). */
  private foreignCommitAt = -Infinity;
  /** This process's write transactions under way. */
  private writing = 0;
  /** This process's transactions in their commit step. */
  private committing = 0;
  /**
   * Set when a commit on the condition that nothing was drawn since its snapshot failed (SL001),
   * cleared by the next commit that records writes. The failure means another process committed
   * unheard, or a timestamp was drawn and rolled back (its process died before COMMIT, say):
   * sequences ignore rollbacks, so that condition would fail every commit until a timestamp is
   * drawn again. Meanwhile commits check the commits since their snapshot instead.
   */
  private conditionFailed = false;
  private readonly vacuum: ChurnVacuum | null;
  /** Whether this role may vacuum the index table (asked before the first vacuum). */
  private mayVacuum: boolean | null = null;

  private constructor(
    private readonly pool: pg.Pool,
    /** Connections for commits' conflict checks, which must see past a transaction's snapshot. */
    private readonly checker: pg.Pool,
    /** The one connection for the check made holding the commit lock. */
    private readonly lockedChecker: pg.Pool,
    readonly schema: string,
    /** The catalog transactions start from, and the epoch it was loaded at. */
    private loaded: LoadedCatalog,
    private readonly retentionMs: number,
    connectionString: string,
    head: bigint,
    vacuumAfterKeys: number,
    connectTimeoutMs: number,
  ) {
    this.newestSeen = head;
    this.commitLock = lockKey(schema, 'commit');
    const log = (message: string) => console.error(`sleigh: ${message}`);
    this.vacuum =
      vacuumAfterKeys > 0
        ? new ChurnVacuum(() => this.vacuumIndexEntries(), vacuumAfterKeys, log)
        : null;
    this.feed = new CommitFeed(
      {
        connectionString,
        connectTimeoutMs,
        schema,
        applicationName: this.applicationName,
        pool,
        deliver: (commit, local) => this.deliver(commit, local),
        log,
      },
      head,
    );
  }

  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = options.schema ?? 'sleigh';
    if (!SCHEMA_NAME.test(schema)) {
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Invalid schema name "${schema}": use lower-case letters, digits and underscores`,
      );
    }
    const connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 20,
      connectionTimeoutMillis: connectTimeoutMs,
      options: `-c search_path=${schema}`,
      pipeline: true,
    });
    // An idle connection that dies (a server restart) is replaced on next use; log, don't crash.
    pool.on('error', (error) =>
      console.error(`sleigh: idle PostgreSQL connection failed: ${error.message}`),
    );
    // The pool listens for errors of idle connections only. One checked out that the server
    // ends (a restart: "terminating connection due to administrator command") would emit an
    // 'error' nobody hears, which ends the process; its next statement fails with it instead.
    // Listening from the moment a connection is made leaves no gap: the server's FATAL can
    // arrive with the connection's first answer, before whoever checked it out runs again.
    pool.on('connect', (client) => client.on('error', () => undefined));
    // Pools of their own: a check never waits for a connection behind the transactions it
    // checks, and the one made holding the commit lock never waits behind the others.
    const checkerPool = (max: number) => {
      const checker = new pg.Pool({
        connectionString: options.connectionString,
        max,
        connectionTimeoutMillis: connectTimeoutMs,
        options: `-c search_path=${schema}`,
      });
      checker.on('error', (error) =>
        console.error(`sleigh: idle PostgreSQL connection failed: ${error.message}`),
      );
      checker.on('connect', (client) => client.on('error', () => undefined));
      return checker;
    };
    const checker = checkerPool(4);
    const lockedChecker = checkerPool(1);
    try {
      const client = await pool.connect();
      try {
        await migrate(client, schema);
        const loaded = await loadCatalog(client, schema, lockKey(schema, 'commit'));
        const head = await client.query<{ ts: string }>(sql.SNAPSHOT_TS([]));
        client.release();
        const store = new PostgresStore(
          pool,
          checker,
          lockedChecker,
          schema,
          loaded,
          options.commitRetentionMs ?? 10 * 60_000,
          options.connectionString,
          BigInt(head.rows[0]!.ts),
          options.vacuumAfterKeys ?? 20_000,
          connectTimeoutMs,
        );
        await store.feed.start();
        return store;
      } catch (error) {
        client.release(true);
        throw error;
      }
    } catch (error) {
      await pool.end();
      await checker.end();
      await lockedChecker.end();
      const message = /timeout/i.test((error as Error).message)
        ? `no answer within ${connectTimeoutMs} ms (${(error as Error).message})`
        : (error as Error).message;
      throw new StorageError(
        StorageErrorCode.Unavailable,
        `Cannot open the PostgreSQL store (schema "${schema}"): ${message}`,
        { cause: error },
      );
    }
  }

  /**
   * Every process holds one commit-feed connection named `sleigh <schema tag> <id> <pid>
   * <startedAt> <host>`; the live ones are the sessions PostgreSQL lists with such a name. The
   * host is what is left of 63 bytes, so it may be cut short.
   */
  async processes(): Promise<ProcessInfo[]> {
    const tag = schemaTag(this.schema);
    const result = await this.pool.query<{ application_name: string }>(
      `SELECT application_name FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE $1`,
      [`${PROCESS_TAG} ${tag} %`],
    );
    const seen = new Map<string, ProcessInfo>();
    for (const { application_name: name } of result.rows) {
      const [, schema, id, pid, startedAt, ...host] = name.split(' ');
      if (schema !== tag || id === undefined || seen.has(id)) continue;
      seen.set(id, {
        id,
        host: host.join(' '),
        pid: Number(pid),
        startedAt: Number(startedAt),
        self: id === this.processId,
      });
    }
    return [...seen.values()].sort((a, b) => a.startedAt - b.startedAt);
  }

  /** The name of this process's commit-feed connection (PostgreSQL keeps 63 bytes of it). */
  get applicationName(): string {
    return `${PROCESS_TAG} ${schemaTag(this.schema)} ${this.processId} ${process.pid} ${this.startedAt} ${hostname()}`.slice(
      0,
      63,
    );
  }

  catalog(): Catalog {
    return this.loaded.catalog;
  }

  private async connect(): Promise<pg.PoolClient> {
    if (this.closed) throw new StorageError(StorageErrorCode.Unavailable, 'The store is closed');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw translateError(error);
    }
    return client;
  }

  async read<T>(fn: (tx: ReadTransaction) => Promise<T>): Promise<T> {
    const client = await this.connect();
    const tx = new PostgresTransaction(client, this.loaded.catalog, 'read');
    let result: T;
    try {
      result = await fn(tx);
    } catch (error) {
      tx.end();
      this.finish(client, tx.hasBegun ? 'ROLLBACK' : null);
      throw error;
    }
    tx.end();
    // The caller has its answer; the connection goes back to the pool once COMMIT is through.
    this.finish(client, tx.hasBegun ? 'COMMIT' : null);
    return result;
  }

  /** Ends a read transaction in the background and returns the connection to the pool. */
  private finish(client: pg.PoolClient, statement: string | null): void {
    if (statement === null) {
      client.release();
      return;
    }
    const done = client.query(statement).then(
      () => client.release(),
      (error: unknown) => client.release(error instanceof Error ? error : true),
    );
    this.closing.add(done);
    void done.finally(() => this.closing.delete(done));
  }

  async write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<WriteResult<T>> {
    this.writing++;
    try {
      return await this.writeOnce(fn);
    } finally {
      this.writing--;
    }
  }

  private async writeOnce<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<WriteResult<T>> {
    const client = await this.connect();
    const { catalog, epoch } = this.loaded;
    // The newest commit known here before the transaction began (see commit()).
    const seenAtStart = this.newestSeen;
    const tx = new PostgresTransaction(client, catalog, 'write');
    let broken = false;
    try {
      let value: T;
      try {
        value = await fn(tx);
        tx.end();
        // A transaction with writes learns of their failures as it commits (one round trip).
        if (tx.writes.length === 0 && !tx.catalogChanged) await tx.settle();
      } catch (error) {
        tx.end();
        if (tx.hasBegun) await client.query('ROLLBACK').catch(() => (broken = true));
        throw error;
      }
      let commit: Commit;
      let epochAfter: bigint;
      this.committing++;
      try {
        ({ commit, epoch: epochAfter } = await this.commit(tx, epoch, seenAtStart));
      } catch (error) {
        broken = StorageError.is(error, StorageErrorCode.Unavailable);
        // The catalog changed since this process loaded it: load it now, so the run again
        // writes every index's entries rather than conflicting until the feed catches up.
        if (isStaleCatalog(error)) await this.reloadCatalog().catch(() => undefined);
        // A commit that failed before its COMMIT was sent (the snapshot query of a read-only
        // write, say) leaves the transaction open: end it, or the next user of this pooled
        // connection finds an aborted transaction and fails with 25P02.
        if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
        throw error;
      } finally {
        this.committing--;
      }
      if (commit.writes.length > 0 || tx.catalogChanged) {
        if (commit.ts > this.newestSeen) this.newestSeen = commit.ts;
        if (tx.catalogChanged) this.adoptCatalog({ catalog: tx.catalog(), epoch: epochAfter });
        this.wake(commit);
        this.feed.committed(commit);
        if (++this.commitsSinceTrim >= TRIM_EVERY) this.trimCommits();
        this.vacuum?.wrote(commit.writes.length);
      }
      return { value, commit };
    } finally {
      client.release(broken);
    }
  }

  /**
   * Commits `tx`, whose catalog was loaded at `epoch`, begun when the newest commit known here
   * was `seenAtStart`; resolves with the epoch it leaves.
   */
  private async commit(
    tx: PostgresTransaction,
    epoch: bigint,
    seenAtStart: bigint,
  ): Promise<{ commit: Commit; epoch: bigint }> {
    const client = tx.client;
    if (!tx.hasBegun) {
      const { rows } = await client.query<{ ts: string }>(sql.SNAPSHOT_TS([]));
      return { commit: { ts: BigInt(rows[0]!.ts), writes: [], catalogChanged: false }, epoch };
    }
    if (tx.writes.length === 0 && !tx.catalogChanged) {
      const ts = await tx.snapshotTimestamp();
      await client.query('COMMIT').catch((error: unknown) => {
        throw translateError(error);
      });
      return { commit: { ts, writes: [], catalogChanged: false }, epoch };
    }
    // A transaction that read something commits only if nothing it read changed since its
    // snapshot. When this process knows of no commit since then, it commits on the condition
    // that none landed (checked under the lock, in the same round trip as COMMIT); otherwise
    // it checks the commits since its snapshot first.
    //
    // A quiet commit does not even wait for its snapshot's answer, nor its reads': the check
    // uses the snapshot the server has for it, so COMMIT goes out behind its statements, one
    // round trip for it all. Quiet: this process knows of no commit since the transaction
    // began, runs no other write transaction (one taking the commit lock first would fail this
    // one), and has heard from no other process for a while (QUIET_MS).
    const quiet =
      !this.conditionFailed &&
      this.writing === 1 &&
      seenAtStart === this.newestSeen &&
      performance.now() - this.foreignCommitAt > QUIET_MS;
    let expected: 'own snapshot' | bigint | null = null;
    if (quiet && tx.mayHaveRead) {
      expected = 'own snapshot';
    } else if (!quiet) {
      await tx.readsRecorded();
      const snapshot = tx.reads.empty ? null : await tx.snapshotTimestamp();
      const unchanged =
        !this.conditionFailed && snapshot === this.newestSeen && this.committing === 1;
      if (snapshot !== null && !unchanged) await this.checkReads(tx, snapshot);
      else expected = snapshot;
    }
    const writes = encodeWrites(tx.writes);
    this.feed.recordingCommit();
    try {
      const done = await this.record(tx, writes, expected, epoch);
      // A timestamp drawn and committed: the last one drawn is a commit's again.
      this.conditionFailed = false;
      return done;
    } catch (error) {
      this.feed.notCommitted();
      throw error;
    }
  }

  /**
   * Sends the commit record (on the condition `expected`, see commit()) and COMMIT, behind the
   * transaction's statements.
   */
  private async record(
    tx: PostgresTransaction,
    writes: Buffer,
    expected: 'own snapshot' | bigint | null,
    epoch: bigint,
  ): Promise<{ commit: Commit; epoch: bigint }> {
    const client = tx.client;
    const [recorded, committed] = inOneWrite(
      client,
      () =>
        [
          client.query<{ ts: string; epoch: string }>(
            sql.RECORD_COMMIT([
              this.commitLock,
              tx.catalogChanged,
              writes,
              this.feed.channel,
              this.feed.origin,
              notificationTail(tx.catalogChanged, writes),
              typeof expected === 'bigint' ? expected.toString() : null,
              epoch.toString(),
              expected === 'own snapshot',
            ]),
          ),
          client.query('COMMIT'),
        ] as const,
    );
    try {
      await tx.settle();
    } catch (error) {
      // A statement failed, so the transaction was aborted and COMMIT rolls it back; unless the
      // connection went, with COMMIT in flight: then it may have committed.
      await Promise.allSettled([recorded, committed]);
      if (StorageError.is(error, StorageErrorCode.Unavailable))
        throw translateError(error.cause, true);
      throw error;
    }
    let ts: bigint;
    let epochAfter: bigint;
    try {
      const row = (await recorded).rows[0]!;
      ts = BigInt(row.ts);
      epochAfter = BigInt(row.epoch);
    } catch (error) {
      // COMMIT of an aborted transaction rolls back; let it finish, then report the cause.
      await committed.catch(() => undefined);
      if (isStaleSnapshot(error)) this.conditionFailed = true;
      throw translateError(error);
    }
    try {
      const result = await committed;
      // PostgreSQL answers COMMIT with ROLLBACK when the transaction had already failed.
      if (result.command === 'ROLLBACK') {
        throw new StorageError(
          StorageErrorCode.Conflict,
          'The transaction was rolled back at commit',
        );
      }
    } catch (error) {
      throw translateError(error, true);
    }
    return {
      commit: { ts, writes: tx.writes, catalogChanged: tx.catalogChanged },
      epoch: epochAfter,
    };
  }

  /**
   * Fails with a conflict when a commit after the transaction's snapshot wrote a key it read, or
   * changed the catalog (optimistic concurrency control, as in Convex). So a transaction never
   * commits after one whose writes it missed, and commit order is the serial order, while
   * transactions that read and write unrelated documents both commit.
   *
   * The commits since the snapshot are read on another connection (this one's snapshot cannot
   * see them) while this one takes the commit lock; holding it, the check covers what committed
   * in between, and nothing else commits until this transaction has.
   */
  private async checkReads(tx: PostgresTransaction, snapshot: bigint): Promise<void> {
    const client = tx.client;
    // The first check and the lock go out together (the lock pipelined behind the writes), so
    // the check costs one round trip more than a commit without it, not two.
    const early = this.checkCommitsAfter(this.checker, tx, snapshot);
    const [locked, drawn] = inOneWrite(
      client,
      () =>
        [
          client.query(sql.TAKE_COMMIT_LOCK([this.commitLock])),
          client.query<{ ts: string }>(sql.LAST_DRAWN_TS([])),
        ] as const,
    );
    // Each is awaited below, perhaps after another failed first: never an unhandled rejection.
    for (const pending of [early, locked, drawn]) pending.catch(() => undefined);
    try {
      await tx.settle();
      const checked = await early;
      await locked;
      // Drawn timestamps up to this one are committed or rolled back: we hold the lock. Only
      // the lock's holder uses `lockedChecker`, so this check never waits for a connection.
      const last = BigInt((await drawn).rows[0]!.ts);
      if (last > checked) await this.checkCommitsAfter(this.lockedChecker, tx, checked);
    } catch (error) {
      await Promise.allSettled([locked, drawn]);
      throw translateError(error);
    }
  }

  /**
   * Checks the transaction's reads against the commits after `from` (itself a commit, still in
   * the log); resolves with the last commit checked.
   */
  private async checkCommitsAfter(
    checker: pg.Pool,
    tx: PostgresTransaction,
    from: bigint,
  ): Promise<bigint> {
    const { rows } = await checker.query<{
      ts: string;
      catalog_changed: boolean;
      writes: Buffer | null;
    }>(sql.COMMITS_FROM([from.toString(), CHECK_LIMIT + 1]));
    if (rows[0]?.ts !== from.toString()) {
      throw conflict(
        "The commit log was trimmed past this transaction's snapshot, so it cannot be checked for conflicts; run it again",
      );
    }
    if (rows.length > CHECK_LIMIT) {
      throw conflict(
        `More than ${CHECK_LIMIT} commits landed while this transaction ran; run it again`,
      );
    }
    for (const row of rows.slice(1)) {
      if (row.catalog_changed) {
        throw conflict(
          `A concurrent commit (ts ${row.ts}) changed tables or indexes; run the transaction again`,
        );
      }
      const hit = tx.reads.overlap(decodeWrites(row.writes ?? Buffer.alloc(0)));
      if (hit !== null) {
        throw conflict(
          `A concurrent commit (ts ${row.ts}) wrote a key this transaction read (index ${hit.indexId}, key ${keyToHex(hit.key)}); run it again`,
        );
      }
    }
    return BigInt(rows[rows.length - 1]!.ts);
  }

  /** Deletes old commit records in the background, always keeping the newest. */
  private trimCommits(): void {
    this.commitsSinceTrim = 0;
    const done = this.pool.query(sql.TRIM_COMMITS([this.retentionMs / 1000])).then(
      () => undefined,
      (error: unknown) =>
        console.error(`sleigh: trimming the commit log failed: ${(error as Error).message}`),
    );
    this.closing.add(done);
    void done.finally(() => this.closing.delete(done));
  }

  /** The feed's turn for a commit: every ordered listener, and wake-up ones for others' commits. */
  private async deliver(commit: Commit, local: boolean): Promise<void> {
    if (commit.ts > this.newestSeen) this.newestSeen = commit.ts;
    if (!local) this.foreignCommitAt = performance.now();
    // Another process created or dropped tables or indexes: read the catalog again.
    if ((commit.catalogChanged && !local) || commit.writesUnknown) await this.reloadCatalog();
    callAll(this.listeners, commit);
    if (!local) callAll(this.wakeListeners, commit);
  }

  private async reloadCatalog(): Promise<void> {
    const client = await this.connect();
    try {
      this.adoptCatalog(await loadCatalog(client, this.schema, this.commitLock));
    } finally {
      client.release();
    }
  }

  /** Takes `loaded` unless this process already has a catalog as new (loads can overtake). */
  private adoptCatalog(loaded: LoadedCatalog): void {
    if (loaded.epoch >= this.loaded.epoch) this.loaded = loaded;
  }

  private wake(commit: Commit): void {
    callAll(this.wakeListeners, commit);
  }

  onCommit(listener: CommitListener, options?: CommitListenerOptions): () => void {
    const set = options?.unordered === true ? this.wakeListeners : this.listeners;
    set.add(listener);
    return () => set.delete(listener);
  }

  whenDelivered(ts: bigint, timeoutMs = 10_000): Promise<boolean> {
    return this.feed.whenDelivered(ts, timeoutMs);
  }

  /** Vacuums the index table (vacuum.ts); resolves false when this role may not. */
  private async vacuumIndexEntries(): Promise<boolean> {
    if (this.mayVacuum === null) {
      const { rows } = await this.pool.query<{ may: boolean }>(sql.MAY_VACUUM_INDEX_ENTRIES([]));
      this.mayVacuum = rows[0]?.may === true;
    }
    if (!this.mayVacuum) return false;
    await this.pool.query('VACUUM (SKIP_LOCKED) index_entries');
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.feed.close();
    await this.vacuum?.close();
    await Promise.all(this.closing);
    await this.pool.end();
    await this.checker.end();
    await this.lockedChecker.end();
  }

  /** Drops the whole schema: every table and document of this store. For tests and tools. */
  /**
   * What the schema is: absent (opening a store creates it), a Sleigh store, or something else
   * that happens to have the name (opening a store there would add Sleigh's tables to it).
   */
  static async inspectSchema(
    connectionString: string,
    schema: string,
    connectTimeoutMs = 30_000,
  ): Promise<'absent' | 'sleigh' | 'other'> {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs });
    await client.connect();
    try {
      const { rows } = await client.query<{ schema: boolean; store: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1) AS schema,
                EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND c.relname = 'migrations') AS store`,
        [schema],
      );
      const found = rows[0];
      return found?.schema !== true ? 'absent' : found.store ? 'sleigh' : 'other';
    } finally {
      await client.end();
    }
  }

  /** Whether a Sleigh process other than this one holds a store open on the schema. */
  static async othersUsing(connectionString: string, schema: string): Promise<boolean> {
    const client = new pg.Client({ connectionString, connectionTimeoutMillis: 30_000 });
    await client.connect();
    try {
      const { rows } = await client.query<{ application_name: string }>(
        'SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1',
        [`${PROCESS_TAG} ${schemaTag(schema)} %`],
      );
      // Our own feed connection may linger in the list for a moment after it closed.
      return rows.some(({ application_name: name }) => {
        const [, named, , pid] = name.split(' ');
        return named === schemaTag(schema) && pid !== String(process.pid);
      });
    } finally {
      await client.end();
    }
  }

  static async dropSchema(connectionString: string, schema: string): Promise<void> {
    const client = new pg.Client({ connectionString });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
    } finally {
      await client.end();
    }
  }
}

function callAll(listeners: ReadonlySet<CommitListener>, commit: Commit): void {
  for (const listener of listeners) {
    try {
      listener(commit);
    } catch (error) {
      // A listener's bug must not stop the others or the feed.
      console.error('sleigh: a commit listener threw', error);
    }
  }
}

interface LoadedCatalog {
  readonly catalog: Catalog;
  /** The catalog_epoch it was loaded at, which a commit made with it must still find. */
  readonly epoch: bigint;
}

/**
 * Reads the catalog and its epoch holding the commit lock, so no catalog change is between
 * drawing its epoch and committing; at READ COMMITTED, the reads after the lock see every
 * change that drew an epoch before.
 */
async function loadCatalog(
  client: pg.PoolClient | pg.Client,
  schema: string,
  commitLock: number,
): Promise<LoadedCatalog> {
  const qs = quoteIdentifier(schema);
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await client.query(sql.TAKE_COMMIT_LOCK([commitLock]));
    // Sent together: every commit of the fleet waits while this holds the lock.
    const [tables, indexes, epoch] = await Promise.all([
      client.query<{ number: number; name: string }>(`SELECT number, name FROM ${qs}.tables`),
      client.query<{ id: number; table_number: number; name: string; fields: string[] }>(
        `SELECT id, table_number, name, fields FROM ${qs}.indexes`,
      ),
      client.query<{ epoch: string }>(
        `SELECT coalesce(pg_sequence_last_value('${qs}.catalog_epoch'), 0)::text AS epoch`,
      ),
    ]);
    await client.query('COMMIT');
    const names = new Map(tables.rows.map((t) => [t.number, t.name]));
    const catalog = new Catalog(
      tables.rows,
      indexes.rows.map((index) => ({
        id: index.id,
        table: names.get(index.table_number)!,
        name: index.name,
        fields: index.fields,
      })),
    );
    return { catalog, epoch: BigInt(epoch.rows[0]!.epoch) };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** A conflict raised because the transaction's catalog was older than the last change. */
function isStaleCatalog(error: unknown): boolean {
  return (
    StorageError.is(error, StorageErrorCode.Conflict) &&
    (error.cause as { code?: string } | undefined)?.code === 'SL002'
  );
}

export function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  return PostgresStore.open(options);
}
