/** `sleigh import`: see format.ts for what makes it all or nothing. */
import { BY_ID, indexKeyFields, type Document, type Store } from '@sleigh/storage';
import { CliError, type Output } from '../context.js';
import { Progress } from '../progress.js';
import { enforcedDocumentTypes } from '@sleigh/engine';
import { checkAgainstSchema, checkSnapshot, countMismatch, readDocuments } from './check.js';
import { type CheckedSnapshot, message, PAGE, type TableManifest } from './format.js';

/** What an import added to the catalog, so that a failed one can take it away again. */
interface Created {
  readonly tables: string[];
  readonly indexes: Array<{ table: string; name: string }>;
}

/**
 * Imports a snapshot (a folder, checked first, or what `checkSnapshot` returned) into a store
 * whose tables of the snapshot are missing or empty. Returns the number of documents written.
 *
 * Atomicity. One write transaction for the whole import would undo itself on failure, but both
 * drivers keep every document a write transaction touches in memory (for its index changes),
 * and its write set (every index key written) becomes one commit record, on PostgreSQL a single
 * row and notification: gigabytes for a million documents. So the import writes batches of
 * PAGE documents, a transaction each, after one transaction that checks the store and creates
 * the tables and indexes; and when a batch fails, it undoes the import instead: it deletes every
 * document of the snapshot's tables (they were empty when it began, which the first transaction
 * checked, and for SQLite the data directory lock keeps servers away) and drops the indexes it
 * created. The store cannot drop tables, so tables it created stay, empty: a retry accepts
 * empty tables of the right numbers.
 *
 * `interrupt`, once aborted (with the signal's name as its reason: `sleigh import` aborts it on
 * SIGINT and SIGTERM), stops the writing before the next batch and undoes the import the same way.
 */
export async function importSnapshot(
  store: Store,
  snapshot: string | CheckedSnapshot,
  output: Output,
  interrupt?: AbortSignal,
): Promise<number> {
  const checked = typeof snapshot === 'string' ? await checkSnapshot(snapshot, output) : snapshot;
  const { dir, tables } = checked;
  // A function: TypeScript would keep `aborted` narrowed to false across the awaits below.
  const stopped = (): boolean => interrupt?.aborted === true;
  await checkSchema(store, checked, output);
  if (stopped()) {
    const signal = String(interrupt?.reason);
    throw new CliError(
      `Import interrupted (${signal}) before it wrote anything; nothing was kept`,
      interruptedExit(signal),
    );
  }
  const created = await prepareTables(store, tables);

  let imported = 0;
  let current = '';
  try {
    for (const table of tables) {
      current = table.name;
      const progress = new Progress(output, `Importing ${table.name}`, table.documents);
      let batch: Document[] = [];
      let count = 0;
      const flush = async () => {
        if (stopped()) throw new Interrupted();
        const documents = batch;
        batch = [];
        await store.write((tx) => tx.insertMany(table.name, documents));
        count += documents.length;
        imported += documents.length;
        progress.update(count);
      };
      // Read and checked again: the files may have changed since `checkSnapshot`.
      for await (const { document } of readDocuments(dir, table)) {
        batch.push(document);
        if (batch.length >= PAGE) await flush();
      }
      if (batch.length > 0) await flush();
      if (count !== table.documents) throw countMismatch(dir, table, count);
      progress.done();
    }
  } catch (error) {
    const signal = stopped() ? String(interrupt?.reason) : null;
    const failure =
      signal !== null
        ? `Import interrupted (${signal}) while writing table "${current}"`
        : error instanceof CliError
          ? `Import failed: ${error.message}`
          : `Import failed while writing table "${current}": ${message(error)}`;
    const exitCode = signal !== null ? interruptedExit(signal) : 1;
    let removed: number;
    try {
      removed = await undoImport(store, tables, created);
    } catch (undoError) {
      throw new CliError(
        `${failure}\nUndoing it failed too (${message(undoError)}): tables ${tables.map((t) => `"${t.name}"`).join(', ')} may hold part of the snapshot; empty them (or use a new store) before importing again`,
        exitCode,
      );
    }
    const kept =
      created.tables.length > 0
        ? `; the tables it created stay, empty (${created.tables.map((name) => `"${name}"`).join(', ')})`
        : '';
    throw new CliError(
      `${failure}\nNothing was imported: it removed the ${removed} documents it had written${created.indexes.length > 0 ? ' and the indexes it created' : ''}${kept}. ${signal !== null ? 'Nothing was kept; run the import again.' : 'Fix the cause and run the import again.'}`,
      exitCode,
    );
  }
  return imported;
}

/**
 * Refuses, before anything is written, a snapshot with documents that the schema the store
 * already applied would not accept (a server starting on the same schema checks nothing).
 */
async function checkSchema(store: Store, checked: CheckedSnapshot, output: Output): Promise<void> {
  let enforced;
  try {
    enforced = await enforcedDocumentTypes(store);
  } catch (error) {
    throw new CliError(
      `Import failed reading the store's schema (nothing was written): ${message(error)}`,
    );
  }
  if (!checked.tables.some((table) => enforced.has(table.name))) return;
  // Ids are of a table by its number: the store's, or the snapshot's for tables it brings.
  const numbers = new Map(checked.tables.map((table) => [table.name, table.number]));
  for (const table of store.catalog().tables()) numbers.set(table.name, table.number);
  await checkAgainstSchema(checked, enforced, numbers, output);
}

/** Thrown between batches once the import was interrupted; the catch above says by what. */
class Interrupted extends Error {}

/** As a shell reports a command ended by the signal: 128 + its number. */
function interruptedExit(signal: string): number {
  return signal === 'SIGTERM' ? 143 : 130;
}

/**
 * The import's first transaction: checks that the store can take the snapshot (its tables
 * missing, or empty with the same numbers and indexes) and creates what is missing. Returns
 * what it created. Nothing is written when it fails.
 */
async function prepareTables(store: Store, tables: readonly TableManifest[]): Promise<Created> {
  try {
    const { value } = await store.write(async (tx): Promise<Created> => {
      // Only into an empty store: an import must not mix with (or silently overwrite) live data.
      const made: Created = { tables: [], indexes: [] };
      for (const table of tables) {
        const existing = tx.catalog().table(table.name);
        if (existing !== undefined) {
          if (existing.number !== table.number) {
            throw new CliError(
              `Table "${table.name}" has number ${existing.number} here but ${table.number} in the snapshot (its ids carry the number); import needs an empty store`,
            );
          }
          if ((await tx.count(table.name)) > 0) {
            throw new CliError(
              `Table "${table.name}" already has documents; import needs an empty store`,
            );
          }
        } else {
          const holder = tx.catalog().tableByNumber(table.number);
          if (holder !== undefined) {
            throw new CliError(
              `Table number ${table.number} belongs to "${holder.name}" here but to "${table.name}" in the snapshot; import needs an empty store`,
            );
          }
          await tx.createTable(table.name, { number: table.number });
          made.tables.push(table.name);
        }
        for (const index of table.indexes) {
          const existingIndex = tx.catalog().index(table.name, index.name);
          if (existingIndex === undefined) {
            await tx.createIndex(table.name, index.name, index.fields);
            made.indexes.push({ table: table.name, name: index.name });
          } else if (
            existingIndex.fields.join('\u0000') !==
            indexKeyFields(index.name, index.fields).join('\u0000')
          ) {
            throw new CliError(
              `Index "${index.name}" of table "${table.name}" is on (${existingIndex.fields.slice(0, -2).join(', ')}) here but on (${index.fields.join(', ')}) in the snapshot; import needs an empty store`,
            );
          }
        }
      }
      return made;
    });
    return value;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      `Import failed creating the tables (nothing was written): ${message(error)}`,
    );
  }
}

/**
 * Takes a failed import back: deletes every document of the snapshot's tables (empty when the
 * import began), a page per transaction, and drops the indexes it created. Returns how many
 * documents it deleted.
 */
async function undoImport(
  store: Store,
  tables: readonly TableManifest[],
  created: Created,
): Promise<number> {
  let removed = 0;
  for (const table of tables) {
    if (store.catalog().table(table.name) === undefined) continue;
    for (;;) {
      const { value: deleted } = await store.write(async (tx) => {
        const entries = await tx.scan({
          table: table.name,
          index: BY_ID,
          order: 'asc',
          limit: PAGE,
        });
        const ids = entries.map((entry) => entry.document._id);
        // One read for the page (the drivers remember what it read), then the deletes.
        await tx.getMany(table.name, ids);
        for (const id of ids) await tx.delete(table.name, id);
        return ids.length;
      });
      removed += deleted;
      if (deleted < PAGE) break;
    }
  }
  if (created.indexes.length > 0) {
    await store.write(async (tx) => {
      for (const { table, name } of created.indexes) {
        if (tx.catalog().index(table, name) !== undefined) await tx.dropIndex(table, name);
      }
    });
  }
  return removed;
}
