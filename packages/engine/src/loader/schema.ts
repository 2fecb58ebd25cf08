/**
 * The app's schema (`schema.ts`): reading what `defineSchema` exports, and applying it to the
 * store in one transaction, so a push either fully applies or changes nothing.
 *
 * Applying creates missing tables, creates (and backfills) new indexes, rebuilds indexes whose
 * fields changed and drops indexes the schema no longer declares. Tables are never dropped.
 * When the schema validates documents, every existing document of a table whose validator
 * changed is checked first; one that does not match refuses the whole schema, naming it.
 */
import {
  BY_CREATION_TIME,
  BY_ID,
  keySuccessor,
  newDocumentId,
  tableNumberOfId,
  type Document,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import type { ValidatorJSON } from 'convex/values';
import { checkValue } from '../runtime/validator.js';
import { LoadError } from './bundle.js';
import { writeWithRetry } from '../jobs/write-retry.js';

export interface TableSchema {
  readonly name: string;
  readonly indexes: ReadonlyArray<{ readonly name: string; readonly fields: readonly string[] }>;
  readonly documentType: ValidatorJSON;
}

export interface Schema {
  readonly tables: ReadonlyMap<string, TableSchema>;
  readonly schemaValidation: boolean;
}

/** System tables the engine keeps: the numbers their ids carry, and their indexes. */
interface SystemTable {
  readonly number: number;
  readonly indexes: Readonly<Record<string, readonly string[]>>;
}

export const SYSTEM_TABLES = {
  /** The schema last applied (one document). */
  _schemas: { number: 1, indexes: {} },
  /** Outcomes of mutations sent with an idempotency key, so a resent one is not run again. */
  _mutation_log: { number: 2, indexes: { by_key: ['key'] } },
  /** Scheduled functions (jobs/scheduled.ts): what is due is a range of `by_state_time`. */
  _scheduled_functions: { number: 3, indexes: { by_state_time: ['state.kind', 'scheduledTime'] } },
  /** The crons of crons.ts (jobs/crons.ts): the next one due is the start of `by_next_run`. */
  _cron_jobs: { number: 4, indexes: { by_name: ['name'], by_next_run: ['nextRun'] } },
  /** Workpools and their options as last enqueued with (jobs/pools.ts). */
  _pools: { number: 5, indexes: { by_name: ['name'] } },
  /**
   * Pool jobs: a pool's ready work (by priority, then age), delayed work coming due, expired
   * leases and expired results are ranges of `by_due` (`rank` is 0 except for ready jobs).
   */
  _pool_jobs: { number: 6, indexes: { by_due: ['pool', 'state', 'rank', 'due'] } },
  /** Dependencies between pool jobs (jobs/pool-graph.ts): one document per edge. */
  _pool_edges: { number: 7, indexes: { by_parent: ['parent'], by_child: ['child'] } },
  /** Unique keys of pool jobs: each document's id is derived from (pool, key). */
  _pool_unique: { number: 8, indexes: {} },
  /** Recent starts of rate-limited pools and groups (jobs/pool-limits.ts), one per limit. */
  _pool_limits: { number: 9, indexes: {} },
  /** What each runner on a shared store holds of each pool (jobs/pool-holdings.ts). */
  _pool_holdings: { number: 10, indexes: { by_pool: ['pool', 'owner'] } },
  /** The servers on the store and the shape of their code (loader/fleet-guard.ts). */
  _servers: { number: 11, indexes: {} },
} as const satisfies Record<string, SystemTable>;

interface ExportedTable {
  tableName: string;
  indexes: Array<{ indexDescriptor: string; fields: string[] }>;
  searchIndexes?: unknown[];
  vectorIndexes?: unknown[];
  documentType: ValidatorJSON;
}

const TABLE_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;
const INDEX_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;

/** Reads the default export of schema.ts; throws a LoadError that says what is wrong. */
export function parseSchema(exported: unknown): { schema: Schema; warnings: string[] } {
  const definition = exported as { export?: () => string };
  if (typeof definition?.export !== 'function') {
    throw new LoadError('schema.ts must `export default defineSchema({...})` from "convex/server"');
  }
  let parsed: { tables: ExportedTable[]; schemaValidation: boolean };
  try {
    parsed = JSON.parse(definition.export()) as typeof parsed;
  } catch (error) {
    throw new LoadError(`schema.ts could not be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const warnings: string[] = [];
  const tables = new Map<string, TableSchema>();
  for (const table of parsed.tables) {
    const name = table.tableName;
    if (!TABLE_NAME.test(name)) {
      throw new LoadError(
        `schema.ts: invalid table name "${name}": use letters, digits and underscores, starting with a letter (names starting with "_" are for system tables)`,
      );
    }
    const seen = new Set<string>();
    for (const index of table.indexes) {
      const label = `schema.ts: index "${index.indexDescriptor}" on table "${name}"`;
      if (!INDEX_NAME.test(index.indexDescriptor))
        throw new LoadError(`${label} has an invalid name`);
      if (index.indexDescriptor === BY_ID || index.indexDescriptor === BY_CREATION_TIME) {
        throw new LoadError(`${label}: the name is reserved for a built-in index`);
      }
      if (seen.has(index.indexDescriptor)) throw new LoadError(`${label} is declared twice`);
      seen.add(index.indexDescriptor);
      if (index.fields.length === 0) throw new LoadError(`${label} has no fields`);
      for (const field of index.fields) {
        if (field === '_id' || field === '_creationTime') {
          throw new LoadError(
            `${label}: "${field}" cannot be an index field; every index already ends with _creationTime and _id`,
          );
        }
      }
      if (new Set(index.fields).size !== index.fields.length)
        throw new LoadError(`${label} repeats a field`);
    }
    if ((table.searchIndexes?.length ?? 0) > 0 || (table.vectorIndexes?.length ?? 0) > 0) {
      warnings.push(
        `Table "${name}": search and vector indexes are not supported by Sleigh yet; they are ignored`,
      );
    }
    tables.set(name, {
      name,
      indexes: table.indexes.map((index) => ({
        name: index.indexDescriptor,
        fields: index.fields,
      })),
      documentType: table.documentType,
    });
  }
  return { schema: { tables, schemaValidation: parsed.schemaValidation }, warnings };
}

function isIdOf(tx: WriteTransaction): (id: string, table: string) => boolean {
  return (id, table) => {
    const number = tableNumberOfId(id);
    return number !== null && tx.catalog().table(table)?.number === number;
  };
}

async function ensureSystemTables(tx: WriteTransaction): Promise<void> {
  for (const [name, { number, indexes }] of Object.entries(SYSTEM_TABLES) as Array<
    [string, SystemTable]
  >) {
    if (tx.catalog().table(name) === undefined) await tx.createTable(name, { number });
    for (const [index, fields] of Object.entries(indexes)) {
      if (tx.catalog().index(name, index) === undefined) await tx.createIndex(name, index, fields);
    }
  }
}

async function validateExistingDocuments(tx: WriteTransaction, table: TableSchema): Promise<void> {
  if (tx.catalog().table(table.name) === undefined) return;
  let start: Uint8Array | undefined;
  for (;;) {
    const entries = await tx.scan({
      table: table.name,
      index: BY_CREATION_TIME,
      order: 'asc',
      limit: 500,
      start,
    });
    for (const { document } of entries) {
      const mismatch = documentMismatch(table.documentType, document, isIdOf(tx));
      if (mismatch !== null) {
        throw new LoadError(
          `Schema validation failed: document ${document._id} in table "${table.name}" does not match the schema: ${mismatch}. Fix the document or the schema.`,
        );
      }
    }
    if (entries.length < 500) return;
    start = keySuccessor(entries[entries.length - 1]!.key);
  }
}

/**
 * Where `document` does not match `type`, as an error message says it (\`field\`: what was
 * wrong), or null when it matches. `isId(id, table)`: whether `id` is an id of `table`.
 */
export function documentMismatch(
  type: ValidatorJSON,
  document: Document,
  isId: (id: string, table: string) => boolean,
): string | null {
  const mismatch = checkValue(type, document, isId, { systemFields: true });
  if (mismatch === null) return null;
  const where = mismatch.path === '' ? 'the document' : `\`${mismatch.path.slice(1)}\``;
  return `${where}: ${mismatch.message}`;
}

/**
 * The document types the store's applied schema holds its tables to, by table: empty when no
 * schema was applied or its validation is off (`sleigh import` checks what it brings in).
 */
export async function enforcedDocumentTypes(store: Store): Promise<Map<string, ValidatorJSON>> {
  return await store.read(async (tx) => {
    const enforced = new Map<string, ValidatorJSON>();
    if (tx.catalog().table('_schemas') === undefined) return enforced;
    const { document } = await previousDocumentTypes(tx);
    if (document?.schemaValidation !== true || typeof document.tables !== 'string') return enforced;
    const tables = JSON.parse(document.tables) as Record<string, ValidatorJSON>;
    for (const [name, type] of Object.entries(tables)) enforced.set(name, type);
    return enforced;
  });
}

/** The previously applied schema's document types, by table (to validate only what changed). */
async function previousDocumentTypes(
  tx: ReadTransaction,
): Promise<{ document: Document | null; types: Map<string, string> }> {
  const entries = await tx.scan({
    table: '_schemas',
    index: BY_CREATION_TIME,
    order: 'desc',
    limit: 1,
  });
  const document = entries[0]?.document ?? null;
  const types = new Map<string, string>();
  if (document !== null && typeof document.tables === 'string') {
    for (const [name, type] of Object.entries(
      JSON.parse(document.tables) as Record<string, unknown>,
    )) {
      types.set(name, JSON.stringify(type));
    }
  }
  return { document, types };
}

export interface ApplyReport {
  readonly createdTables: string[];
  readonly createdIndexes: string[];
  readonly droppedIndexes: string[];
}

export async function applySchema(
  store: Store,
  schema: Schema | null,
  now: () => number,
  /** Runs first in the transaction, once the system tables exist (fleet-guard.ts's check). */
  first?: (tx: WriteTransaction) => Promise<void>,
): Promise<ApplyReport> {
  let report: ApplyReport = { createdTables: [], createdIndexes: [], droppedIndexes: [] };
  // Servers starting together on one database race to apply it: the loser runs again.
  await writeWithRetry(store, async (tx) => {
    report = { createdTables: [], createdIndexes: [], droppedIndexes: [] };
    await ensureSystemTables(tx);
    await first?.(tx);
    if (schema === null) return;
    const previous = await previousDocumentTypes(tx);
    for (const table of schema.tables.values()) {
      if (tx.catalog().table(table.name) === undefined) {
        await tx.createTable(table.name);
        report.createdTables.push(table.name);
      }
      for (const index of table.indexes) {
        const existing = tx.catalog().index(table.name, index.name);
        const wanted = [...index.fields, '_creationTime', '_id'];
        if (existing !== undefined && existing.fields.join('\u0000') === wanted.join('\u0000'))
          continue;
        if (existing !== undefined) {
          await tx.dropIndex(table.name, index.name);
          report.droppedIndexes.push(`${table.name}.${index.name}`);
        }
        await tx.createIndex(table.name, index.name, index.fields);
        report.createdIndexes.push(`${table.name}.${index.name}`);
      }
    }
    // Indexes the schema no longer declares go away (on every user table; data stays).
    for (const info of tx.catalog().tables()) {
      if (info.name.startsWith('_')) continue;
      const declared = new Set(
        schema.tables.get(info.name)?.indexes.map((index) => index.name) ?? [],
      );
      for (const index of tx.catalog().indexes(info.name)) {
        if (index.name === BY_ID || index.name === BY_CREATION_TIME || declared.has(index.name))
          continue;
        await tx.dropIndex(info.name, index.name);
        report.droppedIndexes.push(`${info.name}.${index.name}`);
      }
    }
    if (schema.schemaValidation) {
      // Validation newly switched on checks every table; otherwise only changed validators.
      const all = previous.document?.schemaValidation !== true;
      for (const table of schema.tables.values()) {
        if (all || previous.types.get(table.name) !== JSON.stringify(table.documentType)) {
          await validateExistingDocuments(tx, table);
        }
      }
    }
    const tables = JSON.stringify(
      Object.fromEntries(
        [...schema.tables.values()].map((table) => [table.name, table.documentType]),
      ),
    );
    if (
      previous.document !== null &&
      previous.document.tables === tables &&
      previous.document.schemaValidation === schema.schemaValidation
    ) {
      return;
    }
    if (previous.document !== null) await tx.delete('_schemas', previous.document._id);
    await tx.insert('_schemas', {
      _id: newDocumentId(SYSTEM_TABLES._schemas.number),
      _creationTime: now(),
      tables,
      schemaValidation: schema.schemaValidation,
    });
  });
  return report;
}
