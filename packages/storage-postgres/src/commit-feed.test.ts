/**
 * The commit feed with real processes' worth of stores: two stores on one schema each hear every
 * commit of the other, in the one timestamp order, through LISTEN/NOTIFY and the commit log.
 */
import { randomBytes } from 'node:crypto';
import type { Commit } from '@sleigh/storage';
import { makeDocument } from '@sleigh/storage/conformance';
import { databaseUrl } from '@sleigh/testing';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { commitChannel } from './commit-feed.js';
import { openPostgresStore, PostgresStore } from './store.js';

async function twoStores(options: { commitRetentionMs?: number } = {}) {
  const schema = `test_${randomBytes(6).toString('hex')}`;
  const a = await openPostgresStore({ connectionString: databaseUrl(), schema, ...options });
  const b = await openPostgresStore({ connectionString: databaseUrl(), schema, ...options });
  onTestFinished(async (context) => {
    await a.close();
    await b.close();
    if (context.task.result?.state !== 'fail')
      await PostgresStore.dropSchema(databaseUrl(), schema);
  });
  return { schema, a, b };
}

function record(store: PostgresStore): Commit[] {
  const seen: Commit[] = [];
  store.onCommit((commit) => seen.push(commit));
  return seen;
}

const hex = (commit: Commit) => ({
  ts: commit.ts,
  writes: commit.writes.map((w) => `${w.indexId}:${Buffer.from(w.key).toString('hex')}`),
});

/** Runs SQL as a separate connection (an operator, or a fault). */
async function admin(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl() });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** Counts the store's reads of the commit log (the feed's catch-up statement). */
function countLogReads(store: PostgresStore): { count: number } {
  const reads = { count: 0 };
  const pool = (store as unknown as { pool: { query: (...args: unknown[]) => unknown } }).pool;
  const query = pool.query.bind(pool);
  pool.query = (...args: unknown[]) => {
    if ((args[0] as { name?: string }).name?.endsWith('read_commits')) reads.count++;
    return query(...args);
  };
  onTestFinished(() => void (pool.query = query));
  return reads;
}

/** The next write transaction's COMMIT takes effect, and its answer fails as a dropped connection's. */
function loseNextCommitAnswer(store: PostgresStore): void {
  const pool = (store as unknown as { pool: pg.Pool }).pool;
  let armed = true;
  const lose = (client: pg.PoolClient) => {
    if (!armed) return;
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    let recorded = false;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const config = args[0] as string | { name?: string };
      if (typeof config !== 'string' && config.name?.endsWith('record_commit')) recorded = true;
      const answer = query(...args);
      if (config !== 'COMMIT' || !recorded) return answer;
      armed = false;
      (client as unknown as { query: unknown }).query = query;
      return (answer as Promise<unknown>).then(() => {
        throw new Error('Connection terminated unexpectedly');
      });
    };
  };
  pool.on('acquire', lose);
  onTestFinished(() => void pool.off('acquire', lose));
}

describe('commit feed', () => {
  it('delivers every commit of both stores to both, in one timestamp order, with its writes', async () => {
    const { a, b } = await twoStores();
    const seenA = record(a);
    const seenB = record(b);
    await a.write((tx) => tx.createTable('t'));
    // b learns of the new table from a's commit (catalog changes travel with the feed).
    const head = await a.read((tx) => tx.timestamp());
    expect(await b.whenDelivered(head)).toBe(true);
    const number = b.catalog().requireTable('t').number;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        // Inserts of new documents: they never conflict, so each commits at its first try.
        (i % 2 === 0 ? a : b).write(async (tx) => {
          // Every fifth commit is too big for a notification and travels through the log.
          const size = i % 5 === 0 ? 2000 : 1;
          for (let k = 0; k < size; k++) await tx.insert('t', makeDocument(number, { i, k }));
        }),
      ),
    );
    const last = results.reduce((max, r) => (r.commit.ts > max ? r.commit.ts : max), 0n);
    expect(await a.whenDelivered(last)).toBe(true);
    expect(await b.whenDelivered(last)).toBe(true);
    expect(seenA.map(hex)).toEqual(seenB.map(hex));
    const stamps = seenA.map((c) => c.ts);
    expect(stamps).toEqual([...stamps].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(stamps).size).toBe(41);
    // Each commit arrives with exactly the writes its writer recorded.
    for (const { commit } of results) {
      expect(seenB.map(hex).find((c) => c.ts === commit.ts)).toEqual(hex(commit));
    }
  });

  it('wakes unordered listeners of the other store, and its own at once', async () => {
    const { a, b } = await twoStores();
    const wokenA: bigint[] = [];
    const wokenB: bigint[] = [];
    a.onCommit((commit) => wokenA.push(commit.ts), { unordered: true });
    b.onCommit((commit) => wokenB.push(commit.ts), { unordered: true });
    const { commit } = await a.write((tx) => tx.createTable('t'));
    // The writer's own wake-up listeners ran before write() returned.
    expect(wokenA).toEqual([commit.ts]);
    expect(await b.whenDelivered(commit.ts)).toBe(true);
    expect(wokenB).toEqual([commit.ts]);
    expect(wokenA).toEqual([commit.ts]);
  });

  it("delivers a store's own commits with the writes it has, without reading the commit log", async () => {
    const { a } = await twoStores();
    const created = await a.write((tx) => tx.createTable('t'));
    expect(await a.whenDelivered(created.commit.ts)).toBe(true);
    const number = a.catalog().requireTable('t').number;
    const reads = countLogReads(a);
    const seen = record(a);
    const commits: Commit[] = [];
    for (let i = 0; i < 50; i++) {
      commits.push((await a.write((tx) => tx.insert('t', makeDocument(number, { i })))).commit);
    }
    expect(await a.whenDelivered(commits[commits.length - 1]!.ts)).toBe(true);
    expect(seen.map(hex)).toEqual(commits.map(hex));
    // Each commit's notification came back to this process, often before its COMMIT's answer
    // (15 of these 50 did, in one run without the wait): the feed waited for the answer rather
    // than read the log. It does read it when a wait runs over 100 ms (a very busy machine).
    expect(reads.count).toBeLessThanOrEqual(2);
  });

  it('delivers a commit whose answer was lost, reading its writes from the log', async () => {
    const { a } = await twoStores();
    const created = await a.write((tx) => tx.createTable('t'));
    expect(await a.whenDelivered(created.commit.ts)).toBe(true);
    const number = a.catalog().requireTable('t').number;
    const seen = record(a);
    // The COMMIT goes through, and its answer is lost as if the connection had dropped.
    loseNextCommitAnswer(a);
    const lost = a.write((tx) => tx.insert('t', makeDocument(number, { lost: true })));
    await expect(lost).rejects.toThrow(/outcome is unknown/);
    const { commit } = await a.write((tx) => tx.insert('t', makeDocument(number, { after: true })));
    expect(await a.whenDelivered(commit.ts)).toBe(true);
    expect(seen).toHaveLength(2);
    expect(seen[0]!.writes).toHaveLength(commit.writes.length);
    expect(seen[0]!.ts).toBeLessThan(commit.ts);
    expect(seen[1]!.ts).toBe(commit.ts);
  });

  it('reconnects after losing its LISTEN connection and delivers what committed meanwhile', async () => {
    const { a, b } = await twoStores();
    const seenB = record(b);
    await a.write((tx) => tx.createTable('t'));
    const number = a.catalog().requireTable('t').number;
    // Kill every backend listening on the channel (both stores' feeds).
    const killed = await admin(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE query = $1 AND pid <> pg_backend_pid()`,
      [`LISTEN "${commitChannel(a.schema)}"`],
    );
    expect(killed.rowCount).toBe(2);
    const stamps: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      stamps.push((await a.write((tx) => tx.insert('t', makeDocument(number, { i })))).commit.ts);
    }
    expect(await b.whenDelivered(stamps[4]!)).toBe(true);
    expect(seenB.map((c) => c.ts).slice(-5)).toEqual(stamps);
    // And it listens again: a later commit arrives without anyone waiting for it.
    const later = await a.write((tx) => tx.insert('t', makeDocument(number, { i: 5 })));
    await expect.poll(() => seenB.at(-1)?.ts, { timeout: 5000 }).toBe(later.commit.ts);
  });

  it('tells listeners that everything may have changed when it fell behind the trimmed log', async () => {
    const { schema, a, b } = await twoStores();
    const seenB = record(b);
    await a.write((tx) => tx.createTable('t'));
    const number = a.catalog().requireTable('t').number;
    expect(await b.whenDelivered(await a.read((tx) => tx.timestamp()))).toBe(true);
    // b's feed drops; while it is away a commits, and the log is trimmed under it.
    await admin(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE query = $1 AND pid <> pg_backend_pid()`,
      [`LISTEN "${commitChannel(schema)}"`],
    );
    const first = await a.write((tx) => tx.insert('t', makeDocument(number, { i: 1 })));
    const second = await a.write((tx) => tx.insert('t', makeDocument(number, { i: 2 })));
    await admin(`DELETE FROM "${schema}".commits WHERE ts < $1`, [second.commit.ts.toString()]);
    expect(await b.whenDelivered(second.commit.ts)).toBe(true);
    const tail = seenB.slice(-2);
    expect(tail[0]).toMatchObject({ writesUnknown: true, writes: [] });
    expect(tail[0]!.ts >= first.commit.ts).toBe(true);
    expect(hex(tail[1]!)).toEqual(hex(second.commit));
  });
});
