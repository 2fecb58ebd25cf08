/**
 * Which overlapping write transactions conflict on PostgreSQL: those where one missed a write
 * of another that commits first (so commit order stays the serial order), and no others.
 */
import { randomBytes } from 'node:crypto';
import {
  type Document,
  idKey,
  StorageError,
  StorageErrorCode,
  type WriteTransaction,
} from '@sleigh/storage';
import { makeDocument, seed, writeWithRetries } from '@sleigh/storage/conformance';
import { databaseUrl } from '@sleigh/testing';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { lockKey } from './migrations.js';
import { openPostgresStore, PostgresStore } from './store.js';
import { traceStatements } from './test-trace.js';

async function freshStore(): Promise<PostgresStore> {
  const schema = `test_${randomBytes(6).toString('hex')}`;
  const store = await openPostgresStore({ connectionString: databaseUrl(), schema });
  onTestFinished(async (context) => {
    await store.close();
    if (context.task.result?.state !== 'fail')
      await PostgresStore.dropSchema(databaseUrl(), schema);
  });
  return store;
}

/** A latch: `open()` lets everyone waiting on `opened` go on. */
function latch(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

interface Side {
  readonly read: (tx: WriteTransaction) => Promise<unknown>;
  readonly write: (tx: WriteTransaction) => Promise<unknown>;
}

/**
 * Runs two write transactions side by side: each does its reads, waits until the other has
 * done its own, then writes. Resolves with how each ended.
 */
async function sideBySide(
  store: PostgresStore,
  a: Side,
  b: Side,
): Promise<['committed' | 'conflict', 'committed' | 'conflict']> {
  const aRead = latch();
  const bRead = latch();
  const run = (
    side: Side,
    mine: ReturnType<typeof latch>,
    theirs: ReturnType<typeof latch>,
  ): Promise<'committed' | 'conflict'> =>
    store
      .write(async (tx) => {
        await side.read(tx);
        mine.open();
        await theirs.opened;
        await side.write(tx);
      })
      .then(
        () => 'committed' as const,
        (error: unknown) => {
          if (StorageError.is(error, StorageErrorCode.Conflict)) return 'conflict' as const;
          throw error;
        },
      );
  return Promise.all([run(a, aRead, bRead), run(b, bRead, aRead)]);
}

/** Writes `doc` of `table` again with its `n` one higher. */
/**
 * Runs a write transaction that reads, lets `between` commit in a transaction of its own, then
 * writes; resolves with how it ended.
 */
async function commitsBetween(
  store: PostgresStore,
  read: (tx: WriteTransaction) => Promise<unknown>,
  between: (tx: WriteTransaction) => Promise<unknown>,
  write: (tx: WriteTransaction) => Promise<unknown>,
): Promise<'committed' | 'conflict'> {
  return store
    .write(async (tx) => {
      await read(tx);
      await store.write(between);
      await write(tx);
    })
    .then(
      () => 'committed' as const,
      (error: unknown) => {
        if (StorageError.is(error, StorageErrorCode.Conflict)) return 'conflict' as const;
        throw error;
      },
    );
}

const bump = (table: string, doc: Document) => (tx: WriteTransaction) =>
  tx.replace(table, { ...doc, n: (doc.n as number) + 1 });

describe('conflicts on PostgreSQL', () => {
  it('commits overlapping writers of unrelated documents, though both ask their timestamp', async () => {
    const store = await freshStore();
    const [x, y] = await seed(store, 'counters', [{ n: 0 }, { n: 0 }]);
    const outcomes = await sideBySide(
      store,
      {
        read: async (tx) => [await tx.timestamp(), await tx.get('counters', x!._id)],
        write: bump('counters', x!),
      },
      {
        read: async (tx) => [await tx.timestamp(), await tx.get('counters', y!._id)],
        write: bump('counters', y!),
      },
    );
    expect(outcomes).toEqual(['committed', 'committed']);
  });

  it('fails one of two writers that each read both documents and write one (no write skew)', async () => {
    const store = await freshStore();
    const [x, y] = await seed(store, 'doctors', [{ n: 0 }, { n: 0 }]);
    const readBoth = (tx: WriteTransaction) => tx.getMany('doctors', [x!._id, y!._id]);
    const outcomes = await sideBySide(
      store,
      { read: readBoth, write: bump('doctors', x!) },
      { read: readBoth, write: bump('doctors', y!) },
    );
    expect(outcomes.filter((outcome) => outcome === 'conflict')).toHaveLength(1);
  });

  it('keeps writers in commit order: one that missed a write commits before it or not at all', async () => {
    const store = await freshStore();
    const [first] = await seed(store, 'items', [{ k: 1 }], { by_k: ['k'] });
    const [other] = await seed(store, 'other', [{ n: 0 }]);
    const items = store.catalog().requireTable('items').number;
    const read = latch();
    // A inserts into the range B read; B writes what A never reads. Snapshot isolation alone
    // would commit both (B first in its serial order, though it commits second): B must run
    // again, and then it sees A's write.
    const a = store.write(async (tx) => {
      await tx.get('items', first!._id);
      await read.opened;
      await tx.insert('items', makeDocument(items, { k: 5 }));
    });
    const b = store.write(async (tx) => {
      const before = await tx.scan({ table: 'items', index: 'by_k', order: 'asc', limit: 10 });
      read.open();
      await a;
      await tx.replace('other', { ...other!, n: before.length });
    });
    await a;
    await expect(b).rejects.toSatisfy((error) => StorageError.is(error, StorageErrorCode.Conflict));
    await writeWithRetries(store, async (tx) => {
      const now = await tx.scan({ table: 'items', index: 'by_k', order: 'asc', limit: 10 });
      await tx.replace('other', { ...other!, n: now.length });
    });
    expect((await store.read((tx) => tx.get('other', other!._id)))?.n).toBe(2);
  });

  it('depends on a limited scan only up to the last key it pulled', async () => {
    const store = await freshStore();
    await seed(store, 'items', [{ k: 10 }, { k: 20 }], { by_k: ['k'] });
    const [other] = await seed(store, 'other', [{ n: 0 }]);
    const items = store.catalog().requireTable('items').number;
    const firstItem = (tx: WriteTransaction) =>
      tx.scan({ table: 'items', index: 'by_k', order: 'asc', limit: 1 });
    const insert = (k: number) => (tx: WriteTransaction) =>
      tx.insert('items', makeDocument(items, { k }));
    // An insert after the key it read commits first: no conflict. One before it: the scan
    // would have pulled that one instead.
    expect(await commitsBetween(store, firstItem, insert(30), bump('other', other!))).toBe(
      'committed',
    );
    const again = (await store.read((tx) => tx.get('other', other!._id)))!;
    expect(await commitsBetween(store, firstItem, insert(5), bump('other', again))).toBe(
      'conflict',
    );
  });

  it('counts a scan its transaction sent and did not wait for', async () => {
    const store = await freshStore();
    const [anchor] = await seed(store, 'other', [{ n: 0 }]);
    await seed(store, 'items', [{ k: 1 }], { by_k: ['k'] });
    const items = store.catalog().requireTable('items').number;
    const begun = latch();
    const inserted = latch();
    const writer = store.write(async (tx) => {
      await tx.get('other', anchor!._id);
      begun.open();
      await inserted.opened;
      // Its answer comes after the callback ends, from the snapshot before the insert.
      void tx.scan({ table: 'items', index: 'by_k', order: 'asc', limit: 10 }).catch(() => {});
      await bump('other', anchor!)(tx);
    });
    await begun.opened;
    await store.write((tx) => tx.insert('items', makeDocument(items, { k: 2 })));
    inserted.open();
    await expect(writer).rejects.toSatisfy((error) =>
      StorageError.is(error, StorageErrorCode.Conflict),
    );
  });

  it('fails one of two writers that find the same derived id free and insert it', async () => {
    const store = await freshStore();
    await seed(store, 'claims', []);
    const number = store.catalog().requireTable('claims').number;
    const claim = makeDocument(number, { owner: 'someone' });
    const read = (tx: WriteTransaction) => tx.get('claims', claim._id);
    const insert = (tx: WriteTransaction) => tx.insert('claims', { ...claim });
    const outcomes = await sideBySide(store, { read, write: insert }, { read, write: insert });
    expect(outcomes.sort()).toEqual(['committed', 'conflict']);
  });

  it.each([
    ['knew of no commit since its snapshot', false, /landed while this transaction committed/],
    ['had checked the commits since its snapshot', true, /wrote a key this transaction read/],
  ])(
    'fails a writer whose reads a commit changed while it waited for the commit lock (it %s)',
    async (_, sawAnother, message) => {
      const store = await freshStore();
      const [watched, target, unrelated] = await seed(store, 'counters', [
        { n: 0 },
        { n: 0 },
        { n: 0 },
      ]);
      // Another session holds the commit lock, as a committing process does.
      const other = new pg.Client({ connectionString: databaseUrl() });
      await other.connect();
      onTestFinished(() => other.end());
      await other.query(`SET search_path = ${store.schema}`);
      const read = latch();
      const goOn = latch();
      const writer = store.write(async (tx) => {
        await tx.get('counters', watched!._id);
        read.open();
        await goOn.opened;
        await tx.replace('counters', { ...target!, n: 1 });
      });
      writer.catch(() => undefined);
      await read.opened;
      // A commit this process makes after the writer's snapshot: the writer must check the
      // commits since its snapshot rather than commit on the condition that none landed.
      if (sawAnother) await store.write((tx) => bump('counters', unrelated!)(tx));
      await other.query('SELECT pg_advisory_lock($1)', [lockKey(store.schema, 'commit')]);
      goOn.open();
      await waitForLockWaiter();
      // A commit lands while the writer waits, recorded as every commit is, its write set
      // naming the document the writer read (written by hand, so that it lands exactly now).
      const byId = store.catalog().requireIndex('counters', 'by_id').id;
      const key = Buffer.from(idKey(watched!._id));
      const header = Buffer.alloc(8);
      header.writeUInt32BE(byId, 0);
      header.writeUInt32BE(key.length, 4);
      await other.query(
        `INSERT INTO commits (ts, writes)
         SELECT setval('commit_ts', greatest(nextval('commit_ts'),
                  (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)), $1`,
        [Buffer.concat([header, key])],
      );
      await other.query('SELECT pg_advisory_unlock($1)', [lockKey(store.schema, 'commit')]);
      await expect(writer).rejects.toSatisfy(
        (error) =>
          StorageError.is(error, StorageErrorCode.Conflict) &&
          message.test((error as Error).message),
      );
      expect((await store.read((tx) => tx.get('counters', target!._id)))?.n).toBe(0);
    },
  );

  it('fails a writer that read something while the catalog changed', async () => {
    const store = await freshStore();
    const [doc] = await seed(store, 'counters', [{ n: 0 }]);
    const read = latch();
    const writer = store.write(async (tx) => {
      await tx.get('counters', doc!._id);
      read.open();
      await created;
      await bump('counters', doc!)(tx);
    });
    writer.catch(() => undefined);
    const created = read.opened.then(() => store.write((tx) => tx.createTable('late')));
    await created;
    await expect(writer).rejects.toSatisfy(
      (error) =>
        StorageError.is(error, StorageErrorCode.Conflict) &&
        /changed tables or indexes/.test((error as Error).message),
    );
  });

  it('sends a lone writer’s commit behind its statements, without waiting for their answers', async () => {
    const store = await freshStore();
    await seed(store, 'other', [{ n: 0 }]);
    const other = store.catalog().requireTable('other').number;
    const events = traceStatements(store);
    // It reads (a scan it does not wait for) and writes: a conflict check is due at commit.
    let scanned: Promise<unknown> = Promise.resolve();
    await store.write(async (tx) => {
      scanned = tx.scan({ table: 'other', index: 'by_id', order: 'asc', limit: 10 });
      await tx.insert('other', makeDocument(other, { n: 1 }));
    });
    await scanned;
    const firstAnswer = events.findIndex((event) => event.startsWith('done '));
    expect(events.indexOf('send COMMIT')).toBeGreaterThan(0);
    expect(events.indexOf('send COMMIT')).toBeLessThan(firstAnswer);
  });

  it('fails a lone writer that read what another process wrote since, heard of or not', async () => {
    const a = await freshStore();
    const [x, y] = await seed(a, 'counters', [{ n: 0 }, { n: 0 }]);
    const b = await openPostgresStore({ connectionString: databaseUrl(), schema: a.schema });
    onTestFinished(() => b.close());
    // Once A has not heard from another process for a while (B's start), A's commit goes out
    // as soon as B's is through, without waiting: A has not heard of B's yet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const writer = a.write(async (tx) => {
      await tx.getMany('counters', [x!._id, y!._id]);
      await b.write(bump('counters', x!));
      await bump('counters', y!)(tx);
    });
    await expect(writer).rejects.toSatisfy((error) =>
      StorageError.is(error, StorageErrorCode.Conflict),
    );
    const after = await a.read((tx) => tx.getMany('counters', [x!._id, y!._id]));
    expect(after.map((doc) => doc!.n)).toEqual([1, 0]);
  });

  it('commits after a timestamp was drawn and rolled back, quiet or not, and heals the sequence', async () => {
    const store = await freshStore();
    const [x, y] = await seed(store, 'counters', [{ n: 0 }, { n: 0 }]);
    // What a process that dies between its commit record and COMMIT leaves behind: the
    // sequence has moved past the newest commit (sequences ignore rollbacks).
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    onTestFinished(() => client.end());
    const drawAndRollBack = async (): Promise<void> => {
      await client.query('BEGIN');
      await client.query(`SELECT nextval('"${store.schema}".commit_ts')`);
      await client.query('ROLLBACK');
    };
    const readBoth = (tx: WriteTransaction) => tx.getMany('counters', [x!._id, y!._id]);
    const other = await openPostgresStore({
      connectionString: databaseUrl(),
      schema: store.schema,
    });
    onTestFinished(() => other.close());
    const otherTable = (await seed(other, 'other', [{ n: 0 }]))[0]!._id;
    for (const quiet of [true, false]) {
      // Quiet: no other process heard from for a while, so the commit goes out on the
      // condition that nothing was drawn since its snapshot. Not quiet (another process
      // committed just now, and this one heard of it): the same condition, on the snapshot's
      // answer. Either way the condition fails once, and the retry checks the commits instead.
      if (quiet) {
        await new Promise((resolve) => setTimeout(resolve, 150));
      } else {
        const { commit } = await other.write((tx) => tx.delete('other', otherTable));
        await store.whenDelivered(commit.ts);
      }
      await drawAndRollBack();
      let attempts = 0;
      const doc = await writeWithRetries(
        store,
        async (tx) => {
          attempts++;
          const [current] = await readBoth(tx);
          await tx.replace('counters', { ...current!, n: (current!.n as number) + 1 });
          return current;
        },
        3,
      );
      expect(doc!.n).toBe(quiet ? 0 : 1);
      expect(attempts).toBe(2);
      // The retry's commit drew a timestamp that committed, so the next one commits at once.
      attempts = 0;
      await store.write(async (tx) => {
        attempts++;
        await readBoth(tx);
        await bump('counters', y!)(tx);
      });
      expect(attempts).toBe(1);
      y!.n = (y!.n as number) + 1;
    }
  });

  it("fails a writer whose process had not heard of another's new index, and its run again fills it", async () => {
    const a = await freshStore();
    const [first] = await seed(a, 'items', [{ k: 1 }]);
    const b = await openPostgresStore({ connectionString: databaseUrl(), schema: a.schema });
    onTestFinished(() => b.close());
    const items = b.catalog().requireTable('items').number;
    const late = makeDocument(items, { k: 2 });
    const insert = (tx: WriteTransaction) => tx.insert('items', late);
    // The writer starts from the catalog b has loaded, then writes only after a has created
    // the index: its snapshot sees the index, its catalog does not, and it reads nothing.
    const started = latch();
    const indexed = started.opened.then(() =>
      a.write((tx) => tx.createIndex('items', 'by_k', ['k'])),
    );
    const writer = b.write(async (tx) => {
      started.open();
      await indexed;
      await insert(tx);
    });
    await expect(writer).rejects.toSatisfy(
      (error) =>
        StorageError.is(error, StorageErrorCode.Conflict) &&
        /changed the tables or indexes since this transaction started/.test(
          (error as Error).message,
        ),
    );
    // The conflict loaded the new catalog: the run again writes the index's entry.
    expect(b.catalog().index('items', 'by_k')).toBeDefined();
    await b.write(insert);
    const found = await a.read((tx) =>
      tx.scan({ table: 'items', index: 'by_k', order: 'asc', limit: 10 }),
    );
    expect(found.map((entry) => entry.document._id)).toEqual([first!._id, late._id]);
  });
});

/** Waits until some session waits for an advisory lock (the commit lock, here). */
async function waitForLockWaiter(): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    for (let i = 0; i < 500; i++) {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
      );
      if (rows[0]!.n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('nobody waited for the commit lock');
  } finally {
    await client.end();
  }
}
