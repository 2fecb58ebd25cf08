/**
 * The engine's side of background work: starts the runners of scheduled functions, workpools
 * and crons in this process, and hosts them, running each job as a call of the app's function.
 *
 *   Engine.startJobs ─▶ Background.start ─┬▶ JobRunner  (scheduled functions, jobs/runner.ts)
 *                                         ├▶ PoolRunner (workpool jobs, jobs/pool-runner.ts)
 *                                         ├▶ CronRunner (crons.ts, jobs/crons.ts)
 *                                         └▶ CronRollout (whose crons, jobs/cron-rollout.ts)
 *
 *   a runner's job ─▶ Background (JobHost, PoolHost) ─▶ the engine's query / mutation / action
 */
import type { Store } from '@sleigh/storage';
import { convexToJson, jsonToConvex, type JSONValue } from 'convex/values';
import type { CallOptions } from './engine.js';
import { FunctionErrorCode, isNonRetryable } from './errors.js';
import type { RunningAttempts } from './jobs/attempts.js';
import type { CronRollout } from './jobs/cron-rollout.js';
import { CronRunner } from './jobs/crons.js';
import { FleetView } from './jobs/fleet-view.js';
import type { PoolJob } from './jobs/pool-jobs.js';
import {
  PoolRunner,
  type AttemptOutcome,
  type PoolHost,
  type TransactionHooks,
} from './jobs/pool-runner.js';
import type { PoolService } from './jobs/pool-service.js';
import { jobArgs, JobRunner, type JobHost, type JobRunnerOptions } from './jobs/runner.js';
import type { ScheduledFunction } from './jobs/scheduled.js';
import type { PoolStats } from './observe/pool-stats.js';
import type { ActionOutcome, MutationOutcome, QueryOutcome } from './outcomes.js';
import type { FunctionKind } from './runtime/context.js';

/** What background work needs of the engine: calling the app's functions. */
export interface FunctionCalls {
  readonly store: Store;
  query(path: string, args: JSONValue, options: CallOptions): Promise<QueryOutcome>;
  mutation(path: string, args: JSONValue, options: CallOptions): Promise<MutationOutcome>;
  action(path: string, args: JSONValue, options: CallOptions): Promise<ActionOutcome>;
  kindOf(path: string): FunctionKind | null;
  /** The signature of the app's function at `path` (fleet-guard.ts); null: none. */
  signatureOf(path: string): string | null;
  nextCreationTime(): number;
}

export class Background implements JobHost, PoolHost {
  private runner: JobRunner | null = null;
  private cronRunner: CronRunner | null = null;
  private poolRunner: PoolRunner | null = null;
  /** Which functions' jobs other servers take, while a deploy rolls out (shared stores only). */
  private fleet: FleetView | null = null;

  constructor(
    private readonly calls: FunctionCalls,
    private readonly pools: PoolService,
    /** Pool job attempts running in this process: their abort signals and heartbeats. */
    readonly attempts: RunningAttempts,
    /** Pool starts and ends as the runner reports them. */
    readonly poolStats: PoolStats,
    /** Whose crons are in force while versions share the database. */
    private readonly cronRollout: CronRollout,
  ) {}

  get store(): Store {
    return this.calls.store;
  }

  kindOf(path: string): FunctionKind | null {
    return this.calls.kindOf(path);
  }

  leavesToOthers(path: string, sig: string | undefined): boolean {
    return this.fleet?.leavesToOthers(path, sig) ?? false;
  }

  /**
   * How many functions this server lacks, or has with another signature, that another live
   * server has (fleet-view.ts).
   */
  functionsLeftToOthers(): number {
    return this.fleet?.lacked ?? 0;
  }

  nextCreationTime(): number {
    return this.calls.nextCreationTime();
  }

  /** Starts the runners in this process; returns the scheduled functions' runner. */
  start(options: JobRunnerOptions = {}): JobRunner {
    // SQLite's file is this process's alone: its runners may keep claims in memory.
    const exclusive = this.store.driver === 'sqlite';
    const log = options.log ?? ((message: string) => console.error(`sleigh: ${message}`));
    if (!exclusive) {
      this.fleet ??= new FleetView(
        this.store,
        // An app function's signature (one lookup, the common case); Sleigh's own have none.
        (path) => this.calls.signatureOf(path) ?? (this.kindOf(path) === null ? undefined : null),
        () => {
          this.runner?.pump();
          this.poolRunner?.wake();
        },
        log,
      );
      this.fleet.start();
    }
    this.runner ??= new JobRunner(this, { exclusive, ...options });
    this.runner.start();
    this.poolRunner ??= new PoolRunner(this, { exclusive, ...options });
    this.poolRunner.start();
    this.pools.runner = this.poolRunner;
    if (options.crons !== false) {
      this.cronRunner ??= new CronRunner(
        this.store,
        () => this.nextCreationTime(),
        log,
        (path) => this.calls.signatureOf(path),
        () => this.cronRollout.beforeTick(),
      );
      // While other servers' crons are in force, look for when they are gone.
      this.cronRollout.start(log);
      this.cronRunner.start();
    }
    return this.runner;
  }

  /** Stops the runners: see JobRunner.stop and PoolRunner.stop. */
  async stop(graceMs?: number): Promise<void> {
    this.cronRunner?.stop();
    this.cronRollout.stop();
    this.fleet?.stop();
    await Promise.all([this.runner?.stop(graceMs), this.poolRunner?.stop(graceMs)]);
  }

  async runScheduledMutation(
    job: ScheduledFunction,
  ): Promise<{ ok: boolean; error?: string; skipped?: boolean }> {
    const outcome = await this.calls.mutation(job.name, jobArgs(job), {
      caller: 'function',
      scheduledFunctionId: job._id,
    });
    if (outcome.ok) return { ok: true };
    return {
      ok: false,
      error: outcome.error.message,
      skipped: outcome.error.code === FunctionErrorCode.Canceled,
    };
  }

  async runScheduledAction(job: ScheduledFunction): Promise<{ ok: boolean; error?: string }> {
    const outcome = await this.calls.action(job.name, jobArgs(job), {
      caller: 'function',
      scheduledFunctionId: job._id,
    });
    return outcome.ok ? { ok: true } : { ok: false, error: outcome.error.message };
  }

  async runPoolJob(job: PoolJob, hooks: TransactionHooks): Promise<AttemptOutcome> {
    const args = convexToJson(job.args);
    const options: CallOptions = { caller: 'function', hooks, poolJobId: job._id };
    const outcome =
      job.kind === 'query'
        ? await this.calls.query(job.fn, args, options)
        : job.kind === 'mutation'
          ? await this.calls.mutation(job.fn, args, options)
          : await this.calls.action(job.fn, args, options);
    if (outcome.ok) return { ok: true, value: jsonToConvex(outcome.value) };
    if (outcome.error.code === FunctionErrorCode.Canceled) return { skipped: true };
    return {
      ok: false,
      error: outcome.error.message,
      retryable: !isNonRetryable(outcome.error),
    };
  }

  async runOnComplete(
    job: PoolJob,
    args: JSONValue,
    hooks: TransactionHooks,
  ): Promise<AttemptOutcome> {
    const outcome = await this.calls.mutation(job.onComplete!.fn, args, {
      caller: 'function',
      hooks,
    });
    if (outcome.ok) return { ok: true, value: null };
    if (outcome.error.code === FunctionErrorCode.Canceled) return { skipped: true };
    return { ok: false, error: outcome.error.message, retryable: false };
  }
}
