/**
 * A pool's upkeep, run by each runner every third of a lease (and once at start): the
 * transactions that keep leases alive and bring back the jobs of runners that are gone; then,
 * beside it, the sweep that forgets results whose time is up, a page per transaction until
 * none is left. None of it is on the hot path; the runner (pool-runner.ts) only says which jobs
 * it still holds.
 *
 *   running, owner = this runner, held here ──a quarter of the lease gone──▶ running (renewed)
 *   running, not held here (lease ran out) ──▶ pending again (never started: not an attempt)
 *                                          ╰─▶ failed attempt, retried per policy (an action that
 *                                              started, or any job taken back a third time)
 *   finished / failed past its ttl ──▶ deleted (with its edges)
 */
import { keySuccessor, type WriteTransaction } from '@sleigh/storage';
import {
  afterAttempt,
  BY_DUE,
  dueRange,
  handedBack,
  leaseWorn,
  POOL_JOB_STATES,
  POOL_JOBS,
  saveJob,
  saveJobs,
  type PoolJob,
} from './pool-jobs.js';
import { forgetEdges, releaseDependents } from './pool-graph.js';

/** Rows read per page while walking a range. */
const PAGE = 500;

/** What the upkeep needs to know of the runner doing it. */
export interface LeaseHolder {
  /** The runner's id, as claimed jobs name their owner. */
  readonly owner: string;
  readonly leaseMs: number;
  /** Whether the runner still holds the job (running it, queued to run, or its end unrecorded). */
  holds(id: string): boolean;
  /** Called before a held job's renewed lease is written: its `by_due` key moves. */
  renewing(job: PoolJob, renewed: PoolJob): void;
}

/**
 * Renews the leases of the jobs `holder` holds once a quarter of a lease is gone (leaseWorn),
 * and takes back the pool's other running jobs whose lease ran out, its
 * own included: every one with `takeBackAll` (an exclusive store's only runner, starting).
 */
export async function renewAndTakeBack(
  tx: WriteTransaction,
  pool: string,
  holder: LeaseHolder,
  takeBackAll: boolean,
  now: number,
): Promise<void> {
  const running = dueRange(pool, 'running');
  let start = running.start;
  for (;;) {
    const entries = await tx.scan({
      table: POOL_JOBS,
      index: BY_DUE,
      start,
      end: running.end,
      order: 'asc',
      limit: PAGE,
    });
    for (const entry of entries) {
      const job = entry.document as PoolJob;
      if (job.owner === holder.owner && holder.holds(job._id)) {
        if (leaseWorn(job.due, now, holder.leaseMs)) {
          const renewed = { ...job, due: now + holder.leaseMs };
          holder.renewing(job, renewed);
          await saveJob(tx, renewed);
        }
      } else if (takeBackAll || job.due < now) {
        // Another runner's, or one of ours that this runner lost hold of (a hand-back that
        // failed): a lease that ran out is the same either way.
        const back = takenBack(job, now);
        await saveJob(tx, back);
        await releaseDependents(tx, [back], now);
      }
    }
    if (entries.length < PAGE) break;
    start = keySuccessor(entries[entries.length - 1]!.key);
  }
}

/**
 * Deletes a page of the pool's results past their ttl, and of its dead letters past theirs;
 * resolves with whether a full page was found (more may be waiting). The runner calls it page
 * after page, each its own short transaction, so a pool finishing thousands of jobs a second
 * is swept as fast as it fills, and the cycles get the writer between pages.
 */
export async function sweepExpired(
  tx: WriteTransaction,
  pool: string,
  now: number,
): Promise<boolean> {
  let full = false;
  // An indexed range each: their `due` is when they expire.
  for (const state of ['finished', 'failed'] as const) {
    const entries = await tx.scan({
      table: POOL_JOBS,
      index: BY_DUE,
      ...dueRange(pool, state, now),
      order: 'asc',
      limit: PAGE,
    });
    for (const entry of entries) {
      const job = entry.document as PoolJob;
      await forgetEdges(tx, job);
      await tx.delete(POOL_JOBS, job._id);
    }
    if (entries.length === PAGE) full = true;
  }
  return full;
}

/**
 * Take-backs that cost a job nothing, when its runner went before its start was recorded (or
 * during a mutation, which never committed). The next one counts as a failed attempt: a job
 * that kills its process at once (a poison pill) would otherwise go round the fleet forever.
 * A job merely claimed ahead by a runner that died is charged only if that happens thrice.
 */
export const FREE_TAKE_BACKS = 2;

/**
 * A job whose runner is gone: a mutation or query never committed, and a job claimed ahead
 * never started, so it simply runs again (up to FREE_TAKE_BACKS times); an action that started
 * may have done its work, so the lost attempt counts against its retries.
 */
export function takenBack(job: PoolJob, now: number): PoolJob {
  const takeBacks = (job.takeBacks ?? 0) + 1;
  const started = job.kind === 'action' && job.startedAt !== undefined;
  if (!started && takeBacks <= FREE_TAKE_BACKS) return { ...handedBack(job, now), takeBacks };
  const error = started
    ? 'the process running it stopped before it finished (its lease ran out)'
    : `the process holding it stopped ${takeBacks} times before it was known to start (it may be what stops them)`;
  return afterAttempt({ ...job, takeBacks }, { kind: 'failed', error }, now, { retryable: true });
}

/**
 * Files the pool's jobs stored before `by_due` had a rank (they sort first in each state, with
 * no rank at all): once per pool and process, usually finding none.
 */
export async function placeUnranked(tx: WriteTransaction, pool: string): Promise<void> {
  const now = Date.now();
  for (const state of POOL_JOB_STATES) {
    for (;;) {
      const entries = await tx.scan({
        table: POOL_JOBS,
        index: BY_DUE,
        ...dueRange(pool, state),
        order: 'asc',
        limit: PAGE,
      });
      const unranked = entries
        .map((entry) => entry.document as PoolJob)
        .filter((job) => job.rank === undefined);
      await saveJobs(tx, unranked, now);
      if (unranked.length < PAGE) break;
    }
  }
}
