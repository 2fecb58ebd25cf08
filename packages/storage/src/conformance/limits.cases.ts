import type { Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import { StorageError, StorageErrorCode } from '../errors.js';
import { makeDocument, seed, withStore, type HarnessFactory } from './harness.js';

function nested(levels: number): Value {
  let value: Value = 'core';
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { inner: value };
  return value;
}

const REFUSED: Array<[string, () => Record<string, Value>, StorageErrorCode, RegExp]> = [
  [
    'a document over 1 MiB',
    () => ({ blob: 'x'.repeat(1024 * 1024) }),
    StorageErrorCode.LimitExceeded,
    /over the limit of 1048576 bytes \(1 MiB\)/,
  ],
  [
    'nesting deeper than 16',
    () => ({ deep: nested(17) }),
    StorageErrorCode.LimitExceeded,
    /nested more than 16 levels/,
  ],
  [
    'an array of 8,193 items',
    () => ({ list: Array.from({ length: 8193 }, () => 0) }),
    StorageErrorCode.LimitExceeded,
    /array of 8193 items, over the limit of 8192/,
  ],
  [
    'an object of 1,025 fields',
    () => ({ wide: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`f${i}`, i])) }),
    StorageErrorCode.LimitExceeded,
    /field "wide" has 1025 fields, over the limit of 1024/,
  ],
  [
    'a field name starting with $',
    () => ({ $bad: 1 }),
    StorageErrorCode.InvalidValue,
    /"\$bad" starts with "\$"/,
  ],
  [
    'a top-level field name starting with _',
    () => ({ _private: 1 }),
    StorageErrorCode.InvalidValue,
    /"_private" starts with "_"/,
  ],
  [
    'a nested field name starting with $',
    () => ({ o: { $x: 1 } }),
    StorageErrorCode.InvalidValue,
    /"o.\$x" starts with "\$"/,
  ],
  [
    'undefined inside an array',
    // The rule misreads the double assertion; without it tsc rightly refuses undefined in Value[].
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    () => ({ list: [1, undefined as unknown as Value] }),
    StorageErrorCode.InvalidValue,
    /list\[1\]" is undefined/,
  ],
  [
    'a function',
    () => ({ f: (() => 1) as unknown as Value }),
    StorageErrorCode.InvalidValue,
    /"f" holds a function/,
  ],
  [
    'a class instance',
    () => ({ when: new Date() as unknown as Value }),
    StorageErrorCode.InvalidValue,
    /"when" holds a Date/,
  ],
];

export function limitCases(harness: HarnessFactory): void {
  describe('limits', () => {
    it('accepts a document right at the limits', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [
          {
            deep: nested(16),
            list: Array.from({ length: 8192 }, () => 0),
            wide: Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [`f${i}`, i])),
            nested: { _allowed: 1 },
            blob: 'y'.repeat(900_000),
          },
        ]);
        expect((await store.read((tx) => tx.get('t', doc!._id)))?.list).toHaveLength(8192);
      });
    });

    for (const [label, fields, code, message] of REFUSED) {
      it(`refuses ${label} with an error naming the limit, and writes nothing`, async () => {
        await withStore(harness(), async (store) => {
          const [existing] = await seed(store, 't', [{ n: 1 }]);
          const number = store.catalog().requireTable('t').number;
          const before = await store.read((tx) => tx.timestamp());
          const insert = store.write((tx) => tx.insert('t', makeDocument(number, fields())));
          await expect(insert).rejects.toSatisfy((e) => StorageError.is(e, code));
          await expect(insert).rejects.toThrow(message);
          await expect(insert).rejects.toThrow(/Table "t"/);
          // The same on replace; the stored version stays as it was.
          const replace = store.write((tx) =>
            tx.replace('t', {
              ...fields(),
              _id: existing!._id,
              _creationTime: existing!._creationTime,
            }),
          );
          await expect(replace).rejects.toThrow(message);
          // A refused write inside a transaction that goes on writes nothing itself.
          const kept = makeDocument(number, { n: 2 });
          await store.write(async (tx) => {
            await expect(tx.insert('t', makeDocument(number, fields()))).rejects.toThrow(message);
            await tx.insert('t', kept);
          });
          await store.read(async (tx) => {
            expect(await tx.count('t')).toBe(2);
            expect((await tx.get('t', existing!._id))?.n).toBe(1);
            expect(await tx.get('t', kept._id)).not.toBeNull();
            expect((await tx.timestamp()) > before).toBe(true);
          });
        });
      });
    }
  });
}
