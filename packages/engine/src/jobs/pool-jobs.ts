/**
 * Workpool jobs in the `_pool_jobs` system table, and pools' options in `_pools`.
 *
 * One index does all the runner's finding: `by_due` = (pool, state, rank, due), where `due`
 * means "when something must happen to this job next": for a delayed job, when it may start;
 * for a running one, when its lease runs out; for a finished one, when its result expires.
 * `rank` orders ready (pending) jobs by priority (it is minus the priority, and 0 in every other
 * state), so a pool's ready work in priority order, its delayed work coming due, its expired
 * leases and its expired results are each one range. Every write goes through `saveJobs`, which
 * files a job due later as `delayed` and sets its rank.
 *
 *   enqueue ─▶ waiting ──(every dependency succeeded: pool-graph.ts)──╮
 *      │                                                             ▼
 *      ╰────────────────────────────────────────────────────────▶ pending ──(claimed)──▶ running …
 *
 *   enqueue ─▶ delayed ──(due: the runner promotes it)──▶ pending
 *
 *   enqueue ─▶ pending ──(claimed: a slot of the pool is free)──▶ running ──(success)───┐
 *                ▲  │                                              │  │                  │
 *                │  │            ╭──(failed, attempts left: backoff)╯  ╰─(failed for good)┤
 *                ╰──┼────────────╯        (lease lost: its process died, counts as a try) │
 *                   ╰──(cancel)──────────────────────────────────────────────────────────┤
 *                                                          ╭─ with onComplete ─ completing ┤
 *                                                          │        (onComplete runs, in  │
 *                                                          ▼         the same transaction)│
 *                                              finished / failed ◀──────────────────────────╯
 *                                                          │
 *                                                          ╰──(its ttl passes)──▶ deleted
 *
 * Where that ttl is 0 (a pool that keeps nothing), `saveJobs` deletes the job instead of writing
 * it finished or failed, unless edges, a unique key or a cancel need the sweep to do it.
 *
 * A job that failed for good ends `failed` rather than `finished`: the pool's dead letters, kept
 * for `failedTtlMs` (longer than results), listed and retried in bulk (pool-graph.ts).
 *
 * A waiting job whose dependency failed or was canceled is failed or canceled itself (or runs
 * anyway), as its `onDependencyFailure` says; so is everything downstream of it.
 */
import {
  checkDocument,
  encodeKey,
  newDocumentId,
  StorageError,
  prefixEnd,
  tableNumberOfId,
  type Document,
  type ReadTransaction,
  type WriteTransaction,
} from '@sleigh/storage';
import type { Value } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import { SYSTEM_TABLES } from '../loader/schema.js';
import { SCHEDULE_LIMIT_MS } from './timers.js';

export const POOL_JOBS = '_pool_jobs';
export const POOLS = '_pools';
export const BY_DUE = 'by_due';

/** Every state a pool job can be in (each a range of `by_due` per pool). */
export const POOL_JOB_STATES = [
  'waiting',
  'delayed',
  'pending',
  'running',
  'completing',
  'finished',
  'failed',
] as const;

export type PoolJobState = (typeof POOL_JOB_STATES)[number];

/** What a job does when a job it depends on did not succeed. */
export type DependencyFailurePolicy = 'fail' | 'cancel' | 'run';

export type RetryBehavior = {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  /** Each retry waits `base` times longer than the one before (with jitter). */
  readonly base: number;
};

export type RunResult =
  | { kind: 'success'; returnValue: Value }
  | { kind: 'failed'; error: string }
  | { kind: 'canceled'; reason?: string };

export type Attempt = {
  startedAt: number;
  endedAt: number;
  error: string;
  /** Which attempt it was (absent in jobs stored before older failures were dropped). */
  attempt?: number;
};

export interface PoolJob extends Document {
  pool: string;
  /** The function to run (`module:export`) and its kind. */
  fn: string;
  kind: 'query' | 'mutation' | 'action';
  /**
   * The function's signature on the server that enqueued it (fleet-guard.ts): during a
   * rollout, servers whose function differs leave the job to one that has this signature.
   */
  sig?: string;
  args: Value;
  /** A label of the caller's choosing (defaults to the function). */
  name: string;
  state: PoolJobState;
  due: number;
  enqueuedAt: number;
  /** Attempts started so far. */
  attempt: number;
  retry: RetryBehavior | null;
  timeoutMs: number | null;
  /** An action that goes this long without a heartbeat fails its attempt (null: no need). */
  heartbeatMs?: number | null;
  ttlMs: number;
  /** How long it is kept once it failed for good (default: DEFAULT_FAILED_TTL_MS). */
  failedTtlMs?: number;
  /** The handler run once it is done; `sig` as the job's own. */
  onComplete: { fn: string; context: Value; sig?: string } | null;
  /** Failed attempts, oldest first: the latest MAX_KEPT_FAILURES of them. */
  failures: Attempt[];
  /** When the running attempt started; absent while a job claimed ahead waits for a slot. */
  startedAt?: number;
  /**
   * How many times it was run again from the start (rerun, retryFailed). An attempt belongs to
   * one run: the outcome of an earlier one (canceled while it ran, then re-run) is never
   * recorded over the new one's.
   */
  run?: number;
  /** How many times it was taken back from a runner that was gone (pool-upkeep.ts). */
  takeBacks?: number;
  owner?: string;
  result?: RunResult;
  finishedAt?: number;
  /** Why onComplete failed, when it did (the job is finished all the same). */
  onCompleteError?: string;
  /**
   * How many jobs this one depends on (their edges are in `_pool_edges`, so a fan-in of
   * thousands stays a small document), and how many of them have not succeeded yet.
   */
  dependencies?: number;
  unmetDependencies?: number;
  onDependencyFailure?: DependencyFailurePolicy;
  /** How many jobs wait for this one: when it ends, they are looked at. */
  dependents?: number;
  /** Their ids, while there are few (saves reading the edges when it ends). */
  dependentIds?: string[];
  /** When a waiting job may start once its dependencies are met. */
  runAt?: number;
  /** Its unique key in the pool, when it has one. */
  uniqueKey?: string;
  /** Ready jobs of higher priority start first (default 0). */
  priority?: number;
  /** Its fairness group (a tenant, say): limits per group apply to it (pool-limits.ts). */
  group?: string;
  /**
   * The index's ordering field while pending: minus the priority, or `[group, -priority]` for a
   * grouped job; 0 in every other state (see placed).
   */
  rank?: number | [string, number];
}

export type PoolOptions = {
  readonly maxParallelism: number;
  /** At most this many jobs of one group running at once (null: no limit). */
  readonly groupParallelism: number | null;
  /** At most `count` starts per `periodMs` in the pool, and per group (null: no limit). */
  readonly rateLimit: { count: number; periodMs: number } | null;
  readonly groupRateLimit: { count: number; periodMs: number } | null;
  readonly actionTimeoutMs: number | null;
  /** Actions must call pool.heartbeat() at least this often (null: they need not). */
  readonly heartbeatTimeoutMs: number | null;
  readonly ttlMs: number;
  /** How long jobs that failed for good are kept (dead letters). */
  readonly failedTtlMs: number;
  readonly retryActionsByDefault: boolean;
  readonly defaultRetryBehavior: RetryBehavior;
};

export interface PoolDocument extends Document, PoolOptions {
  name: string;
  /**
   * Paused by an operator or `pool.pause()`: no job of the pool starts until it is resumed
   * (those running go on). Not an option: rewriting the options keeps it.
   */
  paused?: boolean;
}

export const DEFAULT_RETRY: RetryBehavior = { maxAttempts: 5, initialBackoffMs: 250, base: 2 };
export const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_FAILED_TTL_MS = 7 * DEFAULT_TTL_MS;

/** What `pool.status(id)` says, as the Convex workpool says it. */
export type Status =
  | { state: 'pending'; previousAttempts: number }
  | { state: 'running'; previousAttempts: number }
  | { state: 'finished' };

export function statusOf(job: PoolJob | null): Status {
  if (job === null || isEnded(job)) return { state: 'finished' };
  if (job.state === 'running') {
    // Claimed ahead but not started yet (no startedAt): still waiting, as far as users go.
    const state = job.startedAt === undefined ? 'pending' : 'running';
    return { state, previousAttempts: job.attempt - 1 };
  }
  // Waiting for dependencies or for its time is pending too, in the workpool's vocabulary.
  return { state: 'pending', previousAttempts: job.attempt };
}

/** The `by_due` keys of a pool's jobs in `state`, due at or before `until` when given. */
export function dueRange(
  pool: string,
  state: PoolJobState,
  until?: number,
): { start: Uint8Array; end: Uint8Array } {
  const start = encodeKey([pool, state]);
  return {
    start,
    end: until === undefined ? prefixEnd(start) : prefixEnd(encodeKey([pool, state, 0, until])),
  };
}

/**
 * A job as it is stored at `now`: a pending job not due yet is delayed (and a delayed one that
 * is due, pending), and its rank follows its state and priority.
 */
export function placed(job: PoolJob, now: number): PoolJob {
  let state = job.state;
  if (state === 'pending' || state === 'delayed') state = job.due > now ? 'delayed' : 'pending';
  // Never -0: keys tell -0 from 0, and every state but pending must share rank 0.
  const order = job.priority ? -job.priority : 0;
  const rank: PoolJob['rank'] =
    state !== 'pending' ? 0 : job.group === undefined ? order : [job.group, order];
  const same = Array.isArray(rank)
    ? Array.isArray(job.rank) && job.rank[0] === rank[0] && Object.is(job.rank[1], rank[1])
    : Object.is(rank, job.rank);
  return state === job.state && same ? job : { ...job, state, rank };
}

/**
 * Whether a job has come to rest where its pool keeps nothing (`ttl` 0 once finished,
 * `failedTtl` 0 once failed for good): it is deleted as it is written, rather than written
 * and swept a moment later. Jobs with edges or a unique key are left to the sweep, which
 * tidies those up (their edges are read as they end).
 */
function keepsNothing(job: PoolJob): boolean {
  const keptFor =
    job.state === 'finished'
      ? job.ttlMs
      : job.state === 'failed'
        ? (job.failedTtlMs ?? DEFAULT_FAILED_TTL_MS)
        : null;
  return (
    keptFor === 0 &&
    (job.dependencies ?? 0) === 0 &&
    (job.dependents ?? 0) === 0 &&
    job.uniqueKey === undefined
  );
}

/**
 * Writes jobs that exist (distinct ids), placed, or deletes those that keep nothing now;
 * resolves with what was written (the deleted ones as they would have been).
 */
export async function saveJobs(
  tx: WriteTransaction,
  jobs: readonly PoolJob[],
  now = Date.now(),
): Promise<PoolJob[]> {
  const stored = jobs.map((job) => placed(job, now));
  const kept: PoolJob[] = [];
  const gone: string[] = [];
  for (const job of stored) {
    if (keepsNothing(job)) gone.push(job._id);
    else kept.push(job);
  }
  await tx.replaceMany(POOL_JOBS, kept);
  if (gone.length > 0) await tx.deleteMany(POOL_JOBS, gone);
  return stored;
}

export async function saveJob(
  tx: WriteTransaction,
  job: PoolJob,
  now = Date.now(),
): Promise<PoolJob> {
  const stored = placed(job, now);
  if (keepsNothing(stored)) await tx.delete(POOL_JOBS, stored._id);
  else await tx.replace(POOL_JOBS, stored);
  return stored;
}

export async function insertJob(
  tx: WriteTransaction,
  job: PoolJob,
  now = Date.now(),
): Promise<PoolJob> {
  const stored = placed(job, now);
  await tx.insert(POOL_JOBS, stored);
  return stored;
}

/** Inserts new jobs (distinct ids), placed, in one batch. */
export async function insertJobs(
  tx: WriteTransaction,
  jobs: readonly PoolJob[],
  now = Date.now(),
): Promise<void> {
  await tx.insertMany(
    POOL_JOBS,
    jobs.map((job) => placed(job, now)),
  );
}

export function isPoolJobId(id: string): boolean {
  return tableNumberOfId(id) === SYSTEM_TABLES._pool_jobs.number;
}

export function newPoolJobId(): string {
  return newDocumentId(SYSTEM_TABLES._pool_jobs.number);
}

export function newPoolId(): string {
  return newDocumentId(SYSTEM_TABLES._pools.number);
}

export async function getPoolJob(tx: ReadTransaction, id: string): Promise<PoolJob | null> {
  if (!isPoolJobId(id)) return null;
  return (await tx.get(POOL_JOBS, id)) as PoolJob | null;
}

/** How long to wait before attempt `attempt + 1` (1-based `attempt` just failed), with jitter. */
export function backoffMs(retry: RetryBehavior, attempt: number): number {
  // Never beyond the scheduling limit, however many attempts and however large the base.
  const base = Math.min(
    retry.initialBackoffMs * Math.pow(retry.base, attempt - 1),
    SCHEDULE_LIMIT_MS,
  );
  // Full jitter between half and the whole delay: spreads a burst of failures out.
  return Math.round(base * (0.5 + Math.random() * 0.5));
}

/**
 * A job's document holds its result and its failed attempts, and must stay under a document's
 * limit (1 MiB) whatever its function returned or threw: errors are cut to this many
 * characters, and only the latest failures are kept.
 */
const MAX_STORED_ERROR = 8192;
const MAX_KEPT_FAILURES = 20;

/** An error as a job keeps it: cut, saying how long it was, when it is very long. */
export function storedError(message: string): string {
  if (message.length <= MAX_STORED_ERROR) return message;
  return `${message.slice(0, MAX_STORED_ERROR)}… (cut: ${message.length} characters in all)`;
}

/**
 * Why `job` cannot be stored (its return value too large or too deeply nested for its
 * document, say), or null when it can. Only jobs that may not fit are measured: a small
 * result cannot make a stored job too large.
 */
export function unstorable(job: PoolJob): string | null {
  if (!mayNotFit(job)) return null;
  try {
    checkDocument(POOL_JOBS, job);
    return null;
  } catch (error) {
    if (StorageError.is(error)) return error.message;
    throw error;
  }
}

/**
 * The job failed for good because what its attempt left could not be stored (`problem`: its
 * return value too large, say), rather than blocking every later write of its pool.
 */
export function failedUnstorable(job: PoolJob, problem: string, now: number): PoolJob {
  const error = `Sleigh could not store the outcome of this attempt: ${problem}`;
  const failed = afterAttempt(job, { kind: 'failed', error }, now, { retryable: false });
  if (unstorable(failed) === null) return failed;
  // Its arguments leave no room for its older failures: keep this one alone.
  const alone: PoolJob = { ...failed, failures: failed.failures.slice(-1) };
  if (unstorable(alone) === null) return alone;
  // Not even that (a job stored before new jobs kept room for their outcome): say so briefly.
  const short = 'Sleigh could not store the outcome of this attempt: its arguments leave no room';
  return { ...failed, failures: [], result: { kind: 'failed', error: short } };
}

function mayNotFit(job: PoolJob): boolean {
  if (job.failures.length > 0) return true;
  if (job.result?.kind !== 'success') return false;
  const value = job.result.returnValue;
  if (typeof value === 'string') return value.length >= 1024;
  if (value instanceof ArrayBuffer) return value.byteLength >= 1024;
  return typeof value === 'object' && value !== null;
}

/**
 * The job after an attempt ended with `result` at `now`: retried (pending after its backoff)
 * when it failed and tries are left and the error allows it, otherwise done.
 */
export function afterAttempt(
  job: PoolJob,
  ended: RunResult,
  now: number,
  options: { retryable: boolean },
): PoolJob {
  const result: RunResult =
    ended.kind === 'failed' ? { ...ended, error: storedError(ended.error) } : ended;
  const failures =
    result.kind === 'failed'
      ? [
          ...job.failures,
          {
            startedAt: job.startedAt ?? now,
            endedAt: now,
            error: result.error,
            attempt: job.attempt,
          },
        ].slice(-MAX_KEPT_FAILURES)
      : job.failures;
  if (
    result.kind === 'failed' &&
    options.retryable &&
    job.retry !== null &&
    job.attempt < job.retry.maxAttempts
  ) {
    const { owner: _owner, startedAt: _startedAt, ...rest } = job;
    return { ...rest, state: 'pending', due: now + backoffMs(job.retry, job.attempt), failures };
  }
  // Its startedAt is kept once it ended: the dashboard shows when its last attempt ran.
  return finish(failures === job.failures ? job : { ...job, failures }, result, now);
}

/**
 * Whether a lease due at `due` is to be renewed now: once a quarter of it is gone. The upkeep
 * runs every third of a lease, so each upkeep renews what its runner holds, and a stall of up
 * to two thirds of a lease (a loaded machine, a slow database) costs no job.
 */
export function leaseWorn(due: number, now: number, leaseMs: number): boolean {
  return due - now < (leaseMs * 3) / 4;
}

/**
 * A claimed job handed back without its attempt counting (it never ran, or ran where nothing
 * it did can have committed): pending again, due at `due`, no longer anyone's.
 */
export function handedBack(job: PoolJob, due: number): PoolJob {
  const { owner: _owner, startedAt: _started, ...rest } = job;
  return { ...rest, state: 'pending', due, attempt: job.attempt - 1 };
}

/**
 * The job done with `result`: completing when an onComplete must still run, else ended
 * (`ended` says which state and for how long). One copy: this is every job's last write.
 */
export function finish(job: PoolJob, result: RunResult, now: number): PoolJob {
  const { owner: _owner, ...done } = job;
  done.result = result;
  done.finishedAt = now;
  if (job.onComplete !== null) {
    done.state = 'completing';
    done.due = now;
  } else {
    Object.assign(done, resting(job, result, now));
  }
  return done;
}

/** Where a job with `result` rests: failed (kept for failedTtlMs) or finished (ttlMs). */
function resting(job: PoolJob, result: RunResult | undefined, now: number) {
  const failed = result?.kind === 'failed';
  return {
    state: failed ? ('failed' as const) : ('finished' as const),
    due: now + (failed ? (job.failedTtlMs ?? DEFAULT_FAILED_TTL_MS) : job.ttlMs),
  };
}

/** A job with its result as it rests: failed (kept for failedTtlMs) or finished (ttlMs). */
export function ended(job: PoolJob, now: number): PoolJob {
  return { ...job, ...resting(job, job.result, now) };
}

/** Whether the job has its result: completing (onComplete to run), finished or failed. */
export function isEnded(job: PoolJob): boolean {
  return job.state === 'completing' || job.state === 'finished' || job.state === 'failed';
}

/** Cancels a job that has not finished; resolves with the canceled job, or null. */
export async function cancelJob(
  tx: WriteTransaction,
  id: string,
  now: number,
): Promise<PoolJob | null> {
  const job = await getPoolJob(tx, id);
  if (job === null) {
    if (isPoolJobId(id)) return null;
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      `Workpool cancel: "${id}" is not the id of a pool job`,
    );
  }
  if (isEnded(job)) return null;
  // Written even where the pool keeps nothing (the sweep deletes it a moment later): the key
  // it is written under is what tells a runner here to fire the running attempt's signal.
  const canceled = placed(finish(job, { kind: 'canceled' }, now), now);
  await tx.replace(POOL_JOBS, canceled);
  return canceled;
}
