/**
 * Reader connections and the snapshots they hold.
 *
 * Only this process writes the file, so the latest commit timestamp is known here without asking
 * SQLite. A reader connection holds a read transaction open at some timestamp; every read that
 * starts while no commit has happened since shares it, at no cost. After a commit the next read
 * opens a fresh snapshot: on an idle reader, or on a new connection when older snapshots are still
 * in use. A snapshot nobody uses is closed as soon as it is stale, or a write begins, so it never
 * holds the WAL back.
 *
 *   idle ──acquire──▶ current (ts = head, refs ≥ 0) ──commit──▶ stale ──refs = 0──▶ idle
 *                         ╰──────────a write begins while refs = 0───────────────▶ idle
 */
import { type Connection } from './connection.js';

export class Reader {
  /** Timestamp of the open read transaction, or null when none is open. */
  ts: bigint | null = null;
  refs = 0;

  constructor(readonly conn: Connection) {}

  begin(): bigint {
    this.conn.db.exec('BEGIN');
    // The first read pins the snapshot; it must happen now, before any commit can intervene.
    this.ts = this.conn.readTs();
    return this.ts;
  }

  end(): void {
    if (this.ts !== null) {
      this.conn.db.exec('COMMIT');
      this.ts = null;
    }
  }
}

export class ReaderPool {
  private current: Reader | null = null;
  private readonly idle: Reader[] = [];
  private readonly all: Reader[] = [];
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly open: () => Connection,
    private readonly maxReaders: number,
  ) {}

  /** A reader whose snapshot is at `head`, the latest commit. */
  async acquire(head: bigint): Promise<Reader> {
    for (;;) {
      const current = this.current;
      if (current !== null && current.ts === head) {
        current.refs++;
        return current;
      }
      if (current !== null && current.refs === 0) {
        current.end();
        current.begin();
        current.refs++;
        return current;
      }
      const reader = this.idle.pop() ?? this.openReader();
      if (reader !== null) {
        reader.begin();
        reader.refs++;
        this.current = reader;
        // Waiters for the same timestamp can share this snapshot now.
        this.wakeAll();
        return reader;
      }
      // Every connection holds an older snapshot still in use: wait for one to come free.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  release(reader: Reader, head: bigint): void {
    reader.refs--;
    if (reader.refs > 0) return;
    if (reader === this.current && reader.ts === head) return;
    this.retire(reader);
  }

  /**
   * Closes the current snapshot if nobody is reading it: after a commit (it is stale), and
   * before a write transaction (an open read transaction keeps SQLite from restarting the WAL,
   * and commits made meanwhile take several times longer; a later read opens a fresh one).
   */
  closeIdle(): void {
    const current = this.current;
    if (current !== null && current.refs === 0) this.retire(current);
  }

  private retire(reader: Reader): void {
    reader.end();
    if (reader === this.current) this.current = null;
    this.idle.push(reader);
    this.wakeAll();
  }

  /** Every waiter tries again: one may take the freed reader, others may share a snapshot. */
  private wakeAll(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }

  private openReader(): Reader | null {
    if (this.all.length >= this.maxReaders) return null;
    const reader = new Reader(this.open());
    this.all.push(reader);
    return reader;
  }

  close(): void {
    for (const reader of this.all) {
      try {
        reader.end();
      } finally {
        reader.conn.close();
      }
    }
    this.all.length = 0;
    this.idle.length = 0;
    this.current = null;
  }
}
