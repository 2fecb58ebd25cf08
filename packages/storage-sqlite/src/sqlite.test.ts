import { join } from 'node:path';
import { StorageError, StorageErrorCode, type IndexEntry } from '@sleigh/storage';
import { makeDocument, seed } from '@sleigh/storage/conformance';
import { tempDir } from '@sleigh/testing';
import { describe, expect, it } from 'vitest';
import { openSqliteStore } from './store.js';

describe('sqlite store', () => {
  it('says clearly when the file cannot be opened', async () => {
    const attempt = openSqliteStore({ path: join(tempDir(), 'missing', 'dir', 'db.sqlite') });
    await expect(attempt).rejects.toSatisfy((e) =>
      StorageError.is(e, StorageErrorCode.Unavailable),
    );
    await expect(attempt).rejects.toThrow(/Cannot open SQLite database at .*missing/);
  });

  it('keeps every concurrent read on its own snapshot while commits land, beyond the reader pool', async () => {
    const store = await openSqliteStore({ path: join(tempDir(), 'db.sqlite'), maxReaders: 2 });
    try {
      const [counter] = await seed(store, 't', [{ n: 0 }]);
      const number = store.catalog().requireTable('t').number;
      const read = (delay: number) =>
        store.read(async (tx) => {
          const first = (await tx.get('t', counter!._id))!.n as number;
          const ts = await tx.timestamp();
          await new Promise((resolve) => setTimeout(resolve, delay));
          const second = (await tx.get('t', counter!._id))!.n as number;
          const count = await tx.count('t');
          return { first, second, ts, count, after: await tx.timestamp() };
        });
      // Each read starts after a different commit, so each needs its own snapshot, and there are
      // more live snapshots than reader connections: later reads wait for a reader to come free.
      const reads = [];
      for (let i = 1; i <= 10; i++) {
        reads.push(read(20 - i));
        await store.write(async (tx) => {
          const doc = (await tx.get('t', counter!._id))!;
          await tx.replace('t', { ...doc, n: i });
          await tx.insert('t', makeDocument(number, { i }));
        });
      }
      const results = await Promise.all(reads);
      for (const result of results) {
        expect(result.second).toBe(result.first);
        expect(result.count).toBe(result.first + 1);
        expect(result.after).toBe(result.ts);
      }
      expect(new Set(results.map((r) => r.first)).size).toBeGreaterThan(2);
    } finally {
      await store.close();
    }
  });

  it('runs with full durability (an fsync per commit) as well', async () => {
    const path = join(tempDir(), 'db.sqlite');
    const store = await openSqliteStore({ path, synchronous: 'full' });
    const [doc] = await seed(store, 't', [{ n: 1 }]);
    await store.close();
    const reopened = await openSqliteStore({ path });
    expect((await reopened.read((tx) => tx.get('t', doc!._id)))?.n).toBe(1);
    await reopened.close();
  });
});

describe("the writer's document cache", () => {
  async function withStore<T>(
    fn: (store: Awaited<ReturnType<typeof openSqliteStore>>) => Promise<T>,
    documentCacheBytes?: number,
  ): Promise<T> {
    const path = join(tempDir(), 'db.sqlite');
    const store = await openSqliteStore(
      documentCacheBytes === undefined ? { path } : { path, documentCacheBytes },
    );
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  }

  it('hands the next write transaction the documents the last one committed, unparsed again', async () => {
    await withStore(async (store) => {
      const [doc] = await seed(store, 't', [{ n: 0 }]);
      const { value: written } = await store.write(async (tx) => {
        const next = { ...(await tx.get('t', doc!._id))!, n: 1 };
        await tx.replace('t', next);
        return next;
      });
      // The very object written: found in the cache, not read from the file and parsed.
      const { value: again } = await store.write((tx) => tx.get('t', doc!._id));
      expect(again).toBe(written);
      // Reads run on snapshots of their own and parse what they read.
      const read = await store.read((tx) => tx.get('t', doc!._id));
      expect(read).toEqual(written);
      expect(read).not.toBe(written);
    });
  });

  it('keeps nothing of a transaction that rolled back, nor of a failed batch', async () => {
    await withStore(async (store) => {
      const [doc, other] = await seed(store, 't', [{ n: 0 }, { n: 10 }]);
      await expect(
        store.write(async (tx) => {
          await tx.replace('t', { ...(await tx.get('t', doc!._id))!, n: 1 });
          await tx.delete('t', other!._id);
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      const { value: after } = await store.write(async (tx) => {
        // A batch that fails on its second document (no such id) writes nothing.
        const missing = { ...doc!, _id: 'nonexistent' };
        await expect(tx.replaceMany('t', [{ ...doc!, n: 2 }, missing])).rejects.toSatisfy((e) =>
          StorageError.is(e, StorageErrorCode.NotFound),
        );
        return [await tx.get('t', doc!._id), await tx.get('t', other!._id)];
      });
      expect(after.map((d) => d?.n)).toEqual([0, 10]);
      const later = await store.write(async (tx) => [
        await tx.get('t', doc!._id),
        await tx.get('t', other!._id),
      ]);
      expect(later.value.map((d) => d?.n)).toEqual([0, 10]);
    });
  });

  it('does not take a document scanned before a rollback to a savepoint for the current one', async () => {
    await withStore(async (store) => {
      const [doc] = await seed(store, 't', [{ n: 0 }]);
      const { value } = await store.write(async (tx) => {
        let scanned: IndexEntry[] = [];
        await expect(
          tx.subtransaction(async () => {
            await tx.replace('t', { ...doc!, n: 1 });
            scanned = await tx.scan({
              table: 't',
              index: 'by_creation_time',
              order: 'asc',
              limit: 10,
            });
            throw new Error('undo');
          }),
        ).rejects.toThrow('undo');
        // Parsed only now, after the rollback: it shows the row as scanned, which is gone.
        expect(scanned[0]!.document.n).toBe(1);
        return (await tx.get('t', doc!._id))!.n;
      });
      expect(value).toBe(0);
      const { value: next } = await store.write(async (tx) => (await tx.get('t', doc!._id))!.n);
      expect(next).toBe(0);
    });
  });

  it('knows a scanned document once it is parsed, and its newer version once it is written', async () => {
    await withStore(async (store) => {
      const [doc] = await seed(store, 't', [{ n: 0 }]);
      const scan = { table: 't', index: 'by_creation_time', order: 'asc', limit: 10 } as const;
      const { value: parsed } = await store.write(async (tx) => (await tx.scan(scan))[0]!.document);
      const { value: got } = await store.write((tx) => tx.get('t', doc!._id));
      expect(got).toBe(parsed);
      // A scanned entry parsed after its document was replaced does not undo the replace.
      await store.write(async (tx) => {
        const [entry] = await tx.scan(scan);
        await tx.replace('t', { ...doc!, n: 5 });
        expect(entry!.document.n).toBe(0);
      });
      const { value: last } = await store.write((tx) => tx.get('t', doc!._id));
      expect(last?.n).toBe(5);
    });
  });

  it('lets the documents committed longest ago go beyond its size', async () => {
    await withStore(async (store) => {
      const docs = await seed(
        store,
        't',
        Array.from({ length: 20 }, (_, i) => ({ i, text: 'x'.repeat(1000) })),
      );
      const { value: first } = await store.write((tx) =>
        tx.getMany(
          't',
          docs.map((d) => d._id),
        ),
      );
      const { value: again } = await store.write((tx) =>
        tx.getMany(
          't',
          docs.map((d) => d._id),
        ),
      );
      // About 1,100 bytes each, 8,192 in all: only the last ones read are still there.
      expect(again[0]).not.toBe(first[0]);
      expect(again[19]).toBe(first[19]);
      expect(again.map((d) => d?.i)).toEqual(docs.map((d) => d.i));
    }, 8192);
  });

  it('can be turned off', async () => {
    await withStore(async (store) => {
      const [doc] = await seed(store, 't', [{ n: 0 }]);
      const { value: one } = await store.write((tx) => tx.get('t', doc!._id));
      const { value: two } = await store.write((tx) => tx.get('t', doc!._id));
      expect(two).toEqual(one);
      expect(two).not.toBe(one);
    }, 0);
  });
});
