export {
  decodeWrites,
  openPostgresStore,
  PostgresStore,
  type PostgresStoreOptions,
} from './store.js';
