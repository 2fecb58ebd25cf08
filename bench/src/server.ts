/**
 * The server over real sockets: mutation round trips (call → promise resolved, which includes
 * the Transition that makes the write visible to the caller) and subscription fan-out (one
 * mutation, 1,000 clients subscribed to the query it changes: time until each, and all, have
 * the new result). Clients run in a worker thread, on the other core.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SleighServer } from '@sleigh/server';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { percentile, type Row } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const APP = join(here, '..', 'apps', 'throughput', 'convex');

interface ClientResults {
  latencies: number[];
  perClient: number[];
  allClients: number[];
}

async function measure(
  driver: string,
  store: Store,
  buildDir: string,
  clients: number,
): Promise<Row[]> {
  const server = await SleighServer.start({
    store,
    functionsDir: APP,
    adminKey: 'bench-admin-key-0000000000000000',
    port: 0,
    buildDir,
    codegen: false,
    log: () => undefined,
  });
  try {
    const results = await new Promise<ClientResults>((resolve, reject) => {
      const worker = new Worker(join(here, 'sync-clients.js'), {
        workerData: { url: server.url, clients, rounds: 20, mutations: 500 },
      });
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
    const trips = sorted(results.latencies);
    const perClient = sorted(results.perClient);
    const all = sorted(results.allClients);
    return [
      {
        driver,
        measurement: 'mutation round trip (1 client)',
        p50: percentile(trips, 50),
        p99: percentile(trips, 99),
        unit: 'ms',
      },
      {
        driver,
        measurement: `fan-out: one client of ${clients} has it`,
        p50: percentile(perClient, 50),
        p99: percentile(perClient, 99),
        unit: 'ms',
      },
      {
        driver,
        measurement: `fan-out: all ${clients} clients have it`,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        unit: 'ms',
      },
    ];
  } finally {
    await server.close();
  }
}

export async function benchServer(options: { tmp: string; postgresUrl: string }): Promise<Row[]> {
  const clients = Number(process.env.BENCH_CLIENTS ?? 1000);
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  const rows: Row[] = [];
  try {
    const sqlite = await openSqliteStore({ path: join(options.tmp, 'server.sqlite') });
    rows.push(...(await measure('sqlite', sqlite, join(buildRoot, 'sqlite'), clients)));
    await sqlite.close();
    const schema = `bench_server_${randomBytes(4).toString('hex')}`;
    const postgres = await openPostgresStore({ connectionString: options.postgresUrl, schema });
    rows.push(...(await measure('postgres', postgres, join(buildRoot, 'postgres'), clients)));
    await postgres.close();
    await PostgresStore.dropSchema(options.postgresUrl, schema);
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
  return rows;
}
