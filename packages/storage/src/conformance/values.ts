/**
 * Values for the conformance suite: hand-picked edge cases in their Convex order, and a
 * fast-check arbitrary of any Convex value.
 */
import { compareValues, type Value } from 'convex/values';
import fc from 'fast-check';

export function bytes(...values: number[]): ArrayBuffer {
  return new Uint8Array(values).buffer;
}

/** One value of every kind and the edges between them, already in Convex's total order. */
export const ORDERED_SAMPLES: ReadonlyArray<Value | undefined> = [
  undefined,
  null,
  -(2n ** 63n),
  -1n,
  0n,
  1n,
  2n ** 63n - 1n,
  -Infinity,
  -1.5,
  -Number.MIN_VALUE,
  -0,
  0,
  Number.MIN_VALUE,
  1,
  1.5,
  Number.MAX_VALUE,
  Infinity,
  NaN,
  false,
  true,
  '',
  '\u0000',
  'A',
  'Z',
  'a',
  'a\u0000',
  'a\u0000b',
  'ab',
  'b',
  'é',
  'ω',
  '日本',
  '😀',
  bytes(),
  bytes(0),
  bytes(0, 0),
  bytes(0, 1),
  bytes(1),
  bytes(255),
  bytes(255, 255),
  [],
  [null],
  [null, null],
  [0n],
  [1],
  [1, 1],
  [2],
  [false],
  ['a'],
  [bytes()],
  [[]],
  [[1]],
  [{}],
  {},
  { a: null },
  { a: 1n },
  { a: 1 },
  { a: 1, b: 1 },
  { a: 2 },
  { a: 'x' },
  { a: [] },
  { a: {} },
  { aa: 0 },
  { b: 0 },
];

/** True when two Convex values are identical (NaN equals NaN; -0 differs from 0). */
export function sameValue(a: Value | undefined, b: Value | undefined): boolean {
  return compareValues(a, b) === 0;
}

const fieldName = fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,5}$/);

const leaf: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.double(),
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1, -1),
  fc.boolean(),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: 'binary-ascii', maxLength: 4 }),
  fc.uint8Array({ maxLength: 6 }).map((array) => array.slice().buffer),
);

/** Any Convex value, nested a few levels. */
export const convexValue: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fieldName, tie('value'), { maxKeys: 4 }),
  ),
})).value;
