/**
 * `npm run bench:graph`: the job-graph table alone (see graph.ts), on DATABASE_URL or a
 * throwaway PostgreSQL cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '@sleigh/testing/postgres-cluster';
import { benchGraph } from './graph.js';
import { printTable } from './measure.js';

const tmp = mkdtempSync(join(tmpdir(), 'sleigh-bench-graph-'));
let cluster: PostgresCluster | null = null;
try {
  let postgresUrl = process.env.DATABASE_URL ?? '';
  if (postgresUrl === '') {
    cluster = await startPostgresCluster();
    postgresUrl = cluster.url;
  }
  printTable(
    'Job graph: 10,000 nodes (root → 9,998 leaves → sink), pool of 10, beside a flat queue',
    await benchGraph({ tmp, postgresUrl }),
  );
} finally {
  cluster?.stop();
  rmSync(tmp, { recursive: true, force: true });
}
