import { describe, expect, it } from 'vitest';
import { StorageError, StorageErrorCode } from '../errors.js';
import type { Commit, Document, Store, WriteTransaction } from '../interfaces.js';
import { makeDocument, seed, withStore, writeWithRetries, type HarnessFactory } from './harness.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function increment(tx: WriteTransaction, id: string, delay: number): Promise<number> {
  const doc = (await tx.get('counters', id))!;
  // Yield between the read and the write, so that concurrent transactions really overlap.
  await pause(delay);
  const next = (doc.n as number) + 1;
  await tx.replace('counters', { ...doc, n: next });
  return next;
}

export function transactionCases(harness: HarnessFactory): void {
  describe('transactions', () => {
    it('gives every commit a larger timestamp; a read sees the latest; an empty write adds none', async () => {
      await withStore(harness(), async (store) => {
        const seen: Commit[] = [];
        const unsubscribe = store.onCommit((commit) => seen.push(commit));
        const first = await store.write((tx) => tx.createTable('t'));
        const number = store.catalog().requireTable('t').number;
        const stamps = [first.commit.ts];
        for (let i = 0; i < 5; i++) {
          const { commit } = await store.write((tx) => tx.insert('t', makeDocument(number, { i })));
          stamps.push(commit.ts);
          expect(commit.writes.length).toBeGreaterThan(0);
        }
        for (let i = 1; i < stamps.length; i++) expect(stamps[i]! > stamps[i - 1]!).toBe(true);
        expect(await store.read((tx) => tx.timestamp())).toBe(stamps[stamps.length - 1]);
        const empty = await store.write(async (tx) => tx.count('t'));
        expect(empty.value).toBe(5);
        expect(empty.commit).toEqual({
          ts: stamps[stamps.length - 1],
          writes: [],
          catalogChanged: false,
        });
        // Listeners hear every commit in order (on a shared database, once the feed has it).
        expect(await store.whenDelivered(stamps[stamps.length - 1]!)).toBe(true);
        expect(seen.map((c) => c.ts)).toEqual(stamps);
        unsubscribe();
        const last = await store.write((tx) => tx.insert('t', makeDocument(number, {})));
        await store.whenDelivered(last.commit.ts);
        expect(seen).toHaveLength(stamps.length);
      });
    });

    it('reads one snapshot: commits made during a read transaction stay invisible to it', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }], { by_n: ['n'] });
        const number = store.catalog().requireTable('t').number;
        await store.read(async (tx) => {
          const ts = await tx.timestamp();
          expect((await tx.get('t', doc!._id))?.n).toBe(1);
          const { commit } = await store.write(async (w) => {
            await w.replace('t', { ...doc!, n: 2 });
            await w.insert('t', makeDocument(number, { n: 3 }));
          });
          expect(commit.ts > ts).toBe(true);
          expect((await tx.get('t', doc!._id))?.n).toBe(1);
          const entries = await tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 });
          expect(entries.map((e) => e.document.n)).toEqual([1]);
          expect(await tx.count('t')).toBe(1);
          expect(await tx.timestamp()).toBe(ts);
        });
        const after = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 }),
        );
        expect(after.map((e) => e.document.n)).toEqual([2, 3]);
      });
    });

    it('sees its own writes inside a write transaction', async () => {
      await withStore(harness(), async (store) => {
        await store.write(async (tx) => {
          const table = await tx.createTable('t');
          await tx.createIndex('t', 'by_n', ['n']);
          const a = makeDocument(table.number, { n: 2 });
          const b = makeDocument(table.number, { n: 1 });
          await tx.insert('t', a);
          await tx.insert('t', b);
          expect((await tx.get('t', a._id))?.n).toBe(2);
          let entries = await tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 });
          expect(entries.map((e) => e.document._id)).toEqual([b._id, a._id]);
          await tx.replace('t', { ...b, n: 3 });
          await tx.delete('t', a._id);
          entries = await tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 });
          expect(entries.map((e) => e.document.n)).toEqual([3]);
          expect(await tx.count('t')).toBe(1);
        });
      });
    });

    it('writes nothing when the callback throws: no documents, no catalog change, no commit', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }]);
        const before = await store.read((tx) => tx.timestamp());
        const number = store.catalog().requireTable('t').number;
        let inserted: Document | undefined;
        await expect(
          store.write(async (tx) => {
            inserted = makeDocument(number, { n: 2 });
            await tx.insert('t', inserted);
            await tx.replace('t', { ...doc!, n: 100 });
            await tx.createTable('other');
            await tx.createIndex('t', 'by_n', ['n']);
            throw new Error('changed my mind');
          }),
        ).rejects.toThrow('changed my mind');
        expect(store.catalog().table('other')).toBeUndefined();
        expect(store.catalog().index('t', 'by_n')).toBeUndefined();
        await store.read(async (tx) => {
          expect(await tx.timestamp()).toBe(before);
          expect(await tx.get('t', inserted!._id)).toBeNull();
          expect((await tx.get('t', doc!._id))?.n).toBe(1);
          expect(await tx.count('t')).toBe(1);
        });
      });
    });

    it('refuses writes in a read transaction, and any use of a transaction after it ended', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{}]);
        await expect(
          store.read((tx) => (tx as unknown as WriteTransaction).delete('t', doc!._id)),
        ).rejects.toSatisfy(
          (e) => StorageError.is(e, StorageErrorCode.InvalidTransaction) || e instanceof TypeError,
        );
        let leaked: WriteTransaction | undefined;
        await store.write((tx) => {
          leaked = tx;
          return Promise.resolve();
        });
        await expect(leaked!.get('t', doc!._id)).rejects.toSatisfy((e) =>
          StorageError.is(e, StorageErrorCode.InvalidTransaction),
        );
      });
    });

    it('keeps overlapping read-modify-write transactions serializable: a loser fails retryably and writes nothing', async () => {
      await withStore(harness(), async (store) => {
        const [counter] = await seed(store, 'counters', [{ n: 0 }]);
        const outcomes = await Promise.allSettled(
          Array.from({ length: 8 }, () => store.write((tx) => increment(tx, counter!._id, 20))),
        );
        const committed = outcomes.filter((o) => o.status === 'fulfilled');
        const failed = outcomes.filter((o) => o.status === 'rejected');
        for (const failure of failed) {
          const reason = failure.reason as unknown;
          expect(StorageError.is(reason, StorageErrorCode.Conflict), String(reason)).toBe(true);
          expect((reason as StorageError).retryable).toBe(true);
        }
        expect(committed.length).toBeGreaterThanOrEqual(1);
        const final = await store.read((tx) => tx.get('counters', counter!._id));
        // No lost update: every committed increment is counted, and nothing else.
        expect(final?.n).toBe(committed.length);
        const values = committed.map(
          (o) => (o as PromiseFulfilledResult<{ value: number }>).value.value,
        );
        expect(new Set(values).size).toBe(values.length);
      });
    });

    it('with retries, 40 concurrent increments end at exactly 40', async () => {
      await withStore(harness(), async (store) => {
        const [counter] = await seed(store, 'counters', [{ n: 0 }]);
        await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            writeWithRetries(store, (tx) => increment(tx, counter!._id, i % 3)),
          ),
        );
        expect((await store.read((tx) => tx.get('counters', counter!._id)))?.n).toBe(40);
      });
    });

    it('keeps the total constant under concurrent transfers, with no torn reads', async () => {
      await withStore(harness(), async (store) => {
        const accounts = await seed(
          store,
          'accounts',
          Array.from({ length: 10 }, () => ({ balance: 100 })),
        );
        const ids = accounts.map((a) => a._id);
        const total = async (s: Store) =>
          s.read(async (tx) => {
            const entries = await tx.scan({
              table: 'accounts',
              index: 'by_creation_time',
              order: 'asc',
              limit: 100,
            });
            return entries.reduce((sum, e) => sum + (e.document.balance as number), 0);
          });
        let stop = false;
        const audits: number[] = [];
        const auditor = (async () => {
          while (!stop) {
            audits.push(await total(store));
            await pause(1);
          }
        })();
        await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            writeWithRetries(store, async (tx) => {
              const from = (await tx.get('accounts', ids[i % 10]!))!;
              const to = (await tx.get('accounts', ids[(i * 3 + 1) % 10]!))!;
              if (from._id === to._id) return;
              await pause(i % 4);
              await tx.replace('accounts', { ...from, balance: (from.balance as number) - 7 });
              await tx.replace('accounts', { ...to, balance: (to.balance as number) + 7 });
            }),
          ),
        );
        stop = true;
        await auditor;
        expect(await total(store)).toBe(1000);
        expect(audits.length).toBeGreaterThan(0);
        expect(audits.every((sum) => sum === 1000)).toBe(true);
      });
    });

    it('persists everything across close and reopen, and keeps timestamps increasing', async () => {
      const h = harness();
      let store = await h.open();
      const docs = await seed(store, 't', [{ n: 2 }, { n: 1 }, { n: 3 }], { by_n: ['n'] });
      await store.write((tx) => tx.delete('t', docs[2]!._id));
      const catalogBefore = store.catalog();
      const tsBefore = await store.read((tx) => tx.timestamp());
      store = await h.reopen(store);
      try {
        expect(store.catalog().tables()).toEqual(catalogBefore.tables());
        expect(
          store
            .catalog()
            .allIndexes()
            .sort((a, b) => a.id - b.id),
        ).toEqual(catalogBefore.allIndexes().sort((a, b) => a.id - b.id));
        expect(await store.read((tx) => tx.timestamp())).toBe(tsBefore);
        const entries = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 }),
        );
        expect(entries.map((e) => e.document._id)).toEqual([docs[1]!._id, docs[0]!._id]);
        const { commit } = await store.write((tx) =>
          tx.insert('t', makeDocument(catalogBefore.requireTable('t').number, { n: 0 })),
        );
        expect(commit.ts > tsBefore).toBe(true);
      } finally {
        await store.close();
      }
    });
  });
}

export function subtransactionCases(harness: HarnessFactory): void {
  describe('subtransactions', () => {
    it('keep the writes of a nested transaction that succeeds, and undo one that throws', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }], { by_n: ['n'] });
        const number = store.catalog().requireTable('t').number;
        const kept = makeDocument(number, { n: 2 });
        const undone = makeDocument(number, { n: 3 });
        const { commit } = await store.write(async (tx) => {
          await tx.subtransaction(async () => {
            await tx.insert('t', kept);
          });
          await expect(
            tx.subtransaction(async () => {
              await tx.insert('t', undone);
              await tx.replace('t', { ...doc!, n: 100 });
              await tx.createTable('ghost');
              expect((await tx.get('t', undone._id))?.n).toBe(3);
              throw new Error('nested failure');
            }),
          ).rejects.toThrow('nested failure');
          // The outer transaction sees the state from before the failed nested one.
          expect(await tx.get('t', undone._id)).toBeNull();
          expect((await tx.get('t', doc!._id))?.n).toBe(1);
          expect(tx.catalog().table('ghost')).toBeUndefined();
          const entries = await tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 });
          expect(entries.map((e) => e.document.n)).toEqual([1, 2]);
        });
        expect(commit.catalogChanged).toBe(false);
        // Only the kept insert is in the write set: by_id, by_creation_time and by_n keys.
        expect(commit.writes).toHaveLength(3);
        await store.read(async (tx) => {
          expect(await tx.get('t', kept._id)).not.toBeNull();
          expect(await tx.get('t', undone._id)).toBeNull();
          expect(await tx.count('t')).toBe(2);
        });
      });
    });

    it('replace a document from its version before a nested transaction that was undone', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }], { by_n: ['n'] });
        await store.write(async (tx) => {
          expect((await tx.get('t', doc!._id))?.n).toBe(1);
          await expect(
            tx.subtransaction(async () => {
              await tx.replace('t', { ...doc!, n: 100 });
              throw new Error('nested failure');
            }),
          ).rejects.toThrow('nested failure');
          // The old version is n = 1 again: its entry moves, and no entry of 100 is left behind.
          await tx.replace('t', { ...doc!, n: 5 });
        });
        await store.read(async (tx) => {
          const entries = await tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 10 });
          expect(entries.map((e) => e.document.n)).toEqual([5]);
        });
      });
    });

    it('nest, and a refused document inside one leaves the outer transaction able to commit', async () => {
      await withStore(harness(), async (store) => {
        const [doc] = await seed(store, 't', [{ n: 1 }]);
        const number = store.catalog().requireTable('t').number;
        const inner = makeDocument(number, { n: 'inner' });
        await store.write(async (tx) => {
          await tx.subtransaction(async () => {
            await tx.insert('t', makeDocument(number, { n: 'outer-nested' }));
            await expect(
              tx.subtransaction(async () => {
                await tx.insert('t', inner);
                await tx.insert('t', { ...doc! });
              }),
            ).rejects.toSatisfy((e) => StorageError.is(e, StorageErrorCode.DuplicateId));
          });
          await tx.replace('t', { ...doc!, n: 2 });
        });
        await store.read(async (tx) => {
          expect(await tx.count('t')).toBe(2);
          expect(await tx.get('t', inner._id)).toBeNull();
          expect((await tx.get('t', doc!._id))?.n).toBe(2);
        });
      });
    });

    it('report catalog changes on the commit', async () => {
      await withStore(harness(), async (store) => {
        const { commit } = await store.write((tx) => tx.createTable('t'));
        expect(commit.catalogChanged).toBe(true);
        const number = store.catalog().requireTable('t').number;
        const { commit: plain } = await store.write((tx) =>
          tx.insert('t', makeDocument(number, {})),
        );
        expect(plain.catalogChanged).toBe(false);
      });
    });
  });
}
