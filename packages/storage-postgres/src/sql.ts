/**
 * SQL helpers: identifier quoting, statements sent in one write, and the translation of
 * PostgreSQL errors into StorageErrors.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { StorageError, StorageErrorCode } from '@sleigh/storage';
import type pg from 'pg';

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * `name` cut to `max` characters, made unique again by a hash: its first `max - 9`
 * characters, "~" and 8 hex digits of its sha256. Names PostgreSQL cuts (identifiers, session
 * names: 63 bytes) must not make two schemas look alike.
 */
export function fitName(name: string, max: number): string {
  if (name.length <= max) return name;
  return `${name.slice(0, max - 9)}~${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

/** SQLSTATEs that mean "another transaction won; run this one again". */
const CONFLICT_STATES = new Set(['40001', '40P01']);

/**
 * The catalog's unique keys: violating one means another process created the same table or
 * index (or took the same number) at the same time, which is a race to run again, not an error.
 */
const CATALOG_CONSTRAINTS = new Set([
  'tables_pkey',
  'tables_name_key',
  'indexes_pkey',
  'indexes_table_number_name_key',
]);

/** Errors of the connection rather than of the statement: the server or network went away. */
function isConnectionError(error: { code?: string; message?: string }): boolean {
  const code = error.code ?? '';
  return (
    code.startsWith('08') ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    /Connection terminated|not queryable|connection error/i.test(error.message ?? '')
  );
}

/**
 * Runs `issue`, which sends statements on `client` (pipelined), with the connection's socket
 * corked, so that they leave in one write: pg writes each statement with a system call of its
 * own, and on loopback TCP each costs about as much as running a small statement. Nothing waits
 * longer than `issue` itself takes, which is synchronous.
 */
export function inOneWrite<T>(client: pg.ClientBase, issue: () => T): T {
  // pg's client keeps its socket here; pg corks it around each statement's messages itself.
  const socket = (client as unknown as { connection?: { stream?: Partial<Writable> } }).connection
    ?.stream;
  socket?.cork?.();
  try {
    return issue();
  } finally {
    socket?.uncork?.();
  }
}

/** Whether `error` is stale_snapshot()'s: a commit's condition that nothing was drawn failed. */
export function isStaleSnapshot(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'SL001';
}

/**
 * A StorageError for a PostgreSQL error. `committing` tells whether COMMIT may have reached the
 * server, in which case a lost connection leaves the outcome unknown and is not retryable.
 */
export function translateError(error: unknown, committing = false): unknown {
  if (StorageError.is(error)) return error;
  const pgError = error as { code?: string; message?: string; constraint?: string };
  if (typeof pgError !== 'object' || pgError === null) return error;
  if (pgError.code !== undefined && CONFLICT_STATES.has(pgError.code)) {
    return new StorageError(
      StorageErrorCode.Conflict,
      `Transaction conflicted with a concurrent one: ${pgError.message ?? pgError.code}`,
      { cause: error },
    );
  }
  if (isStaleSnapshot(pgError)) {
    return new StorageError(
      StorageErrorCode.Conflict,
      `Another commit landed while this transaction committed: ${pgError.message}`,
      { cause: error },
    );
  }
  if (pgError.code === 'SL002') {
    return new StorageError(
      StorageErrorCode.Conflict,
      `Another process changed the tables or indexes since this transaction started; run it again: ${pgError.message}`,
      { cause: error },
    );
  }
  if (pgError.code === '23505' && CATALOG_CONSTRAINTS.has(pgError.constraint ?? '')) {
    return new StorageError(
      StorageErrorCode.Conflict,
      `Another process changed the tables or indexes at the same time: ${pgError.message}`,
      { cause: error },
    );
  }
  if (isConnectionError(pgError)) {
    return new StorageError(
      StorageErrorCode.Unavailable,
      committing
        ? `Lost the connection to PostgreSQL while committing; the outcome is unknown: ${pgError.message}`
        : `Lost the connection to PostgreSQL; nothing was committed: ${pgError.message}`,
      { cause: error, retryable: !committing },
    );
  }
  return error;
}
