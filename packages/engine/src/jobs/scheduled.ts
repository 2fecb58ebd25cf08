/**
 * The `_scheduled_functions` system table: one document per `ctx.scheduler.runAfter/runAt`,
 * shaped as Convex's (name, args, scheduledTime, completedTime, state), so apps read it through
 * `ctx.db.system` and subscribe to it as they would on Convex. The runner (runner.ts) keeps two
 * fields of its own on a running action: `owner` (which runner) and `leaseUntil` (ms).
 *
 *   pending ──(due: a mutation runs, committing success with itself)──────────▶ success
 *      │    ──(due: an action is claimed)──▶ inProgress ──(it returns)─────────▶ success
 *      │                                        │   ╰──────(it throws)─────────▶ failed
 *      │                                        ╰─(lease lost: its process died)─▶ pending
 *      ╰──(cancel)──▶ canceled            (a failed mutation, or bad arguments ──▶ failed)
 */
import {
  encodeKey,
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

/** Inserts a pending job; returns its id. `args` is the Convex-encoded JSON of the arguments. */
export async function insertScheduled(
  tx: WriteTransaction,
  name: string,
  args: JSONValue,
  scheduledTime: number,
  creationTime: number,
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
