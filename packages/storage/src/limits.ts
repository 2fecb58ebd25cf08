/**
 * Convex's published limits on documents, checked before anything is written.
 *
 * One walk over the document measures its size (as `getConvexSize` from `convex/values` counts
 * it), its nesting depth, the entries of each object and array, the field names and the value
 * types, and throws a StorageError naming the table, the field path and the limit it broke.
 */
import type { Value } from 'convex/values';
import { StorageError, StorageErrorCode } from './errors.js';
import { isWellFormed } from './keys.js';

export const LIMITS = {
  /** Total encoded size of a document, system fields included. */
  maxDocumentBytes: 1024 * 1024,
  /** Nested objects and arrays inside a document (the document object itself not counted). */
  maxNesting: 16,
  maxObjectEntries: 1024,
  maxArrayItems: 8192,
  maxFieldNameLength: 1024,
  /**
   * Encoded size of one index key (keys.ts), its `_creationTime` and `_id` included. Not one of
   * Convex's limits: PostgreSQL's btree holds an entry of (index_id, key) in 2704 bytes, 16 of
   * them overhead, so at most 2688 key bytes (less on a build with smaller pages); 2 KiB leaves
   * room for that, and both drivers refuse the same documents.
   */
  maxIndexKeyBytes: 2048,
} as const;

const SYSTEM_FIELDS = new Set(['_id', '_creationTime']);

function describe(path: string): string {
  return path === '' ? 'the document' : `field "${path}"`;
}

function limitError(table: string, message: string): StorageError {
  return new StorageError(StorageErrorCode.LimitExceeded, `Table "${table}": ${message}`);
}

function invalid(table: string, message: string): StorageError {
  return new StorageError(StorageErrorCode.InvalidValue, `Table "${table}": ${message}`);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

export interface DocumentFacts {
  /** Size in bytes, as Convex counts it. */
  readonly size: number;
  /**
   * True when the document holds only values that JSON represents exactly (no int64, bytes, NaN,
   * infinities or -0), so plain JSON.stringify / JSON.parse round-trip it.
   */
  readonly plainJson: boolean;
}

interface Walk {
  readonly table: string;
  plainJson: boolean;
}

/**
 * Checks a document against Convex's limits and value rules, and measures it.
 * `table` only names the table in error messages.
 */
export function checkDocument(table: string, document: Record<string, Value>): DocumentFacts {
  const walk: Walk = { table, plainJson: true };
  let size = 2;
  const entries = Object.keys(document);
  if (entries.length > LIMITS.maxObjectEntries + SYSTEM_FIELDS.size) {
    throw limitError(
      table,
      `the document has ${entries.length} fields, over the limit of ${LIMITS.maxObjectEntries}`,
    );
  }
  for (const name of entries) {
    const value = document[name];
    if (value === undefined) continue;
    checkFieldName(table, name, name, true);
    size += utf8Length(name) + 1 + measure(walk, value, name, 0);
  }
  if (size > LIMITS.maxDocumentBytes) {
    throw limitError(
      table,
      `the document is ${size} bytes, over the limit of ${LIMITS.maxDocumentBytes} bytes (1 MiB)`,
    );
  }
  return { size, plainJson: walk.plainJson };
}

function checkFieldName(table: string, name: string, path: string, topLevel: boolean): void {
  if (name.length === 0) throw invalid(table, `empty field name in ${describe(path)}`);
  if (!isWellFormed(name)) {
    throw invalid(table, `a field name in ${describe(path)} holds a lone surrogate`);
  }
  if (name.length > LIMITS.maxFieldNameLength) {
    throw limitError(
      table,
      `field name "${name.slice(0, 40)}…" is ${name.length} characters, over the limit of ${LIMITS.maxFieldNameLength}`,
    );
  }
  if (name.startsWith('$')) {
    throw invalid(table, `field name "${path}" starts with "$", which is reserved`);
  }
  if (topLevel && name.startsWith('_') && !SYSTEM_FIELDS.has(name)) {
    throw invalid(
      table,
      `field name "${name}" starts with "_", which is reserved for system fields`,
    );
  }
}

function measure(walk: Walk, value: Value, path: string, depth: number): number {
  const table = walk.table;
  if (value === null) return 1;
  switch (typeof value) {
    case 'boolean':
      return 1;
    case 'number':
      if (!Number.isFinite(value) || Object.is(value, -0)) walk.plainJson = false;
      return 9;
    case 'bigint':
      walk.plainJson = false;
      return 9;
    case 'string':
      if (!isWellFormed(value)) {
        throw invalid(
          table,
          `${describe(path)} is a string holding a lone surrogate, which is not valid Unicode`,
        );
      }
      return 2 + utf8Length(value);
    case 'object':
      break;
    default:
      throw invalid(
        table,
        `${describe(path)} holds a ${typeof value}, which is not a Convex value`,
      );
  }
  if (value instanceof ArrayBuffer) {
    walk.plainJson = false;
    return 2 + value.byteLength;
  }
  if (depth + 1 > LIMITS.maxNesting) {
    throw limitError(
      table,
      `${describe(path)} is nested more than ${LIMITS.maxNesting} levels deep (the limit is ${LIMITS.maxNesting})`,
    );
  }
  let size = 2;
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayItems) {
      throw limitError(
        table,
        `${describe(path)} is an array of ${value.length} items, over the limit of ${LIMITS.maxArrayItems}`,
      );
    }
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item === undefined) {
        throw invalid(table, `${describe(`${path}[${i}]`)} is undefined, which arrays cannot hold`);
      }
      size += measure(walk, item, `${path}[${i}]`, depth + 1);
    }
    return size;
  }
  if (!isPlainObject(value)) {
    const kind = (value as object).constructor?.name ?? 'object';
    throw invalid(table, `${describe(path)} holds a ${kind}, which is not a Convex value`);
  }
  const names = Object.keys(value);
  if (names.length > LIMITS.maxObjectEntries) {
    throw limitError(
      table,
      `${describe(path)} has ${names.length} fields, over the limit of ${LIMITS.maxObjectEntries}`,
    );
  }
  for (const name of names) {
    const field = (value as Record<string, Value | undefined>)[name];
    if (field === undefined) continue;
    const fieldPath = `${path}.${name}`;
    checkFieldName(table, name, fieldPath, false);
    size += utf8Length(name) + 1 + measure(walk, field, fieldPath, depth + 1);
  }
  return size;
}
