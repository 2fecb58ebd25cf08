/**
 * Job throughput and latency, Sleigh beside the peer queues, in one run: 20,000 no-op jobs
 * enqueued in batches of 1,000, then processed with concurrency 10 (a pool of maxParallelism
 * 10 in Sleigh); and enqueue→start latency on an idle pool, one job at a time. Every figure is
 * also given as a ratio to graphile-worker with its batched settings, the fastest peer.
 *
 * Sleigh runs in this process (the engine and its pool runner, as a server would run them):
 * throughput is from starting the runner until every job is recorded finished in the database.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeKey, prefixEnd, type Store } from '@sleigh/storage';
import { Engine } from '@sleigh/engine';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { benchFloorPostgres, benchFloorSqlite } from './floor.js';
import { percentile, type Row } from './measure.js';
import { benchPeerQueues, formatRate, type QueueFigures } from './peers.js';

const here = dirname(fileURLToPath(import.meta.url));
const APP = join(here, '..', 'apps', 'jobs', 'convex');

type Hook = (at: number) => void;
const hooks = globalThis as { __sleighBenchStarted?: Hook };

/** Whether the pool still has jobs to run (waiting, delayed, pending, running, completing). */
export async function busy(store: Store, pool = 'bench'): Promise<boolean> {
  return store.read(async (tx) => {
    for (const state of ['waiting', 'delayed', 'pending', 'running', 'completing']) {
      const start = encodeKey([pool, state]);
      const [entry] = await tx.scan({
        table: '_pool_jobs',
        index: 'by_due',
        start,
        end: prefixEnd(start),
        order: 'asc',
        limit: 1,
      });
      if (entry !== undefined) return true;
    }
    return false;
  });
}

export async function benchSleighQueue(
  name: string,
  store: Store,
  buildDir: string,
  options: {
    jobs: number;
    batch: number;
    samples: number;
    /** Called around the throughput phase (a profiler, say). */
    around?: { start(): Promise<void>; stop(): Promise<void> };
  },
): Promise<QueueFigures> {
  const engine = await Engine.start({ store, functionsDir: APP, buildDir, codegen: false });
  const ok = (outcome: { ok: boolean }) => {
    if (!outcome.ok) throw new Error(`benchmark function failed: ${JSON.stringify(outcome)}`);
  };
  try {
    const enqueueStart = performance.now();
    for (let from = 0; from < options.jobs; from += options.batch) {
      ok(
        await engine.mutation('noop:enqueueBatch', {
          from,
          count: Math.min(options.batch, options.jobs - from),
        }),
      );
    }
    const enqueueRate = (options.jobs / (performance.now() - enqueueStart)) * 1000;
    let started = 0;
    hooks.__sleighBenchStarted = () => void started++;
    await options.around?.start();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    engine.startJobs({ log: (message) => console.error(`sleigh (${name}): ${message}`) });
    while (started < options.jobs || (await busy(store))) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const elapsed = performance.now() - t0;
    // This process's CPU time per job: on SQLite, all the work; steadier than jobs/s on a busy
    // machine (PostgreSQL's own work is not in it).
    const cpu = process.cpuUsage(cpu0);
    const cpuPerJob = (cpu.user + cpu.system) / options.jobs;
    await options.around?.stop();

    // Latency on the idle pool: one job at a time, from the enqueue call to its handler.
    const latencies: number[] = [];
    for (let i = 0; i < options.samples + 20; i++) {
      const begin = performance.now();
      const startedAt = new Promise<number>((resolve) => (hooks.__sleighBenchStarted = resolve));
      ok(await engine.mutation('noop:enqueueOne', {}));
      const at = await startedAt;
      if (i >= 20) latencies.push(at - begin);
      while (await busy(store)) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    latencies.sort((a, b) => a - b);
    return {
      name,
      jobsPerSecond: (options.jobs / elapsed) * 1000,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      note: `maxParallelism 10; enqueueActionBatch ${formatRate(enqueueRate)}; ${cpuPerJob.toFixed(0)} µs CPU/job here`,
    };
  } finally {
    delete hooks.__sleighBenchStarted;
    await engine.stopJobs(1000);
  }
}

export async function benchJobs(options: {
  tmp: string;
  postgresUrl: string;
  jobs?: number;
}): Promise<Row[]> {
  const jobs = options.jobs ?? 20_000;
  const settings = { jobs, batch: 1000, samples: 200 };
  // Builds live inside the repository, so the bundled app resolves its packages.
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  const figures: QueueFigures[] = [];
  try {
    const sqlite = await openSqliteStore({ path: join(options.tmp, 'jobs.sqlite') });
    figures.push(await benchSleighQueue('Sleigh, SQLite', sqlite, join(buildRoot, 's'), settings));
    await sqlite.close();
    const schema = `bench_jobs_${randomBytes(4).toString('hex')}`;
    const postgres = await openPostgresStore({ connectionString: options.postgresUrl, schema });
    figures.push(
      await benchSleighQueue('Sleigh, PostgreSQL', postgres, join(buildRoot, 'p'), settings),
    );
    await postgres.close();
    await PostgresStore.dropSchema(options.postgresUrl, schema);
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
  figures.push(
    ...(await benchPeerQueues({ postgresUrl: options.postgresUrl, jobs, concurrency: 10 })),
    await benchFloorSqlite(options.tmp, jobs, 10),
    await benchFloorPostgres(options.postgresUrl, jobs, 10),
  );
  const baseline = figures.find((f) => f.name.includes('graphile') && f.name.includes('batched'));
  return figures.map((f) => ({
    system: f.name,
    'jobs/s': f.jobsPerSecond,
    'vs graphile batched': baseline ? f.jobsPerSecond / baseline.jobsPerSecond : NaN,
    'p50 ms': f.p50Ms,
    'p99 ms': f.p99Ms,
    ...(f.note === undefined ? {} : { note: f.note }),
  }));
}
