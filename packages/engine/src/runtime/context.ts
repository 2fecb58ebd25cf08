/**
 * The execution context of a running function, carried by AsyncLocalStorage: every syscall
 * the `convex` package makes on behalf of a handler finds the context of the function that
 * issued it, so any number of functions can run at once in one process.
 *
 *   execution (one function run)  ──shares──▶  transaction state (queries and mutations)
 *        │ kind, path, logs, clock, random            tx, read set, query streams
 *        └─ nested call (ctx.runQuery/runMutation) ─▶ a child execution on the same transaction
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ReadTransaction, WriteTransaction } from '@sleigh/storage';
import type { ReadSet } from './readset.js';
import type { QueryStream } from './query-stream.js';
import type { Host } from './host.js';
import { FunctionErrorCode, SyscallError } from '../errors.js';

export type FunctionKind = 'query' | 'mutation' | 'action';

/** Who is calling, which decides whether internal functions are reachable. */
export type Caller = 'client' | 'admin' | 'function';

export interface UserIdentity {
  readonly tokenIdentifier: string;
  readonly subject: string;
  readonly issuer: string;
  readonly [claim: string]: unknown;
}

/** State shared by every function running inside one transaction. */
export interface TransactionState {
  readonly tx: ReadTransaction | WriteTransaction;
  readonly writable: boolean;
  readonly readSet: ReadSet;
  readonly streams: Map<number, QueryStream>;
  nextStreamId: number;
  /** The snapshot's commit timestamp, once the store has said it. */
  snapshotTs: bigint | null;
  /** Nested mutations run one at a time (their savepoints must not interleave). */
  nested: Promise<unknown>;
  /** A retryable storage failure seen by a syscall: the transaction must run again. */
  doomed: Error | null;
  readonly metrics: TransactionMetrics;
  readonly journal: PageJournal;
  /** Held to TRANSACTION_LIMITS (Sleigh's own `_system/` functions, the dashboard's, are not). */
  limited: boolean;
}

/**
 * Convex's query journal: how a subscribed paginated query keeps its page. The first run of a
 * page records where it ended; the subscription's re-runs end there too (`pinnedEnd`), so
 * documents inserted or deleted inside the page make it grow or shrink instead of pushing
 * documents over to the next page, which would then miss them. Only a query's first
 * paginate() is pinned.
 */
export interface PageJournal {
  /** Where this query's page ended in the run that made the journal (null: not pinned). */
  readonly pinnedEnd: string | null;
  /** Whether paginate() has been called in this run. */
  paginated: boolean;
  /** Where this run's page ended (its continue cursor). */
  end: string | null;
}

/**
 * Convex's limits on one transaction (a query or a mutation with what it calls), which keep a
 * careless collect() or a runaway loop from holding the database and the server's memory.
 * Bytes read are the documents' JSON text as the function receives it; bytes written, the
 * documents' size as the 1 MiB document limit measures it.
 */
export const TRANSACTION_LIMITS = {
  documentsRead: 32_000,
  documentsWritten: 16_000,
  bytesRead: 16 * 1024 * 1024,
  bytesWritten: 16 * 1024 * 1024,
  scheduledFunctionArgsBytes: 16 * 1024 * 1024,
} as const;

const NARROW_READS =
  'Consider using smaller limits in your queries, paginating your queries, or using indexed queries with a selective index range expression.';
const SPLIT_WRITES =
  'Split the work over several mutations (schedule the rest, or use a workpool).';

/** Counts documents read (and their bytes); past a limit the function fails, as on Convex. */
export function countRead(state: TransactionState, documents = 1, bytes = 0): void {
  const metrics = state.metrics;
  metrics.documentsRead += documents;
  metrics.bytesRead += bytes;
  holdTo(state, 'documentsRead', 'documents read', '', NARROW_READS);
  holdTo(state, 'bytesRead', 'bytes read', ' bytes', NARROW_READS);
}

/** Counts a document written (and its bytes); past a limit the function fails, as on Convex. */
export function countWrite(state: TransactionState, bytes = 0): void {
  const metrics = state.metrics;
  metrics.documentsWritten++;
  metrics.bytesWritten += bytes;
  holdTo(state, 'documentsWritten', 'documents written', '', SPLIT_WRITES);
  holdTo(state, 'bytesWritten', 'bytes written', ' bytes', SPLIT_WRITES);
}

/** Counts the arguments of a function scheduled (their JSON text); past 16 MiB it fails. */
export function countScheduledArgs(state: TransactionState, bytes: number): void {
  state.metrics.scheduledFunctionArgsBytes += bytes;
  holdTo(
    state,
    'scheduledFunctionArgsBytes',
    'bytes of arguments for scheduled functions',
    ' bytes',
    'Schedule one function that does the rest.',
  );
}

/** Fails the function, in Convex's words, once `metric` is past its limit. */
function holdTo(
  state: TransactionState,
  metric: keyof typeof TRANSACTION_LIMITS,
  what: string,
  unit: string,
  advice: string,
): void {
  const limit = TRANSACTION_LIMITS[metric];
  if (!state.limited || state.metrics[metric] <= limit) return;
  throw new SyscallError(
    FunctionErrorCode.LimitExceeded,
    `Too many ${what} in a single function execution (limit: ${limit}${unit}). ${advice}`,
  );
}

export interface TransactionMetrics {
  documentsRead: number;
  documentsWritten: number;
  bytesRead: number;
  bytesWritten: number;
  databaseQueries: number;
  functionsScheduled: number;
  scheduledFunctionArgsBytes: number;
}

export function newTransactionState(
  tx: ReadTransaction | WriteTransaction,
  writable: boolean,
  readSet: ReadSet,
  pinnedEnd: string | null = null,
): TransactionState {
  return {
    tx,
    writable,
    readSet,
    streams: new Map(),
    nextStreamId: 1,
    snapshotTs: null,
    nested: Promise.resolve(),
    doomed: null,
    metrics: {
      documentsRead: 0,
      documentsWritten: 0,
      bytesRead: 0,
      bytesWritten: 0,
      databaseQueries: 0,
      functionsScheduled: 0,
      scheduledFunctionArgsBytes: 0,
    },
    journal: { pinnedEnd, paginated: false, end: null },
    limited: true,
  };
}

export interface Execution {
  /** The engine running this function: the syscalls' way back to it. */
  readonly host: Host;
  readonly kind: FunctionKind;
  readonly path: string;
  readonly visibility: 'public' | 'internal';
  readonly transaction: TransactionState | null;
  /** Log lines of the top-level call; nested calls add to the same list. */
  readonly logLines: string[];
  readonly identity: UserIdentity | null;
  readonly requestId: string;
  /** The `_scheduled_functions` job this run is, if it is one. */
  readonly scheduledFunctionId: string | null;
  /** The pool job this run is, if it is one. */
  readonly poolJobId: string | null;
  /** Actions: how many functions this run has scheduled (Convex's per-call limit). */
  scheduledByAction: number;
  /** Date.now() inside a query or mutation: fixed for the whole run. */
  readonly now: number;
  /** Math.random() inside a query or mutation: seeded, so a re-run draws the same numbers. */
  readonly random: () => number;
}

export const executions = new AsyncLocalStorage<Execution>();

export function currentExecution(): Execution | undefined {
  return executions.getStore();
}

/** Whether the current code runs inside a query or a mutation (deterministic code). */
export function inDeterministicFunction(): Execution | undefined {
  const execution = executions.getStore();
  return execution !== undefined && execution.kind !== 'action' ? execution : undefined;
}

/** A small, fast seeded generator (mulberry32) for Math.random in queries and mutations. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
