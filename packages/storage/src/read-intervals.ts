/**
 * What a write transaction read, as index-key intervals, for optimistic concurrency control: at
 * commit, a driver whose transactions run side by side (PostgreSQL) checks that no commit after
 * the transaction's snapshot wrote a key inside one of them. That is the check Convex makes, and
 * it is what makes commit order the serial order without conflicting over unrelated writes.
 *
 * Point reads (a `get`) are kept in a set per index, so checking a commit that wrote thousands
 * of keys against a transaction that read hundreds of documents stays linear.
 */
import type { WrittenKey } from './interfaces.js';
import { compareBytes } from './keys.js';

interface Range {
  /** Inclusive. */
  readonly start: Uint8Array;
  /** Exclusive. */
  readonly end: Uint8Array;
}

function pointKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export class ReadIntervals {
  private readonly points = new Map<number, Set<string>>();
  private readonly ranges = new Map<number, Range[]>();
  private size = 0;

  /** Nothing was read. */
  get empty(): boolean {
    return this.size === 0;
  }

  /** One key of an index (a document by id, found or not: it may appear). */
  addPoint(indexId: number, key: Uint8Array): void {
    let keys = this.points.get(indexId);
    if (keys === undefined) this.points.set(indexId, (keys = new Set()));
    keys.add(pointKey(key));
    this.size++;
  }

  /** The keys of an index from `start` (inclusive) to `end` (exclusive). */
  addRange(indexId: number, start: Uint8Array, end: Uint8Array): void {
    if (compareBytes(start, end) >= 0) return;
    let ranges = this.ranges.get(indexId);
    if (ranges === undefined) this.ranges.set(indexId, (ranges = []));
    ranges.push({ start, end });
    this.size++;
  }

  /** The first of `writes` inside what was read, or null when none is. */
  overlap(writes: readonly WrittenKey[]): WrittenKey | null {
    for (const write of writes) {
      if (this.points.get(write.indexId)?.has(pointKey(write.key)) === true) return write;
      const ranges = this.ranges.get(write.indexId);
      if (ranges === undefined) continue;
      for (const { start, end } of ranges) {
        if (compareBytes(start, write.key) <= 0 && compareBytes(write.key, end) < 0) return write;
      }
    }
    return null;
  }
}
