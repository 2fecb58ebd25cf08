/**
 * What every bench entry point sets up: PostgreSQL (DATABASE_URL, or a throwaway cluster from
 * the system's binaries, started with fsync off) and a temporary folder, both gone afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgresCluster, type PostgresCluster } from '@sleigh/testing/postgres-cluster';

export async function withBenchSetting(
  run: (setting: { tmp: string; postgresUrl: string }) => Promise<void>,
): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'sleigh-bench-'));
  let cluster: PostgresCluster | null = null;
  try {
    let postgresUrl = process.env.DATABASE_URL ?? '';
    if (postgresUrl === '') {
      cluster = await startPostgresCluster();
      postgresUrl = cluster.url;
      console.log(`PostgreSQL: throwaway cluster on port ${cluster.port} (fsync off)`);
    } else {
      console.log('PostgreSQL: DATABASE_URL');
    }
    console.log(`Node ${process.version}, ${process.platform}/${process.arch}`);
    await run({ tmp, postgresUrl });
  } finally {
    cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
