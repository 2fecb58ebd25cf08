/**
 * Errors of running functions. A FunctionError is what a caller of the engine sees when a
 * function did not succeed: a message that names the function and what went wrong, a stable
 * code, and for a thrown ConvexError its data (already Convex-encoded JSON).
 */
import { type JSONValue } from 'convex/values';

export const FunctionErrorCode = {
  /** The user's handler threw (including a ConvexError, whose data travels along). */
  Thrown: 'thrown',
  /** Arguments or a return value did not match the function's validator. */
  InvalidArguments: 'invalid_arguments',
  InvalidReturnValue: 'invalid_return_value',
  /** No function at that path, or a client asked for an internal function. */
  NotFound: 'not_found',
  /** A write broke the schema, a limit, or the rules of the database API. */
  InvalidWrite: 'invalid_write',
  /** The function used an API it may not use here (a write in a query, fetch in a mutation…). */
  Forbidden: 'forbidden',
  /** A mutation kept conflicting with concurrent ones and ran out of retries. */
  Conflict: 'conflict',
  /** A query or mutation did not finish within the engine's time limit. */
  TimedOut: 'timed_out',
  /** A query or mutation read or wrote more documents than one transaction may. */
  LimitExceeded: 'limit_exceeded',
  /** A scheduled function was not run: canceled, or already run elsewhere. */
  Canceled: 'canceled',
  /** Something in Sleigh itself failed (a database outage, a bug). */
  Internal: 'internal',
} as const;

export type FunctionErrorCode = (typeof FunctionErrorCode)[keyof typeof FunctionErrorCode];

const brand = Symbol.for('sleigh.FunctionError');

export class FunctionError extends Error {
  readonly code: FunctionErrorCode;
  /** Convex-encoded `data` of a thrown ConvexError, when there was one. */
  readonly data: JSONValue | undefined;

  constructor(
    code: FunctionErrorCode,
    message: string,
    options?: { data?: JSONValue | undefined; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FunctionError';
    this.code = code;
    this.data = options?.data;
  }

  get [brand](): true {
    return true;
  }

  static is(error: unknown): error is FunctionError {
    return (
      typeof error === 'object' &&
      error !== null &&
      (error as Record<symbol, unknown>)[brand] === true
    );
  }
}

/**
 * An error raised by a syscall on behalf of the user's code: surfaces in the handler as a plain
 * Error with this message, and fails the function with `code` if not caught.
 */
export class SyscallError extends Error {
  constructor(
    readonly code: FunctionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SyscallError';
  }
}

/**
 * Thrown by a transaction hook before a job's mutation runs, when the job is no longer this
 * runner's to run (canceled, finished, or taken back): the mutation is skipped, not failed.
 */
export class SkipRun extends Error {
  constructor() {
    super("The job is no longer this runner's to run");
    this.name = 'SkipRun';
  }
}

/**
 * Whether a pool job's error says not to retry it: a `NonRetryableError` of @sleigh/workpool
 * thrown by the job, or anywhere in its chain of causes. Known by name, as the class lives in
 * the app's bundle, not here.
 */
export function isNonRetryable(error: unknown): boolean {
  for (let e = error as { name?: unknown; cause?: unknown } | undefined; e;) {
    if (e.name === 'NonRetryableError') return true;
    e = e.cause as typeof e;
  }
  return false;
}
