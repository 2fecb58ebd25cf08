import { join } from 'node:path';
import { storeConformance } from '@sleigh/storage/conformance';
import { tempDir } from '@sleigh/testing';
import { openSqliteStore } from './store.js';
import type { Store } from '@sleigh/storage';

storeConformance('sqlite', () => {
  const paths = new WeakMap<Store, string>();
  return {
    async open() {
      const path = join(tempDir(), 'sleigh.sqlite');
      const store = await openSqliteStore({ path });
      paths.set(store, path);
      return store;
    },
    async reopen(store) {
      const path = paths.get(store)!;
      await store.close();
      const reopened = await openSqliteStore({ path });
      paths.set(reopened, path);
      return reopened;
    },
  };
});
