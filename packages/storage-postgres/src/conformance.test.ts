import { randomBytes } from 'node:crypto';
import type { Store } from '@sleigh/storage';
import { storeConformance } from '@sleigh/storage/conformance';
import { databaseUrl } from '@sleigh/testing';
import { onTestFinished } from 'vitest';
import { openPostgresStore, PostgresStore } from './store.js';

storeConformance('postgres', () => {
  const schemas = new WeakMap<Store, string>();
  const url = databaseUrl();
  return {
    async open() {
      // Each test gets its own schema, dropped when the test passes and kept as evidence if not.
      const schema = `test_${randomBytes(6).toString('hex')}`;
      onTestFinished(async (context) => {
        if (context.task.result?.state !== 'fail') await PostgresStore.dropSchema(url, schema);
      });
      const store = await openPostgresStore({ connectionString: url, schema });
      schemas.set(store, schema);
      return store;
    },
    async reopen(store) {
      const schema = schemas.get(store)!;
      await store.close();
      const reopened = await openPostgresStore({ connectionString: url, schema });
      schemas.set(reopened, schema);
      return reopened;
    },
  };
});
