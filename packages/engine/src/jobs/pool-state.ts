/**
 * What a pool runner knows of one pool (`PoolState`), and how it claims jobs as itself
 * (`Claimant`): the state its cycles (pool-cycle.ts) and its event handling (pool-runner.ts)
 * share.
 */
import { encodeKey } from '@sleigh/storage';
import type { PoolJob, PoolOptions, RunResult } from './pool-jobs.js';
import { StartDeadlines } from './pool-limits.js';

/** An attempt that ended here, waiting for the next cycle to record it. */
export interface Ended {
  readonly job: PoolJob;
  readonly startedAt: number;
  readonly result: RunResult;
  readonly retryable: boolean;
}

export interface PoolState {
  readonly name: string;
  options: PoolOptions;
  /** Paused (`_pools`): none of its jobs start here; claims and starts wait for a resume. */
  paused: boolean;
  readonly pendingPrefix: Uint8Array;
  readonly delayedPrefix: Uint8Array;
  readonly completingPrefix: Uint8Array;
  /** This runner's jobs of the pool running now, by id. */
  readonly running: Map<string, Promise<void>>;
  /** Jobs claimed ahead, started as slots free. */
  queue: PoolJob[];
  /** Each queued job's `by_due` key as the database has it (hex), by id. */
  readonly queued: Map<string, string>;
  /**
   * The same keys → ids: a commit that writes one of these keys (a cancel, a new dependent)
   * takes the job out of the queue before it starts, to be looked at again.
   */
  readonly queuedKeys: Map<string, string>;
  /**
   * Jobs this runner holds (queued, or started) that the database still has pending: a claim
   * of an unlimited pool is not written, only the start of a job that outlives a cycle, or its
   * outcome (on a shared store the runner's holdings list them: pool-holdings.ts). A crash
   * loses nothing (they are pending), and claims skip these.
   */
  readonly unclaimed: Set<string>;
  /** Queued jobs whose claim was written, taken out of the queue by a commit: read them again. */
  readonly recheck: Set<string>;
  /** Jobs claimed ahead that started since the last cycle, when, and of which run. */
  started: Map<string, { at: number; run: number }>;
  /** Attempts that ended and wait for the next cycle to be recorded. */
  ended: Ended[];
  /**
   * Ids of those ended attempts, until the cycle recording them commits: still held here, so
   * that the upkeep renews their lease rather than taking them back while a slow cycle (or
   * one retrying a conflict) records them.
   */
  readonly ending: Set<string>;
  /** onComplete runs in flight here. */
  readonly completing: Set<string>;
  lookForCompleting: boolean;
  /** A delayed job was written: look at what is due and when the next one comes. */
  lookForDelayed: boolean;
  /** When the first delayed job known of comes due (Infinity: none). */
  delayedDue: number;
  /** Jobs stored before `rank` existed have been filed (placeUnranked). */
  placed: boolean;
  /** Whether the last count of the pool's running jobs found only this runner's claims. */
  alone: boolean;
  /** The group served last (round-robin between groups). */
  nextGroup: string | null;
  /** When each claimed job became ready (its start latency is measured from it). */
  readonly readyAt: Map<string, number>;
  /** By when the jobs of rate-limited claims must start (pool-limits.ts). */
  readonly deadlines: StartDeadlines;
  cycling: boolean;
  again: boolean;
  cycleAsked: boolean;
  timer: NodeJS.Timeout | null;
  timerAt: number;
}

export function newPoolState(name: string, options: PoolOptions): PoolState {
  return {
    name,
    options,
    paused: false,
    pendingPrefix: encodeKey([name, 'pending']),
    delayedPrefix: encodeKey([name, 'delayed']),
    completingPrefix: encodeKey([name, 'completing']),
    running: new Map(),
    queue: [],
    queued: new Map(),
    queuedKeys: new Map(),
    unclaimed: new Set(),
    recheck: new Set(),
    started: new Map(),
    ended: [],
    ending: new Set(),
    completing: new Set(),
    lookForCompleting: true,
    lookForDelayed: true,
    delayedDue: Infinity,
    alone: true,
    placed: false,
    nextGroup: null,
    readyAt: new Map(),
    deadlines: new StartDeadlines(),
    cycling: false,
    again: false,
    cycleAsked: false,
    timer: null,
    timerAt: Infinity,
  };
}

/**
 * A runner as the owner of the jobs it claims: its id (the jobs' `owner`), its lease, whether
 * its store is exclusive (no other process claims: nothing needs to know its claims), and which
 * functions it leaves to other servers.
 */
export class Claimant {
  constructor(
    readonly id: string,
    readonly leaseMs: number,
    readonly exclusive: boolean,
    /**
     * Whether jobs of the function at `path`, enqueued where it had signature `sig`, are left
     * to other servers (fleet-view.ts).
     */
    private readonly leavesToOthers: (path: string, sig: string | undefined) => boolean = () =>
      false,
  ) {}

  /** Whether this runner may claim `job`: not when its function is left to other servers. */
  takes(job: PoolJob): boolean {
    return !this.leavesToOthers(job.fn, job.sig);
  }

  /** Whether this runner may run `job`'s onComplete. */
  completes(job: PoolJob): boolean {
    return job.onComplete === null || !this.leavesToOthers(job.onComplete.fn, job.onComplete.sig);
  }

  /** A pending job claimed at `now`: its next attempt, leased. */
  claimed(job: PoolJob, now: number): PoolJob {
    return {
      ...job,
      state: 'running',
      attempt: job.attempt + 1,
      owner: this.id,
      due: now + this.leaseMs,
    };
  }

  /**
   * A job of ours as the claim would have written it (those claimed in memory are still
   * pending), started at `startedAt` when given.
   */
  asClaimed(current: PoolJob, startedAt?: number): PoolJob {
    const started = startedAt === undefined ? {} : { startedAt };
    if (current.state === 'running')
      return startedAt === undefined ? current : { ...current, ...started };
    return {
      ...current,
      state: 'running',
      attempt: current.attempt + 1,
      owner: this.id,
      ...started,
    };
  }

  /**
   * Whether the job, as read now, is still ours to run and record: `run` is the run our attempt
   * belongs to (a job canceled while it ran here may have been run again since).
   */
  isOurs(pool: PoolState, current: PoolJob | null, run: number): current is PoolJob {
    if (current === null || (current.run ?? 0) !== run) return false;
    if (current.state === 'running') return current.owner === this.id;
    return current.state === 'pending' && pool.unclaimed.has(current._id);
  }
}
