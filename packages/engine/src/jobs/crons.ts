/**
 * Crons: the `cronJobs()` of `crons.ts`, kept in the `_cron_jobs` system table with their last
 * and next runs, and a runner that turns each due tick into a scheduled function.
 *
 * - Loading (`syncCrons`): every (re)load writes the crons of the code into the table in one
 *   transaction: new ones get their first `nextRun`, changed ones (function, arguments or
 *   schedule) a new one, removed ones are deleted. Unchanged crons keep their `nextRun`, so a
 *   restart neither skips nor repeats a tick. While live servers of another version declare
 *   other crons, theirs stay in force and the load writes nothing (cron-rollout.ts).
 * - Ticking: the runner waits for the earliest `nextRun`. A tick is one transaction that checks
 *   the cron still has that `nextRun`, schedules its function (`_scheduled_functions`, so a
 *   mutation runs exactly once and an action at least once) and moves `nextRun` on. Several
 *   runners on one database race for the same tick; the store's serializable transactions let
 *   exactly one of them move it, so a tick runs once across restarts and servers.
 * - Checking (`checkCrons`) comes before a load applies anything: a refused crons.ts leaves the
 *   schema and `_cron_jobs` as they were. Cron expressions have Convex's five fields, in UTC.
 * - Missed ticks: when Sleigh was stopped over one or more ticks, the cron runs once as soon as
 *   it is back (one catch-up run, however many ticks were missed), and its next tick is the
 *   first one after that moment. Interval crons count from the catch-up run.
 * - One run at a time, as on Convex: a tick that comes while the cron's previous run is still
 *   pending or running is skipped (and logged) rather than scheduled beside it, so a slow run
 *   or a backlog of scheduled functions never piles runs up.
 *
 *   load ─▶ syncCrons ─▶ _cron_jobs.nextRun ─(timer)─▶ tick tx: schedule + lastRun/nextRun ─┐
 *                              ▲                                                          │
 *                              ╰──────────────────────────────────────────────────────────╯
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  newDocumentId,
  type Commit,
  StorageError,
  StorageErrorCode,
  type Document,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { CronExpressionParser } from 'cron-parser';
import { convexToJson, jsonToConvex, type JSONValue, type Value } from 'convex/values';
import { LoadError } from '../loader/bundle.js';
import { SYSTEM_TABLES } from '../loader/schema.js';
import { insertScheduled, SCHEDULED, stateOf } from './scheduled.js';
import { delayUntil, SCHEDULE_LIMIT_MS } from './timers.js';

export const CRONS = '_cron_jobs';

/** A schedule as `cronJobs()` records it (convex/server's `Schedule`). */
export type CronSchedule =
  | { type: 'interval'; seconds?: number; minutes?: number; hours?: number }
  | { type: 'hourly'; minuteUTC?: number }
  | { type: 'daily'; hourUTC: number; minuteUTC?: number }
  | { type: 'weekly'; dayOfWeek: string; hourUTC: number; minuteUTC?: number }
  | { type: 'monthly'; day: number; hourUTC: number; minuteUTC?: number }
  | { type: 'cron'; cron: string };

/** One entry of `cronJobs().crons`. */
export interface CronSpec {
  readonly name: string;
  readonly args: JSONValue[];
  readonly schedule: CronSchedule;
}

export interface CronJob extends Document {
  /** The cron's identifier in crons.ts. */
  name: string;
  /** The function it runs (`module:export`). */
  function: string;
  args: Value;
  schedule: CronSchedule;
  /** When it last ran (ms), and the scheduled function of that run. */
  lastRun?: number;
  lastJobId?: string;
  /** When a tick was last skipped because the run before it had not ended. */
  lastSkipped?: number;
  nextRun: number;
  /**
   * The function's signature on the server that wrote the cron (fleet-guard.ts): its runs
   * record it, so while versions share the database they go to servers that have the function
   * as the cron's version declared it (fleet-view.ts), whichever server ticks.
   */
  sig?: string;
}

const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** The cron expression of a calendar schedule (UTC), or null for an interval. */
function expressionOf(schedule: CronSchedule): string | null {
  switch (schedule.type) {
    case 'interval':
      return null;
    case 'hourly':
      return `${schedule.minuteUTC ?? 0} * * * *`;
    case 'daily':
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * *`;
    case 'weekly':
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * ${DAYS.indexOf(schedule.dayOfWeek.toLowerCase())}`;
    case 'monthly':
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} ${schedule.day} * *`;
    case 'cron':
      return schedule.cron;
  }
}

function intervalMs(schedule: CronSchedule & { type: 'interval' }): number {
  return (
    (schedule.seconds ?? 0) * 1000 +
    (schedule.minutes ?? 0) * 60_000 +
    (schedule.hours ?? 0) * 3_600_000
  );
}

/** The first tick of `schedule` strictly after `after` (ms since the epoch, UTC). */
export function nextRunAfter(schedule: CronSchedule, after: number): number {
  if (schedule.type === 'interval') return after + intervalMs(schedule);
  const expression = expressionOf(schedule)!;
  return CronExpressionParser.parse(expression, { currentDate: new Date(after), tz: 'UTC' })
    .next()
    .getTime();
}

/** Checks a cron's schedule, naming the cron in the error. */
function checkSchedule(cron: string, schedule: CronSchedule): void {
  if (schedule.type === 'interval') {
    const every = intervalMs(schedule);
    if (!(every >= 1000)) {
      throw new LoadError(`crons.ts: cron "${cron}" must run at most once a second`);
    }
    if (every > SCHEDULE_LIMIT_MS) {
      throw new LoadError(
        `crons.ts: cron "${cron}" must run at least once every 5 years (the scheduling limit)`,
      );
    }
    return;
  }
  const expression = expressionOf(schedule)!;
  // The parser reads fewer fields as if the leading ones were left out (and six as seconds
  // first), so "0 9 * *" would run every minute of the 9th: Convex's crons have exactly five.
  if (typeof expression !== 'string' || expression.trim().split(/\s+/).length !== 5) {
    throw new LoadError(
      `crons.ts: cron "${cron}" has an invalid schedule ${JSON.stringify(expression)}: a cron expression has five fields (minute, hour, day of month, month, day of week; in UTC)`,
    );
  }
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC', strict: false });
  } catch (error) {
    throw new LoadError(
      `crons.ts: cron "${cron}" has an invalid schedule "${expression}": ${(error as Error).message}`,
    );
  }
}

/** The crons exported by crons.ts (`export default cronJobs()`), or none. */
export function cronsOf(exports: Record<string, unknown> | undefined): Map<string, CronSpec> {
  const crons = new Map<string, CronSpec>();
  const value = exports?.default as
    { isCrons?: boolean; crons?: Record<string, CronSpec> } | undefined;
  if (value === undefined) return crons;
  if (value.isCrons !== true || value.crons === undefined) {
    throw new LoadError('crons.ts: the default export must be the object made by cronJobs()');
  }
  for (const [name, spec] of Object.entries(value.crons)) crons.set(name, spec);
  return crons;
}

/** Whether the stored cron is the one of the code: same function, schedule and arguments. */
function sameSpec(job: CronJob, spec: CronSpec): boolean {
  return (
    job.function === spec.name &&
    JSON.stringify(job.schedule) === JSON.stringify(spec.schedule) &&
    // Compared in Convex's JSON encoding, which tells bytes, int64 and NaN apart.
    JSON.stringify(convexToJson(job.args)) === JSON.stringify(spec.args[0] ?? {})
  );
}

/**
 * Checks the crons of the code before anything of a load is applied: `kindOf` names each
 * function's kind (a cron must run a mutation or an action), every schedule must parse, and
 * `checkArgs` (throwing an error that says what is wrong) must accept each cron's arguments,
 * rather than every run failing.
 */
export function checkCrons(
  crons: ReadonlyMap<string, CronSpec>,
  kindOf: (path: string) => string | null,
  checkArgs: (path: string, args: JSONValue) => void,
): void {
  for (const [name, spec] of crons) {
    const kind = kindOf(spec.name);
    if (kind !== 'mutation' && kind !== 'action') {
      throw new LoadError(
        `crons.ts: cron "${name}" runs ${spec.name}, which is ${kind === null ? 'not a function' : `a ${kind}`}; crons run mutations and actions`,
      );
    }
    checkSchedule(name, spec.schedule);
    try {
      checkArgs(spec.name, spec.args[0] ?? {});
    } catch (error) {
      throw new LoadError(`crons.ts: cron "${name}": ${(error as Error).message}`);
    }
  }
}

/**
 * Writes the crons of the code (checked by checkCrons) into `_cron_jobs`, each with its
 * function's signature here (`signatureOf`). A cron whose signature alone changed keeps its
 * next run.
 */
export async function syncCrons(
  tx: WriteTransaction,
  crons: ReadonlyMap<string, CronSpec>,
  now: number,
  creationTime: () => number,
  signatureOf: (path: string) => string | null,
): Promise<void> {
  const existing = new Map<string, CronJob>();
  for (const entry of await tx.scan({
    table: CRONS,
    index: 'by_name',
    order: 'asc',
    limit: 10_000,
  })) {
    const job = entry.document as CronJob;
    existing.set(job.name, job);
  }
  for (const [name, job] of existing) {
    if (!crons.has(name)) await tx.delete(CRONS, job._id);
  }
  for (const [name, spec] of crons) {
    const args = jsonToConvex(spec.args[0] ?? {});
    const job = existing.get(name);
    const sig = signatureOf(spec.name);
    if (job !== undefined && sameSpec(job, spec)) {
      if ((job.sig ?? null) !== sig) await tx.replace(CRONS, withSig(job, sig));
      continue;
    }
    const next: CronJob = withSig(
      {
        ...(job ?? {
          _id: newDocumentId(SYSTEM_TABLES._cron_jobs.number),
          _creationTime: creationTime(),
        }),
        name,
        function: spec.name,
        args,
        schedule: spec.schedule,
        nextRun: nextRunAfter(spec.schedule, now),
      },
      sig,
    );
    if (job === undefined) await tx.insert(CRONS, next);
    else await tx.replace(CRONS, next);
  }
}

function withSig(job: CronJob, sig: string | null): CronJob {
  const { sig: _old, ...rest } = job;
  return sig === null ? rest : { ...rest, sig };
}

/** Runs due cron ticks in this process; see the header for why a tick runs once. */
export class CronRunner {
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private running = false;
  private ticking = false;
  private again = false;

  constructor(
    private readonly store: Store,
    private readonly creationTime: () => number,
    private readonly log: (message: string) => void,
    /** The signature here of the function at a path, recorded on the runs (fleet-view.ts). */
    private readonly signatureOf: (path: string) => string | null,
    /** Called before each look for due ticks (cron-rollout.ts). */
    private readonly beforeTick: () => Promise<void>,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.onCommit(
      (commit) => {
        if (this.touchesCrons(commit)) this.wake();
      },
      { unordered: true },
    );
    this.wake();
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private touchesCrons(commit: Commit): boolean {
    if (commit.writesUnknown === true) return true;
    const table = this.store.catalog().table(CRONS);
    if (table === undefined) return false;
    const index = this.store.catalog().index(CRONS, 'by_next_run');
    return commit.writes.some((write) => write.indexId === index?.id);
  }

  private wake(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    void (async () => {
      let retryAt: number | null = null;
      try {
        do {
          this.again = false;
          await this.tickDue();
        } while (this.again && this.running);
      } catch (error) {
        if (error instanceof StorageError && error.code === StorageErrorCode.Conflict) {
          // Another server took the same tick; look again at once.
          retryAt = Date.now();
        } else {
          this.log(`crons: ${(error as Error).message}; trying again in 1 s`);
          retryAt = Date.now() + 1000;
        }
      } finally {
        this.ticking = false;
      }
      if (retryAt !== null) this.arm(retryAt);
    })();
  }

  private arm(at: number): void {
    if (!this.running) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wake();
    }, delayUntil(at));
    this.timer.unref();
  }

  /** Runs every due tick, then waits for the next one. */
  private async tickDue(): Promise<void> {
    for (;;) {
      await this.beforeTick();
      const now = Date.now();
      const { value } = await this.store.write(async (tx) => {
        if (tx.catalog().table(CRONS) === undefined) return null;
        const [first] = await tx.scan({
          table: CRONS,
          index: 'by_next_run',
          order: 'asc',
          limit: 1,
        });
        if (first === undefined) return null;
        const job = first.document as CronJob;
        if (job.nextRun > now) return { next: job.nextRun, skipped: null };
        const nextRun = nextRunAfter(job.schedule, Math.max(now, job.nextRun));
        const previous =
          job.lastJobId === undefined ? null : await tx.get(SCHEDULED, job.lastJobId);
        const unfinished =
          previous !== null && ['pending', 'inProgress'].includes(stateOf(previous));
        if (unfinished) {
          await tx.replace(CRONS, { ...job, lastSkipped: now, nextRun });
          return { next: now, skipped: job };
        }
        const jobId = await insertScheduled(
          tx,
          job.function,
          convexToJson(job.args),
          now,
          this.creationTime(),
          job.sig ?? this.signatureOf(job.function),
        );
        await tx.replace(CRONS, { ...job, lastRun: now, lastJobId: jobId, nextRun });
        return { next: now, skipped: null };
      });
      if (value === null) return;
      const { next, skipped } = value;
      if (skipped !== null) {
        this.log(
          `cron "${skipped.name}": skipped the run due at ${new Date(skipped.nextRun).toISOString()}, because its previous run (${skipped.lastJobId}) has not finished`,
        );
      }
      if (next > now) {
        this.arm(next);
        return;
      }
      // A tick ran; yield before looking at the next one.
      await sleep(0);
    }
  }
}
