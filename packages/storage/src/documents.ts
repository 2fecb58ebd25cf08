/**
 * What every driver does with a document: serialise it, compute its index keys, check it.
 */
import { convexToJson, jsonToConvex, type Value } from 'convex/values';
import { BY_ID, type IndexInfo } from './catalog.js';
import { StorageError, StorageErrorCode } from './errors.js';
import type { Document, IndexEntry, WrittenKey } from './interfaces.js';
import { encodeKey, encodeValue } from './keys.js';
import { checkDocument, LIMITS } from './limits.js';

/**
 * The value at a dotted field path, or undefined when any step is missing or not an object.
 * Only a document's own fields count: "__proto__" or "constructor" are not found in
 * Object.prototype.
 */
export function fieldValue(document: Document, path: string): Value | undefined {
  if (!path.includes('.')) return Object.hasOwn(document, path) ? document[path] : undefined;
  let current: Value | undefined = document;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (current instanceof ArrayBuffer) return undefined;
    if (!Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, Value | undefined>)[part];
  }
  return current;
}

/** The key of `document` in `index`. */
export function indexKey(index: Pick<IndexInfo, 'fields'>, document: Document): Uint8Array {
  const fields = index.fields;
  if (fields.length === 1) return encodeValue(fieldValue(document, fields[0]!));
  return encodeKey(fields.map((field) => fieldValue(document, field)));
}

/** What checking an index key needs of an index: its table, name and full key fields. */
export type KeyedIndex = Pick<IndexInfo, 'table' | 'name' | 'fields'>;

/**
 * The key of `document` in `index`, refused (LimitExceeded) when longer than
 * `LIMITS.maxIndexKeyBytes`. `creating` says the index is being backfilled, so the error names
 * the document that stops it.
 */
export function checkedIndexKey(
  index: KeyedIndex,
  document: Document,
  creating = false,
): Uint8Array {
  const key = indexKey(index, document);
  if (key.length > LIMITS.maxIndexKeyBytes) throw keyTooLong(index, document, key.length, creating);
  return key;
}

/** Names the index, its fields and what each takes of the key, so the culprit is plain to see. */
function keyTooLong(
  index: KeyedIndex,
  document: Document,
  size: number,
  creating: boolean,
): StorageError {
  // Only on refusal: encodes each field again to measure it.
  const sizes = index.fields.map(
    (field, i) =>
      `"${field}" ${encodeValue(fieldValue(document, field)).length}${i === 0 ? ' bytes' : ''}`,
  );
  const fields = `${sizes.length === 1 ? 'field' : 'fields'} ${sizes.join(', ')}`;
  const subject = creating
    ? `cannot create index "${index.name}": document ${document._id} has a key of ${size} bytes`
    : `index "${index.name}" key is ${size} bytes`;
  return new StorageError(
    StorageErrorCode.LimitExceeded,
    `Table "${index.table}": ${subject}, over the limit of ${LIMITS.maxIndexKeyBytes} bytes (${fields}); keep long values out of indexes`,
  );
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

/** The stored JSON text of documents read as plain JSON, so it can be passed on unparsed. */
const plainText = new WeakMap<Document, string>();

export function deserializeDocument(text: string): Document {
  if (text.charCodeAt(0) !== 0x24) {
    const document = JSON.parse(text) as Document;
    plainText.set(document, text);
    return document;
  }
  return jsonToConvex(JSON.parse(text.slice(1)) as Parameters<typeof jsonToConvex>[0]) as Document;
}

/**
 * A document as Convex-encoded JSON text. For a document read from storage as plain JSON this
 * is the stored text itself: no walk, no re-serialisation.
 */
export function documentJson(document: Document): string {
  return plainText.get(document) ?? JSON.stringify(convexToJson(document));
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
 *
 * Every new key is checked against the key size limit (by_id's too) before anything is
 * appended, so drivers call this before they write: a refused document leaves no trace.
 */
export function diffIndexes(
  indexes: readonly IndexInfo[],
  oldDocument: Document | null,
  newDocument: Document | null,
  writes: WrittenKey[],
): EntryChanges {
  const changes: EntryChanges = { removed: [], added: [] };
  const newKeys =
    newDocument === null ? null : indexes.map((index) => checkedIndexKey(index, newDocument));
  for (let i = 0; i < indexes.length; i++) {
    const index = indexes[i]!;
    const oldKey = oldDocument === null ? null : indexKey(index, oldDocument);
    const newKey = newKeys === null ? null : newKeys[i]!;
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
 * A scanned entry backed by the stored text: the document is parsed, and the key encoded from
 * it, only when asked for; `json()` hands the text on as it is.
 */
class StoredEntry implements IndexEntry {
  private parsed: Document | undefined;
  private computedKey: Uint8Array | undefined;

  constructor(
    private readonly index: IndexInfo,
    private readonly text: string,
  ) {}

  get document(): Document {
    return (this.parsed ??= deserializeDocument(this.text));
  }

  get key(): Uint8Array {
    return (this.computedKey ??= indexKey(this.index, this.document));
  }

  json(): string {
    // Stored text is plain JSON, or "$" and Convex's encoded JSON: either way, the encoded form.
    return this.text.charCodeAt(0) === 0x24 ? this.text.slice(1) : this.text;
  }
}

/** An entry of `index` from a document's stored text (as `serializeDocument` wrote it). */
export function storedEntry(index: IndexInfo, text: string): IndexEntry {
  return new StoredEntry(index, text);
}

/** An entry of `index` for a document already in memory. */
export function documentEntry(index: IndexInfo, document: Document): IndexEntry {
  let computedKey: Uint8Array | undefined;
  return {
    document,
    get key() {
      return (computedKey ??= indexKey(index, document));
    },
    json: () => documentJson(document),
  };
}

/** Refuses a batch that names one document twice (its index changes would collide). */
export function checkDistinct(
  table: string,
  documents: readonly Document[] | readonly string[],
  verb: 'insertMany' | 'replaceMany' | 'deleteMany' = 'replaceMany',
): void {
  const seen = new Set<string>();
  for (const item of documents) {
    const id = typeof item === 'string' ? item : item._id;
    if (seen.has(id)) {
      throw new StorageError(
        StorageErrorCode.InvalidTransaction,
        `${verb}: document ${id} of table "${table}" appears twice in one batch`,
      );
    }
    seen.add(id);
  }
}
