/**
 * The catalog: which tables and indexes a store has. Immutable; a change makes a new catalog.
 */
import { StorageError, StorageErrorCode } from './errors.js';

export const BY_ID = 'by_id';
export const BY_CREATION_TIME = 'by_creation_time';

/** Tables created without an explicit number get numbers from here up; lower ones are for system
 * tables, which the engine numbers itself. */
export const FIRST_USER_TABLE_NUMBER = 10001;
const MAX_TABLE_NUMBER = 0x7fffffff;

export interface TableInfo {
  readonly name: string;
  readonly number: number;
}

export interface IndexInfo {
  /** Unique across the store; write sets and read sets name indexes by id. */
  readonly id: number;
  readonly table: string;
  readonly name: string;
  /** Every key field, ending with `_creationTime` and `_id` (just `_id` for `by_id`). */
  readonly fields: readonly string[];
}

/** The full key fields of an index declared on `fields`. */
export function indexKeyFields(name: string, fields: readonly string[]): string[] {
  if (name === BY_ID) return ['_id'];
  const out = fields.filter((f) => f !== '_creationTime' && f !== '_id');
  return [...out, '_creationTime', '_id'];
}

const TABLE_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/;
const INDEX_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;

export function checkTableName(name: string): void {
  if (!TABLE_NAME.test(name)) {
    throw new StorageError(
      StorageErrorCode.Catalog,
      `Invalid table name "${name}": use 1-64 letters, digits and underscores, not starting with a digit`,
    );
  }
}

export function checkIndexName(table: string, name: string, fields: readonly string[]): void {
  if (!INDEX_NAME.test(name)) {
    throw new StorageError(
      StorageErrorCode.Catalog,
      `Invalid index name "${name}" on table "${table}": use 1-64 letters, digits and underscores, starting with a letter`,
    );
  }
  if (name === BY_ID || name === BY_CREATION_TIME) {
    throw new StorageError(
      StorageErrorCode.Catalog,
      `Index name "${name}" on table "${table}" is reserved for a built-in index`,
    );
  }
  if (fields.length === 0) {
    throw new StorageError(
      StorageErrorCode.Catalog,
      `Index "${name}" on table "${table}" must have at least one field`,
    );
  }
  for (const field of fields) {
    if (field.length === 0 || field.split('.').some((part) => part.length === 0)) {
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Index "${name}" on table "${table}" has an invalid field path "${field}"`,
      );
    }
  }
}

export class Catalog {
  private readonly byName = new Map<string, TableInfo>();
  private readonly byNumber = new Map<number, TableInfo>();
  private readonly indexesByTable = new Map<string, Map<string, IndexInfo>>();
  private readonly byIndexId = new Map<number, IndexInfo>();

  constructor(tables: readonly TableInfo[], indexes: readonly IndexInfo[]) {
    for (const table of tables) {
      this.byName.set(table.name, table);
      this.byNumber.set(table.number, table);
      this.indexesByTable.set(table.name, new Map());
    }
    for (const index of indexes) {
      this.indexesByTable.get(index.table)?.set(index.name, index);
      this.byIndexId.set(index.id, index);
    }
  }

  static readonly empty = new Catalog([], []);

  tables(): TableInfo[] {
    return [...this.byName.values()];
  }

  table(name: string): TableInfo | undefined {
    return this.byName.get(name);
  }

  tableByNumber(number: number): TableInfo | undefined {
    return this.byNumber.get(number);
  }

  /** The table, or a catalog error naming it. */
  requireTable(name: string): TableInfo {
    const table = this.byName.get(name);
    if (table === undefined) {
      throw new StorageError(StorageErrorCode.Catalog, `Table "${name}" does not exist`);
    }
    return table;
  }

  indexes(table: string): IndexInfo[] {
    return [...(this.indexesByTable.get(table)?.values() ?? [])];
  }

  allIndexes(): IndexInfo[] {
    return [...this.byIndexId.values()];
  }

  index(table: string, name: string): IndexInfo | undefined {
    return this.indexesByTable.get(table)?.get(name);
  }

  indexById(id: number): IndexInfo | undefined {
    return this.byIndexId.get(id);
  }

  requireIndex(table: string, name: string): IndexInfo {
    const index = this.index(table, name);
    if (index === undefined) {
      this.requireTable(table);
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Index "${name}" does not exist on table "${table}"`,
      );
    }
    return index;
  }

  /** The table and built-in indexes a `createTable` would add; throws if it cannot. */
  planTable(name: string, number?: number): { table: TableInfo; indexes: IndexInfo[] } {
    checkTableName(name);
    if (this.byName.has(name)) {
      throw new StorageError(StorageErrorCode.Catalog, `Table "${name}" already exists`);
    }
    const chosen = number ?? Math.max(FIRST_USER_TABLE_NUMBER - 1, ...this.byNumber.keys()) + 1;
    if (!Number.isInteger(chosen) || chosen < 1 || chosen > MAX_TABLE_NUMBER) {
      throw new StorageError(StorageErrorCode.Catalog, `Invalid table number ${chosen}`);
    }
    const holder = this.byNumber.get(chosen);
    if (holder !== undefined) {
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Table number ${chosen} is already used by table "${holder.name}"`,
      );
    }
    let id = this.nextIndexId();
    const indexes = [BY_ID, BY_CREATION_TIME].map((indexName) => ({
      id: id++,
      table: name,
      name: indexName,
      fields: indexKeyFields(indexName, []),
    }));
    return { table: { name, number: chosen }, indexes };
  }

  /** The index a `createIndex` would add; throws if it cannot. */
  planIndex(table: string, name: string, fields: readonly string[]): IndexInfo {
    this.requireTable(table);
    checkIndexName(table, name, fields);
    if (this.index(table, name) !== undefined) {
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Index "${name}" already exists on table "${table}"`,
      );
    }
    return { id: this.nextIndexId(), table, name, fields: indexKeyFields(name, fields) };
  }

  /** The index a `dropIndex` would remove; throws if it cannot. */
  planDropIndex(table: string, name: string): IndexInfo {
    if (name === BY_ID || name === BY_CREATION_TIME) {
      throw new StorageError(
        StorageErrorCode.Catalog,
        `Index "${name}" on table "${table}" is built in and cannot be dropped`,
      );
    }
    return this.requireIndex(table, name);
  }

  private nextIndexId(): number {
    return Math.max(0, ...this.byIndexId.keys()) + 1;
  }

  withTable(table: TableInfo, indexes: readonly IndexInfo[]): Catalog {
    return new Catalog([...this.tables(), table], [...this.allIndexes(), ...indexes]);
  }

  withIndex(index: IndexInfo): Catalog {
    return new Catalog(this.tables(), [...this.allIndexes(), index]);
  }

  withoutIndex(id: number): Catalog {
    return new Catalog(
      this.tables(),
      this.allIndexes().filter((index) => index.id !== id),
    );
  }
}
