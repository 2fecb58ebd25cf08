/**
 * Storage errors. One class with a stable `code`, so callers branch on codes rather than on
 * messages or driver-specific error shapes. The brand survives duplicate copies of the package
 * (two installs of @sleigh/storage still recognise each other's errors).
 */

export const StorageErrorCode = {
  /** A concurrent transaction committed first; re-running the transaction may succeed. */
  Conflict: 'conflict',
  /** A document breaks one of Convex's published limits (size, nesting, entries, field names). */
  LimitExceeded: 'limit_exceeded',
  /** A value that is not a Convex value (a function, a class instance, undefined in an array). */
  InvalidValue: 'invalid_value',
  /** An insert whose `_id` is already taken. */
  DuplicateId: 'duplicate_id',
  /** A replace or delete of a document that does not exist. */
  NotFound: 'not_found',
  /** A table or index that the catalog does not have, or a catalog change that cannot apply. */
  Catalog: 'catalog',
  /** The store is closed, or the database cannot be reached. */
  Unavailable: 'unavailable',
  /** A transaction used after it ended, or a write inside a read transaction. */
  InvalidTransaction: 'invalid_transaction',
} as const;

export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

const brand = Symbol.for('sleigh.StorageError');

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  /** True when running the same transaction again may succeed. */
  readonly retryable: boolean;

  constructor(
    code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StorageError';
    this.code = code;
    // Conflicts are retryable by nature. An unavailable database is retryable only when the
    // driver knows the transaction did not commit (it says so explicitly).
    this.retryable = options?.retryable ?? code === StorageErrorCode.Conflict;
  }

  get [brand](): true {
    return true;
  }

  static is(error: unknown, code?: StorageErrorCode): error is StorageError {
    return (
      typeof error === 'object' &&
      error !== null &&
      (error as Record<symbol, unknown>)[brand] === true &&
      (code === undefined || (error as StorageError).code === code)
    );
  }
}

export function conflict(message: string, cause?: unknown): StorageError {
  return new StorageError(StorageErrorCode.Conflict, message, { cause });
}
