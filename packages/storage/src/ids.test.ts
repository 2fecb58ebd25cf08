import { describe, expect, it } from 'vitest';
import { derivedDocumentId, newDocumentId, tableNumberOfId } from './ids.js';

describe('document ids', () => {
  it('encode the table number and decode it back', () => {
    for (const table of [1, 7, 127, 128, 10001, 16383, 16384, 2 ** 21, 2 ** 31 - 1]) {
      const id = newDocumentId(table);
      expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]+$/);
      expect(tableNumberOfId(id)).toBe(table);
    }
    expect(newDocumentId(10001)).toHaveLength(32);
  });

  it('are unique and sort roughly by creation time within a table', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) =>
      newDocumentId(10001, 1_700_000_000_000 + i),
    );
    expect(new Set(ids).size).toBe(ids.length);
    const sorted = [...ids].sort();
    expect(sorted).toEqual(ids);
  });

  it('reject strings that are not ids: wrong alphabet, length, checksum, padding', () => {
    const id = newDocumentId(10001);
    expect(tableNumberOfId('')).toBeNull();
    expect(tableNumberOfId('hello')).toBeNull();
    expect(tableNumberOfId(id.toUpperCase())).toBeNull();
    expect(tableNumberOfId(id.slice(0, -1))).toBeNull();
    expect(tableNumberOfId(id + '0')).toBeNull();
    const flipped = id.slice(0, 10) + (id[10] === '0' ? '1' : '0') + id.slice(11);
    expect(tableNumberOfId(flipped)).toBeNull();
    expect(tableNumberOfId('i'.repeat(32))).toBeNull();
    expect(() => newDocumentId(0)).toThrow(RangeError);
  });

  it('derive one valid id per name, different for every name and table', () => {
    const id = derivedDocumentId(8, 'pool\u0000key');
    expect(derivedDocumentId(8, 'pool\u0000key')).toBe(id);
    expect(tableNumberOfId(id)).toBe(8);
    expect(derivedDocumentId(8, 'pool\u0000other')).not.toBe(id);
    expect(derivedDocumentId(9, 'pool\u0000key')).not.toBe(id);
  });
});
