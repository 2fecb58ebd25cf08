import { randomBytes } from 'node:crypto';
import { convexToJson, jsonToConvex, type JSONValue, type Value } from 'convex/values';
import type { Commit } from '@sleigh/storage';
import { describe, expect, it } from 'vitest';
import type { Engine, MutationOutcome, QueryOutcome } from './engine.js';
import { FunctionErrorCode } from './errors.js';
import { DRIVERS, startApp } from './test-harness.js';

const enc = (value: Value) => convexToJson(value);

async function ok(
  outcome: Promise<QueryOutcome | MutationOutcome | { ok: boolean; logLines: string[] }>,
): Promise<Value> {
  const result = (await outcome) as { ok: boolean; value?: JSONValue; error?: Error };
  if (!result.ok) throw result.error ?? new Error('failed without an error');
  return jsonToConvex(result.value!);
}

async function seedMessages(engine: Engine): Promise<string[]> {
  const rows = [
    { channel: 'a', author: 'carol', body: 'one' },
    { channel: 'b', author: 'alice', body: 'two' },
    { channel: 'a', author: 'alice', body: 'three' },
    { channel: 'b', author: 'bob', body: 'four' },
    { channel: 'a', author: 'bob', body: 'five' },
    { channel: 'c', author: 'dave', body: 'pinned' },
  ];
  const ids: string[] = [];
  for (const row of rows)
    ids.push((await ok(engine.mutation('messages:send', enc(row)))) as string);
  return ids;
}

const bodies = (value: Value) => (value as Array<{ body: string }>).map((m) => m.body);

describe.each(DRIVERS)('engine on $name', (driver) => {
  describe('queries', () => {
    it('scans a whole table in creation order', async () => {
      const engine = await startApp('basic', driver);
      await seedMessages(engine);
      expect(bodies(await ok(engine.query('messages:list', {})))).toEqual([
        'one',
        'two',
        'three',
        'four',
        'five',
        'pinned',
      ]);
      expect(bodies(await ok(engine.query('messages:latest', { n: 2 })))).toEqual([
        'pinned',
        'five',
      ]);
    });

    it('refuses a string with a lone surrogate instead of reading it as U+FFFD', async () => {
      const engine = await startApp('basic', driver);
      expect(await ok(engine.mutation('bank:increment', { name: '\ufffd' }))).toBe(1);
      // Encoded as UTF-8, each of these would have found (and counted on) the U+FFFD counter.
      for (const name of ['\ud800', '\udfff']) {
        const outcome = await engine.mutation('bank:increment', { name });
        expect(outcome.ok).toBe(false);
        if (!outcome.ok)
          expect(outcome.error.message).toMatch(/lone surrogate is not valid Unicode/);
      }
      expect(await ok(engine.query('bank:counter', { name: '\ufffd' }))).toBe(1);
    });

    it('reads index ranges with eq, gt, gte, lt, lte and both orders', async () => {
      const engine = await startApp('basic', driver);
      await seedMessages(engine);
      expect(bodies(await ok(engine.query('messages:byChannel', { channel: 'a' })))).toEqual([
        'one',
        'three',
        'five',
      ]);
      expect(
        bodies(await ok(engine.query('messages:byChannel', { channel: 'a', order: 'desc' }))),
      ).toEqual(['five', 'three', 'one']);
      const range = (args: Record<string, Value>) =>
        ok(engine.query('messages:byAuthorRange', enc(args)));
      // Channel a, sorted by author: alice(three), bob(five), carol(one).
      expect(bodies(await range({ channel: 'a', after: 'alice', inclusive: false }))).toEqual([
        'five',
        'one',
      ]);
      expect(bodies(await range({ channel: 'a', after: 'bob', inclusive: true }))).toEqual([
        'five',
        'one',
      ]);
      expect(bodies(await range({ channel: 'a', before: 'bob', inclusive: false }))).toEqual([
        'three',
      ]);
      expect(bodies(await range({ channel: 'a', before: 'bob', inclusive: true }))).toEqual([
        'three',
        'five',
      ]);
      expect(
        bodies(await range({ channel: 'a', after: 'alice', before: 'carol', inclusive: false })),
      ).toEqual(['five']);
      expect(bodies(await range({ channel: 'a', after: 'zed', inclusive: true }))).toEqual([]);
      expect(bodies(await range({ channel: 'nope', inclusive: true }))).toEqual([]);
    });

    it('filters with comparisons, and/or/not, arithmetic and missing fields', async () => {
      const engine = await startApp('basic', driver);
      const ids = await seedMessages(engine);
      await ok(engine.mutation('messages:like', { id: ids[0]! }));
      await ok(engine.mutation('messages:like', { id: ids[0]! }));
      await ok(engine.mutation('messages:like', { id: ids[1]! }));
      expect(bodies(await ok(engine.query('messages:filtered', { minLikes: 1 })))).toEqual([
        'one',
        'two',
        'pinned',
      ]);
      expect(bodies(await ok(engine.query('messages:filtered', { minLikes: 2 })))).toEqual([
        'one',
        'pinned',
      ]);
      // likes + 1 is even: likes 1 (two); missing likes make the arithmetic fail for other rows.
      const arithmetic = await engine.query('messages:arithmetic', {});
      expect(arithmetic.ok).toBe(false);
      expect(bodies(await ok(engine.query('messages:missingLikes', {})))).toEqual([
        'three',
        'four',
        'five',
        'pinned',
      ]);
    });

    it('first, unique (and its error), take after filter, and async iteration that stops early', async () => {
      const engine = await startApp('basic', driver);
      await seedMessages(engine);
      expect(
        ((await ok(engine.query('messages:firstInChannel', { channel: 'b' }))) as { body: string })
          .body,
      ).toBe('two');
      expect(await ok(engine.query('messages:firstInChannel', { channel: 'zzz' }))).toBeNull();
      expect(
        ((await ok(engine.query('messages:uniqueInChannel', { channel: 'c' }))) as { body: string })
          .body,
      ).toBe('pinned');
      const notUnique = await engine.query('messages:uniqueInChannel', { channel: 'a' });
      expect(notUnique.ok).toBe(false);
      if (!notUnique.ok)
        expect(notUnique.error.message).toMatch(
          /unique\(\) query returned more than one result from table messages/,
        );
      expect(bodies(await ok(engine.query('messages:filterThenLimit', {})))).toEqual([
        'two',
        'four',
      ]);
      expect(await ok(engine.query('messages:iterate', { stopAfter: 2 }))).toEqual(['one', 'two']);
      expect(await ok(engine.query('messages:count', {}))).toBe(6);
    });

    it("bounds a filtered page of the dashboard's Data page, which goes on from where it stopped", async () => {
      const engine = await startApp('basic', driver);
      await ok(engine.mutation('rules:manyWrites', { count: 5500 }));
      await ok(
        engine.mutation('messages:send', enc({ channel: 'c', author: 'needle', body: 'n' })),
      );
      const page = async (cursor: string | null) => {
        const outcome = await engine.query(
          '_system/data:documents',
          {
            table: 'messages',
            order: 'asc',
            filters: [{ field: 'author', value: 'needle' }],
            paginationOpts: { numItems: 10, cursor },
          },
          { caller: 'admin' },
        );
        if (!outcome.ok) throw outcome.error;
        return outcome.value as unknown as {
          page: Array<{ author: string }>;
          isDone: boolean;
          continueCursor: string;
        };
      };
      // The first 5,000 documents hold no match: the page stops there rather than scan on.
      const first = await page(null);
      expect(first.page).toEqual([]);
      expect(first.isDone).toBe(false);
      const second = await page(first.continueCursor);
      expect(second.page.map((m) => m.author)).toEqual(['needle']);
    });

    it('paginates with stable cursors, also across inserts, in both directions', async () => {
      const engine = await startApp('basic', driver);
      for (let i = 0; i < 23; i++) {
        await ok(
          engine.mutation('messages:send', {
            channel: i % 2 === 0 ? 'even' : 'odd',
            author: 'x',
            body: `m${i}`,
          }),
        );
      }
      type Page = { page: Array<{ body: string }>; isDone: boolean; continueCursor: string };
      const pageOf = async (cursor: string | null, numItems: number, channel?: string) =>
        (await ok(
          engine.query(
            'messages:page',
            enc({
              paginationOpts: { numItems, cursor },
              ...(channel === undefined ? {} : { channel }),
            }),
          ),
        )) as unknown as Page;
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      for (;;) {
        const result = await pageOf(cursor, 5);
        seen.push(...result.page.map((m) => m.body));
        pages++;
        // A document inserted after the first page lands after the cursor and is still seen.
        if (pages === 1)
          await ok(
            engine.mutation('messages:send', { channel: 'late', author: 'x', body: 'late' }),
          );
        if (result.isDone) break;
        cursor = result.continueCursor;
      }
      expect(seen).toEqual([...Array.from({ length: 23 }, (_, i) => `m${i}`), 'late']);
      expect(pages).toBe(5);
      const done = await pageOf(cursor, 5);
      expect(done.isDone).toBe(true);
      // Descending, on an index.
      const first = await pageOf(null, 4, 'odd');
      expect(first.page.map((m) => m.body)).toEqual(['m21', 'm19', 'm17', 'm15']);
      const second = await pageOf(first.continueCursor, 4, 'odd');
      expect(second.page.map((m) => m.body)).toEqual(['m13', 'm11', 'm9', 'm7']);
      const mixed = await engine.query(
        'messages:page',
        enc({ paginationOpts: { numItems: 4, cursor: first.continueCursor } }),
      );
      expect(mixed.ok).toBe(false);
      if (!mixed.ok) expect(mixed.error.message).toMatch(/Invalid pagination cursor/);
      // Another channel's cursor (same index, same order) must not carry the page out of this
      // channel's range: refused, never a page of the other channel.
      const evens = await pageOf(null, 4, 'even');
      const crossed = await engine.query(
        'messages:page',
        enc({ paginationOpts: { numItems: 4, cursor: evens.continueCursor }, channel: 'odd' }),
      );
      expect(!crossed.ok && crossed.error.message).toMatch(
        /Invalid pagination cursor .*: it belongs to a different query \(its position is outside this query's range\)/,
      );
      // A journal (what a subscription keeps) pins the page's end: a document written into
      // the page makes it longer. One that does not fit the query is ignored, never an error.
      const pageArgs = enc({ paginationOpts: { numItems: 2, cursor: null }, channel: 'odd' });
      const pinned = await engine.query('messages:page', pageArgs);
      expect(pinned.ok && pinned.journal).toMatch(/^\{"endCursor":"\d+\.desc\./);
      await ok(engine.mutation('messages:send', { channel: 'odd', author: 'x', body: 'newest' }));
      const sizeWith = async (journal: string | null) => {
        const outcome = await engine.query('messages:page', pageArgs, { journal });
        return outcome.ok ? (outcome.value as unknown as Page).page.map((m) => m.body) : outcome;
      };
      expect(await sizeWith((pinned.ok && pinned.journal) || null)).toEqual([
        'newest',
        'm21',
        'm19',
      ]);
      expect(await sizeWith(null)).toEqual(['newest', 'm21']);
      expect(await sizeWith('garbage')).toEqual(['newest', 'm21']);
      const foreign = JSON.stringify({ endCursor: evens.continueCursor });
      expect(await sizeWith(foreign)).toEqual(['newest', 'm21']);
      // A page that grew can be split where it says: the two halves hold it all, in order.
      const grown = (await ok(
        engine.query('messages:page', pageArgs, { journal: (pinned.ok && pinned.journal) || null }),
      )) as unknown as Page & { splitCursor: string | null };
      const half = async (cursor: string | null, endCursor: string) =>
        (
          (await ok(
            engine.query(
              'messages:page',
              enc({ paginationOpts: { numItems: 2, cursor, endCursor }, channel: 'odd' }),
            ),
          )) as unknown as Page
        ).page.map((m) => m.body);
      expect(grown.splitCursor).not.toBeNull();
      expect(await half(null, grown.splitCursor!)).toEqual(['newest']);
      expect(await half(grown.splitCursor, grown.continueCursor)).toEqual(['m21', 'm19']);
      // Page sizes that would never move on, and cursors that are not ours, are refused.
      const refused = async (paginationOpts: Value) => {
        const outcome = await engine.query('messages:page', enc({ paginationOpts }));
        return outcome.ok ? null : outcome.error.message;
      };
      for (const numItems of [0, 1.5, Infinity, NaN]) {
        expect(await refused({ numItems, cursor: null }), String(numItems)).toMatch(
          /paginate\(\): numItems must be a whole number of at least 1/,
        );
      }
      for (const maximumRowsRead of [0, -1, 2.5]) {
        expect(
          await refused({ numItems: 2, cursor: null, maximumRowsRead }),
          String(maximumRowsRead),
        ).toMatch(/paginate\(\): maximumRowsRead must be a whole number of at least 1/);
      }
      const dotted = await engine.query(
        '_system/data:documents',
        { table: 'messages.by_channel', paginationOpts: { numItems: 4, cursor: null } },
        { caller: 'admin' },
      );
      expect(!dotted.ok && dotted.error.message).toMatch(
        /"messages.by_channel" is not a table name: it holds a "."/,
      );
      const damaged = cursor!.replace(/\.[^.]*$/, '.!!!');
      expect(await refused({ numItems: 4, cursor: damaged })).toMatch(/its position is damaged/);
      expect(await refused({ numItems: 4, cursor: 'garbage' })).toMatch(
        /Invalid pagination cursor "garbage": it is not a cursor this server made/,
      );
    });

    it('records what a query read, precisely: a commit elsewhere in the table invalidates nothing', async () => {
      const engine = await startApp('basic', driver);
      await seedMessages(engine);
      const first = await engine.query('messages:firstInChannel', { channel: 'a' });
      const channelA = await engine.query('messages:byChannel', { channel: 'a' });
      const channelC = await engine.query('messages:byChannel', { channel: 'c' });
      const listed = await engine.query('messages:list', {});
      const counted = await engine.query('messages:count', {});
      const commits: Commit[] = [];
      // This process's commits, as they commit (the ordered feed may deliver them a little later).
      engine.store.onCommit((commit) => commits.push(commit), { unordered: true });
      // The commit of a mutation, by its timestamp (background work may commit in between).
      const commitOf = async (path: string, args: JSONValue): Promise<Commit> => {
        const outcome = await engine.mutation(path, args);
        if (!outcome.ok) throw outcome.error;
        const commit = commits.find((candidate) => candidate.ts === outcome.ts);
        expect(commit, `the commit of ${path}`).toBeDefined();
        return commit!;
      };
      // A new message in channel b: the full scan and the count read it; the channel queries not.
      const insertB = await commitOf('messages:send', {
        channel: 'b',
        author: 'eve',
        body: 'elsewhere',
      });
      expect(listed.readSet.invalidatedBy(insertB)).toBe(true);
      expect(counted.readSet.invalidatedBy(insertB)).toBe(true);
      expect(first.readSet.invalidatedBy(insertB)).toBe(false);
      expect(channelA.readSet.invalidatedBy(insertB)).toBe(false);
      expect(channelC.readSet.invalidatedBy(insertB)).toBe(false);
      // A new message in channel a: the channel-a collect sees it; first() read only the first key.
      const insertA = await commitOf('messages:send', {
        channel: 'a',
        author: 'zed',
        body: 'late',
      });
      expect(channelA.readSet.invalidatedBy(insertA)).toBe(true);
      expect(first.readSet.invalidatedBy(insertA)).toBe(false);
      expect(channelC.readSet.invalidatedBy(insertA)).toBe(false);
      // Changing the first message of channel a reaches first() too.
      const firstId = (
        (await ok(engine.query('messages:firstInChannel', { channel: 'a' }))) as { _id: string }
      )._id;
      const liked = await commitOf('messages:like', { id: firstId });
      expect(first.readSet.invalidatedBy(liked)).toBe(true);
      expect(channelC.readSet.invalidatedBy(liked)).toBe(false);
    });
  });

  describe('values', () => {
    it('round-trips int64, bytes, NaN, -0, infinities and nested values through args, documents and results', async () => {
      const engine = await startApp('basic', driver);
      const bytes = new Uint8Array([0, 1, 2, 255]).buffer;
      const nested = { list: [1n, -0, NaN, 'x', { deep: [Infinity, -Infinity] }], b: bytes };
      const id = (await ok(
        engine.mutation(
          'values:store',
          enc({ label: 'edge', big: -(2n ** 63n), blob: bytes, float: NaN, nested }),
        ),
      )) as string;
      const stored = (await ok(engine.query('values:get', { id }))) as Record<string, Value>;
      expect(stored.big).toBe(-(2n ** 63n));
      expect(new Uint8Array(stored.blob as ArrayBuffer)).toEqual(new Uint8Array([0, 1, 2, 255]));
      expect(Number.isNaN(stored.float)).toBe(true);
      const back = stored.nested as { list: Value[] };
      expect(back.list[0]).toBe(1n);
      expect(Object.is(back.list[1], -0)).toBe(true);
      expect(Number.isNaN(back.list[2] as number)).toBe(true);
      const echoed = (await ok(
        engine.query('values:echo', enc({ value: [2n ** 63n - 1n, -0, bytes] })),
      )) as Value[];
      expect(echoed[0]).toBe(2n ** 63n - 1n);
      expect(Object.is(echoed[1], -0)).toBe(true);
      await ok(engine.mutation('values:store', enc({ label: 'small', big: 5n })));
      await ok(engine.mutation('values:store', enc({ label: 'max', big: 2n ** 63n - 1n })));
      const ranged = (await ok(engine.query('values:byBig', enc({ min: 0n })))) as Array<{
        label: string;
      }>;
      expect(ranged.map((v) => v.label)).toEqual(['small', 'max']);
      // Plain JSON cannot carry Infinity: 1e400 parses to it, and would reach the handler as
      // null. It is refused, naming the encoding that does carry it.
      const huge = await engine.query(
        'values:echo',
        JSON.parse('{"value": {"n": 1e400}}') as JSONValue,
      );
      expect(!huge.ok && huge.error.message).toBe(
        'Invalid arguments for values:echo: they hold a number too large for a double (such as 1e400); send Infinity and NaN in Convex\'s encoding ({"$float": …})',
      );
    });
  });

  describe('mutations', () => {
    it('commits a long mutation under a steady stream of short ones on a shared database', async () => {
      // Two engines on one database (one store on SQLite, which has one writer anyway).
      const place = driver.place();
      const engine = await startApp('basic', driver, { store: await place.open() });
      const other =
        driver.name === 'postgres'
          ? await startApp('basic', driver, { store: await place.open() })
          : engine;
      let writing = true;
      const writers = Array.from({ length: 6 }, async (_, w) => {
        for (let n = 0; writing; n++) {
          await other.mutation(
            'messages:send',
            enc({ channel: `w${w}`, author: 'w', body: `${n}` }),
          );
          // As clients' requests do, let timers and I/O in between (SQLite's writes never wait).
          await new Promise((resolve) => setImmediate(resolve));
        }
      });
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        // Each overlaps many short commits; it must not keep losing to them.
        for (let i = 0; i < 3; i++) {
          await ok(engine.mutation('rules:readThenWrite', { reads: 40, body: `slow ${i}` }));
        }
      } finally {
        writing = false;
        await Promise.all(writers);
      }
      const slow = (await ok(engine.query('messages:byChannel', { channel: 'slow' }))) as Array<{
        body: string;
      }>;
      expect(slow.map((m) => m.body)).toEqual(['slow 0', 'slow 1', 'slow 2']);
    });

    it('patch (including removing a field), replace and delete', async () => {
      const engine = await startApp('basic', driver);
      const [id] = await seedMessages(engine);
      expect(await ok(engine.mutation('messages:like', { id: id! }))).toBe(1);
      await ok(engine.mutation('messages:unlikeAll', { id: id! }));
      const afterUnlike = (await ok(
        engine.query('messages:firstInChannel', { channel: 'a' }),
      )) as Record<string, Value>;
      expect('likes' in afterUnlike).toBe(false);
      await ok(engine.mutation('messages:rewrite', { id: id!, body: 'rewritten' }));
      expect(
        ((await ok(engine.query('messages:firstInChannel', { channel: 'a' }))) as { body: string })
          .body,
      ).toBe('rewritten');
      await ok(engine.mutation('messages:remove', { id: id! }));
      expect(bodies(await ok(engine.query('messages:byChannel', { channel: 'a' })))).toEqual([
        'three',
        'five',
      ]);
    });

    it('leaves no trace of a mutation that throws', async () => {
      const engine = await startApp('basic', driver);
      const failed = await engine.mutation('messages:sendThenFail', { channel: 'ghosts' });
      expect(failed.ok).toBe(false);
      if (!failed.ok) {
        expect(failed.error.code).toBe(FunctionErrorCode.Thrown);
        expect(failed.error.message).toMatch(/messages:sendThenFail: rolled back on purpose/);
      }
      expect(await ok(engine.query('messages:byChannel', { channel: 'ghosts' }))).toEqual([]);
    });

    it('200 concurrent increments of one counter end at exactly 200', async () => {
      const engine = await startApp('basic', driver);
      const results = await Promise.all(
        Array.from({ length: 200 }, () => engine.mutation('bank:increment', { name: 'hits' })),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      expect(await ok(engine.query('bank:counter', { name: 'hits' }))).toBe(200);
      const values = results.map((r) => (r.ok ? jsonToConvex(r.value) : null));
      expect(new Set(values).size).toBe(200);
      // PostgreSQL runs them at once, so most lose the race for the counter and run again.
      if (driver.name === 'postgres') expect(engine.monitor.conflicts).toBeGreaterThan(0);
    });

    it('queues the first attempts of a function that keeps conflicting, and no other', async () => {
      const engine = await startApp('basic', driver);
      const wave = async (name: string) => {
        const conflictsBefore = engine.monitor.conflicts;
        const results = await Promise.all(
          Array.from({ length: 100 }, () => engine.mutation('bank:increment', { name })),
        );
        expect(results.every((r) => r.ok)).toBe(true);
        return engine.monitor.conflicts - conflictsBefore;
      };
      // Accounts opened side by side never conflict, so they never queue.
      const opened = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          engine.mutation('bank:open', { owner: `o${i}`, balance: 1 }),
        ),
      );
      expect(opened.every((r) => r.ok)).toBe(true);
      expect(engine.monitor.queuedFirstAttempts).toBe(0);
      const first = await wave('hits');
      if (driver.name === 'sqlite') {
        // One writer at a time: nothing conflicts, nothing queues.
        expect(first).toBe(0);
        expect(engine.monitor.queuedFirstAttempts).toBe(0);
        return;
      }
      // On PostgreSQL the first wave races for the counter; the next one waits its turn, so
      // (this being the only process) none of it conflicts.
      expect(first).toBeGreaterThan(20);
      expect(await wave('hits')).toBe(0);
      expect(engine.monitor.queuedFirstAttempts).toBe(100);
      expect(await ok(engine.query('bank:counter', { name: 'hits' }))).toBe(200);
      // Other functions still run at once.
      expect((await engine.mutation('bank:open', { owner: 'late', balance: 1 })).ok).toBe(true);
      expect(engine.monitor.queuedFirstAttempts).toBe(100);
    });

    it('keeps the total constant under concurrent transfers between 20 accounts', async () => {
      const engine = await startApp('basic', driver);
      const accounts: string[] = [];
      for (let i = 0; i < 20; i++)
        accounts.push(
          (await ok(engine.mutation('bank:open', { owner: `o${i}`, balance: 100 }))) as string,
        );
      const transfers = Array.from({ length: 150 }, (_, i) =>
        engine.mutation('bank:transfer', {
          from: accounts[i % 20]!,
          to: accounts[(i * 7 + 3) % 20]!,
          amount: (i % 13) + 1,
        }),
      );
      const totals: Promise<QueryOutcome>[] = [];
      for (let i = 0; i < 10; i++) totals.push(engine.query('bank:total', {}));
      const outcomes = await Promise.all(transfers);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      for (const total of await Promise.all(totals))
        expect(total.ok && jsonToConvex(total.value)).toBe(2000);
      expect(await ok(engine.query('bank:total', {}))).toBe(2000);
    });

    it('runs nested queries and mutations in the same transaction, undoing a nested failure', async () => {
      const engine = await startApp('basic', driver);
      const result = (await ok(
        engine.mutation('messages:sendAndCount', { channel: 'nested' }),
      )) as {
        count: number;
        nestedError: Value;
      };
      expect(result.count).toBe(1);
      expect(result.nestedError).toBe('nested failure');
      expect(bodies(await ok(engine.query('messages:byChannel', { channel: 'nested' })))).toEqual([
        'via runMutation',
      ]);
    });
  });

  describe('actions', () => {
    it('call queries, mutations and actions, with real timers', async () => {
      const engine = await startApp('basic', driver);
      const result = (await ok(engine.action('rules:roundTrip', { channel: 'act' }))) as {
        id: string;
        count: number;
        echoed: Value;
      };
      expect(result.count).toBe(1);
      expect(result.echoed).toBe(14n);
    });
  });

  describe('rules and errors', () => {
    it('fails a query or mutation that never finishes, keeps nothing it wrote, and goes on serving', async () => {
      const engine = await startApp('basic', driver, { functionTimeoutMs: 300 });
      const hung = await engine.mutation('rules:hangingMutation', { channel: 'hang' });
      expect(hung.ok).toBe(false);
      expect(!hung.ok && hung.error.code).toBe(FunctionErrorCode.TimedOut);
      expect(!hung.ok && hung.error.message).toBe(
        'rules:hangingMutation did not finish within 0.3 s, the time limit of a mutation; nothing it wrote was kept',
      );
      // On SQLite every write queues behind the one running: the next must not wait for good.
      await ok(engine.mutation('messages:send', enc({ channel: 'c', author: 'a', body: 'next' })));
      expect(bodies(await ok(engine.query('messages:list', {})))).toEqual(['next']);
      const queries = await Promise.all(
        Array.from({ length: 25 }, () => engine.query('rules:hangingQuery', {})),
      );
      for (const outcome of queries) {
        expect(!outcome.ok && outcome.error.message).toBe(
          'rules:hangingQuery did not finish within 0.3 s, the time limit of a query',
        );
      }
      // More hung queries than PostgreSQL connections in the pool: each gave its own back.
      expect(bodies(await ok(engine.query('messages:list', {})))).toEqual(['next']);
    });

    it('takes a time limit longer than a Node timer can wait without failing everything at once', async () => {
      // Node fires a timer asked for more than 2^31 - 1 ms after 1 ms.
      const engine = await startApp('basic', driver, { functionTimeoutMs: 2 ** 31 });
      await ok(engine.mutation('messages:send', enc({ channel: 'c', author: 'a', body: 'slow' })));
      expect(bodies(await ok(engine.query('messages:list', {})))).toEqual(['slow']);
    });

    it('makes queries deterministic: the same query gives the same random numbers and a fixed clock', async () => {
      const engine = await startApp('basic', driver);
      const one = (await ok(engine.query('rules:random', { salt: 'x' }))) as {
        draws: number[];
        now: number;
        date: number;
      };
      const two = (await ok(engine.query('rules:random', { salt: 'x' }))) as {
        draws: number[];
        now: number;
        date: number;
      };
      const other = (await ok(engine.query('rules:random', { salt: 'y' }))) as { draws: number[] };
      expect(one.draws).toEqual(two.draws);
      expect(one.draws).not.toEqual(other.draws);
      expect(new Set(one.draws).size).toBe(3);
      expect(one.date).toBe(one.now);
    });

    it('refuses writes in queries, fetch in mutations and timers in queries, with clear errors', async () => {
      const engine = await startApp('basic', driver);
      const write = await engine.query('rules:writeInQuery', {});
      expect(!write.ok && write.error.message).toMatch(
        /insert is not allowed in a query|insert is not a function/,
      );
      const fetched = await engine.mutation('rules:fetchInMutation', {});
      expect(!fetched.ok && fetched.error.message).toMatch(
        /fetch\(\) is not allowed in a mutation \(rules:fetchInMutation\)/,
      );
      const timer = await engine.query('rules:timerInQuery', {});
      expect(!timer.ok && timer.error.message).toMatch(/setTimeout is not allowed in a query/);
    });

    it('validates arguments and return values, naming the function, the field and the type', async () => {
      const engine = await startApp('basic', driver);
      const bad = await engine.mutation('messages:send', { channel: 'a', author: 'x', body: 7 });
      expect(bad.ok).toBe(false);
      if (!bad.ok) {
        expect(bad.error.code).toBe(FunctionErrorCode.InvalidArguments);
        expect(bad.error.message).toMatch(/messages:send: `body`: expected string, got float64 7/);
      }
      const missing = await engine.mutation('messages:send', { channel: 'a', author: 'x' });
      expect(!missing.ok && missing.error.message).toMatch(/required field "body" is missing/);
      const extra = await engine.mutation('messages:send', {
        channel: 'a',
        author: 'x',
        body: 'y',
        spam: 1,
      });
      expect(!extra.ok && extra.error.message).toMatch(/"spam" is not in the validator/);
      const wrongId = await engine.mutation('messages:like', { id: 'not-an-id' });
      expect(!wrongId.ok && wrongId.error.message).toMatch(
        /`id`: expected an id of table "messages"/,
      );
      const badReturn = await engine.query('values:badReturn', {});
      expect(!badReturn.ok && badReturn.error.code).toBe(FunctionErrorCode.InvalidReturnValue);
    });

    it('validates writes against the schema, refuses unknown tables and oversized documents', async () => {
      const engine = await startApp('basic', driver);
      const schema = await engine.mutation('rules:schemaViolation', {});
      expect(!schema.ok && schema.error.message).toMatch(
        /failed schema validation: `body`: expected string, got float64 42/,
      );
      const table = await engine.mutation('rules:unknownTable', {});
      expect(!table.ok && table.error.message).toMatch(/table "nowhere" is not in the schema/);
      const big = await engine.mutation('rules:tooBig', {});
      expect(!big.ok && big.error.message).toMatch(/over the limit of 1048576 bytes/);
    });

    it('refuses a document whose index key is over the limit, naming index and field, writing nothing', async () => {
      const engine = await startApp('basic', driver);
      // About 4 KB of random text in the indexed `channel`: PostgreSQL's btree cannot hold it.
      const channel = randomBytes(3000).toString('base64');
      const outcome = await engine.mutation('messages:send', { channel, author: 'x', body: 'y' });
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.error.message).toMatch(
          /^Uncaught Error in messages:send: ctx\.db\.insert: Table "messages": index "by_channel" key is \d+ bytes, over the limit of 2048 bytes \(fields "channel" \d+ bytes/,
        );
      }
      expect(await ok(engine.query('messages:list', {}))).toEqual([]);
    });

    it('keeps ConvexError data, hides internal functions from clients, reports unknown functions', async () => {
      const engine = await startApp('basic', driver);
      const thrown = await engine.mutation('messages:send', {
        channel: 'q',
        author: 'x',
        body: '',
      });
      expect(thrown.ok).toBe(false);
      if (!thrown.ok)
        expect(jsonToConvex(thrown.error.data!)).toEqual({ code: 'EMPTY', channel: 'q' });
      const hidden = await engine.query('messages:secretCount', { channel: 'a' });
      expect(!hidden.ok && hidden.error.message).toBe(
        'Could not find public query "messages:secretCount"',
      );
      // The same function spelled with its extension: found, still hidden.
      const spelled = await engine.query('messages.js:secretCount', { channel: 'a' });
      expect(!spelled.ok && spelled.error.message).toBe(
        'Could not find public query "messages.js:secretCount"',
      );
      const malformed = await engine.query('no colon:!', {});
      expect(!malformed.ok && malformed.error.message).toMatch(
        /Could not find public query "no colon:!" \(not a valid function path; expected "module:function"\)/,
      );
      const admin = await engine.query(
        'messages:secretCount',
        { channel: 'a' },
        { caller: 'admin' },
      );
      expect(admin.ok).toBe(true);
      const unknown = await engine.query('nope:nothing', {});
      expect(!unknown.ok && unknown.error.code).toBe(FunctionErrorCode.NotFound);
      const wrongKind = await engine.mutation('messages:list', {});
      expect(!wrongKind.ok && wrongKind.error.message).toMatch(
        /"messages:list" is a query, not a mutation/,
      );
    });

    it('reports values thrown that JSON cannot write, and keeps serving', async () => {
      const engine = await startApp('basic', driver);
      const cases = [
        [
          engine.query('rules:throwOdd', { what: 'bigint' }),
          'Uncaught value in rules:throwOdd: 10',
        ],
        [
          engine.query('rules:throwOdd', { what: 'cyclic' }),
          'Uncaught value in rules:throwOdd: [object Object]',
        ],
        [
          engine.query('rules:throwOdd', { what: 'bare' }),
          'Uncaught value in rules:throwOdd: [object Object]',
        ],
        [
          engine.action('rules:throwOddAction', { what: 'bigint' }),
          'Uncaught value in rules:throwOddAction: 10',
        ],
        [
          engine.action('rules:throwOddAction', { what: 'cyclic' }),
          'Uncaught value in rules:throwOddAction: [object Object]',
        ],
      ] as const;
      for (const [running, message] of cases) {
        const outcome = await running;
        expect(!outcome.ok && outcome.error.message).toBe(message);
      }
      // The execution log has them too.
      await new Promise((resolve) => setImmediate(resolve));
      expect(
        engine.monitor.executions.recent().filter((execution) => execution.outcome === 'failure'),
      ).toHaveLength(5);
      expect((await engine.query('rules:random', { salt: 'x' })).ok).toBe(true);
    });

    it("holds a transaction to Convex's limits on documents read and written", async () => {
      const engine = await startApp('basic', driver);
      const tooMany = await engine.mutation('rules:manyWrites', { count: 16_001 });
      expect(!tooMany.ok && tooMany.error.message).toMatch(
        /Too many documents written in a single function execution \(limit: 16000\)/,
      );
      // Nothing of it was written; a mutation within the limit is fine.
      expect(await ok(engine.query('messages:count', {}))).toBe(0);
      await ok(engine.mutation('rules:manyWrites', { count: 1 }));
      // The read limit is the engine's, whatever the driver: counted on SQLite, where 32,000
      // reads take a moment (on PostgreSQL each is a round trip).
      if (driver.name !== 'sqlite') return;
      const id = ((await ok(engine.query('messages:list', {}))) as Array<{ _id: string }>)[0]!._id;
      expect(await ok(engine.query('rules:manyReads', { id, count: 32_000 }))).toBe(32_000);
      const reads = await engine.query('rules:manyReads', { id, count: 32_001 });
      expect(!reads.ok && reads.error.message).toMatch(
        /Too many documents read in a single function execution \(limit: 32000\)/,
      );
    });

    it("holds a transaction to Convex's limits on bytes read and written", async () => {
      const engine = await startApp('basic', driver);
      // 17 documents of 1,000 KiB: each fits a document, together they pass 16 MiB.
      const tooMuch = await engine.mutation('rules:bigWrites', {
        channel: 'big',
        count: 17,
        kib: 1000,
      });
      expect(!tooMuch.ok && tooMuch.error.message).toMatch(
        /Too many bytes written in a single function execution \(limit: 16777216 bytes\)/,
      );
      expect(await ok(engine.query('messages:count', {}))).toBe(0);
      // Written in three mutations, they are too many bytes for one query to read, whether
      // collected or paginated.
      for (let i = 0; i < 3; i++) {
        await ok(engine.mutation('rules:bigWrites', { channel: 'big', count: 6, kib: 1000 }));
      }
      for (const args of [{ channel: 'big' }, { channel: 'big', pageSize: 5 }]) {
        const reads = await engine.query('rules:readChannel', args);
        expect(!reads.ok && reads.error.message).toMatch(
          /Too many bytes read in a single function execution \(limit: 16777216 bytes\)/,
        );
      }
      // Within the limit, the metrics say what was read.
      await ok(engine.mutation('rules:bigWrites', { channel: 'two', count: 2, kib: 1000 }));
      const { count, bytesRead } = (await ok(
        engine.query('rules:readChannel', { channel: 'two' }),
      )) as { count: number; bytesRead: number };
      expect(count).toBe(2);
      expect(bytesRead).toBeGreaterThan(2 * 1000 * 1024);
      expect(bytesRead).toBeLessThan(2 * 1001 * 1024);
    });

    it('captures console output as log lines', async () => {
      const engine = await startApp('basic', driver);
      const outcome = await engine.query('rules:logs', {});
      expect(outcome.logLines).toEqual([
        "[LOG] hello { from: 'a query' }",
        '[WARN] careful',
        '[ERROR] oops 42',
      ]);
    });

    it('answers metadata and identity', async () => {
      const engine = await startApp('basic', driver);
      expect(await ok(engine.query('rules:metadata', {}))).toEqual({
        name: 'rules:metadata',
        type: 'query',
        visibility: 'public',
        identity: null,
      });
    });

    it('runs 2023-style functions written as plain handlers, and default exports', async () => {
      const engine = await startApp('basic', driver);
      await ok(engine.mutation('legacy:addMessage', { body: 'old style' }));
      expect(await ok(engine.query('legacy', {}))).toEqual(['old style']);
      expect(await ok(engine.query('legacy.js:default', {}))).toEqual(['old style']);
    });
  });
});
