/**
 * Claims for pools with limits beyond maxParallelism: fairness between groups (at most
 * `groupParallelism` jobs of one group running) and rate limits (at most `count` starts per
 * `periodMs`, for the pool and per group), holding across every runner on the database because
 * everything is read and written in the claim's serializable transaction.
 *
 * A grouped job's `rank` while pending is `[group, -priority]`, so the pool's pending range of
 * `by_due` holds ungrouped jobs first (numbers sort before arrays), then each group's jobs
 * together, by priority then age. A claim takes ungrouped jobs, then visits groups round-robin
 * (starting after the group served last), one seek per group:
 *
 *   count running per group ─▶ ungrouped jobs ─▶ for each group with pending jobs, in turn:
 *      take min(free slots, group's free slots, group's rate allowance) of its jobs ─▶ next group
 *
 * Rate limits keep the start times of the last `count` claims in `_pool_limits` (one document
 * per pool and per group, with an id derived from them): a claim is allowed while fewer than
 * `count` happened in the last `periodMs` (a sliding window, so never more than `count` in any
 * window). Limited pools never claim ahead, so a claim's time is its start's, give or take the
 * commit between them: a logged claim's jobs must start within GUARD_MS of its time, or not at
 * all (StartDeadlines).
 *
 *   claim logged at t (t = when its transaction ends, plus what the runner needs beyond
 *   GUARD_MS) ─ commit ─▶ start by t + GUARD_MS ─▶ runs
 *                                               └─ later ─▶ handed back and taken out of the
 *                                                  log (unlogStarts), uncharged; the runner
 *                                                  logs its next claims later
 */
import { derivedDocumentId, encodeKey, type WriteTransaction } from '@sleigh/storage';
import { SYSTEM_TABLES } from '../loader/schema.js';
import { readPastLeftWork } from './fleet-view.js';
import { BY_DUE, dueRange, POOL_JOBS, type PoolJob, type PoolOptions } from './pool-jobs.js';

export const POOL_LIMITS = '_pool_limits';

/**
 * A claim logged at t starts by t + GUARD_MS, so windows are kept this much longer than their
 * period: a later claim counts it until its jobs can no longer start.
 */
export const GUARD_MS = 50;

/** The longest a runner gives the jobs of its claims to start (see StartDeadlines). */
const MOST_WITHIN_MS = 10_000;

export interface RateLimit {
  readonly count: number;
  readonly periodMs: number;
}

interface StartLog {
  _id: string;
  _creationTime: number;
  pool: string;
  group: string | null;
  /** Claim times within the window, oldest first. */
  starts: number[];
}

interface LoadedLog {
  readonly log: StartLog;
  readonly stored: boolean;
  /** Claims made under this log in this transaction. */
  claimed: number;
}

export function isLimited(options: PoolOptions): boolean {
  return (
    options.groupParallelism !== null ||
    options.rateLimit !== null ||
    options.groupRateLimit !== null
  );
}

/** A claim of a limited pool: the jobs to claim, and when claiming may be possible again. */
export interface LimitedClaim {
  readonly jobs: PoolJob[];
  /** When a rate limit lets more start (null: when a job ends or is enqueued). */
  readonly retryAt: number | null;
  /** The group to start from next time (round-robin). */
  readonly nextGroup: string | null;
  /** When the claim was logged, and when its jobs must have started (null: none logged). */
  readonly logged: Logged | null;
}

export interface Logged {
  /** When the claim was logged. */
  readonly at: number;
  /**
   * Its jobs' start time as the log has it (`at`, plus what the runner needs beyond GUARD_MS):
   * they must have started by `stamp + GUARD_MS`.
   */
  readonly stamp: number;
}

/**
 * One runner's deadlines for the jobs its claims of a rate-limited pool logged. Starts follow
 * claims by the claim's commit and the runner's turn (milliseconds, more under load); a job past
 * its deadline would crowd a window that later claims counted as free, so it is handed back.
 * Each miss gives this runner's later claims twice what that one took (logged that much later,
 * so they hold their windows longer); starts well within it give a little back.
 */
export class StartDeadlines {
  /** How long after its claim ends a job of it may still start. */
  withinMs = GUARD_MS;
  private readonly byJob = new Map<string, Logged>();

  claimed(ids: readonly string[], logged: Logged): void {
    for (const id of ids) this.byJob.set(id, logged);
  }

  /**
   * The claim that logged job `id`, when the job is too late to start now; null when it may
   * start (or has no deadline). Forgets the job either way.
   */
  missed(id: string, now: number): Logged | null {
    const logged = this.byJob.get(id);
    if (logged === undefined) return null;
    this.byJob.delete(id);
    const startBy = logged.stamp + GUARD_MS;
    if (now <= startBy) {
      if (startBy - now > this.withinMs / 2) {
        this.withinMs = Math.max(GUARD_MS, this.withinMs * 0.99);
      }
      return null;
    }
    this.withinMs = Math.min(MOST_WITHIN_MS, Math.max(this.withinMs, 2 * (now - logged.at)));
    return logged;
  }

  /** The job will not start here (canceled before it did). */
  forget(id: string): void {
    this.byJob.delete(id);
  }
}

class StartLogs {
  private readonly logs = new Map<StartLog, LoadedLog>();
  private readonly byId = new Map<string, StartLog>();

  constructor(
    private readonly tx: WriteTransaction,
    private readonly pool: string,
    private readonly now: number,
    private readonly creationTime: () => number,
    /** How long after the transaction ends this runner needs to start what it claims. */
    private readonly withinMs: number,
  ) {}

  async get(group: string | null, limit: RateLimit): Promise<StartLog> {
    const id = startLogId(this.pool, group);
    const known = this.byId.get(id);
    if (known !== undefined) return known;
    const stored = (await this.tx.get(POOL_LIMITS, id)) as unknown as StartLog | null;
    const log: StartLog = {
      ...(stored ?? {
        _id: id,
        _creationTime: this.creationTime(),
        pool: this.pool,
        group,
        starts: [],
      }),
    };
    log.starts = log.starts.filter((at) => at > this.now - limit.periodMs - GUARD_MS);
    this.byId.set(id, log);
    this.logs.set(log, { log, stored: stored !== null, claimed: 0 });
    return log;
  }

  /** How many may start now under `limit`, and when one more may if none can. */
  allowance(log: StartLog, limit: RateLimit): { allowed: number; retryAt: number | null } {
    const allowed = Math.max(0, limit.count - log.starts.length);
    const oldest = log.starts[log.starts.length - limit.count];
    return {
      allowed,
      retryAt: allowed > 0 || oldest === undefined ? null : oldest + limit.periodMs + GUARD_MS,
    };
  }

  record(log: StartLog, count: number): void {
    if (count === 0) return;
    const entry = this.logs.get(log)!;
    entry.claimed += count;
  }

  /**
   * Writes the logs that claims were added to, stamped as late as the claim can know plus what
   * this runner needs beyond GUARD_MS; null when none was.
   */
  async save(): Promise<Logged | null> {
    const now = Date.now();
    const at = now + this.withinMs - GUARD_MS;
    let logged: Logged | null = null;
    for (const entry of this.logs.values()) {
      const { log, stored, claimed } = entry;
      if (claimed === 0) continue;
      // Oldest first: another runner may have logged a claim later than this one's stamp.
      const sorted = log.starts.every((start) => start <= at);
      for (let i = 0; i < claimed; i++) log.starts.push(at);
      if (!sorted) log.starts.sort((a, b) => a - b);
      if (stored) await this.tx.replace(POOL_LIMITS, log as never);
      else await this.tx.insert(POOL_LIMITS, log as never);
      logged = { at: now, stamp: at };
    }
    return logged;
  }
}

/** The start log of `pool`, or of one group of it. */
function startLogId(pool: string, group: string | null): string {
  return derivedDocumentId(
    SYSTEM_TABLES._pool_limits.number,
    `${pool}\u0000${group === null ? '' : `g\u0000${group}`}`,
  );
}

/**
 * Takes the starts logged for `jobs` (each with its claim's stamp) out of the pool's and their
 * groups' logs: they were handed back without starting, and must not hold up the windows they
 * were counted in (with one start a minute, a whole minute).
 */
export async function unlogStarts(
  tx: WriteTransaction,
  pool: string,
  options: PoolOptions,
  jobs: ReadonlyArray<{ readonly job: PoolJob; readonly stamp: number }>,
): Promise<void> {
  const byLog = new Map<string, number[]>();
  const add = (id: string, stamp: number) => {
    const stamps = byLog.get(id) ?? [];
    stamps.push(stamp);
    byLog.set(id, stamps);
  };
  for (const { job, stamp } of jobs) {
    if (options.rateLimit !== null) add(startLogId(pool, null), stamp);
    if (options.groupRateLimit !== null && job.group !== undefined) {
      add(startLogId(pool, job.group), stamp);
    }
  }
  for (const [id, stamps] of byLog) {
    const log = (await tx.get(POOL_LIMITS, id)) as unknown as StartLog | null;
    if (log === null) continue;
    const starts = [...log.starts];
    for (const stamp of stamps) {
      const at = starts.indexOf(stamp);
      if (at >= 0) starts.splice(at, 1);
    }
    if (starts.length !== log.starts.length) {
      await tx.replace(POOL_LIMITS, { ...log, starts });
    }
  }
}

/** The key range of one group's pending jobs, and where the next group's begin. */
function groupRange(pool: string, group: string): { start: Uint8Array; end: Uint8Array } {
  return {
    start: encodeKey([pool, 'pending', [group]]),
    // Every rank [group, …] sorts before [group + '\0'], the first of any later group.
    end: encodeKey([pool, 'pending', [`${group}\u0000`]]),
  };
}

/** Picks up to `free` pending jobs of a limited pool, honouring its limits. */
export async function pickLimited(
  tx: WriteTransaction,
  pool: string,
  options: PoolOptions,
  free: number,
  now: number,
  startGroup: string | null,
  creationTime: () => number,
  /** How long after the transaction ends this runner needs to start what it claims. */
  withinMs: number,
  /** Whether this runner may take the job (not when its function is left to other servers). */
  takes: (job: PoolJob) => boolean = () => true,
): Promise<LimitedClaim> {
  const logs = new StartLogs(tx, pool, now, creationTime, withinMs);
  const picked: PoolJob[] = [];
  const retryTimes: number[] = [];
  let poolLog: StartLog | null = null;
  if (options.rateLimit !== null) {
    poolLog = await logs.get(null, options.rateLimit);
    const { allowed, retryAt } = logs.allowance(poolLog, options.rateLimit);
    if (retryAt !== null) retryTimes.push(retryAt);
    free = Math.min(free, allowed);
  }
  const pending = dueRange(pool, 'pending');
  const firstGroup = encodeKey([pool, 'pending', []]);
  // Ungrouped jobs (numeric ranks) come first and answer only to the pool's limits.
  if (free > 0) {
    const taken = await takeFrom(tx, pending.start, firstGroup, free, takes);
    picked.push(...taken);
    free -= taken.length;
  }
  let nextGroup: string | null = startGroup;
  if (free > 0) {
    const running = new Map<string, number>();
    if (options.groupParallelism !== null) {
      const entries = await tx.scan({
        table: POOL_JOBS,
        index: BY_DUE,
        ...dueRange(pool, 'running'),
        order: 'asc',
        limit: 100_000,
      });
      for (const entry of entries) {
        const group = (entry.document as PoolJob).group;
        if (group !== undefined) running.set(group, (running.get(group) ?? 0) + 1);
      }
    }
    // Round-robin: from the group after the one served last, around to where we began.
    const resume = startGroup === null ? firstGroup : groupRange(pool, startGroup).end;
    let cursor = resume;
    let wrapped = false;
    for (let visited = 0; free > 0 && visited < 100_000; visited++) {
      const [first] = await tx.scan({
        table: POOL_JOBS,
        index: BY_DUE,
        start: cursor,
        end: wrapped ? resume : pending.end,
        order: 'asc',
        limit: 1,
      });
      if (first === undefined) {
        if (wrapped || startGroup === null) break;
        wrapped = true;
        cursor = firstGroup;
        continue;
      }
      const group = ((first.document as PoolJob).rank as unknown as [string, number])[0];
      const range = groupRange(pool, group);
      cursor = range.end;
      let allowed = free;
      if (options.groupParallelism !== null) {
        allowed = Math.min(allowed, options.groupParallelism - (running.get(group) ?? 0));
      }
      let groupLog: StartLog | null = null;
      if (options.groupRateLimit !== null && allowed > 0) {
        groupLog = await logs.get(group, options.groupRateLimit);
        const allowance = logs.allowance(groupLog, options.groupRateLimit);
        if (allowance.retryAt !== null) retryTimes.push(allowance.retryAt);
        allowed = Math.min(allowed, allowance.allowed);
      }
      if (allowed <= 0) continue;
      const taken = await takeFrom(tx, range.start, range.end, allowed, takes);
      picked.push(...taken);
      if (groupLog !== null) logs.record(groupLog, taken.length);
      free -= taken.length;
      nextGroup = group;
    }
  }
  if (poolLog !== null) logs.record(poolLog, picked.length);
  const logged = await logs.save();
  return {
    jobs: picked,
    retryAt: retryTimes.length === 0 ? null : Math.min(...retryTimes),
    nextGroup,
    logged,
  };
}

/** Jobs read per page once jobs left to other servers were passed over. */
const PAGE_PAST = 50;

/**
 * The first `count` pending jobs of a `by_due` range that this runner `takes`, in order,
 * looking past those left to other servers (readPastLeftWork).
 */
async function takeFrom(
  tx: WriteTransaction,
  start: Uint8Array,
  end: Uint8Array,
  count: number,
  takes: (job: PoolJob) => boolean,
): Promise<PoolJob[]> {
  const taken: PoolJob[] = [];
  if (count <= 0) return taken;
  const scan = (from: Uint8Array, limit: number) =>
    tx.scan({ table: POOL_JOBS, index: BY_DUE, start: from, end, order: 'asc', limit });
  await readPastLeftWork(
    scan(start, count),
    // Pages of a few dozen past the first: a group of parallelism 1 behind a thousand jobs
    // left to other servers takes a few reads, not a thousand.
    (after) => scan(after, Math.max(count - taken.length, PAGE_PAST)),
    (entry) => {
      const job = entry.document as PoolJob;
      if (!takes(job)) return true;
      taken.push(job);
      return false;
    },
    () => taken.length === count,
  );
  return taken;
}
