import { describe, expect, it } from 'vitest';
import { BY_CREATION_TIME, BY_ID, FIRST_USER_TABLE_NUMBER } from '../catalog.js';
import { StorageError, StorageErrorCode } from '../errors.js';
import { newDocumentId, tableNumberOfId } from '../ids.js';
import { encodeKey, prefixEnd } from '../keys.js';
import { seed, withStore, type HarnessFactory } from './harness.js';

export function catalogCases(harness: HarnessFactory): void {
  describe('catalog', () => {
    it('creates a table with the built-in indexes by_id and by_creation_time', async () => {
      await withStore(harness(), async (store) => {
        const { value: table } = await store.write((tx) => tx.createTable('messages'));
        expect(table.name).toBe('messages');
        expect(table.number).toBeGreaterThanOrEqual(FIRST_USER_TABLE_NUMBER);
        const catalog = store.catalog();
        expect(catalog.table('messages')).toEqual(table);
        expect(catalog.tableByNumber(table.number)).toEqual(table);
        expect(catalog.index('messages', BY_ID)?.fields).toEqual(['_id']);
        expect(catalog.index('messages', BY_CREATION_TIME)?.fields).toEqual([
          '_creationTime',
          '_id',
        ]);
      });
    });

    it('gives every table its own number, and honours an explicit one', async () => {
      await withStore(harness(), async (store) => {
        const { value } = await store.write(async (tx) => [
          await tx.createTable('a'),
          await tx.createTable('b'),
          await tx.createTable('_system', { number: 7 }),
        ]);
        const [a, b, system] = value;
        expect(a!.number).not.toBe(b!.number);
        expect(system!.number).toBe(7);
        const id = newDocumentId(system!.number);
        expect(tableNumberOfId(id)).toBe(7);
        await expect(store.write((tx) => tx.createTable('c', { number: 7 }))).rejects.toThrow(
          /already used by table "_system"/,
        );
      });
    });

    it('refuses a duplicate table, a bad name, and unknown tables and indexes, by name', async () => {
      await withStore(harness(), async (store) => {
        await store.write((tx) => tx.createTable('t'));
        await expect(store.write((tx) => tx.createTable('t'))).rejects.toThrow(
          /"t" already exists/,
        );
        await expect(store.write((tx) => tx.createTable('9lives'))).rejects.toThrow(
          /Invalid table name "9lives"/,
        );
        await expect(
          store.read((tx) => tx.get('nope', newDocumentId(FIRST_USER_TABLE_NUMBER))),
        ).rejects.toThrow(/Table "nope" does not exist/);
        await expect(
          store.read((tx) => tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 })),
        ).rejects.toSatisfy(
          (error) =>
            StorageError.is(error, StorageErrorCode.Catalog) &&
            /"by_x" does not exist on table "t"/.test((error as Error).message),
        );
        await expect(store.write((tx) => tx.createIndex('t', 'by_id', ['x']))).rejects.toThrow(
          /reserved/,
        );
        await expect(store.write((tx) => tx.dropIndex('t', 'by_creation_time'))).rejects.toThrow(
          /built in/,
        );
      });
    });

    it('backfills an index created on a table that already has documents', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(
          store,
          'people',
          Array.from({ length: 2500 }, (_, i) => ({ age: (i * 7919) % 100, name: `p${i}` })),
        );
        await store.write((tx) => tx.createIndex('people', 'by_age', ['age']));
        const index = store.catalog().index('people', 'by_age');
        expect(index?.fields).toEqual(['age', '_creationTime', '_id']);
        const entries = await store.read((tx) =>
          tx.scan({ table: 'people', index: 'by_age', order: 'asc', limit: 10_000 }),
        );
        expect(entries).toHaveLength(docs.length);
        const expected = [...docs]
          .sort(
            (x, y) => (x.age as number) - (y.age as number) || x._creationTime - y._creationTime,
          )
          .map((d) => d._id);
        expect(entries.map((e) => e.document._id)).toEqual(expected);
        const forty = encodeKey([40]);
        const exactly40 = await store.read((tx) =>
          tx.scan({
            table: 'people',
            index: 'by_age',
            start: forty,
            end: prefixEnd(forty),
            order: 'asc',
            limit: 1000,
          }),
        );
        expect(exactly40.length).toBe(docs.filter((d) => d.age === 40).length);
        expect(exactly40.every((e) => e.document.age === 40)).toBe(true);
      });
    });

    it('drops an index without touching the documents, and can add it again', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', [{ x: 1 }, { x: 2 }], { by_x: ['x'] });
        await store.write((tx) => tx.dropIndex('t', 'by_x'));
        expect(store.catalog().index('t', 'by_x')).toBeUndefined();
        await expect(
          store.read((tx) => tx.scan({ table: 't', index: 'by_x', order: 'asc', limit: 10 })),
        ).rejects.toThrow(/does not exist/);
        expect(await store.read((tx) => tx.count('t'))).toBe(2);
        await store.write((tx) => tx.createIndex('t', 'by_x', ['x']));
        const entries = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_x', order: 'desc', limit: 10 }),
        );
        expect(entries.map((e) => e.document.x)).toEqual([2, 1]);
      });
    });

    it('indexes nested field paths, treating a missing step as undefined', async () => {
      await withStore(harness(), async (store) => {
        await seed(
          store,
          't',
          [{ a: { b: 2 } }, { a: { b: 1 } }, { a: 5 }, { c: 1 }, { a: { b: { c: 0 } } }],
          { by_ab: ['a.b'] },
        );
        const entries = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_ab', order: 'asc', limit: 10 }),
        );
        const values = entries.map((e) => {
          const a = e.document.a;
          return a !== null && typeof a === 'object' && !Array.isArray(a)
            ? (a as Record<string, unknown>).b
            : undefined;
        });
        expect(values).toEqual([undefined, undefined, 1, 2, { c: 0 }]);
      });
    });
  });
}
