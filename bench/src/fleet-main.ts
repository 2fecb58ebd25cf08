/**
 * `npm run bench:fleet`: the fleet tables alone (see fleet.ts), on DATABASE_URL or a throwaway
 * PostgreSQL cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '@sleigh/testing/postgres-cluster';
import { benchFleet } from './fleet.js';
import { printTable } from './measure.js';

const tmp = mkdtempSync(join(tmpdir(), 'sleigh-bench-fleet-'));
let cluster: PostgresCluster | null = null;
try {
  let postgresUrl = process.env.DATABASE_URL ?? '';
  if (postgresUrl === '') {
    cluster = await startPostgresCluster();
    postgresUrl = cluster.url;
  }
  const fleet = await benchFleet({ tmp, postgresUrl });
  printTable(
    'Fleet: mutations/s, 24 socket clients over 1–3 servers on one PostgreSQL',
    fleet.mutations,
  );
  printTable('Fleet: commit → subscriber, 2 servers', fleet.propagation);
  printTable('Fleet: 10,000 pool jobs (enqueue to done), 1 and 2 servers', fleet.jobs);
} finally {
  cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
}
