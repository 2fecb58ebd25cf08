/**
 * Read sets: what a query or mutation read, as intervals of index keys.
 *
 * A `get` reads one point of `by_id` (also when the document does not exist: it may appear); a
 * scan reads from its start to the last key it pulled (filters do not narrow it), or to its end
 * when it ran out. A commit invalidates a read set when it wrote a key inside one of its intervals.
 * Reading a table or index that does not exist yet makes the read set depend on the catalog.
 */
import { compareBytes, keySuccessor, type Commit } from '@sleigh/storage';

export interface KeyInterval {
  readonly indexId: number;
  /** Inclusive. */
  readonly start: Uint8Array;
  /** Exclusive. */
  readonly end: Uint8Array;
}

export class ReadSet {
  readonly intervals: KeyInterval[] = [];
  /** True when the reader found a table or index missing: creating one may change its result. */
  catalogDependent = false;

  addPoint(indexId: number, key: Uint8Array): void {
    this.intervals.push({ indexId, start: key, end: keySuccessor(key) });
  }

  addInterval(indexId: number, start: Uint8Array, end: Uint8Array): void {
    if (compareBytes(start, end) < 0) this.intervals.push({ indexId, start, end });
  }

  merge(other: ReadSet): void {
    this.intervals.push(...other.intervals);
    this.catalogDependent ||= other.catalogDependent;
  }

  /** True when `commit` wrote inside this read set. */
  invalidatedBy(commit: Commit): boolean {
    if (this.catalogDependent && commit.catalogChanged) return true;
    for (const write of commit.writes) {
      for (const interval of this.intervals) {
        if (
          interval.indexId === write.indexId &&
          compareBytes(interval.start, write.key) <= 0 &&
          compareBytes(write.key, interval.end) < 0
        ) {
          return true;
        }
      }
    }
    return false;
  }
}
