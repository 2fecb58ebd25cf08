/**
 * The database syscalls: `get`, `insert`, `shallowMerge` (patch), `replace`, `remove`, `count`,
 * `db/normalizeId`. They check what the `convex` package cannot (ids and their tables, system
 * tables, writes from queries, the schema) and record reads in the read set.
 */
import {
  BY_CREATION_TIME,
  BY_ID,
  checkDocument,
  idKey,
  newDocumentId,
  StorageError,
  tableNumberOfId,
  type Document,
  type TableInfo,
  type WriteTransaction,
} from '@sleigh/storage';
import { type JSONValue, type ValidatorJSON, type Value } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import { countRead, countWrite, type Execution, type TransactionState } from './context.js';
import { checkValue } from './validator.js';
import { decode, decodePatch } from './values.js';

/** What the database syscalls need from the engine. */
export interface DatabaseHost {
  /** The table's document validator when the schema validates it, else null. */
  documentValidator(table: string): ValidatorJSON | null;
  /** Whether writes to tables the schema does not declare are refused. */
  strictTables(): boolean;
  /** A fresh `_creationTime`: milliseconds, increasing within this process. */
  nextCreationTime(): number;
}

function transactionOf(execution: Execution, operation: string): TransactionState {
  const state = execution.transaction;
  if (state === null) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.db.${operation} is not available in an action (${execution.path}); use ctx.runQuery or ctx.runMutation`,
    );
  }
  return state;
}

function writableTransaction(execution: Execution, operation: string): WriteTransaction {
  const state = transactionOf(execution, operation);
  if (execution.kind !== 'mutation' || !state.writable) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.db.${operation} is not allowed in a ${execution.kind} (${execution.path}): only mutations write`,
    );
  }
  return state.tx as WriteTransaction;
}

function parseId(value: JSONValue, operation: string): string {
  const id = decode(value);
  if (typeof id !== 'string') {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: the id must be a string`,
    );
  }
  return id;
}

/** The table an id belongs to, checked against the table the caller named, if any. */
function tableOfId(
  state: TransactionState,
  id: string,
  expected: string | undefined,
  operation: string,
): TableInfo | null {
  const number = tableNumberOfId(id);
  if (number === null) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: "${id.slice(0, 40)}" is not a valid document id`,
    );
  }
  const table = state.tx.catalog().tableByNumber(number);
  if (table === undefined) {
    if (expected !== undefined && state.tx.catalog().table(expected) !== undefined) {
      throw new SyscallError(
        FunctionErrorCode.InvalidWrite,
        `ctx.db.${operation}: id ${id} does not belong to table "${expected}"`,
      );
    }
    state.readSet.catalogDependent = true;
    return null;
  }
  if (expected !== undefined && table.name !== expected) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: id ${id} belongs to table "${table.name}", not "${expected}"`,
    );
  }
  return table;
}

function checkSystemAccess(table: string, isSystem: boolean, operation: string): void {
  const system = table.startsWith('_');
  if (system && !isSystem) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.db.${operation}: "${table}" is a system table; read it through ctx.db.system`,
    );
  }
  if (!system && isSystem) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.db.system.${operation}: "${table}" is not a system table; use ctx.db`,
    );
  }
}

function recordDocumentRead(
  state: TransactionState,
  table: string,
  id: string,
  document: Document | null,
): void {
  const byId = state.tx.catalog().index(table, BY_ID);
  if (byId !== undefined) state.readSet.addPoint(byId.id, idKey(id));
  if (document !== null) countRead(state);
}

async function readDocument(
  state: TransactionState,
  table: TableInfo,
  id: string,
): Promise<Document | null> {
  const document = await state.tx.get(table.name, id);
  recordDocumentRead(state, table.name, id, document);
  return document;
}

export async function get(
  execution: Execution,
  args: { id: JSONValue; isSystem?: boolean; table?: string },
): Promise<{ table: string; document: Document } | null> {
  const state = transactionOf(execution, 'get');
  const id = parseId(args.id, 'get');
  const table = tableOfId(state, id, args.table ?? undefined, 'get');
  if (table === null) return null;
  checkSystemAccess(table.name, args.isSystem === true, 'get');
  const document = await readDocument(state, table, id);
  return document === null ? null : { table: table.name, document };
}

function checkTableName(table: unknown, operation: string): string {
  if (typeof table !== 'string' || !/^[a-zA-Z][a-zA-Z0-9_]{0,63}$/.test(table)) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: invalid table name ${JSON.stringify(table)}${typeof table === 'string' && table.startsWith('_') ? ' (system tables are read-only)' : ''}`,
    );
  }
  return table;
}

function validateDocument(
  host: DatabaseHost,
  state: TransactionState,
  table: string,
  document: Record<string, Value>,
  operation: string,
): void {
  const validator = host.documentValidator(table);
  if (validator === null) return;
  const mismatch = checkValue(
    validator,
    document,
    (id, tableName) => {
      const number = tableNumberOfId(id);
      return number !== null && state.tx.catalog().table(tableName)?.number === number;
    },
    { systemFields: true },
  );
  if (mismatch !== null) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation} on table "${table}" failed schema validation: ${mismatch.path === '' ? 'the document' : `\`${mismatch.path.slice(1)}\``}: ${mismatch.message}`,
    );
  }
}

function asFields(value: Value, operation: string): Record<string, Value> {
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    value instanceof ArrayBuffer
  ) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: the value must be an object`,
    );
  }
  return value as Record<string, Value>;
}

/**
 * Writes a document, counted against the transaction's limits first (its size as the document
 * limit measures it), so a write past them is never made.
 */
function writeDocument(
  state: TransactionState,
  operation: string,
  table: string,
  document: Document,
  write: () => Promise<unknown>,
): Promise<unknown> {
  return storageWrite(operation, () => {
    countWrite(state, checkDocument(table, document).size);
    return write();
  });
}

/** Storage refusals (limits, bad values) become errors the function sees, with their message. */
async function storageWrite<T>(operation: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (StorageError.is(error) && !error.retryable) {
      throw new SyscallError(
        FunctionErrorCode.InvalidWrite,
        `ctx.db.${operation}: ${error.message}`,
      );
    }
    throw error;
  }
}

export async function insert(
  host: DatabaseHost,
  execution: Execution,
  args: { table: string; value: JSONValue },
): Promise<JSONValue> {
  const tx = writableTransaction(execution, 'insert');
  const state = execution.transaction!;
  const table = checkTableName(args.table, 'insert');
  const fields = asFields(decode(args.value), 'insert');
  for (const system of ['_id', '_creationTime']) {
    if (system in fields) {
      throw new SyscallError(
        FunctionErrorCode.InvalidWrite,
        `ctx.db.insert into "${table}": the system field ${system} is set by the database, not by the caller`,
      );
    }
  }
  let info = tx.catalog().table(table);
  if (info === undefined) {
    if (host.strictTables()) {
      throw new SyscallError(
        FunctionErrorCode.InvalidWrite,
        `ctx.db.insert: table "${table}" is not in the schema (add it to schema.ts, or set schemaValidation: false)`,
      );
    }
    info = await tx.createTable(table);
  }
  const document = {
    ...fields,
    _id: newDocumentId(info.number),
    _creationTime: host.nextCreationTime(),
  } as Document;
  validateDocument(host, state, table, document, 'insert');
  await writeDocument(state, 'insert', table, document, () => tx.insert(table, document));
  return { _id: document._id };
}

async function existingDocument(
  state: TransactionState,
  id: string,
  expected: string | undefined,
  operation: string,
): Promise<{ table: TableInfo; document: Document }> {
  const table = tableOfId(state, id, expected, operation);
  const document = table === null ? null : await readDocument(state, table, id);
  if (table === null || document === null) {
    throw new SyscallError(
      FunctionErrorCode.InvalidWrite,
      `ctx.db.${operation}: no document with id ${id}`,
    );
  }
  if (table.name.startsWith('_')) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.db.${operation}: "${table.name}" is a system table and read-only`,
    );
  }
  return { table, document };
}

function checkSystemFieldsUnchanged(
  old: Document,
  fields: Record<string, Value | undefined>,
  operation: string,
): void {
  for (const system of ['_id', '_creationTime'] as const) {
    if (system in fields && fields[system] !== undefined && fields[system] !== old[system]) {
      throw new SyscallError(
        FunctionErrorCode.InvalidWrite,
        `ctx.db.${operation}: the system field ${system} cannot be changed`,
      );
    }
  }
}

export async function patch(
  host: DatabaseHost,
  execution: Execution,
  args: { id: JSONValue; value: JSONValue; table?: string },
): Promise<JSONValue> {
  const tx = writableTransaction(execution, 'patch');
  const state = execution.transaction!;
  const id = parseId(args.id, 'patch');
  const changes = decodePatch(args.value);
  const { table, document } = await existingDocument(state, id, args.table ?? undefined, 'patch');
  checkSystemFieldsUnchanged(document, changes, 'patch');
  const next: Record<string, Value> = { ...document };
  for (const [field, value] of Object.entries(changes)) {
    if (field === '_id' || field === '_creationTime') continue;
    if (value === undefined) delete next[field];
    else next[field] = value;
  }
  validateDocument(host, state, table.name, next, 'patch');
  await writeDocument(state, 'patch', table.name, next as Document, () =>
    tx.replace(table.name, next as Document),
  );
  return null;
}

export async function replace(
  host: DatabaseHost,
  execution: Execution,
  args: { id: JSONValue; value: JSONValue; table?: string },
): Promise<JSONValue> {
  const tx = writableTransaction(execution, 'replace');
  const state = execution.transaction!;
  const id = parseId(args.id, 'replace');
  const fields = asFields(decode(args.value), 'replace');
  const { table, document } = await existingDocument(state, id, args.table ?? undefined, 'replace');
  checkSystemFieldsUnchanged(document, fields, 'replace');
  const next = { ...fields, _id: document._id, _creationTime: document._creationTime } as Document;
  validateDocument(host, state, table.name, next, 'replace');
  await writeDocument(state, 'replace', table.name, next, () => tx.replace(table.name, next));
  return null;
}

export async function remove(
  execution: Execution,
  args: { id: JSONValue; table?: string },
): Promise<JSONValue> {
  const tx = writableTransaction(execution, 'delete');
  const state = execution.transaction!;
  const id = parseId(args.id, 'delete');
  const { table } = await existingDocument(state, id, args.table ?? undefined, 'delete');
  countWrite(state);
  await storageWrite('delete', () => tx.delete(table.name, id));
  return null;
}

export async function count(execution: Execution, args: { table: string }): Promise<JSONValue> {
  const state = transactionOf(execution, 'count');
  const table = state.tx.catalog().table(args.table);
  if (table === undefined) {
    state.readSet.catalogDependent = true;
    return 0;
  }
  // The count depends on every document of the table.
  const index = state.tx.catalog().requireIndex(args.table, BY_CREATION_TIME);
  state.readSet.addInterval(index.id, new Uint8Array(0), new Uint8Array([0xff]));
  return state.tx.count(args.table);
}

export function normalizeId(
  execution: Execution,
  args: { table: string; idString: string },
): JSONValue {
  const state = transactionOf(execution, 'normalizeId');
  const number = tableNumberOfId(args.idString);
  const table = state.tx.catalog().table(args.table);
  if (table === undefined) state.readSet.catalogDependent = true;
  return { id: number !== null && table?.number === number ? args.idString : null };
}
