/**
 * The writer's cache of committed documents, parsed, with their row ids.
 *
 * One process owns the file and writes it through one connection, one transaction at a time, so
 * what the last commit left is known here without asking SQLite: a write transaction that reads
 * a document committed recently (a job claimed in one transaction and ended in the next) finds it
 * here instead of selecting its row and parsing its text again. Only write transactions use it:
 * a read transaction reads a snapshot that may be older than the cache.
 *
 * A transaction reads through it and writes only its own map (`SqliteTransaction.known`); the
 * store hands that map to `absorb` after COMMIT succeeds, so a rolled-back transaction leaves the
 * cache as it was. Documents are shared between transactions, so callers must treat them as
 * values (write a changed copy, never change one in place), as the PostgreSQL driver's cache
 * within a transaction already requires.
 *
 * Bounded by the stored size of what it holds; the least recently committed go first.
 */
import type { Document } from '@sleigh/storage';

/**
 * A document with its row id (what index entries point at), and the length of its stored text
 * (its size in bytes for ASCII text, which is what the cache counts).
 */
export interface StoredRow {
  readonly doc: number;
  readonly document: Document;
  readonly size: number;
}

/** What a cache entry costs beyond its stored text: the key, the map entry, the row object. */
const ENTRY_OVERHEAD = 128;

export class DocumentCache {
  /** By `table:id`; null: no such document. In order of last commit, oldest first. */
  private readonly rows = new Map<string, StoredRow | null>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): StoredRow | null | undefined {
    return this.rows.get(key);
  }

  /** What a committed transaction read or wrote, now the newest state of each document. */
  absorb(known: ReadonlyMap<string, StoredRow | null>): void {
    for (const [key, row] of known) {
      const before = this.rows.get(key);
      if (before !== undefined) {
        this.bytes -= cost(before);
        this.rows.delete(key);
      }
      this.rows.set(key, row);
      this.bytes += cost(row);
    }
    for (const [key, row] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(key);
      this.bytes -= cost(row);
    }
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}

function cost(row: StoredRow | null): number {
  return ENTRY_OVERHEAD + (row?.size ?? 0);
}
