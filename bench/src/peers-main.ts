/**
 * `node bench/dist/peers-main.js`: the job-queue peers alone (graphile-worker, pg-boss, BullMQ).
 *
 * PostgreSQL: DATABASE_URL when set, otherwise a throwaway cluster from the system's binaries (as
 * `npm run bench` does). Redis: REDIS_URL, default redis://127.0.0.1:6379 (skipped if unreachable).
 * BENCH_JOBS and BENCH_CONCURRENCY override the 20,000 jobs and concurrency 10.
 */
import { benchPeerQueues } from './peers.js';
import { withBenchSetting } from './setting.js';

function positiveInteger(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

await withBenchSetting(async ({ postgresUrl }) => {
  const jobs = positiveInteger('BENCH_JOBS');
  const concurrency = positiveInteger('BENCH_CONCURRENCY');
  const rows = await benchPeerQueues({
    postgresUrl,
    ...(jobs === undefined ? {} : { jobs }),
    ...(concurrency === undefined ? {} : { concurrency }),
    ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
  });
  console.table(
    rows.map((row) => ({
      name: row.name,
      'jobs/s': Math.round(row.jobsPerSecond),
      'p50 ms': Number(row.p50Ms.toFixed(2)),
      'p99 ms': Number(row.p99Ms.toFixed(2)),
      note: row.note ?? '',
    })),
  );
});
