/**
 * The `_scheduled_functions` system table: one document per `ctx.scheduler.runAfter/runAt`,
 * shaped as Convex's (name, args, scheduledTime, completedTime, state), so apps read it through
 * `ctx.db.system` and subscribe to it as they would on Convex. The runner (runner.ts) keeps two
 * fields of its own on a running action: `owner` (which runner) and `leaseUntil` (ms), and on
 * every job the function's signature where it was scheduled (`sig`); reads through `ctx.db`
 * leave them out (runtime/hidden-fields.ts).
 *
 *   pending ──(due: a mutation runs, committing success with itself)──────────▶ success
 *      │    ──(due: an action is claimed)──▶ inProgress ──(it returns)─────────▶ success
 *      │                                        │   ╰──────(it throws)─────────▶ failed
 *      │                                        ╰─(lease lost: its process died)─▶ pending
 *      ╰──(cancel)──▶ canceled            (a failed mutation, or bad arguments ──▶ failed)
 */
import {
  encodeKey,
  keySuccessor,
  newDocumentId,
  prefixEnd,
  tableNumberOfId,
  type Document,
  type ReadTransaction,
  type WriteTransaction,
} from '@sleigh/storage';
import { jsonToConvex, type JSONValue, type Value } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import { storedError } from './pool-jobs.js';
import { SYSTEM_TABLES } from '../loader/schema.js';

export const SCHEDULED = '_scheduled_functions';
export const BY_STATE_TIME = 'by_state_time';

export type JobState =
  | { kind: 'pending' }
  | { kind: 'inProgress' }
  | { kind: 'success' }
  | { kind: 'failed'; error: string }
  | { kind: 'canceled' };

export interface ScheduledFunction extends Document {
  name: string;
  args: Value[];
  scheduledTime: number;
  completedTime?: number;
  state: JobState;
  owner?: string;
  leaseUntil?: number;
  /**
   * The function's signature on the server that scheduled it (fleet-guard.ts): during a
   * rollout, servers whose function differs leave the run to one that has this signature.
   */
  sig?: string;
}

/** Convex's limit on functions one mutation or action call may schedule. */
export const MAX_SCHEDULED_PER_CALL = 1000;

export function stateOf(document: Document): JobState['kind'] {
  return (document as ScheduledFunction).state.kind;
}

/** The `by_state_time` keys of jobs in `state` due at or before `until` (ms). */
export function dueRange(
  state: JobState['kind'],
  until?: number,
): { start: Uint8Array; end: Uint8Array } {
  const start = encodeKey([state]);
  return {
    start,
    end: until === undefined ? prefixEnd(start) : prefixEnd(encodeKey([state, until])),
  };
}

/**
 * Inserts a pending job; returns its id. `args` is the Convex-encoded JSON of the arguments;
 * `sig` the function's signature here (none for Sleigh's own functions).
 */
export async function insertScheduled(
  tx: WriteTransaction,
  name: string,
  args: JSONValue,
  scheduledTime: number,
  creationTime: number,
  sig: string | null,
): Promise<string> {
  const value = jsonToConvex(args);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      `ctx.scheduler: the arguments for ${name} must be an object`,
    );
  }
  const id = newDocumentId(SYSTEM_TABLES._scheduled_functions.number);
  const job: ScheduledFunction = {
    _id: id,
    _creationTime: creationTime,
    name,
    args: [value],
    scheduledTime,
    state: { kind: 'pending' },
  };
  if (sig !== null) job.sig = sig;
  await tx.insert(SCHEDULED, job);
  return id;
}

export async function getScheduled(
  tx: ReadTransaction,
  id: string,
): Promise<ScheduledFunction | null> {
  return (await tx.get(SCHEDULED, id)) as ScheduledFunction | null;
}

/** Moves a job to a final state (or back to pending), dropping the runner's own fields. */
export async function settle(
  tx: WriteTransaction,
  job: ScheduledFunction,
  state: JobState,
  now: number,
): Promise<void> {
  const { owner: _owner, leaseUntil: _lease, completedTime: _completed, ...rest } = job;
  // However long the error a function threw, its record must stay storable.
  const kept: JobState =
    state.kind === 'failed' ? { kind: 'failed', error: storedError(state.error) } : state;
  const next: ScheduledFunction = { ...rest, state: kept };
  if (state.kind !== 'pending') next.completedTime = now;
  await tx.replace(SCHEDULED, next);
}

/** How long a finished job's record is kept: Convex keeps them 7 days. */
export const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** The final states, whose records are deleted once they are older than the retention. */
const FINAL_STATES = ['success', 'failed', 'canceled'] as const;

/** Records read per page while sweeping. */
const SWEEP_PAGE = 500;

/** Where a sweep goes on: which final state, from which key of `by_state_time`. */
export interface SweepPosition {
  readonly state: number;
  readonly start: Uint8Array;
}

/**
 * Deletes a page of records of jobs that completed at or before `cutoff` (ms), from the state
 * `after` left off (the first final state when null); resolves with where the next page starts,
 * or null when all are done. Records are found by `scheduledTime`, which is never after the
 * completion; a job scheduled before the cutoff but completed after it is stepped over.
 */
export async function sweepCompleted(
  tx: WriteTransaction,
  cutoff: number,
  after: SweepPosition | null,
): Promise<SweepPosition | null> {
  let stateAt = after?.state ?? 0;
  const state = FINAL_STATES[stateAt];
  if (state === undefined) return null;
  const range = dueRange(state, cutoff);
  const entries = await tx.scan({
    table: SCHEDULED,
    index: BY_STATE_TIME,
    start: after?.start ?? range.start,
    end: range.end,
    order: 'asc',
    limit: SWEEP_PAGE,
  });
  for (const entry of entries) {
    const job = entry.document as ScheduledFunction;
    if ((job.completedTime ?? job.scheduledTime) <= cutoff) await tx.delete(SCHEDULED, job._id);
  }
  const last = entries[entries.length - 1];
  if (entries.length === SWEEP_PAGE && last !== undefined) {
    return { state: stateAt, start: keySuccessor(last.key) };
  }
  stateAt++;
  return stateAt < FINAL_STATES.length
    ? { state: stateAt, start: dueRange(FINAL_STATES[stateAt]!).start }
    : null;
}

/**
 * `ctx.scheduler.cancel`: a pending job never runs; a running action keeps running but its
 * outcome is not recorded over the cancellation. A finished job stays as it was.
 */
export async function cancelScheduled(
  tx: WriteTransaction,
  id: string,
  now: number,
): Promise<void> {
  const job =
    tableNumberOfId(id) === SYSTEM_TABLES._scheduled_functions.number
      ? await getScheduled(tx, id)
      : null;
  if (job === null) {
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      `ctx.scheduler.cancel: no scheduled function with id ${id.length > 200 ? `${id.slice(0, 200)}…` : id}`,
    );
  }
  if (job.state.kind === 'pending' || job.state.kind === 'inProgress') {
    await settle(tx, job, { kind: 'canceled' }, now);
  }
}
