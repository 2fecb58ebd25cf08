import { describe, expect, it } from 'vitest';
import { RecentDocuments, type StoredRow } from './recent.js';

const row = (doc: number, size: number): StoredRow => ({
  doc,
  document: { _id: `id${doc}`, _creationTime: doc },
  size,
});

describe('recent documents', () => {
  it('keeps the most recent within its count and size, and never a large document', () => {
    const recent = new RecentDocuments(3, 10_000);
    recent.absorb(
      new Map([
        ['t:1', row(1, 10)],
        ['t:2', row(2, 10)],
        ['t:3', row(3, 10)],
      ]),
    );
    // Touching 1 again makes it recent: 2 is now the oldest, and goes when 4 comes.
    recent.absorb(new Map([['t:1', row(1, 10)]]));
    recent.absorb(new Map([['t:4', null]]));
    expect(
      ['t:1', 't:2', 't:3', 't:4'].map((key) => recent.get(key)?.doc ?? recent.get(key)),
    ).toEqual([1, undefined, 3, null]);
    // A document over a hundredth of the size bound is not kept (an older version neither).
    recent.absorb(new Map([['t:3', row(3, 200)]]));
    expect(recent.get('t:3')).toBeUndefined();
    // The size bound drops the oldest until the rest fit.
    const small = new RecentDocuments(1000, 10_000);
    for (let i = 0; i < 150; i++) small.absorb(new Map([[`t:${i}`, row(i, 100)]]));
    expect(small.get('t:49')).toBeUndefined();
    expect(small.get('t:50')?.doc).toBe(50);
    expect(small.get('t:149')?.doc).toBe(149);
    small.clear();
    expect(small.get('t:19')).toBeUndefined();
  });
});
