/**
 * `npm run bench:jobs`: the job table alone (see jobs.ts), on DATABASE_URL or a throwaway
 * PostgreSQL cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '@sleigh/testing/postgres-cluster';
import { benchJobs } from './jobs.js';
import { printTable } from './measure.js';

const tmp = mkdtempSync(join(tmpdir(), 'sleigh-bench-jobs-'));
let cluster: PostgresCluster | null = null;
try {
  let postgresUrl = process.env.DATABASE_URL ?? '';
  if (postgresUrl === '') {
    cluster = await startPostgresCluster();
    postgresUrl = cluster.url;
  }
  printTable(
    'Jobs: 20,000 no-op jobs, concurrency 10, batched enqueue; latency on an idle pool',
    await benchJobs({ tmp, postgresUrl }),
  );
} finally {
  cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
}
