/**
 * The peer half of the job-queue benchmark: the same no-op workload on graphile-worker (default
 * settings, and batched), pg-boss and BullMQ, for comparison with Sleigh's job system.
 *
 * Per peer:
 * - Throughput. `jobs` no-op jobs (default 20,000) are enqueued in batches of 1,000 (graphile-worker
 *   `addJobs`, pg-boss `insert`, BullMQ `addBulk`) while no worker runs. The clock then starts just
 *   before the worker is started (schema already installed, concurrency `concurrency`, default 10)
 *   and stops when the handler of the last job has run. Completion writes still in flight at that
 *   moment are not waited for (graphile-worker batches them, pg-boss completes a fetched batch
 *   at once), so every peer is timed by the same observable: its handlers.
 * - Latency. On the now idle, still running worker, one job at a time: the time from just before the
 *   single-job add call (`addJob`, `send`, `add`) until the handler starts. 20 warm-up samples, then
 *   200 measured ones, sequentially, with a 5 ms pause after each so the worker is idle again.
 *
 * Each PostgreSQL peer gets its own fresh schema, dropped afterwards; BullMQ gets its own key prefix,
 * obliterated afterwards. A peer that fails is reported as a row with its error in `note` rather than
 * failing the whole run; BullMQ is skipped (with a note) when Redis does not answer.
 */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import { Queue, Worker, type RedisOptions } from 'bullmq';
import { percentile } from './measure.js';

export interface QueueFigures {
  name: string;
  jobsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  note?: string;
}

export interface PeerQueueOptions {
  postgresUrl: string;
  /** Jobs in the throughput run (default 20,000). */
  jobs?: number;
  /** Jobs a worker runs at once (default 10). */
  concurrency?: number;
  /** Default redis://127.0.0.1:6379. */
  redisUrl?: string;
}

const ENQUEUE_BATCH = 1000;
const WARMUP_SAMPLES = 20;
const LATENCY_SAMPLES = 200;
const PAUSE_BETWEEN_SAMPLES_MS = 5;
/** Limit for the whole throughput run of one peer, and for one latency sample. */
const THROUGHPUT_LIMIT_MS = 60_000;
const SAMPLE_LIMIT_MS = 10_000;
/** Tag of the throughput jobs; latency jobs carry their sample number. */
const BULK = -1;

interface Payload {
  tag: number;
}

function tagOf(payload: unknown): number {
  if (typeof payload === 'object' && payload !== null && 'tag' in payload) {
    const tag = payload.tag;
    if (typeof tag === 'number') return tag;
  }
  return BULK;
}

/** What the peers' handlers report to: counts bulk jobs, and times the start of tagged ones. */
class Probe {
  private count = 0;
  private target = Infinity;
  private reached: ((at: number) => void) | null = null;
  private readonly waiting = new Map<number, (at: number) => void>();

  /** Called first thing in every handler. */
  hit(tag: number): void {
    const at = performance.now();
    if (tag !== BULK) {
      const waiter = this.waiting.get(tag);
      this.waiting.delete(tag);
      waiter?.(at);
      return;
    }
    this.count++;
    if (this.count >= this.target && this.reached !== null) {
      this.reached(at);
      this.reached = null;
    }
  }

  /** Resolves with the time at which the `total`-th bulk job's handler ran. */
  bulkDone(total: number): Promise<number> {
    this.count = 0;
    this.target = total;
    return new Promise((resolve) => (this.reached = resolve));
  }

  /** Resolves with the time at which the handler of the job tagged `tag` started. */
  started(tag: number): Promise<number> {
    return new Promise((resolve) => this.waiting.set(tag, resolve));
  }
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: timeout.signal }).then(() => {
        throw new Error(`${what} did not finish within ${ms} ms`);
      }),
    ]);
  } finally {
    timeout.abort();
  }
}

/** Enqueues `jobs` bulk jobs in batches; returns jobs per second. */
async function enqueueAll(jobs: number, addBatch: (count: number) => Promise<unknown>) {
  const start = performance.now();
  for (let done = 0; done < jobs; done += ENQUEUE_BATCH) {
    await addBatch(Math.min(ENQUEUE_BATCH, jobs - done));
  }
  return (jobs / (performance.now() - start)) * 1000;
}

/** Starts the workers and times them through the `jobs` enqueued jobs; returns jobs per second. */
async function timeProcessing(probe: Probe, jobs: number, startWorkers: () => Promise<void>) {
  const done = probe.bulkDone(jobs);
  const start = performance.now();
  await startWorkers();
  const end = await within(done, THROUGHPUT_LIMIT_MS, `processing ${jobs} jobs`);
  return (jobs / (end - start)) * 1000;
}

/** One job at a time onto the idle worker; sorted enqueue→start latencies in ms. */
async function sampleLatency(probe: Probe, addOne: (tag: number) => Promise<unknown>) {
  const samples: number[] = [];
  for (let tag = 0; tag < WARMUP_SAMPLES + LATENCY_SAMPLES; tag++) {
    const started = probe.started(tag);
    const before = performance.now();
    await addOne(tag);
    const at = await within(started, SAMPLE_LIMIT_MS, `latency sample ${tag}`);
    if (tag >= WARMUP_SAMPLES) samples.push(at - before);
    await sleep(PAUSE_BETWEEN_SAMPLES_MS);
  }
  return samples.sort((a, b) => a - b);
}

function figures(
  name: string,
  jobsPerSecond: number,
  sortedMs: readonly number[],
  note: string,
): QueueFigures {
  return {
    name,
    jobsPerSecond,
    p50Ms: percentile(sortedMs, 50),
    p99Ms: percentile(sortedMs, 99),
    note,
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function failed(name: string, error: unknown): QueueFigures {
  return { name, jobsPerSecond: NaN, p50Ms: NaN, p99Ms: NaN, note: `failed: ${messageOf(error)}` };
}

/** A cleanup step whose failure is reported on stderr but leaves the figures (and later steps) be. */
async function cleanup(what: string, step: () => unknown): Promise<void> {
  try {
    await step();
  } catch (error) {
    console.warn(`peer cleanup, ${what}: ${messageOf(error)}`);
  }
}

export function formatRate(perSecond: number): string {
  return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}

async function dropSchema(postgresUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// graphile-worker

/** Passes graphile-worker's warnings and errors on, drops its info and debug lines. */
const quietGraphileLogger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning')
    console.warn(`graphile-worker ${level}: ${message}`);
});

interface GraphileVariant {
  readonly name: string;
  /** Merged over graphile-worker's own preset (explicit options win over both). */
  readonly preset?: GraphileConfig.Preset;
  readonly note: string;
}

/**
 * graphile-worker, `concurrency` jobs at once from one `run()` pool. Enqueued with `addJobs`
 * (1,000 per call) through WorkerUtils; single jobs with `addJob`. Jobs are woken by its
 * LISTEN/NOTIFY; everything not named here (pollInterval 2 s, maxPoolSize 10, prepared
 * statements, ...) is left at its default.
 */
async function benchGraphile(
  variant: GraphileVariant,
  options: Required<Omit<PeerQueueOptions, 'redisUrl'>>,
  schema: string,
): Promise<QueueFigures> {
  const { postgresUrl, jobs, concurrency } = options;
  const probe = new Probe();
  let utils: WorkerUtils | null = null;
  let runner: Runner | null = null;
  try {
    utils = await makeWorkerUtils({
      connectionString: postgresUrl,
      schema,
      logger: quietGraphileLogger,
    });
    await utils.migrate();
    const workerUtils = utils;
    const enqueueRate = await enqueueAll(jobs, (count) =>
      workerUtils.addJobs(
        Array.from({ length: count }, () => ({
          identifier: 'noop',
          payload: { tag: BULK } satisfies Payload,
        })),
      ),
    );
    const jobsPerSecond = await timeProcessing(probe, jobs, async () => {
      runner = await run({
        connectionString: postgresUrl,
        schema,
        concurrency,
        logger: quietGraphileLogger,
        noHandleSignals: true,
        crontab: '',
        taskList: {
          noop: (payload) => {
            probe.hit(tagOf(payload));
          },
        },
        ...(variant.preset === undefined ? {} : { preset: variant.preset }),
      });
    });
    const latencies = await sampleLatency(probe, (tag) =>
      workerUtils.addJob('noop', { tag } satisfies Payload),
    );
    return figures(
      variant.name,
      jobsPerSecond,
      latencies,
      `${variant.note}; enqueue ${formatRate(enqueueRate)}`,
    );
  } catch (error) {
    return failed(variant.name, error);
  } finally {
    // `runner` is assigned inside a callback, which TypeScript's flow analysis does not follow.
    const started = runner as Runner | null;
    if (started !== null) {
      await cleanup('graphile-worker stop', () => started.stop());
      await cleanup('graphile-worker runner', () => started.promise);
    }
    const opened = utils;
    if (opened !== null) await cleanup('graphile-worker utils', () => opened.release());
    await cleanup(`drop schema ${schema}`, () => dropSchema(postgresUrl, schema));
  }
}

// ---------------------------------------------------------------------------------------------
// pg-boss

/**
 * pg-boss settings, chosen for a fair, fast run (pg-boss 12):
 * - `useListenNotify: true` and the queue created with `notify: true`: a new job wakes the idle
 *   workers at once by NOTIFY. Without it, pickup waits for the next poll, and the shortest
 *   `pollingIntervalSeconds` allowed is 0.5 s, which would bound its latency (~250 ms on average).
 * - `work()` with `localConcurrency: concurrency` (10 independent fetch loops), `batchSize: 50`
 *   (50 jobs per fetch, handed to the handler as one array and completed in one statement, so 500
 *   jobs in hand at once, as graphile-worker's local queue of 500) and `burstWhenBatchFull: true`
 *   (fetch again at once while fetches come back full; otherwise each loop sleeps out its poll
 *   interval even between full batches). `pollingIntervalSeconds: 0.5`, the minimum, as the
 *   fallback poll; the NOTIFY backstop poll stays at its default 30 s.
 * - `schedule: false`, `supervise: false`: no cron and no maintenance passes during the run (the
 *   benchmark uses neither; the schema is dropped afterwards). Pool size `max` stays at its default
 *   10, plus the listener's own connection.
 */
const PGBOSS_BATCH = 50;

async function benchPgBoss(
  options: Required<Omit<PeerQueueOptions, 'redisUrl'>>,
  schema: string,
): Promise<QueueFigures> {
  const { postgresUrl, jobs, concurrency } = options;
  const name = 'pg-boss';
  const queue = 'noop';
  const probe = new Probe();
  const warnings: string[] = [];
  let boss: PgBoss | null = null;
  try {
    boss = new PgBoss({
      connectionString: postgresUrl,
      schema,
      useListenNotify: true,
      schedule: false,
      supervise: false,
    });
    boss.on('error', (error) => warnings.push(`error: ${error.message}`));
    boss.on('warning', (warning) => warnings.push(warning.message));
    await boss.start();
    await boss.createQueue(queue, { notify: true });
    const started = boss;
    const enqueueRate = await enqueueAll(jobs, (count) =>
      started.insert(
        queue,
        Array.from({ length: count }, () => ({ data: { tag: BULK } satisfies Payload })),
      ),
    );
    const jobsPerSecond = await timeProcessing(probe, jobs, async () => {
      await started.work<Payload>(
        queue,
        {
          localConcurrency: concurrency,
          batchSize: PGBOSS_BATCH,
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 0.5,
        },
        async (batch) => {
          for (const job of batch) probe.hit(tagOf(job.data));
        },
      );
    });
    const latencies = await sampleLatency(probe, (tag) =>
      started.send(queue, { tag } satisfies Payload),
    );
    const settings = `LISTEN/NOTIFY, batchSize ${PGBOSS_BATCH} x localConcurrency ${concurrency}, burstWhenBatchFull, poll 0.5 s`;
    const warned = warnings.length === 0 ? '' : `; warnings: ${[...new Set(warnings)].join(' | ')}`;
    return figures(
      name,
      jobsPerSecond,
      latencies,
      `${settings}; insert ${formatRate(enqueueRate)}${warned}`,
    );
  } catch (error) {
    return failed(name, error);
  } finally {
    const started = boss;
    if (started !== null) {
      await cleanup('pg-boss stop', () =>
        started.stop({ graceful: true, close: true, timeout: 10_000 }),
      );
    }
    await cleanup(`drop schema ${schema}`, () => dropSchema(postgresUrl, schema));
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ

export function redisOptions(redisUrl: string): RedisOptions {
  const url = new URL(redisUrl);
  const options: RedisOptions = {
    host: url.hostname === '' ? '127.0.0.1' : url.hostname,
    port: url.port === '' ? 6379 : Number(url.port),
  };
  const db = url.pathname.replace(/^\//, '');
  if (db !== '') options.db = Number(db);
  if (url.username !== '') options.username = decodeURIComponent(url.username);
  if (url.password !== '') options.password = decodeURIComponent(url.password);
  return options;
}

/** Whether something accepts TCP connections at the Redis address, within `ms`. */
export function reachable(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * BullMQ with its defaults (Redis via ioredis, jobs kept after completion) except `concurrency`;
 * enqueued with `addBulk` (1,000 per call), single jobs with `add`. Its own key prefix per run.
 */
async function benchBullMQ(
  options: Required<Omit<PeerQueueOptions, 'postgresUrl'>>,
  suffix: string,
): Promise<QueueFigures> {
  const { redisUrl, jobs, concurrency } = options;
  const name = 'BullMQ';
  const connection = redisOptions(redisUrl);
  const host = connection.host ?? '127.0.0.1';
  const port = connection.port ?? 6379;
  if (!(await reachable(host, port, 1000))) {
    return {
      name,
      jobsPerSecond: NaN,
      p50Ms: NaN,
      p99Ms: NaN,
      note: `skipped: Redis not reachable at ${host}:${port}`,
    };
  }
  const prefix = `bench-${suffix}`;
  const probe = new Probe();
  const errors: string[] = [];
  let queue: Queue | null = null;
  let worker: Worker | null = null;
  try {
    queue = new Queue('noop', { connection, prefix });
    queue.on('error', (error) => errors.push(error.message));
    await queue.waitUntilReady();
    const producer = queue;
    const enqueueRate = await enqueueAll(jobs, (count) =>
      producer.addBulk(
        Array.from({ length: count }, () => ({ name: 'noop', data: { tag: BULK } })),
      ),
    );
    const jobsPerSecond = await timeProcessing(probe, jobs, async () => {
      worker = new Worker<Payload>(
        'noop',
        async (job) => {
          probe.hit(tagOf(job.data));
        },
        { connection, prefix, concurrency },
      );
      worker.on('error', (error) => errors.push(error.message));
    });
    const latencies = await sampleLatency(probe, (tag) =>
      producer.add('noop', { tag } satisfies Payload),
    );
    const warned = errors.length === 0 ? '' : `; errors: ${[...new Set(errors)].join(' | ')}`;
    return figures(
      name,
      jobsPerSecond,
      latencies,
      `concurrency ${concurrency}, defaults otherwise; addBulk ${formatRate(enqueueRate)}${warned}`,
    );
  } catch (error) {
    return failed(name, error);
  } finally {
    // `worker` is assigned inside a callback, which TypeScript's flow analysis does not follow.
    const consumer = worker as Worker | null;
    if (consumer !== null) await cleanup('BullMQ worker close', () => consumer.close());
    const producer = queue;
    if (producer !== null) {
      await cleanup('BullMQ obliterate', () => producer.obliterate({ force: true }));
      await cleanup('BullMQ queue close', () => producer.close());
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** The peers by key, each run on its own schema or key prefix (`npm run bench:jobs` runs each in a process of its own). */
export const PEER_KEYS = ['graphile', 'graphile-batched', 'pg-boss', 'bullmq'] as const;
export type PeerKey = (typeof PEER_KEYS)[number];

/** Runs one peer: its row of the job table. */
export async function benchPeerQueue(
  key: PeerKey,
  options: PeerQueueOptions,
): Promise<QueueFigures> {
  const settings = {
    postgresUrl: options.postgresUrl,
    jobs: options.jobs ?? 20_000,
    concurrency: options.concurrency ?? 10,
  };
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  switch (key) {
    case 'graphile':
      return benchGraphile(
        { name: 'graphile-worker', note: 'defaults (localQueue off, completeJobBatchDelay -1)' },
        settings,
        `bench_gw_${suffix}`,
      );
    case 'graphile-batched':
      return benchGraphile(
        {
          name: 'graphile-worker batched',
          preset: {
            worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
          },
          note: 'localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0',
        },
        settings,
        `bench_gwb_${suffix}`,
      );
    case 'pg-boss':
      return benchPgBoss(settings, `bench_pgboss_${suffix}`);
    case 'bullmq':
      return benchBullMQ(
        {
          redisUrl: options.redisUrl ?? 'redis://127.0.0.1:6379',
          jobs: settings.jobs,
          concurrency: settings.concurrency,
        },
        suffix.replace('_', '-'),
      );
  }
}

/** Runs every peer in turn, in this process; one row per peer. */
export async function benchPeerQueues(options: PeerQueueOptions): Promise<QueueFigures[]> {
  const rows: QueueFigures[] = [];
  for (const key of PEER_KEYS) rows.push(await benchPeerQueue(key, options));
  return rows;
}
