/**
 * `sleigh export` and `sleigh import` as commands: where the store is, opening it, and the
 * lock; format.ts describes the snapshot, export.ts, check.ts and import.ts do the work.
 */
import type { Store } from '@sleigh/storage';
import { PostgresStore } from '@sleigh/storage-postgres';
import {
  CliError,
  describeStore,
  openExistingStore,
  openStore,
  type Locations,
  type Output,
} from '../context.js';
import { noteFreshState } from '../fresh-state.js';
import { lockDataDir } from '../lock.js';
import { checkSnapshot } from './check.js';
import { exportSnapshot } from './export.js';
import { importSnapshot } from './import.js';

export { checkSnapshot, exportSnapshot, importSnapshot };
export type { CheckedSnapshot } from './format.js';

export async function exportCommand(
  where: Locations,
  path: string | undefined,
  output: Output,
): Promise<number> {
  const store = await openExistingStore(where);
  try {
    const folder = path ?? `sleigh-export-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const manifest = await exportSnapshot(store, folder, output);
    const documents = manifest.tables.reduce((sum, table) => sum + table.documents, 0);
    output.out(
      `Exported ${documents} documents from ${manifest.tables.length} tables to ${folder}`,
    );
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * The snapshot is read through before the store is opened (which would create it); an import
 * into a store that did not exist before leaves none behind when it fails.
 */
export async function importCommand(
  where: Locations,
  snapshot: string,
  output: Output,
): Promise<number> {
  const checked = await checkSnapshot(snapshot, output);
  // On SQLite the data directory's lock keeps servers out; a PostgreSQL schema has none, and an
  // import that fails removes everything in its tables, a server's writes included.
  if (where.db !== null) {
    const busy = await PostgresStore.othersUsing(where.db, where.schema).catch(() => false);
    if (busy) {
      throw new CliError(
        `Sleigh servers are running on ${describeStore(where)}; stop them before importing`,
      );
    }
  }
  // Ended by Ctrl-C or SIGTERM mid-write, the import would leave part of the snapshot in the
  // store, for a server to start on and a retry to refuse. A signal stops the writing instead and
  // the import undoes itself as on a failed write; a second one must not cut the undo short.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) {
      output.err('sleigh: still undoing the import; wait (SIGKILL would leave part of it behind)');
      return;
    }
    output.err(`sleigh: ${signal}: stopping the import and removing what it wrote`);
    interrupt.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const fresh = await noteFreshState(where);
    const release = lockDataDir(where, 'importing');
    let store: Store | null = null;
    let imported = false;
    try {
      store = await openStore(where);
      const count = await importSnapshot(store, checked, output, interrupt.signal);
      imported = true;
      output.out(`Imported ${count} documents from ${snapshot}`);
      return 0;
    } finally {
      await store?.close();
      if (!imported) await fresh.discard();
      release();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
