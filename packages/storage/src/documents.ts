/**
 * What every driver does with a document: serialise it, compute its index keys, check it.
 */
import { convexToJson, jsonToConvex, type Value } from 'convex/values';
import { BY_ID, type IndexInfo } from './catalog.js';
import { StorageError, StorageErrorCode } from './errors.js';
import type { Document, IndexEntry, WrittenKey } from './interfaces.js';
import { encodeKey, encodeValue } from './keys.js';
import { checkDocument } from './limits.js';

/** The value at a dotted field path, or undefined when any step is missing or not an object. */
export function fieldValue(document: Document, path: string): Value | undefined {
  if (!path.includes('.')) return document[path];
  let current: Value | undefined = document;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (current instanceof ArrayBuffer) return undefined;
    current = (current as Record<string, Value | undefined>)[part];
  }
  return current;
}

/** The key of `document` in `index`. */
export function indexKey(index: IndexInfo, document: Document): Uint8Array {
  const fields = index.fields;
  if (fields.length === 1) return encodeValue(fieldValue(document, fields[0]!));
  return encodeKey(fields.map((field) => fieldValue(document, field)));
}

/** The `by_id` key of a document id. */
export function idKey(id: string): Uint8Array {
  return encodeValue(id);
}

/**
 * Stored form of a document. A document of plain JSON values is stored as its JSON, and read
 * back with JSON.parse alone: the common case, and several times faster than walking the value.
 * A document holding int64, bytes, NaN, infinities or -0 is stored as "$" followed by Convex's
 * encoded JSON (convexToJson). Plain JSON of an object starts with "{", so the two never mix.
 */
const ENCODED_PREFIX = '$';

export function serializeDocument(document: Document, plainJson = false): string {
  if (plainJson) return JSON.stringify(document);
  return ENCODED_PREFIX + JSON.stringify(convexToJson(document));
}

export function deserializeDocument(text: string): Document {
  if (text.charCodeAt(0) !== 0x24) return JSON.parse(text) as Document;
  return jsonToConvex(JSON.parse(text.slice(1)) as Parameters<typeof jsonToConvex>[0]) as Document;
}

/**
 * Validates a document about to be written to `table`: system fields, limits, value types.
 * Drivers call this before touching the database, so a refused document writes nothing.
 */
export function prepareDocument(table: string, document: Document): string {
  if (typeof document._id !== 'string') {
    throw new StorageError(StorageErrorCode.InvalidValue, `Table "${table}": _id must be a string`);
  }
  if (typeof document._creationTime !== 'number' || !Number.isFinite(document._creationTime)) {
    throw new StorageError(
      StorageErrorCode.InvalidValue,
      `Table "${table}": _creationTime must be a finite number`,
    );
  }
  const { plainJson } = checkDocument(table, document);
  try {
    return serializeDocument(document, plainJson);
  } catch (error) {
    throw new StorageError(
      StorageErrorCode.InvalidValue,
      `Table "${table}": ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** The index entries a write removes and adds (by_id aside: the document row is its entry). */
export interface EntryChanges {
  readonly removed: Array<{ readonly index: IndexInfo; readonly key: Uint8Array }>;
  readonly added: Array<{ readonly index: IndexInfo; readonly key: Uint8Array }>;
}

/**
 * Computes, once per index, the keys of the old and the new version of a document: the entries
 * to remove and add (unchanged keys stay), and appends the commit's write set to `writes` (the
 * old key and, when different, the new one: a subscription on that key must hear of the change
 * even when the key itself stayed).
 */
export function diffIndexes(
  indexes: readonly IndexInfo[],
  oldDocument: Document | null,
  newDocument: Document | null,
  writes: WrittenKey[],
): EntryChanges {
  const changes: EntryChanges = { removed: [], added: [] };
  for (const index of indexes) {
    const oldKey = oldDocument === null ? null : indexKey(index, oldDocument);
    const newKey = newDocument === null ? null : indexKey(index, newDocument);
    const same = oldKey !== null && newKey !== null && sameBytes(oldKey, newKey);
    if (oldKey !== null) writes.push({ indexId: index.id, key: oldKey });
    if (newKey !== null && !same) writes.push({ indexId: index.id, key: newKey });
    if (same || index.name === BY_ID) continue;
    if (oldKey !== null) changes.removed.push({ index, key: oldKey });
    if (newKey !== null) changes.added.push({ index, key: newKey });
  }
  return changes;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * An index entry whose key is computed from the document when first asked for. Scans return many
 * entries and callers need the key of few (the last one, to resume or to bound a read set);
 * encoding it from the document is cheaper than shipping every key from the database.
 */
class LazyIndexEntry implements IndexEntry {
  private computed: Uint8Array | undefined;

  constructor(
    private readonly index: IndexInfo,
    readonly document: Document,
  ) {}

  get key(): Uint8Array {
    return (this.computed ??= indexKey(this.index, this.document));
  }
}

export function entry(index: IndexInfo, document: Document): IndexEntry {
  return new LazyIndexEntry(index, document);
}
