/**
 * A 10,000-node job graph (a root, 9,998 leaves depending on it, a sink depending on every
 * leaf) through a pool of parallelism 10, beside a flat queue of 10,000 no-op jobs, from
 * enqueue to the last job done, on each driver; and BullMQ's flow of the nearest shape it can
 * express (a parent with 9,999 children: flows are trees, so the fan-out root has no
 * equivalent) beside BullMQ's own flat queue, when Redis is reachable.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '@sleigh/engine';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { FlowProducer, Queue, Worker } from 'bullmq';
import { busy } from './jobs.js';
import type { Row } from './measure.js';
import { reachable, redisOptions } from './peers.js';

const here = dirname(fileURLToPath(import.meta.url));
const APP = join(here, '..', 'apps', 'jobs', 'convex');
const NODES = 10_000;

async function untilIdle(store: Store, pool: string): Promise<void> {
  while (await busy(store, pool)) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function sleighGraph(
  store: Store,
  buildDir: string,
): Promise<{ graph: number; flat: number }> {
  const engine = await Engine.start({ store, functionsDir: APP, buildDir, codegen: false });
  const ok = (outcome: { ok: boolean }) => {
    if (!outcome.ok) throw new Error(`benchmark function failed: ${JSON.stringify(outcome)}`);
  };
  try {
    engine.startJobs({ log: (message) => console.error(`sleigh: ${message}`) });
    let t0 = performance.now();
    for (let from = 0; from < NODES; from += 1000) {
      ok(await engine.mutation('noop:enqueueBatch', { from, count: 1000 }));
    }
    await untilIdle(store, 'bench');
    const flat = (NODES / (performance.now() - t0)) * 1000;
    t0 = performance.now();
    ok(await engine.mutation('graph:enqueueFan', { width: NODES - 2 }));
    await untilIdle(store, 'graph');
    const graph = (NODES / (performance.now() - t0)) * 1000;
    return { graph, flat };
  } finally {
    await engine.stopJobs(1000);
  }
}

async function bullmqFlow(redisUrl: string): Promise<{ graph: number; flat: number } | string> {
  const connection = redisOptions(redisUrl);
  const host = connection.host ?? '127.0.0.1';
  const port = connection.port ?? 6379;
  if (!(await reachable(host, port, 1000)))
    return `skipped: Redis not reachable at ${host}:${port}`;
  const prefix = `bench-graph-${randomBytes(3).toString('hex')}`;
  const queue = new Queue('graph', { connection, prefix });
  const flows = new FlowProducer({ connection, prefix });
  let done = 0;
  let sinkDone: () => void = () => undefined;
  const worker = new Worker(
    'graph',
    async (job) => {
      done++;
      if (job.name === 'sink') sinkDone();
    },
    { connection, prefix, concurrency: 10 },
  );
  try {
    let t0 = performance.now();
    for (let from = 0; from < NODES; from += 1000) {
      await queue.addBulk(
        Array.from({ length: 1000 }, (_, i) => ({ name: 'noop', data: { i: from + i } })),
      );
    }
    while (done < NODES) await new Promise((resolve) => setTimeout(resolve, 10));
    const flat = (NODES / (performance.now() - t0)) * 1000;
    const sink = new Promise<void>((resolve) => (sinkDone = resolve));
    t0 = performance.now();
    await flows.add({
      name: 'sink',
      queueName: 'graph',
      data: {},
      children: Array.from({ length: NODES - 1 }, (_, i) => ({
        name: 'leaf',
        queueName: 'graph',
        data: { i },
      })),
    });
    await sink;
    const graph = (NODES / (performance.now() - t0)) * 1000;
    return { graph, flat };
  } finally {
    await worker.close();
    await flows.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

export async function benchGraph(options: {
  tmp: string;
  postgresUrl: string;
  redisUrl?: string;
}): Promise<Row[]> {
  const rows: Row[] = [];
  const add = (system: string, figures: { graph: number; flat: number }) =>
    rows.push({
      system,
      'graph jobs/s': figures.graph,
      'flat jobs/s': figures.flat,
      'graph vs flat': figures.graph / figures.flat,
    });
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  try {
    const sqlite = await openSqliteStore({ path: join(options.tmp, 'graph.sqlite') });
    add('Sleigh, SQLite', await sleighGraph(sqlite, join(buildRoot, 's')));
    await sqlite.close();
    const schema = `bench_graph_${randomBytes(4).toString('hex')}`;
    const postgres = await openPostgresStore({ connectionString: options.postgresUrl, schema });
    add('Sleigh, PostgreSQL', await sleighGraph(postgres, join(buildRoot, 'p')));
    await postgres.close();
    await PostgresStore.dropSchema(options.postgresUrl, schema);
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
  const bull = await bullmqFlow(options.redisUrl ?? 'redis://127.0.0.1:6379');
  if (typeof bull === 'string') rows.push({ system: 'BullMQ flow', note: bull });
  else add('BullMQ flow (parent of 9,999 children)', bull);
  return rows;
}
