import { join } from 'node:path';
import { StorageError, StorageErrorCode } from '@sleigh/storage';
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
