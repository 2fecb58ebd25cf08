import type { Value } from 'convex/values';
import { newDocumentId } from '../ids.js';
import type { Document, Store, WriteTransaction } from '../interfaces.js';

/** What a driver gives the conformance suite. */
export interface StoreHarness {
  /** A new, empty store, cleaned up by the harness when the test ends. */
  open(): Promise<Store>;
  /** Closes `store` and opens the same database again. */
  reopen(store: Store): Promise<Store>;
}

export type HarnessFactory = () => StoreHarness;

/** Opens a store, runs `fn`, closes the store. */
export async function withStore<T>(
  harness: StoreHarness,
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  const store = await harness.open();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

let clock = 1_700_000_000_000;

/** A document for `tableNumber` with fresh system fields. */
export function makeDocument(tableNumber: number, fields: Record<string, Value>): Document {
  clock += 1;
  return { ...fields, _id: newDocumentId(tableNumber), _creationTime: clock };
}

/** Creates `table` (with `indexes`) and inserts documents with `fields`; returns them. */
export async function seed(
  store: Store,
  table: string,
  rows: ReadonlyArray<Record<string, Value>>,
  indexes: Record<string, string[]> = {},
): Promise<Document[]> {
  const { value } = await store.write(async (tx) => {
    const info = tx.catalog().table(table) ?? (await tx.createTable(table));
    for (const [name, fields] of Object.entries(indexes)) {
      if (tx.catalog().index(table, name) === undefined) await tx.createIndex(table, name, fields);
    }
    return insertAll(tx, table, info.number, rows);
  });
  return value;
}

export async function insertAll(
  tx: WriteTransaction,
  table: string,
  tableNumber: number,
  rows: ReadonlyArray<Record<string, Value>>,
): Promise<Document[]> {
  const documents = rows.map((row) => makeDocument(tableNumber, row));
  for (const document of documents) await tx.insert(table, document);
  return documents;
}

/** Runs a write transaction again while it fails with a retryable error. */
export async function writeWithRetries<T>(
  store: Store,
  fn: (tx: WriteTransaction) => Promise<T>,
  attempts = 50,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await store.write(fn)).value;
    } catch (error) {
      const retryable = (error as { retryable?: unknown }).retryable === true;
      if (!retryable || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}
