/**
 * Several `sleigh serve` processes on one PostgreSQL, driven by the official clients over
 * sockets: mutation throughput with 1, 2 and 3 servers; how long a commit on one server takes to
 * reach a subscriber on another (beside a subscriber on the same server); and pool job
 * throughput with 1 and 2 servers. On a 2-core machine the servers share the cores with the
 * database and the clients, so more servers add coordination, not CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { ConvexClient } from 'convex/browser';
import { makeFunctionReference } from 'convex/server';
import { WebSocket } from 'ws';
import { busy } from './jobs.js';
import { percentile, printTable, type Row } from './measure.js';

const REPO = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const SLEIGH = join(REPO, 'packages', 'cli', 'bin', 'sleigh.js');
const APP = join(REPO, 'bench', 'apps', 'fleet');
const ADMIN_KEY = 'sleigh-bench-fleet-admin-key-0123456789';

const add = makeFunctionReference<'mutation', { topic: string; n: number }, null>('fleet:add');
const latest = makeFunctionReference<'query', { topic: string }, number | null>('fleet:latest');
const enqueueBatch = makeFunctionReference<'mutation', { from: number; count: number }, null>(
  'fleet:enqueueBatch',
);

interface Fleet {
  readonly urls: string[];
  readonly schema: string;
  stop(): Promise<void>;
}

function startServer(
  postgresUrl: string,
  schema: string,
  dataDir: string,
): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [
        SLEIGH,
        'serve',
        'convex',
        '--port',
        '0',
        '--db',
        postgresUrl,
        '--schema',
        schema,
        '--data-dir',
        dataDir,
      ],
      {
        cwd: APP,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SLEIGH_ADMIN_KEY: ADMIN_KEY },
      },
    );
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/Sleigh ready at (\S+)/);
      if (match !== null) {
        child.stdout.off('data', onData);
        resolvePromise({ child, url: match[1]! });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`sleigh serve exited (${code}):\n${output}`)));
  });
}

async function startFleet(postgresUrl: string, tmp: string, count: number): Promise<Fleet> {
  const schema = `bench_fleet_${randomBytes(4).toString('hex')}`;
  const dataDir = join(tmp, schema);
  mkdirSync(dataDir, { recursive: true });
  // The first applies the schema; the others join it.
  const first = await startServer(postgresUrl, schema, dataDir);
  const rest = await Promise.all(
    Array.from({ length: count - 1 }, () => startServer(postgresUrl, schema, dataDir)),
  );
  const children = [first, ...rest].map((server) => server.child);
  return {
    urls: [first, ...rest].map((server) => server.url),
    schema,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        ),
      );
      await PostgresStore.dropSchema(postgresUrl, schema);
    },
  };
}

function client(url: string): ConvexClient {
  return new ConvexClient(url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
}

/** Mutations per second from `clients` socket clients spread over the fleet, none conflicting. */
async function mutationRate(fleet: Fleet, clients: number, ms: number): Promise<number> {
  const all = Array.from({ length: clients }, (_, i) => client(fleet.urls[i % fleet.urls.length]!));
  try {
    const run = async (duration: number) => {
      const deadline = performance.now() + duration;
      let done = 0;
      await Promise.all(
        all.map(async (c, i) => {
          for (let n = 0; performance.now() < deadline; n++) {
            await c.mutation(add, { topic: `load-${i}`, n });
            done++;
          }
        }),
      );
      return done;
    };
    await run(ms / 5);
    const start = performance.now();
    const done = await run(ms);
    return (done / (performance.now() - start)) * 1000;
  } finally {
    await Promise.all(all.map((c) => c.close()));
  }
}

/** Commit on `writerUrl` → the new value at a subscriber on `watcherUrl`, in ms. */
async function propagation(
  writerUrl: string,
  watcherUrl: string,
  samples: number,
): Promise<number[]> {
  const writer = client(writerUrl);
  const watcher = client(watcherUrl);
  const topic = `prop-${randomBytes(3).toString('hex')}`;
  let waiting: { n: number; resolve: () => void } | null = null;
  watcher.onUpdate(latest, { topic }, (value) => {
    if (waiting !== null && value === waiting.n) waiting.resolve();
  });
  const latencies: number[] = [];
  try {
    for (let n = 0; n < samples + 20; n++) {
      const seen = new Promise<void>((resolve) => (waiting = { n, resolve }));
      const start = performance.now();
      void writer.mutation(add, { topic, n });
      await seen;
      if (n >= 20) latencies.push(performance.now() - start);
    }
  } finally {
    await Promise.all([writer.close(), watcher.close()]);
  }
  return latencies.sort((a, b) => a - b);
}

/** Enqueues `jobs` no-op pool jobs through the fleet's first server; jobs/s until all are done. */
async function jobRate(fleet: Fleet, postgresUrl: string, jobs: number): Promise<number> {
  const store = await openPostgresStore({
    connectionString: postgresUrl,
    schema: fleet.schema,
    maxConnections: 2,
  });
  const writer = client(fleet.urls[0]!);
  try {
    const start = performance.now();
    for (let from = 0; from < jobs; from += 1000) {
      await writer.mutation(enqueueBatch, { from, count: Math.min(1000, jobs - from) });
    }
    while (await busy(store, 'bench')) await new Promise((resolve) => setTimeout(resolve, 20));
    return (jobs / (performance.now() - start)) * 1000;
  } finally {
    await writer.close();
    await store.close();
  }
}

export async function benchFleet(options: { tmp: string; postgresUrl: string }): Promise<{
  mutations: Row[];
  propagation: Row[];
  jobs: Row[];
}> {
  const ms = Number(process.env.BENCH_MS ?? 2000);
  const mutations: Row[] = [];
  const jobs: Row[] = [];
  let propagationRows: Row[] = [];
  for (const count of [1, 2, 3]) {
    const fleet = await startFleet(options.postgresUrl, options.tmp, count);
    try {
      const rate = await mutationRate(fleet, 24, ms);
      mutations.push({
        servers: count,
        'mutations/s': rate,
        'vs 1 server': rate / Number(mutations[0]?.['mutations/s'] ?? rate),
      });
      if (count === 2) {
        const same = await propagation(fleet.urls[0]!, fleet.urls[0]!, 200);
        const across = await propagation(fleet.urls[0]!, fleet.urls[1]!, 200);
        propagationRows = [
          {
            path: 'commit on A → subscriber on A',
            'p50 ms': percentile(same, 50),
            'p99 ms': percentile(same, 99),
            'p50 vs same server': 1,
          },
          {
            path: 'commit on A → subscriber on B',
            'p50 ms': percentile(across, 50),
            'p99 ms': percentile(across, 99),
            'p50 vs same server': percentile(across, 50) / percentile(same, 50),
          },
        ];
      }
      if (count <= 2) {
        const rate = await jobRate(fleet, options.postgresUrl, 10_000);
        jobs.push({
          servers: count,
          'jobs/s': rate,
          'vs 1 server': rate / Number(jobs[0]?.['jobs/s'] ?? rate),
        });
      }
    } finally {
      await fleet.stop();
    }
  }
  return { mutations, propagation: propagationRows, jobs };
}

/** Runs the fleet benchmark and prints its three tables. */
export async function printFleet(options: { tmp: string; postgresUrl: string }): Promise<void> {
  const fleet = await benchFleet(options);
  printTable(
    'Fleet: mutations/s, 24 socket clients over 1–3 servers on one PostgreSQL',
    fleet.mutations,
  );
  printTable('Fleet: commit → subscriber, 2 servers', fleet.propagation);
  printTable('Fleet: 10,000 pool jobs (enqueue to done), 1 and 2 servers', fleet.jobs);
}
