import { randomBytes } from 'node:crypto';
import type { Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import { indexKey } from '../documents.js';
import { StorageError, StorageErrorCode } from '../errors.js';
import type { Document, Store } from '../interfaces.js';
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

/** The limit on an encoded index key, system fields included (LIMITS.maxIndexKeyBytes). */
const MAX_KEY_BYTES = 2048;

/** `n` characters of random base64: text PostgreSQL cannot compress to fit its btree. */
function noise(n: number): string {
  return randomBytes(Math.ceil((n * 3) / 4) + 3)
    .toString('base64')
    .slice(0, n);
}

/** A document of `t` whose `by_name` key (name, _creationTime, _id) is exactly `size` bytes. */
function withKeySize(tableNumber: number, size: number): Document {
  const document = makeDocument(tableNumber, { name: '' });
  const byName = { id: 0, table: 't', name: 'by_name', fields: ['name', '_creationTime', '_id'] };
  // An ASCII string without NUL adds one key byte per character.
  return { ...document, name: noise(size - indexKey(byName, document).length) };
}

const isKeyLimit = (error: unknown) => StorageError.is(error, StorageErrorCode.LimitExceeded);

async function namesByIndex(store: Store): Promise<string[]> {
  const entries = await store.read((tx) =>
    tx.scan({ table: 't', index: 'by_name', order: 'asc', limit: 100 }),
  );
  return entries.map((entry) => entry.document.name as string).sort();
}

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

  // PostgreSQL's btree cannot hold a key of about 2.7 KB or more; both drivers refuse the same.
  describe('index keys', () => {
    it('accepts a key of exactly the limit, and refuses one byte more, naming table, index and field', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', [], { by_name: ['name'] });
        const number = store.catalog().requireTable('t').number;
        const fits = withKeySize(number, MAX_KEY_BYTES);
        await store.write((tx) => tx.insert('t', fits));
        expect(await namesByIndex(store)).toEqual([fits.name]);

        const over = withKeySize(number, MAX_KEY_BYTES + 1);
        const insert = store.write((tx) => tx.insert('t', over));
        await expect(insert).rejects.toSatisfy(isKeyLimit);
        await expect(insert).rejects.toThrow(
          /^Table "t": index "by_name" key is 2049 bytes, over the limit of 2048 bytes \(/,
        );
        await expect(insert).rejects.toThrow(/"name" \d+ bytes, "_creationTime" 9, "_id" \d+/);
        expect(await store.read((tx) => tx.count('t'))).toBe(1);
      });
    });

    it('refuses a long indexed value on insert, replace and batches, and writes nothing', async () => {
      await withStore(harness(), async (store) => {
        const [existing, second] = await seed(store, 't', [{ name: 'kept' }, { name: 'also' }], {
          by_name: ['name'],
        });
        const number = store.catalog().requireTable('t').number;
        // About 4 KB of random text, as in the report: stored by SQLite, refused raw by PostgreSQL.
        const long = () => randomBytes(3000).toString('base64');
        const message = /index "by_name" key is \d+ bytes, over the limit of 2048 bytes/;

        const insert = store.write((tx) => tx.insert('t', makeDocument(number, { name: long() })));
        await expect(insert).rejects.toSatisfy(isKeyLimit);
        await expect(insert).rejects.toThrow(message);
        const replace = store.write((tx) => tx.replace('t', { ...existing!, name: long() }));
        await expect(replace).rejects.toThrow(message);
        // A batch with one such document is refused as a whole.
        const batch = store.write((tx) =>
          tx.insertMany('t', [
            makeDocument(number, { name: 'fine' }),
            makeDocument(number, { name: long() }),
          ]),
        );
        await expect(batch).rejects.toThrow(message);
        const replaceBatch = store.write((tx) =>
          tx.replaceMany('t', [
            { ...existing!, name: 'changed' },
            { ...second!, name: long() },
          ]),
        );
        await expect(replaceBatch).rejects.toThrow(message);

        // Refused inside transactions that go on: they write nothing, and report no key.
        const added = makeDocument(number, { name: 'added' });
        const { commit } = await store.write(async (tx) => {
          await expect(tx.insert('t', makeDocument(number, { name: long() }))).rejects.toThrow(
            message,
          );
          await expect(
            tx.insertMany('t', [
              makeDocument(number, { name: 'lost' }),
              makeDocument(number, { name: long() }),
            ]),
          ).rejects.toThrow(message);
          await expect(tx.replace('t', { ...existing!, name: long() })).rejects.toThrow(message);
          await expect(
            tx.replaceMany('t', [
              { ...existing!, name: 'changed' },
              { ...second!, name: long() },
            ]),
          ).rejects.toThrow(message);
          await tx.insert('t', added);
        });
        // by_id, by_creation_time and by_name of the one document written.
        expect(commit.writes).toHaveLength(3);
        expect(await namesByIndex(store)).toEqual(['added', 'also', 'kept']);
        expect(await store.read((tx) => tx.count('t'))).toBe(3);
      });
    });

    it('refuses an _id too long for by_id and by_creation_time', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', []);
        const document = { ...makeDocument(10001, { n: 1 }), _id: noise(3000) };
        const insert = store.write((tx) => tx.insert('t', document));
        await expect(insert).rejects.toSatisfy(isKeyLimit);
        await expect(insert).rejects.toThrow(
          /index "by_id" key is \d+ bytes, over the limit of 2048 bytes \(field "_id"/,
        );
        expect(await store.read((tx) => tx.count('t'))).toBe(0);
      });
    });

    it('refuses to create an index over a document whose key is too long, naming it, and creates nothing', async () => {
      await withStore(harness(), async (store) => {
        const rows = Array.from({ length: 20 }, (_, i) => ({ name: `n${i}` }));
        const docs = await seed(store, 't', [...rows, { name: noise(4000) }]);
        const long = docs[docs.length - 1]!;
        const message = new RegExp(
          `^Table "t": cannot create index "by_name": document ${long._id} has a key of \\d+ bytes, over the limit of 2048 bytes`,
        );
        const create = store.write((tx) => tx.createIndex('t', 'by_name', ['name']));
        await expect(create).rejects.toSatisfy(isKeyLimit);
        await expect(create).rejects.toThrow(message);
        expect(store.catalog().index('t', 'by_name')).toBeUndefined();

        // Refused inside a transaction that goes on: no index, and no entry of it left behind
        // to collide with the same index made again (it gets the same id).
        await store.write(async (tx) => {
          await expect(tx.createIndex('t', 'by_name', ['name'])).rejects.toThrow(message);
          expect(tx.catalog().index('t', 'by_name')).toBeUndefined();
          await tx.replace('t', { ...long, name: 'short' });
          await tx.createIndex('t', 'by_name', ['name']);
        });
        const names = await namesByIndex(store);
        expect(names).toHaveLength(21);
        expect(names).toContain('short');
      });
    });
  });
}
