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
