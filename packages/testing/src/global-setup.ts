/**
 * Vitest global setup: every test run gets a PostgreSQL. With DATABASE_URL set, that server is
 * used; otherwise a throwaway cluster is started from the system's binaries and removed at the end.
 * PostgreSQL tests never skip: when neither works, the run fails and says why.
 */
import type { TestProject } from 'vitest/node';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

let cluster: PostgresCluster | null = null;

export async function setup(project: TestProject): Promise<void> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== '') {
    project.provide('databaseUrl', fromEnv);
    return;
  }
  cluster = await startPostgresCluster();
  project.provide('databaseUrl', cluster.url);
}

export function teardown(): void {
  cluster?.stop();
  cluster = null;
}
