/**
 * Functions against the storage layer, in process: an insert-one-document mutation, a
 * get-by-id query and a 100-row index query, each beside the storage layer doing the same
 * work directly (`store.write` / `store.read`), on both drivers. The difference is the cost of
 * the function runtime: argument validation, syscalls, value encoding, read sets.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '@sleigh/engine';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { throughput, type Row } from './measure.js';
import { PAYLOAD, ROWS, seedStore, sleighOperations } from './storage.js';

const here = dirname(fileURLToPath(import.meta.url));
const APP = join(here, '..', 'apps', 'throughput', 'convex');

async function compare(
  driver: string,
  store: Store,
  buildDir: string,
  concurrency: number,
): Promise<Row[]> {
  const engine = await Engine.start({ store, functionsDir: APP, buildDir, codegen: false });
  const { ids, table } = await seedStore(store);
  const direct = sleighOperations(store, ids, table);
  const expectOk = (outcome: { ok: boolean }) => {
    if (!outcome.ok) throw new Error(`benchmark function failed: ${JSON.stringify(outcome)}`);
  };
  const functions = {
    pointRead: async (i: number) =>
      expectOk(await engine.query('items:get', { id: ids[(i * 7919) % ids.length]! })),
    rangeScan: async (i: number) =>
      expectOk(await engine.query('items:range', { from: (i * 7919) % (ROWS - 100) })),
    insert: async (i: number) =>
      expectOk(await engine.mutation('items:insert', { k: ROWS + i, body: PAYLOAD })),
  };
  const rows: Row[] = [];
  const cases: Array<[string, keyof typeof functions]> = [
    ['query: get by id', 'pointRead'],
    ['query: 100-row index range', 'rangeScan'],
    ['mutation: insert 1 document', 'insert'],
  ];
  for (const [label, key] of cases) {
    const viaFunctions = await throughput(functions[key], { concurrency });
    const viaStore = await throughput(direct[key], { concurrency });
    rows.push({
      driver,
      operation: label,
      'in flight': concurrency,
      'function ops/s': viaFunctions.opsPerSecond,
      'storage ops/s': viaStore.opsPerSecond,
      ratio: viaFunctions.opsPerSecond / viaStore.opsPerSecond,
    });
  }
  return rows;
}

export async function benchEngine(options: { tmp: string; postgresUrl: string }): Promise<Row[]> {
  // Builds live inside the repository, so the bundled app resolves `convex` from node_modules.
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  const rows: Row[] = [];
  try {
    const sqlite = await openSqliteStore({ path: join(options.tmp, 'engine.sqlite') });
    rows.push(...(await compare('sqlite', sqlite, join(buildRoot, 'sqlite'), 1)));
    await sqlite.close();
    const schema = `bench_engine_${randomBytes(4).toString('hex')}`;
    const postgres = await openPostgresStore({ connectionString: options.postgresUrl, schema });
    rows.push(...(await compare('postgres', postgres, join(buildRoot, 'postgres'), 1)));
    rows.push(...(await compare('postgres', postgres, join(buildRoot, 'postgres10'), 10)));
    await postgres.close();
    await PostgresStore.dropSchema(options.postgresUrl, schema);
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
  return rows;
}
