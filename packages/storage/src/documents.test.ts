import { describe, expect, it } from 'vitest';
import { fieldValue } from './documents.js';

describe('fieldValue', () => {
  it("reads a document's own fields only, never what objects inherit", () => {
    const document = { _id: 'x', _creationTime: 1, a: { b: 2 }, constructor: 'mine' };
    expect(fieldValue(document, 'a.b')).toBe(2);
    expect(fieldValue(document, 'constructor')).toBe('mine');
    for (const path of ['__proto__', 'toString', 'a.__proto__', 'a.constructor', 'a.b.c']) {
      expect(fieldValue(document, path), path).toBeUndefined();
    }
  });
});
