/**
 * The floor: the least any engine that runs jobs as Convex functions can do per job, measured
 * on the same machine in the same run as Sleigh and the peers. It is not a queue anyone should
 * use; it is the yardstick for what Sleigh's engine could gain at most.
 *
 * Each job is a row of a bare table (state, due, a JSON value) with one index, and nothing
 * else: no index entries for subscriptions, no write sets, no retries, leases, holdings,
 * statistics or logs. The same workload as the job table: `jobs` jobs enqueued in batches of
 * 1,000, then run `concurrency` at once. Jobs are claimed 1,000 at a time whenever fewer than
 * 500 are queued locally (graphile-worker's batched `localQueue.size` is 500); each runs
 * through the `convex` package's own `invokeAction` inside an AsyncLocalStorage context, as
 * Sleigh's engine runs an action; the ends that piled up while a cycle ran are written by the
 * next in one transaction. The clock stops when the last end is written, as for Sleigh.
 *
 * - SQLite (better-sqlite3, WAL, synchronous NORMAL, as Sleigh opens it): one UPDATE per end.
 * - PostgreSQL: a claim is `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`,
 *   the ends one `UPDATE … FROM unnest(…)`, sent together in one transaction.
 *
 * Its latency, on the idle table, is the least an enqueue→start can take: one durable
 * transaction that inserts the job already claimed by this process, then `invokeAction`. On
 * PostgreSQL that transaction also notifies (`pg_notify`), as any engine serving several
 * processes on one database must so the others hear of the job (graphile-worker's insert
 * trigger does too); its statements are pipelined, one round trip and the WAL flush.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { internalActionGeneric } from 'convex/server';
import { v } from 'convex/values';
import pg from 'pg';
import { percentile } from './measure.js';
import type { QueueFigures } from './peers.js';

const ENQUEUE_BATCH = 1000;
const CLAIM_BATCH = 1000;
const REFILL_BELOW = 500;

/** The bench app's no-op action, defined with the same builder and validator. */
const noop = internalActionGeneric({ args: { i: v.number() }, handler: async () => null });
/** What convex's builders attach to a function for its host to run it. */
interface Invocable {
  readonly invokeAction: (requestId: string, args: string) => Promise<string>;
}
const { invokeAction } = noop as unknown as Invocable;
const context = new AsyncLocalStorage<{ id: number }>();

/** A no-op that notes when its handler starts, for the latency floor. */
let noteStart: (() => void) | undefined;
const probe = internalActionGeneric({
  args: {},
  handler: async () => {
    noteStart?.();
    return null;
  },
});
const { invokeAction: invokeProbe } = probe as unknown as Invocable;

/**
 * Enqueue→start on the idle table, one job at a time (as the job table samples Sleigh, with
 * the same number of samples after the same warm-up): `enqueue` commits the job, claimed for
 * this process, then its handler runs.
 */
async function idleLatency(
  enqueue: () => Promise<void>,
  samples = 200,
): Promise<{ p50Ms: number; p99Ms: number }> {
  const latencies: number[] = [];
  for (let i = 0; i < samples + 20; i++) {
    const begin = performance.now();
    await enqueue();
    let startedAt = NaN;
    noteStart = () => (startedAt = performance.now());
    await context.run({ id: i }, () => invokeProbe(`probe-${i}`, '[{}]'));
    if (i >= 20) latencies.push(startedAt - begin);
  }
  noteStart = undefined;
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

/** A job's row: claimed as the table has it, ended with its result added. */
interface JobRow {
  readonly id: number;
  /** The job as JSON: `{ fnName, args, attempt, enqueuedAt }`, and `result` once ended. */
  readonly value: string;
}

/**
 * What a driver does: claim up to `limit` pending jobs (marking them taken), and record ends.
 * `cycle` does both in one transaction and hands back the claims.
 */
interface FloorTable {
  cycle(ended: readonly JobRow[], claimLimit: number): Promise<JobRow[]>;
}

/** Runs every enqueued job through `table`; returns jobs per second until the last end is written. */
async function run(table: FloorTable, jobs: number, concurrency: number): Promise<number> {
  const queue: JobRow[] = [];
  let ended: JobRow[] = [];
  let running = 0;
  let recorded = 0;
  let cycling = false;
  let asked = false;
  const start = performance.now();
  return new Promise<number>((resolve, reject) => {
    const drain = () => {
      while (running < concurrency && queue.length > 0) {
        const job = queue.shift()!;
        running++;
        const value = JSON.parse(job.value) as { args: unknown };
        context
          .run({ id: job.id }, () => invokeAction(String(job.id), JSON.stringify([value.args])))
          .then((result) => {
            running--;
            const done = { ...value, result: JSON.parse(result) as unknown };
            ended.push({ id: job.id, value: JSON.stringify(done) });
            drain();
            ask();
          }, reject);
      }
    };
    const cycle = async () => {
      cycling = true;
      try {
        const batch = ended;
        ended = [];
        const claims = await table.cycle(batch, queue.length < REFILL_BELOW ? CLAIM_BATCH : 0);
        recorded += batch.length;
        queue.push(...claims);
        if (recorded === jobs) {
          resolve((jobs / (performance.now() - start)) * 1000);
          return;
        }
        drain();
      } finally {
        cycling = false;
      }
      if (ended.length > 0) ask();
    };
    // Ends that arrive together are written together: one cycle a turn of the event loop.
    const ask = () => {
      if (asked || cycling) return;
      asked = true;
      setImmediate(() => {
        asked = false;
        cycle().catch(reject);
      });
    };
    cycle().catch(reject);
  });
}

function enqueuedValue(i: number): string {
  return JSON.stringify({ fnName: 'noop:noop', args: { i }, attempt: 0, enqueuedAt: Date.now() });
}

export async function benchFloorSqlite(
  dir: string,
  jobs: number,
  concurrency: number,
): Promise<QueueFigures> {
  const path = join(dir, 'floor.sqlite');
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE jobs (
      id INTEGER PRIMARY KEY, state TEXT NOT NULL, due REAL NOT NULL, value TEXT NOT NULL);
      CREATE INDEX jobs_by_due ON jobs (state, due);`);
    const insert = db.prepare('INSERT INTO jobs (state, due, value) VALUES (?, ?, ?)');
    const enqueue = db.transaction((from: number, count: number) => {
      for (let i = from; i < from + count; i++) insert.run('pending', Date.now(), enqueuedValue(i));
    });
    for (let from = 0; from < jobs; from += ENQUEUE_BATCH) {
      enqueue(from, Math.min(ENQUEUE_BATCH, jobs - from));
    }
    const pending = db.prepare<[number], JobRow>(
      "SELECT id, value FROM jobs WHERE state = 'pending' ORDER BY due LIMIT ?",
    );
    const take = db.prepare<[number]>("UPDATE jobs SET state = 'running' WHERE id = ?");
    const end = db.prepare<[number, string, number]>(
      "UPDATE jobs SET state = 'success', due = ?, value = ? WHERE id = ?",
    );
    const cycle = db.transaction((ended: readonly JobRow[], claimLimit: number) => {
      const now = Date.now();
      for (const job of ended) end.run(now, job.value, job.id);
      if (claimLimit === 0) return [];
      const claims = pending.all(claimLimit);
      for (const job of claims) take.run(job.id);
      return claims;
    });
    const jobsPerSecond = await run(
      { cycle: async (ended, claimLimit) => cycle(ended, claimLimit) },
      jobs,
      concurrency,
    );
    const claimed = db.prepare<[number, string]>(
      "INSERT INTO jobs (state, due, value) VALUES ('running', ?, ?)",
    );
    const enqueueOne = db.transaction(() => claimed.run(Date.now(), enqueuedValue(-1)));
    const latency = await idleLatency(() => {
      enqueueOne.immediate();
      return Promise.resolve();
    });
    return {
      name: 'floor, SQLite',
      jobsPerSecond,
      ...latency,
      note: 'not a queue: a bare table and Convex invokeAction, the least any engine does',
    };
  } finally {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  }
}

export async function benchFloorPostgres(
  postgresUrl: string,
  jobs: number,
  concurrency: number,
): Promise<QueueFigures> {
  const schema = `bench_floor_${process.pid}`;
  // Pipelined, as Sleigh's driver is: a cycle's statements go out at once.
  const pool = new pg.Pool({ connectionString: postgresUrl, max: 2, pipeline: true });
  try {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.jobs (id bigserial PRIMARY KEY, state text NOT NULL,
        due double precision NOT NULL, value text NOT NULL);
      CREATE INDEX ON ${schema}.jobs (state, due);`);
    for (let from = 0; from < jobs; from += ENQUEUE_BATCH) {
      const count = Math.min(ENQUEUE_BATCH, jobs - from);
      const values = Array.from({ length: count }, (_, k) => enqueuedValue(from + k));
      await pool.query(
        `INSERT INTO ${schema}.jobs (state, due, value) SELECT 'pending', $1, v FROM unnest($2::text[]) AS v`,
        [Date.now(), values],
      );
    }
    const table: FloorTable = {
      async cycle(ended, claimLimit) {
        const client = await pool.connect();
        try {
          // Sent together (pipelined): PostgreSQL runs them in order while Node waits once.
          const begin = client.query('BEGIN');
          const end =
            ended.length === 0
              ? null
              : client.query(
                  `UPDATE ${schema}.jobs j SET state = 'success', due = $1, value = e.value
                   FROM unnest($2::bigint[], $3::text[]) AS e(id, value) WHERE j.id = e.id`,
                  [Date.now(), ended.map((job) => job.id), ended.map((job) => job.value)],
                );
          const claim =
            claimLimit === 0
              ? null
              : client.query<{ id: string; value: string }>(
                  `UPDATE ${schema}.jobs SET state = 'running' WHERE id IN (
                     SELECT id FROM ${schema}.jobs WHERE state = 'pending' ORDER BY due
                     LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, value`,
                  [claimLimit],
                );
          const commit = client.query('COMMIT');
          const [, , claimed] = await Promise.all([begin, end, claim, commit]);
          return (claimed?.rows ?? []).map((row) => ({ id: Number(row.id), value: row.value }));
        } finally {
          client.release();
        }
      },
    };
    const jobsPerSecond = await run(table, jobs, concurrency);
    const listener = await pool.connect();
    try {
      await listener.query(`LISTEN ${schema}`);
      const latency = await idleLatency(async () => {
        const client = await pool.connect();
        try {
          await Promise.all([
            client.query('BEGIN'),
            client.query(
              `WITH job AS (INSERT INTO ${schema}.jobs (state, due, value)
                 VALUES ('running', $1, $2) RETURNING id)
               SELECT pg_notify($3, job.id::text) FROM job`,
              [Date.now(), enqueuedValue(-1), schema],
            ),
            client.query('COMMIT'),
          ]);
        } finally {
          client.release();
        }
      });
      return {
        name: 'floor, PostgreSQL',
        jobsPerSecond,
        ...latency,
        note: 'not a queue: a bare table and Convex invokeAction, the least any engine does',
      };
    } finally {
      await listener.query(`UNLISTEN ${schema}`);
      listener.release();
    }
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pool.end();
  }
}
