import { compareValues } from 'convex/values';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { convexValue, ORDERED_SAMPLES } from './conformance/values.js';
import { compareBytes, encodeKey, encodeValue, keySuccessor, prefixEnd } from './keys.js';
import { checkDocument } from './limits.js';

const sign = (n: number) => Math.sign(n);

describe('order-preserving key encoding', () => {
  it('orders the hand-picked samples as Convex does', () => {
    const keys = ORDERED_SAMPLES.map((v) => encodeValue(v));
    for (let i = 1; i < keys.length; i++) {
      expect(compareBytes(keys[i - 1]!, keys[i]!), `between samples ${i - 1} and ${i}`).toBe(-1);
    }
  });

  it('property: compareBytes(encode(a), encode(b)) has the sign of compareValues(a, b)', () => {
    fc.assert(
      fc.property(convexValue, convexValue, (a, b) => {
        expect(sign(compareBytes(encodeValue(a), encodeValue(b)))).toBe(sign(compareValues(a, b)));
      }),
      { numRuns: 5000 },
    );
  });

  it('property: compound keys order field by field (tuples)', () => {
    const tuple = fc.array(convexValue, { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(tuple, tuple, (a, b) => {
        const expected = sign(compareValues(a, b));
        // Arrays compare element-wise like tuples, with a shorter prefix first.
        expect(sign(compareBytes(encodeKey(a), encodeKey(b)))).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('property: equal values encode to equal bytes, and only they', () => {
    fc.assert(
      fc.property(convexValue, (a) => {
        expect(compareBytes(encodeValue(a), encodeValue(structuredClone(a)))).toBe(0);
      }),
    );
  });

  it('prefixEnd bounds every extension of a complete prefix, and nothing after it', () => {
    fc.assert(
      fc.property(convexValue, convexValue, convexValue, (a, b, c) => {
        const prefix = encodeKey([a]);
        const end = prefixEnd(prefix);
        const extended = encodeKey([a, b]);
        expect(compareBytes(prefix, extended)).toBeLessThan(0);
        expect(compareBytes(extended, end)).toBeLessThan(0);
        if (compareValues(c, a) > 0)
          expect(compareBytes(encodeKey([c, b]), end)).toBeGreaterThan(0);
      }),
    );
  });

  it('keySuccessor is the next key: greater than the key, below any other greater key', () => {
    fc.assert(
      fc.property(convexValue, convexValue, (a, b) => {
        const ka = encodeKey([a, 'id']);
        const kb = encodeKey([b, 'id']);
        const next = keySuccessor(ka);
        expect(compareBytes(next, ka)).toBe(1);
        if (compareBytes(kb, ka) > 0) expect(compareBytes(next, kb)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('encodes the IEEE edge cases in total order', () => {
    const order = [
      -Infinity,
      -Number.MAX_VALUE,
      -1,
      -Number.MIN_VALUE,
      -0,
      0,
      Number.MIN_VALUE,
      1,
      Infinity,
      NaN,
    ];
    for (let i = 1; i < order.length; i++) {
      expect(compareBytes(encodeValue(order[i - 1]), encodeValue(order[i]))).toBe(-1);
    }
    expect(compareBytes(encodeValue(2n ** 63n - 1n), encodeValue(-Infinity))).toBe(-1);
  });
});

describe('strings that are not valid Unicode', () => {
  it('refuses a lone surrogate in a key and in a document, where it would pass for U+FFFD', () => {
    for (const lone of ['\ud800', 'a\udfffb', '\ud83d']) {
      expect(() => encodeValue(lone)).toThrow(/lone surrogate is not valid Unicode/);
      expect(() => checkDocument('t', { _id: 'x', _creationTime: 1, name: lone })).toThrow(
        'Table "t": field "name" is a string holding a lone surrogate, which is not valid Unicode',
      );
    }
    expect(() => checkDocument('t', { _id: 'x', _creationTime: 1, ['\udc00']: 1 })).toThrow(
      /a field name in .* holds a lone surrogate/,
    );
    // Paired surrogates (an emoji) and U+FFFD itself are valid, and distinct.
    expect(compareBytes(encodeValue('😀'), encodeValue('\ufffd'))).not.toBe(0);
    expect(() =>
      checkDocument('t', { _id: 'x', _creationTime: 1, name: '😀\ufffd' }),
    ).not.toThrow();
  });
});
