/**
 * The documents recent write transactions read or wrote, as they stand in the file, so the next
 * write transaction finds them without a query and a parse.
 *
 * Why: a write transaction needs a document's current version to replace it (its old index
 * keys), and often reads what an earlier transaction just read or wrote: a workpool runner
 * records the end of the jobs its previous cycle claimed, a counter is incremented again.
 * Reading and parsing it again cost about a tenth of a job's time.
 *
 * It is right only while every write to the file goes through this store's writer, which
 * serializes them: what a committed transaction knew is then what the file holds. So
 *
 * - only committed transactions are taken in (a rolled-back one taught nothing), and their
 *   savepoints have already put back what a rolled-back part knew;
 * - only write transactions use it (readers see older snapshots);
 * - before each write transaction, SQLite's data_version says whether another connection (a
 *   second process on the file) committed meanwhile: then it is all forgotten;
 * - a commit that changed the catalog forgets it all too;
 * - documents are values: nobody changes one in place (the drivers' contract already).
 *
 *   empty ──committed transaction──▶ holds what it knew (oldest dropped past its bounds)
 *     ▲                                              │
 *     ╰─── another connection committed / catalog ───╯
 */
import type { Document } from '@sleigh/storage';

/** A document with its row id (what index entries point at); null: no such document. */
export interface StoredRow {
  readonly doc: number;
  readonly document: Document;
  /** Its stored text's length: what keeping it costs, roughly. */
  readonly size: number;
}

export class RecentDocuments {
  private readonly rows = new Map<string, StoredRow | null>();
  private bytes = 0;

  /** Keeps at most `max` documents and about `maxBytes` of them (a large one is not kept). */
  constructor(
    private readonly max: number,
    private readonly maxBytes: number,
  ) {}

  /** What is known of `key` (`table:id`): a row, null (none), or undefined (not known). */
  get(key: string): StoredRow | null | undefined {
    return this.rows.get(key);
  }

  /** Takes in what a committed transaction knew. */
  absorb(known: ReadonlyMap<string, StoredRow | null>): void {
    for (const [key, row] of known) {
      // Re-inserted, so the most recent stay longest.
      this.forget(key);
      if (row !== null && row.size > this.maxBytes / 100) continue;
      this.rows.set(key, row);
      this.bytes += row?.size ?? 0;
    }
    for (const key of this.rows.keys()) {
      if (this.rows.size <= this.max && this.bytes <= this.maxBytes) break;
      this.forget(key);
    }
  }

  private forget(key: string): void {
    const row = this.rows.get(key);
    if (row === undefined) return;
    this.bytes -= row?.size ?? 0;
    this.rows.delete(key);
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}
