export type {
  Commit,
  CommitListener,
  CommitListenerOptions,
  Document,
  IndexEntry,
  ProcessInfo,
  ReadTransaction,
  ScanRequest,
  Store,
  WriteResult,
  WriteTransaction,
  WrittenKey,
} from './interfaces.js';
export {
  BY_CREATION_TIME,
  BY_ID,
  Catalog,
  FIRST_USER_TABLE_NUMBER,
  checkIndexName,
  checkTableName,
  indexKeyFields,
  type IndexInfo,
  type TableInfo,
} from './catalog.js';
export {
  checkDistinct,
  checkedIndexKey,
  diffIndexes,
  deserializeDocument,
  documentJson,
  type EntryChanges,
  documentEntry,
  storedEntry,
  fieldValue,
  idKey,
  indexKey,
  type KeyedIndex,
  prepareDocument,
  sameBytes,
  serializeDocument,
} from './documents.js';
export { conflict, StorageError, StorageErrorCode } from './errors.js';
export { derivedDocumentId, newDocumentId, tableNumberOfId } from './ids.js';
export {
  compareBytes,
  encodeKey,
  encodeValue,
  hasPrefix,
  KEY_MAX_BYTE,
  keySuccessor,
  keyToHex,
  prefixEnd,
} from './keys.js';
export { checkDocument, LIMITS, type DocumentFacts } from './limits.js';
export { ReadIntervals } from './read-intervals.js';
