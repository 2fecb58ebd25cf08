/**
 * What a call of a function comes back with: its value (as Convex-encoded JSON text, parsed on
 * demand) or the error it failed with, and per kind what else the caller learns (the snapshot
 * and read set of a query, the commit of a mutation, the log lines of each).
 */
import type { JSONValue } from 'convex/values';
import { FunctionError, FunctionErrorCode } from './errors.js';
import type { ReadSet } from './runtime/readset.js';
import { CalledFunctionError } from './runtime/host.js';

/**
 * A function's result: its value as Convex-encoded JSON text (`json`, what goes on the wire),
 * parsed on demand (`value`), or the error it failed with.
 */
export type Result = Success | { readonly ok: false; readonly error: FunctionError };

export interface Success {
  readonly ok: true;
  readonly json: string;
  readonly value: JSONValue;
}

export function success<Extra extends object>(json: string, extra: Extra): Success & Extra {
  let parsed: JSONValue | undefined;
  const result = Object.defineProperty({ ok: true as const, json }, 'value', {
    get: () => (parsed ??= JSON.parse(json) as JSONValue),
    enumerable: true,
  }) as Success;
  return Object.assign(result, extra);
}

export type QueryOutcome = Result & {
  readonly logLines: string[];
  /** The snapshot the query read. */
  readonly ts: bigint;
  readonly readSet: ReadSet;
  /**
   * Convex's query journal: where the query's page ended, when it paginated (null otherwise).
   * A subscription passes it to its next run (CallOptions.journal) and sends it to its client.
   */
  readonly journal?: string | null;
};

export type MutationOutcome = (
  | (Success & {
      /** The commit's timestamp (the snapshot's, for a mutation that wrote nothing). */
      readonly ts: bigint;
    })
  | { readonly ok: false; readonly error: FunctionError }
) & { readonly logLines: string[] };

export type ActionOutcome = Result & { readonly logLines: string[] };

/** Turns whatever a handler threw into a FunctionError that names the function. */
export function asFunctionError(path: string, error: unknown): FunctionError {
  if (FunctionError.is(error)) return error;
  const thrown = error as {
    message?: unknown;
    data?: unknown;
    name?: unknown;
    stack?: unknown;
  } | null;
  if (thrown !== null && typeof thrown === 'object' && Symbol.for('ConvexError') in thrown) {
    // convex/server serialised the data to a JSON string of its Convex-encoded value.
    const data = typeof thrown.data === 'string' ? (JSON.parse(thrown.data) as JSONValue) : null;
    return new FunctionError(
      FunctionErrorCode.Thrown,
      `Uncaught ConvexError in ${path}: ${String(thrown.message)}`,
      {
        data,
      },
    );
  }
  if (error instanceof CalledFunctionError) {
    return new FunctionError(FunctionErrorCode.Thrown, error.message, { data: error.data });
  }
  if (error instanceof Error) {
    return new FunctionError(
      FunctionErrorCode.Thrown,
      `Uncaught ${error.name} in ${path}: ${error.message}`,
      {
        cause: error,
      },
    );
  }
  return new FunctionError(
    FunctionErrorCode.Thrown,
    `Uncaught value in ${path}: ${describeThrown(error)}`,
  );
}

/**
 * A thrown value that is not an Error, as text. Never throws itself: code may throw anything,
 * an object without a prototype or one whose toString throws included.
 */
export function describeThrown(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
