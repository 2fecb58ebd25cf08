export { startPostgresCluster, type PostgresCluster } from './postgres-cluster.js';
export { databaseUrl, tempDir } from './fixtures.js';
export { TEST_APPS } from './apps.js';
export { Balancer } from './balancer.js';
export { busiestWindow, peakOverlap } from './intervals.js';
