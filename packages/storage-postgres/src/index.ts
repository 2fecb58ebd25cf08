export { decodeWrites } from './commit-feed.js';
export { openPostgresStore, PostgresStore, type PostgresStoreOptions } from './store.js';
