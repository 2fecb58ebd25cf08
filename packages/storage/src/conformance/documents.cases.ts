import type { Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import { BY_CREATION_TIME, BY_ID } from '../catalog.js';
import { idKey, indexKey } from '../documents.js';
import { StorageError, StorageErrorCode } from '../errors.js';
import { newDocumentId } from '../ids.js';
import type { Document } from '../interfaces.js';
import { compareBytes } from '../keys.js';
import { makeDocument, seed, withStore, type HarnessFactory } from './harness.js';
import { bytes, sameValue } from './values.js';

/** Values that must survive a write and a read bit for bit. */
const ROUND_TRIP: Record<string, Value> = {
  int64Min: -(2n ** 63n),
  int64Max: 2n ** 63n - 1n,
  int64Zero: 0n,
  nan: NaN,
  negativeZero: -0,
  infinity: Infinity,
  negativeInfinity: -Infinity,
  tiny: Number.MIN_VALUE,
  huge: Number.MAX_VALUE,
  bytes: bytes(0, 1, 2, 254, 255, 0),
  emptyBytes: bytes(),
  text: 'héllo wörld 日本 😀 \u0000 end',
  empty: '',
  nothing: null,
  yes: true,
  no: false,
  nested: { list: [1n, 2.5, 'three', [bytes(4)], { deep: [null, { deeper: -0 }] }], empty: {} },
  emptyArray: [],
};

function expectSameDocument(actual: Document | null, expected: Document): void {
  expect(actual).not.toBeNull();
  expect(Object.keys(actual!).sort()).toEqual(Object.keys(expected).sort());
  for (const field of Object.keys(expected)) {
    expect(sameValue(actual![field], expected[field]), `field ${field}`).toBe(true);
  }
}

export function documentCases(harness: HarnessFactory): void {
  describe('documents', () => {
    it('round-trips every kind of value losslessly, and after reopening', async () => {
      const h = harness();
      let store = await h.open();
      const [doc] = await seed(store, 'values', [ROUND_TRIP]);
      expectSameDocument(await store.read((tx) => tx.get('values', doc!._id)), doc!);
      store = await h.reopen(store);
      try {
        const read = await store.read((tx) => tx.get('values', doc!._id));
        expectSameDocument(read, doc!);
        expect(typeof read!.int64Max).toBe('bigint');
        expect(Object.is(read!.negativeZero, -0)).toBe(true);
        expect(read!.bytes).toBeInstanceOf(ArrayBuffer);
      } finally {
        await store.close();
      }
    });

    it('gets null for a missing document, and refuses duplicate ids', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }]);
        const number = store.catalog().requireTable('t').number;
        expect(await store.read((tx) => tx.get('t', newDocumentId(number)))).toBeNull();
        await expect(store.write((tx) => tx.insert('t', { ...doc!, n: 2 }))).rejects.toSatisfy(
          (error) => StorageError.is(error, StorageErrorCode.DuplicateId),
        );
        expect((await store.read((tx) => tx.get('t', doc!._id)))?.n).toBe(1);
      });
    });

    it('replaces and deletes documents, keeping every index in step', async () => {
      await withStore(harness(), async (store) => {
        const [a, b] = await seed(
          store,
          't',
          [
            { x: 1, y: 'a' },
            { x: 2, y: 'b' },
          ],
          {
            by_x: ['x'],
            by_y_x: ['y', 'x'],
          },
        );
        const { value: old } = await store.write((tx) => tx.replace('t', { ...a!, x: 3, y: 'c' }));
        expect(old.x).toBe(1);
        const byX = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 }),
        );
        expect(byX.map((e) => [e.document._id, e.document.x])).toEqual([
          [b!._id, 2],
          [a!._id, 3],
        ]);
        const byY = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_y_x', order: 'asc', limit: 10 }),
        );
        expect(byY.map((e) => e.document.y)).toEqual(['b', 'c']);
        // Removing a field takes the document to the undefined end of the index.
        await store.write(async (tx) => {
          const { x: _removed, ...rest } = (await tx.get('t', b!._id))!;
          await tx.replace('t', rest);
        });
        const afterRemove = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 }),
        );
        expect(afterRemove.map((e) => e.document.x)).toEqual([undefined, 3]);

        await store.write((tx) => tx.delete('t', a!._id));
        for (const index of [BY_ID, BY_CREATION_TIME, 'by_x', 'by_y_x']) {
          const entries = await store.read((tx) =>
            tx.scan({ table: 't', index, order: 'asc', limit: 10 }),
          );
          expect(
            entries.map((e) => e.document._id),
            index,
          ).toEqual([b!._id]);
        }
        expect(await store.read((tx) => tx.get('t', a!._id))).toBeNull();
        expect(await store.read((tx) => tx.count('t'))).toBe(1);
      });
    });

    it('gets many documents at once, in the order asked, null where missing', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(store, 't', [{ n: 1 }, { n: 2 }, { n: 3 }]);
        const missing = newDocumentId(store.catalog().requireTable('t').number);
        const ids = [docs[2]!._id, missing, docs[0]!._id, docs[2]!._id];
        const read = await store.read((tx) => tx.getMany('t', ids));
        expect(read.map((doc) => doc?.n ?? null)).toEqual([3, null, 1, 3]);
        // Inside a write, it sees the transaction's own writes.
        await store.write(async (tx) => {
          await tx.replace('t', { ...docs[0]!, n: 10 });
          await tx.delete('t', docs[1]!._id);
          const inside = await tx.getMany('t', [docs[0]!._id, docs[1]!._id, docs[2]!._id]);
          expect(inside.map((doc) => doc?.n ?? null)).toEqual([10, null, 3]);
        });
        expect(await store.read((tx) => tx.getMany('t', []))).toEqual([]);
      });
    });

    it('replaces many documents at once with every kind of value, losslessly', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(store, 'values', [{ n: 1 }, { n: 2 }]);
        const quoted = 'say "hi", {\\} \\" \n\t \\u0000 and ,{},"';
        const replaced = docs.map((doc, i) => ({ ...doc, ...ROUND_TRIP, quoted, i }));
        await store.write((tx) => tx.replaceMany('values', replaced));
        for (const doc of replaced) {
          expectSameDocument(await store.read((tx) => tx.get('values', doc._id)), doc);
        }
      });
    });

    it('replaces many documents at once, keeping every index in step', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(
          store,
          't',
          [1, 2, 3, 4].map((x) => ({ x, y: 'same' })),
          { by_x: ['x'], by_y_x: ['y', 'x'] },
        );
        const { commit } = await store.write(async (tx) => {
          // Two get new index keys, one keeps its keys, one is left alone.
          await tx.replaceMany('t', [
            { ...docs[0]!, x: 10 },
            { ...docs[1]!, y: 'other' },
            { ...docs[2]!, z: 'extra' },
          ]);
          // Read-your-writes inside the transaction.
          expect((await tx.get('t', docs[0]!._id))?.x).toBe(10);
          const inside = await tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 });
          expect(inside.map((e) => e.document.x)).toEqual([2, 3, 4, 10]);
        });
        // Old and new keys of the changed entries only: 2 docs × 2 keys, the 4th untouched.
        expect(commit.writes.length).toBeGreaterThanOrEqual(6);
        const byX = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 }),
        );
        expect(byX.map((e) => e.document.x)).toEqual([2, 3, 4, 10]);
        const byY = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_y_x', order: 'asc', limit: 10 }),
        );
        expect(byY.map((e) => [e.document.y, e.document.x])).toEqual([
          ['other', 2],
          ['same', 3],
          ['same', 4],
          ['same', 10],
        ]);
        expect((await store.read((tx) => tx.get('t', docs[2]!._id)))?.z).toBe('extra');
        // A batch naming a document twice, or a missing one, is refused and writes nothing.
        await expect(
          store.write((tx) => tx.replaceMany('t', [docs[3]!, { ...docs[3]!, x: 99 }])),
        ).rejects.toThrow(/appears twice/);
        const missing = {
          ...docs[3]!,
          _id: newDocumentId(store.catalog().requireTable('t').number),
        };
        await expect(
          store.write((tx) => tx.replaceMany('t', [{ ...docs[3]!, x: 50 }, missing])),
        ).rejects.toThrow();
        expect((await store.read((tx) => tx.get('t', docs[3]!._id)))?.x).toBe(4);
      });
    });

    it('deletes many documents at once with their index entries, all or nothing', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(
          store,
          't',
          [1, 2, 3, 4].map((x) => ({ x, y: x % 2 === 0 ? 'even' : 'odd' })),
          { by_x: ['x'], by_y_x: ['y', 'x'] },
        );
        const { commit } = await store.write(async (tx) => {
          // One of them written earlier in the same transaction: its new keys go.
          await tx.replace('t', { ...docs[2]!, x: 30 });
          await tx.deleteMany('t', [docs[0]!._id, docs[2]!._id]);
          expect(await tx.get('t', docs[0]!._id)).toBeNull();
          const inside = await tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 });
          expect(inside.map((e) => e.document.x)).toEqual([2, 4]);
        });
        // Each deleted document's keys are in the write set (and the replaced one's old keys).
        expect(commit.writes.length).toBeGreaterThanOrEqual(6);
        for (const index of ['by_x', 'by_y_x', 'by_id', 'by_creation_time']) {
          const entries = await store.read((tx) =>
            tx.scan({ table: 't', index, order: 'asc', limit: 10 }),
          );
          expect(entries.map((e) => e.document.x).sort()).toEqual([2, 4]);
        }
        // A batch naming a document twice, or a missing one, is refused and deletes nothing.
        await expect(
          store.write((tx) => tx.deleteMany('t', [docs[1]!._id, docs[1]!._id])),
        ).rejects.toThrow(/appears twice/);
        const missing = newDocumentId(store.catalog().requireTable('t').number);
        await expect(
          store.write((tx) => tx.deleteMany('t', [docs[3]!._id, missing])),
        ).rejects.toThrow(/no document/);
        expect((await store.read((tx) => tx.get('t', docs[3]!._id)))?.x).toBe(4);
        // A missing one caught inside the transaction leaves the rest of it to commit.
        await store.write(async (tx) => {
          await expect(tx.deleteMany('t', [docs[1]!._id, docs[0]!._id])).rejects.toThrow(
            /no document/,
          );
          await tx.replace('t', { ...docs[1]!, x: 20 });
        });
        const left = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 }),
        );
        expect(left.map((e) => e.document.x)).toEqual([4, 20]);
      });
    });

    it('inserts many documents at once, losslessly, with every index entry', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', [{ x: 0, y: 'seed' }], { by_x: ['x'], by_y_x: ['y', 'x'] });
        const number = store.catalog().requireTable('t').number;
        const quoted = 'say "hi", {\\} \\" \n\t \\u0000 and ,{},"';
        const docs = [3, 1, 2].map((x) =>
          makeDocument(number, { ...ROUND_TRIP, quoted, x, y: 'b' }),
        );
        const { commit } = await store.write(async (tx) => {
          await tx.insertMany('t', docs);
          // Read-your-writes inside the transaction.
          expect((await tx.get('t', docs[1]!._id))?.x).toBe(1);
          const inside = await tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 });
          expect(inside.map((e) => e.document.x)).toEqual([0, 1, 2, 3]);
        });
        // A new key in each of the four indexes (by_id, by_creation_time, by_x, by_y_x) of each.
        expect(commit.writes.length).toBe(12);
        for (const doc of docs) {
          expectSameDocument(await store.read((tx) => tx.get('t', doc._id)), doc);
        }
        const byYX = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_y_x', order: 'asc', limit: 10 }),
        );
        expect(byYX.map((e) => [e.document.y, e.document.x])).toEqual([
          ['b', 1],
          ['b', 2],
          ['b', 3],
          ['seed', 0],
        ]);
        const byCreation = await store.read((tx) =>
          tx.scan({ table: 't', index: BY_CREATION_TIME, order: 'asc', limit: 10 }),
        );
        expect(byCreation.map((e) => e.document.x)).toEqual([0, 3, 1, 2]);
        expect(await store.read((tx) => tx.count('t'))).toBe(4);
      });
    });

    it('runs batch inserts of one transaction side by side (two enqueues at once)', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', [{ x: 0 }]);
        const number = store.catalog().requireTable('t').number;
        const batches = [1, 2].map((b) =>
          [1, 2, 3].map((x) => makeDocument(number, { x: b * 10 + x })),
        );
        await store.write((tx) => Promise.all(batches.map((batch) => tx.insertMany('t', batch))));
        expect(await store.read((tx) => tx.count('t'))).toBe(7);
      });
    });

    it('refuses a batch insert with a taken or repeated id as a whole, naming it', async () => {
      await withStore(harness(), async (store) => {
        const [taken] = await seed(store, 't', [{ x: 0 }]);
        const number = store.catalog().requireTable('t').number;
        const fresh = [1, 2].map((x) => makeDocument(number, { x }));
        await expect(
          store.write((tx) => tx.insertMany('t', [fresh[0]!, { ...taken!, x: 9 }, fresh[1]!])),
        ).rejects.toSatisfy(
          (error) =>
            StorageError.is(error, StorageErrorCode.DuplicateId) &&
            (error as Error).message.includes(taken!._id),
        );
        await expect(
          store.write((tx) => tx.insertMany('t', [fresh[0]!, fresh[0]!])),
        ).rejects.toThrow(/insertMany: .* appears twice/);
        expect(await store.read((tx) => tx.count('t'))).toBe(1);
        // Undone inside a nested transaction, the rest of the transaction commits.
        const kept = makeDocument(number, { x: 5 });
        await store.write(async (tx) => {
          await expect(
            tx.subtransaction(async () => {
              await tx.insertMany('t', [fresh[1]!, { ...taken!, x: 9 }]);
              await tx.get('t', taken!._id);
            }),
          ).rejects.toSatisfy((error) => StorageError.is(error, StorageErrorCode.DuplicateId));
          expect(await tx.get('t', fresh[1]!._id)).toBeNull();
          await tx.insertMany('t', [kept]);
        });
        const xs = await store.read((tx) =>
          tx.scan({ table: 't', index: BY_CREATION_TIME, order: 'asc', limit: 10 }),
        );
        expect(xs.map((e) => e.document.x)).toEqual([0, 5]);
      });
    });

    it('refuses a batch replace as a whole when one document cannot be written', async () => {
      await withStore(harness(), async (store) => {
        const [a, b] = await seed(store, 't', [{ x: 1 }, { x: 2 }], { by_x: ['x'] });
        const number = store.catalog().requireTable('t').number;
        // Refused inside a transaction that goes on: the batch's first document stays as it was.
        const { commit } = await store.write(async (tx) => {
          await expect(
            tx.replaceMany('t', [{ ...a!, x: 10 }, makeDocument(number, { x: 3 })]),
          ).rejects.toSatisfy((error) => StorageError.is(error, StorageErrorCode.NotFound));
          await expect(
            tx.replaceMany('t', [
              { ...a!, x: 10 },
              { ...b!, x: 20, blob: 'x'.repeat(1024 * 1024) },
            ]),
          ).rejects.toSatisfy((error) => StorageError.is(error, StorageErrorCode.LimitExceeded));
          expect((await tx.get('t', a!._id))?.x).toBe(1);
        });
        expect(commit.writes).toHaveLength(0);
        const xs = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 }),
        );
        expect(xs.map((e) => e.document.x)).toEqual([1, 2]);
      });
    });

    it('refuses to replace or delete a missing document, naming the table and id', async () => {
      await withStore(harness(), async (store) => {
        await store.write((tx) => tx.createTable('t'));
        const ghost = makeDocument(store.catalog().requireTable('t').number, {});
        await expect(store.write((tx) => tx.replace('t', ghost))).rejects.toThrow(
          new RegExp(`"t" has no document with _id ${ghost._id}`),
        );
        await expect(store.write((tx) => tx.delete('t', ghost._id))).rejects.toSatisfy((error) =>
          StorageError.is(error, StorageErrorCode.NotFound),
        );
      });
    });

    it('counts documents per table', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 'a', [{}, {}, {}]);
        await seed(store, 'b', [{}]);
        await store.write((tx) => tx.createTable('c'));
        expect(
          await store.read(async (tx) => [
            await tx.count('a'),
            await tx.count('b'),
            await tx.count('c'),
          ]),
        ).toEqual([3, 1, 0]);
      });
    });

    it('reports the old and new key of every index a commit touched', async () => {
      await withStore(harness(), async (store) => {
        await store.write(async (tx) => {
          await tx.createTable('t');
          await tx.createIndex('t', 'by_x', ['x']);
        });
        const catalog = store.catalog();
        const indexes = catalog.indexes('t');
        const byX = catalog.requireIndex('t', 'by_x');
        const doc = makeDocument(catalog.requireTable('t').number, { x: 1 });
        const keysOf = (d: Document) =>
          indexes.map((index) => ({ indexId: index.id, key: indexKey(index, d) }));
        const sortKeys = (keys: readonly { indexId: number; key: Uint8Array }[]) =>
          [...keys]
            .map((k) => ({ indexId: k.indexId, key: Buffer.from(k.key).toString('hex') }))
            .sort((p, q) => p.indexId - q.indexId || p.key.localeCompare(q.key));

        const inserted = await store.write((tx) => tx.insert('t', doc));
        expect(sortKeys(inserted.commit.writes)).toEqual(sortKeys(keysOf(doc)));

        const moved = { ...doc, x: 2 };
        const replaced = await store.write((tx) => tx.replace('t', moved));
        // by_id and by_creation_time keep their key (once); by_x reports the old and the new key.
        expect(sortKeys(replaced.commit.writes)).toEqual(
          sortKeys([...keysOf(doc), { indexId: byX.id, key: indexKey(byX, moved) }]),
        );
        expect(
          replaced.commit.writes.some(
            (w) =>
              w.indexId === catalog.requireIndex('t', BY_ID).id &&
              compareBytes(w.key, idKey(doc._id)) === 0,
          ),
        ).toBe(true);

        const deleted = await store.write((tx) => tx.delete('t', doc._id));
        expect(sortKeys(deleted.commit.writes)).toEqual(sortKeys(keysOf(moved)));
      });
    });
  });
}
