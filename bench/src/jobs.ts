/**
 * Job throughput and latency, Sleigh beside the peer queues, in one run: 20,000 no-op jobs
 * enqueued in batches of 1,000, then processed with concurrency 10 (a pool of maxParallelism
 * 10 in Sleigh); and enqueue→start latency on an idle pool, one job at a time. Every figure is
 * also given as a ratio to graphile-worker with its batched settings, the fastest peer.
 *
 * Each row runs in a process of its own, which also measures memory: the peak resident set of
 * that process (a bare Node, the system's modules, enqueuing and processing the jobs, sampling
 * latency). A database's or Redis's own memory is not in it.
 *
 * Sleigh runs in its process as a server would run it (the engine and its pool runner):
 * throughput is from starting the runner until every job is recorded finished in the database.
 */
import { spawn } from 'node:child_process';
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
import { benchPeerQueue, formatRate, PEER_KEYS, type QueueFigures } from './peers.js';

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
    /** The app's pool: `bench` keeps results a day, `forgetful` none (ttl 0). */
    pool?: 'bench' | 'forgetful';
    /** Called around the throughput phase (a profiler, say). */
    around?: { start(): Promise<void>; stop(): Promise<void> };
  },
): Promise<QueueFigures> {
  const engine = await Engine.start({ store, functionsDir: APP, buildDir, codegen: false });
  const pool = options.pool ?? 'bench';
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
          pool,
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
    while (started < options.jobs || (await busy(store, pool))) {
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
      ok(await engine.mutation('noop:enqueueOne', { pool }));
      const at = await startedAt;
      if (i >= 20) latencies.push(at - begin);
      while (await busy(store, pool)) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    latencies.sort((a, b) => a - b);
    return {
      name,
      jobsPerSecond: (options.jobs / elapsed) * 1000,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      note: `maxParallelism 10${pool === 'forgetful' ? ', ttl 0 (no results kept)' : ''}; enqueueActionBatch ${formatRate(enqueueRate)}; ${cpuPerJob.toFixed(0)} µs CPU/job here`,
    };
  } finally {
    delete hooks.__sleighBenchStarted;
    await engine.stopJobs(1000);
  }
}

/** Every row of the job table, by key; each is run in a process of its own (job-system-main.ts). */
export const QUEUE_SYSTEMS = [
  'sleigh-sqlite',
  'sleigh-postgres',
  'sleigh-sqlite-ttl0',
  'sleigh-postgres-ttl0',
  ...PEER_KEYS,
  'floor-sqlite',
  'floor-postgres',
] as const;
export type QueueSystem = (typeof QUEUE_SYSTEMS)[number];

export function isQueueSystem(key: string): key is QueueSystem {
  return (QUEUE_SYSTEMS as readonly string[]).includes(key);
}

/** Runs one row of the job table in this process. */
export async function benchQueueSystem(
  system: QueueSystem,
  setting: { tmp: string; postgresUrl: string },
  jobs: number,
): Promise<QueueFigures> {
  const { tmp, postgresUrl } = setting;
  switch (system) {
    case 'sleigh-sqlite':
    case 'sleigh-postgres':
    case 'sleigh-sqlite-ttl0':
    case 'sleigh-postgres-ttl0':
      return benchSleigh(
        system.startsWith('sleigh-sqlite') ? 'sqlite' : 'postgres',
        system.endsWith('-ttl0') ? 'forgetful' : 'bench',
        setting,
        jobs,
      );
    case 'floor-sqlite':
      return benchFloorSqlite(tmp, jobs, 10);
    case 'floor-postgres':
      return benchFloorPostgres(postgresUrl, jobs, 10);
    default:
      return benchPeerQueue(system, { postgresUrl, jobs, concurrency: 10 });
  }
}

/** A Sleigh row's name in the job table. */
export function sleighRowName(driver: 'sqlite' | 'postgres', pool: 'bench' | 'forgetful'): string {
  return `Sleigh, ${driver === 'sqlite' ? 'SQLite' : 'PostgreSQL'}${pool === 'forgetful' ? ', ttl 0' : ''}`;
}

async function benchSleigh(
  driver: 'sqlite' | 'postgres',
  pool: 'bench' | 'forgetful',
  { tmp, postgresUrl }: { tmp: string; postgresUrl: string },
  jobs: number,
): Promise<QueueFigures> {
  // Builds live inside the repository, so the bundled app resolves its packages.
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  const settings = { jobs, batch: 1000, samples: 200, pool };
  const schema = `bench_jobs_${randomBytes(4).toString('hex')}`;
  try {
    if (driver === 'sqlite') {
      const store = await openSqliteStore({ path: join(tmp, 'jobs.sqlite') });
      try {
        return await benchSleighQueue(
          sleighRowName(driver, pool),
          store,
          join(buildRoot, 's'),
          settings,
        );
      } finally {
        await store.close();
      }
    }
    const store = await openPostgresStore({ connectionString: postgresUrl, schema });
    try {
      return await benchSleighQueue(
        sleighRowName(driver, pool),
        store,
        join(buildRoot, 'p'),
        settings,
      );
    } finally {
      await store.close();
      await PostgresStore.dropSchema(postgresUrl, schema);
    }
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
}

/** How a system's process hands its figures back: one line of stdout, this tag and JSON. */
export const FIGURES_LINE = 'sleigh-bench-figures ';

/** A row's figures with the peak resident memory of the process that ran it. */
interface MeasuredFigures extends QueueFigures {
  peakRssMb: number;
}

/**
 * Runs one system in a child process, so its peak resident memory is its own (each process
 * starts from a bare Node and loads only what that system needs). Its log lines pass through.
 */
function inItsOwnProcess(
  system: QueueSystem,
  postgresUrl: string,
  jobs: number,
): Promise<MeasuredFigures> {
  const entry = join(here, 'job-system-main.js');
  const child = spawn(process.execPath, [entry, system], {
    env: { ...process.env, DATABASE_URL: postgresUrl, BENCH_JOBS: String(jobs) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  const limit = setTimeout(() => child.kill('SIGKILL'), 5 * 60_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      const line = out.split('\n').find((text) => text.startsWith(FIGURES_LINE));
      if (line !== undefined) {
        // JSON has no NaN (a figure a row does not have): it comes back as null.
        const parsed = JSON.parse(line.slice(FIGURES_LINE.length), (_key, value: unknown) =>
          value === null ? NaN : value,
        ) as MeasuredFigures;
        resolve(parsed);
        return;
      }
      const why = signal === null ? `exit code ${String(code)}` : `killed by ${signal}`;
      resolve({
        name: system,
        jobsPerSecond: NaN,
        p50Ms: NaN,
        p99Ms: NaN,
        peakRssMb: NaN,
        note: `failed: its process ended without figures (${why})`,
      });
    });
  });
}

export async function benchJobs(options: {
  tmp: string;
  postgresUrl: string;
  jobs?: number;
}): Promise<Row[]> {
  const jobs = options.jobs ?? 20_000;
  const figures: MeasuredFigures[] = [];
  for (const system of QUEUE_SYSTEMS) {
    figures.push(await inItsOwnProcess(system, options.postgresUrl, jobs));
  }
  const baseline = figures.find((f) => f.name.includes('graphile') && f.name.includes('batched'));
  return figures.map((f) => ({
    system: f.name,
    'jobs/s': f.jobsPerSecond,
    'vs graphile batched': baseline ? f.jobsPerSecond / baseline.jobsPerSecond : NaN,
    'p50 ms': f.p50Ms,
    'p99 ms': f.p99Ms,
    'peak RSS MB': f.peakRssMb,
    'RSS vs graphile batched': baseline ? f.peakRssMb / baseline.peakRssMb : NaN,
    ...(f.note === undefined ? {} : { note: f.note }),
  }));
}
