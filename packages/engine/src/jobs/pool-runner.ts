/**
 * The pool runner: runs workpool jobs in this process, each pool on its own.
 *
 * - A cycle is one transaction per pool that records the attempts that ended since the last
 *   one (batched completion) and claims due jobs for the slots that frees (batched claims); what
 *   it does is pool-cycle.ts, when it runs and what follows is here. The pool's running jobs are
 *   counted in that same transaction, so `maxParallelism` holds across every process on the
 *   database, not only in this one. What the runner knows of each pool is pool-state.ts.
 * - Waking: a commit that writes a pool's pending (or completing) keys starts a cycle at once; a
 *   timer per pool waits for its next pending job that is not due yet; a finished attempt asks
 *   for a cycle on the next turn of the event loop, so attempts that end together commit
 *   together.
 * - Isolation: pools never share slots, timers or cycles, so a flooded pool delays no other.
 * - Direct dispatch: a job enqueued alone into a pool idle here is claimed by the enqueuing
 *   transaction itself (`claim`) and started when that commit is announced (`adopt`); that
 *   transaction's count of the pool, read alongside, hands it back if no slot was free.
 * - Claims of unlimited pools stay in memory: claimed jobs are still pending in the database
 *   until their start (if they outlive a cycle) or their outcome is written. On a shared store
 *   (PostgreSQL) the runner's holdings document lists them for the other runners to count and
 *   skip (pool-holdings.ts); mutation jobs' claims are written there, as their transaction
 *   checks them.
 * - Mutation jobs run exactly once: the mutation's transaction checks the job is still this
 *   runner's and records its result itself. Actions run at least once: a job whose lease ran out
 *   (its process died) counts as a failed attempt and is retried per its policy. Leases and
 *   take-backs are the upkeep's (pool-upkeep.ts); time limits the attempts' (attempts.ts).
 * - onComplete runs as its own mutation that also moves the job from `completing` to
 *   `finished`, so it runs exactly once too, even across a crash.
 * - Stopping: no more claims; running jobs get `graceMs`; those still running are handed back.
 *
 *   commit / timer / attempt ended ─▶ cycle(pool): [complete ended] + [count running, claim due] ─▶ run
 *                                          ▲                                                      │
 *                                          ╰──────────────── attempt ended ◀──────────────────────╯
 *
 *   A job claimed in memory (PoolState.unclaimed; the database says pending until ⇒):
 *
 *   pending ──claim (memory)──▶ queued ──slot free──▶ started ──still running at a cycle──⇒ running
 *      ▲                           │                     │                                     │
 *      ╰──a commit wrote its key───╯                     ╰──ended first──⇒ outcome ◀──ended────╯
 *
 *   (on a shared store, from the claim until its start or outcome is written, the runner's
 *   holdings list it; holdings whose lease ran out are taken back by any runner's upkeep)
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  hasPrefix,
  indexKey,
  StorageError,
  type Commit,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { convexToJson, jsonToConvex, type JSONValue, type Value } from 'convex/values';
import { SkipRun } from '../errors.js';
import {
  afterAttempt,
  BY_DUE,
  ended,
  dueRange,
  getPoolJob,
  handedBack,
  isEnded,
  placed,
  POOL_JOBS,
  POOLS,
  saveJob,
  saveJobs,
  storedError,
  type PoolDocument,
  type PoolJob,
  type RunResult,
} from './pool-jobs.js';
import { releaseDependents } from './pool-graph.js';
import { isLimited, unlogStarts } from './pool-limits.js';
import { planCycle, recordEnded, runCycle, unplanCycle, type CycleResult } from './pool-cycle.js';
import { Claimant, newPoolState, type PoolState } from './pool-state.js';
import { placeUnranked, renewAndTakeBack, sweepExpired, type LeaseHolder } from './pool-upkeep.js';
import { dropHoldings, renewHoldings, takeBackHoldings } from './pool-holdings.js';
import type { RunningAttempts } from './attempts.js';
import type { LocalRunner } from './pool-service.js';
import type { PoolStats } from '../observe/pool-stats.js';
import { writeWithRetry } from './write-retry.js';
import { delayUntil } from './timers.js';

/** Why a canceled job's attempt was aborted, as its abort signal's reason says. */
const CANCELED = 'the job was canceled';

/** Code run inside a mutation's own transaction: before its handler, and after it succeeded. */
export interface TransactionHooks {
  before?(tx: WriteTransaction): Promise<void>;
  after?(tx: WriteTransaction, resultJson: string): Promise<void>;
}

export type AttemptOutcome =
  { ok: true; value: Value } | { ok: false; error: string; retryable: boolean } | { skipped: true };

/** What the runner needs from the engine. */
export interface PoolHost {
  readonly store: Store;
  /** Runs a job's function; a mutation runs with `hooks` in its transaction. */
  runPoolJob(job: PoolJob, hooks: TransactionHooks): Promise<AttemptOutcome>;
  /** Runs `onComplete` of a job with `hooks` in its transaction. */
  runOnComplete(job: PoolJob, args: JSONValue, hooks: TransactionHooks): Promise<AttemptOutcome>;
  /** A `_creationTime` for a new document (rate-limit records). */
  nextCreationTime(): number;
  /** Whether jobs of the function at `path` are left to other servers (fleet-view.ts). */
  leavesToOthers(path: string, sig: string | undefined): boolean;
  /** Attempts running here, as their code sees them (abort signals, heartbeats). */
  readonly attempts: RunningAttempts;
  /** Where starts (with their latency) and ends are counted, for the dashboard's charts. */
  readonly poolStats: PoolStats;
}

export interface PoolRunnerOptions {
  /** How long a claimed job stays this runner's without renewal (default 30 s). */
  readonly leaseMs?: number;
  /** This process is the store's only user: take back jobs another runner left running. */
  readonly exclusive?: boolean;
  readonly log?: (message: string) => void;
}

/** A job claimed by the transaction enqueueing it, started when its key shows in a commit. */
interface Expected {
  /** The job as this runner runs it (claimed). */
  readonly job: PoolJob;
  /** The job as the database has it once that transaction commits. */
  readonly stored: PoolJob;
  readonly readyAt: number;
  /** Whether the pool had a free slot and nothing ahead, as the enqueuing transaction read. */
  readonly free: Promise<boolean>;
}

export class PoolRunner implements LocalRunner {
  readonly id = `pool-runner-${randomBytes(6).toString('hex')}`;
  private readonly leaseMs: number;
  private readonly exclusive: boolean;
  /** This runner as the owner of the jobs it claims. */
  private readonly claimant: Claimant;
  private readonly log: (message: string) => void;
  private readonly pools = new Map<string, PoolState>();
  /** Reads of the pools' options under way after a commit changed them (see reloadPools). */
  private poolsLoading = 0;
  private started = false;
  private stopping = false;
  /** Stopped for good: the store may be gone, so nothing more runs. */
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private maintenance: NodeJS.Timeout | null = null;
  /** The sweep of expired results under way, if any. */
  private sweeping: Promise<void> | null = null;
  /** The upkeep in flight: a slow one is not joined by the next (they would conflict). */
  private maintaining: Promise<void> | null = null;
  /** Cycles in flight: stopping waits for them before its last write. */
  private readonly cycles = new Set<Promise<void>>();
  /** Stopping, past the grace period: no cycle starts, the last write records what is left. */
  private handingBack = false;
  /** Keys of queued jobs whose lease this runner is renewing right now. */
  private readonly renewing = new Set<string>();
  /**
   * Jobs claimed in the transactions enqueueing them, by their `by_due` key (hex) once those
   * commit: a commit that writes the key hands the job over. A transaction that rolls back never
   * writes it; its entry is swept by the upkeep.
   */
  private readonly expected = new Map<string, Expected>();
  /**
   * Jobs running here that a transaction of this process is canceling, by the key the cancel
   * writes: when a commit shows it, the attempt's abort signal fires.
   */
  private readonly cancels = new Map<string, { id: string; run: number; at: number }>();

  constructor(
    private readonly host: PoolHost,
    options: PoolRunnerOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.exclusive = options.exclusive ?? false;
    this.claimant = new Claimant(this.id, this.leaseMs, this.exclusive, (path, sig) =>
      host.leavesToOthers(path, sig),
    );
    this.log = options.log ?? ((message) => console.error(`sleigh: ${message}`));
  }

  private get active(): boolean {
    return this.started && !this.stopping;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    // Wake-ups need no order: this process's commits come at once, others' as they are heard.
    this.unsubscribe = this.host.store.onCommit((commit) => this.onCommit(commit), {
      unordered: true,
    });
    this.maintenance = setInterval(() => void this.upkeep(false), this.leaseMs / 3);
    this.maintenance.unref();
    void this.loadPools()
      // After any upkeep the interval began meanwhile, so that this one takes back everything.
      .then(() => this.maintaining)
      .then(() => this.upkeep(this.exclusive))
      .then(() => {
        for (const pool of this.pools.values()) this.cycle(pool);
      })
      .catch((error: unknown) => this.log(`workpools could not start: ${String(error)}`));
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.unsubscribe?.();
    if (this.maintenance !== null) clearInterval(this.maintenance);
    for (const pool of this.pools.values()) if (pool.timer !== null) clearTimeout(pool.timer);
    const everything = [...this.pools.values()].flatMap((pool) => [...pool.running.values()]);
    // Ends after its current page: the store must outlive it.
    if (this.sweeping !== null) everything.push(this.sweeping);
    await Promise.race([Promise.allSettled(everything), sleep(graceMs, undefined, { ref: false })]);
    // A cycle in flight may be recording ends (or fail, putting them back): let it finish, and
    // start no other, so the write below records every end exactly once.
    this.handingBack = true;
    await Promise.allSettled([...this.cycles]);
    // Record what ended, and hand back what still runs (pending again, not a failed attempt).
    await this.store
      .write(async (tx) => {
        const now = Date.now();
        for (const pool of this.pools.values()) {
          await recordEnded(tx, pool, pool.ended.splice(0), now, this.claimant);
          const ours = [...pool.running.keys(), ...pool.queue.map((job) => job._id)];
          pool.queue = [];
          pool.queued.clear();
          pool.queuedKeys.clear();
          // Held but pending in the database: nothing to hand back but the holdings.
          this.forgetUnclaimed(pool, [...pool.unclaimed]);
          if (!this.exclusive) await dropHoldings(tx, pool.name, this.id);
          for (const id of ours) {
            const job = await getPoolJob(tx, id);
            if (job?.state !== 'running' || job.owner !== this.id) continue;
            await saveJob(tx, handedBack(job, now));
          }
        }
      })
      .catch((error: unknown) =>
        this.log(`could not hand back running pool jobs: ${String(error)}`),
      );
    this.stopped = true;
  }

  private get store(): Store {
    return this.host.store;
  }

  /** Looks at every pool again (jobs left to other servers may be this one's now). */
  wake(): void {
    if (!this.active) return;
    for (const pool of this.pools.values()) {
      pool.lookForCompleting = true;
      this.cycle(pool);
    }
  }

  private onCommit(commit: Commit): void {
    if (!this.active) return;
    const catalog = this.store.catalog();
    const poolsIndex = catalog.index(POOLS, 'by_name');
    const dueIndex = catalog.index(POOL_JOBS, BY_DUE);
    if (commit.writesUnknown === true) {
      // Anything may have changed: read the pools again, and look at each.
      for (const pool of this.pools.values()) {
        pool.lookForCompleting = true;
        pool.lookForDelayed = true;
      }
      this.reloadPools();
      return;
    }
    if (commit.writes.some((write) => write.indexId === poolsIndex?.id)) this.reloadPools();
    if (dueIndex === undefined) return;
    for (const pool of this.pools.values()) {
      let wake = false;
      for (const write of commit.writes) {
        if (write.indexId !== dueIndex.id) continue;
        if (pool.queuedKeys.size > 0) {
          const key = Buffer.from(write.key).toString('hex');
          const id = pool.queuedKeys.get(key);
          if (id !== undefined && !this.renewing.has(key)) this.dropQueued(pool, id);
        }
        if (hasPrefix(write.key, pool.pendingPrefix)) wake = true;
        else if (hasPrefix(write.key, pool.delayedPrefix)) {
          pool.lookForDelayed = true;
          wake = true;
        } else if (hasPrefix(write.key, pool.completingPrefix)) {
          pool.lookForCompleting = true;
          wake = true;
        }
      }
      if (wake) this.cycle(pool);
    }
    if (this.expected.size > 0) {
      // A key written once is the claim's own write; a second write of it (the same
      // transaction canceled the job, say) means the job is no longer as claimed: not started.
      const seen = new Map<string, number>();
      for (const write of commit.writes) {
        if (write.indexId !== dueIndex.id) continue;
        const key = Buffer.from(write.key).toString('hex');
        if (this.expected.has(key)) seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      for (const [key, times] of seen) {
        const expected = this.expected.get(key)!;
        this.expected.delete(key);
        if (times === 1) this.adopt(expected);
        else this.recheckClaimed(expected);
      }
    }
    if (this.cancels.size > 0) {
      for (const write of commit.writes) {
        if (write.indexId !== dueIndex.id) continue;
        const key = Buffer.from(write.key).toString('hex');
        const cancel = this.cancels.get(key);
        if (cancel === undefined) continue;
        this.cancels.delete(key);
        this.host.attempts.abort(cancel.id, cancel.run, CANCELED);
      }
    }
  }

  /**
   * A transaction is canceling `job` (as it will be written): if an attempt of it runs here,
   * its abort signal fires once that commit shows, so cooperative code stops early.
   */
  canceling(job: PoolJob): void {
    if (!this.active || !(this.pools.get(job.pool)?.running.has(job._id) ?? false)) return;
    const key = this.dueKey(job);
    if (key !== null) this.cancels.set(key, { id: job._id, run: job.run ?? 0, at: Date.now() });
  }

  /**
   * Fires the abort signal of attempts running here whose job was canceled elsewhere (by
   * another process) or run again since: they learn of it within a third of a lease.
   */
  private async abortCanceled(): Promise<void> {
    const running = this.host.attempts.running();
    if (running.length === 0) return;
    const ids = running.map(({ jobId }) => jobId);
    const currents = (await this.store.read((tx) =>
      tx.getMany(POOL_JOBS, ids),
    )) as Array<PoolJob | null>;
    running.forEach(({ jobId, run }, i) => {
      const current = currents[i] ?? null;
      if (current === null || isEnded(current) || (current.run ?? 0) !== run) {
        this.host.attempts.abort(jobId, run, CANCELED);
      }
    });
  }

  /**
   * Offers to claim a job in the transaction that enqueues it, when its pool is idle here: the
   * job to insert (claimed, or pending on an exclusive store, whose claims stay in memory).
   *
   * Whether the pool really had a free slot and nothing waiting ahead is asked in the same
   * transaction (as a cycle counts) but not waited for: the reads go out with the insert and
   * their answers are in before COMMIT's, so the enqueue costs no extra round trip. The answer
   * is looked at when the commit is announced (`adopt`): a job claimed without a free slot is
   * handed back, uncharged, never started. Serializable transactions make the answer hold at
   * commit, as a cycle's count does.
   */
  claim(tx: WriteTransaction, job: PoolJob, now: number): PoolJob | null {
    const pool = this.pools.get(job.pool);
    if (!this.active || pool === undefined || isLimited(pool.options)) return null;
    if (pool.paused || this.poolsLoading > 0 || !this.claimant.takes(job)) return null;
    if (pool.cycling || pool.running.size > 0 || pool.queue.length > 0 || pool.ended.length > 0) {
      return null;
    }
    const max = pool.options.maxParallelism;
    const scan = (state: 'pending' | 'running', limit: number) =>
      tx.scan({
        table: POOL_JOBS,
        index: BY_DUE,
        ...dueRange(pool.name, state),
        order: 'asc',
        limit,
      });
    // Sent before the insert, so neither read sees the job itself.
    const ahead = scan('pending', 1);
    const running = this.exclusive ? Promise.resolve([]) : scan('running', max);
    const free = Promise.all([ahead, running]).then(
      ([pending, busy]) => pending.length === 0 && busy.length < max,
    );
    // A failed read fails the transaction itself, and then nothing is adopted.
    free.catch(() => undefined);
    const claimed = this.claimant.claimed(job, now);
    const stored = this.exclusive ? job : placed(claimed, now);
    const key = this.dueKey(stored);
    if (key === null) return null;
    this.expected.set(key, {
      job: this.exclusive ? claimed : stored,
      stored,
      readyAt: job.due,
      free,
    });
    return stored;
  }

  /**
   * A job its enqueuing transaction claimed, then wrote again (canceled it, gave it a
   * dependent): the next cycle reads it, and runs it if it is still this runner's. On an
   * exclusive store it is still pending, if anything, and claimed as any other.
   */
  private recheckClaimed({ job, readyAt }: Expected): void {
    const pool = this.pools.get(job.pool);
    if (pool === undefined || !this.active || this.exclusive) return;
    pool.readyAt.set(job._id, readyAt);
    pool.recheck.add(job._id);
    this.askCycle(pool);
  }

  /**
   * Takes over a job its enqueuing transaction claimed, now committed, and starts it; or hands
   * it back when that transaction found no free slot.
   */
  private adopt({ job, stored, readyAt, free }: Expected): void {
    void free.then((isFree) => {
      const pool = this.pools.get(job.pool);
      // Not ours to start after all: a pending one is claimed as usual, a running one taken
      // back when its lease runs out (uncharged, as it never started).
      if (pool === undefined || !this.active) return;
      if (!isFree) {
        // Pending in the database on an exclusive store: its commit has woken a cycle.
        if (!this.exclusive) this.handBack(pool, [{ job, due: readyAt }]);
        return;
      }
      pool.readyAt.set(job._id, readyAt);
      if (this.exclusive) pool.unclaimed.add(job._id);
      pool.queue.push(job);
      this.watchQueued(pool, stored);
      this.drain(pool);
    });
  }

  /**
   * Makes jobs claimed here and not started pending again, where they were in line (`due`),
   * uncharged: one claimed without a free slot, or rate-limited ones that missed their start
   * deadline, whose logged starts (`stamp`) are taken out too, so later claims start them.
   */
  private handBack(
    pool: PoolState,
    jobs: ReadonlyArray<{ job: PoolJob; due: number; stamp?: number }>,
  ): void {
    writeWithRetry(this.store, async (tx) => {
      const currents = (await tx.getMany(
        POOL_JOBS,
        jobs.map(({ job }) => job._id),
      )) as Array<PoolJob | null>;
      // Still this runner's and not started: not canceled or taken back meanwhile.
      const back = jobs.flatMap(({ due, stamp }, i) => {
        const current = currents[i] ?? null;
        if (current?.state !== 'running' || current.owner !== this.id) return [];
        return current.startedAt === undefined ? [{ job: current, due, stamp }] : [];
      });
      await saveJobs(
        tx,
        back.map(({ job, due }) => handedBack(job, due)),
      );
      const logged = back.flatMap(({ job, stamp }) =>
        stamp === undefined ? [] : [{ job, stamp }],
      );
      if (logged.length > 0) await unlogStarts(tx, pool.name, pool.options, logged);
    }).catch((error: unknown) =>
      // Their lease runs out and the upkeep takes them back, uncharged.
      this.log(
        `workpool "${pool.name}": could not hand back ${jobs.length} job(s): ${String(error)}`,
      ),
    );
  }

  /**
   * Reads the pools' options again after a commit changed them. Until it has, no job starts
   * here and no enqueue claims directly: a pause that committed is obeyed by every start after
   * it in this process. Then every pool looks at its work again.
   */
  private reloadPools(): void {
    this.poolsLoading++;
    void this.loadPools()
      .catch((error: unknown) => this.log(`reading workpools failed: ${String(error)}`))
      .finally(() => {
        if (--this.poolsLoading > 0) return;
        for (const pool of this.pools.values()) {
          this.drain(pool);
          this.cycle(pool);
        }
      });
  }

  private async loadPools(): Promise<void> {
    const docs = await this.store.read(async (tx) => {
      if (tx.catalog().table(POOLS) === undefined) return [];
      const entries = await tx.scan({
        table: POOLS,
        index: 'by_name',
        order: 'asc',
        limit: 10_000,
      });
      return entries.map((entry) => entry.document as PoolDocument);
    });
    for (const doc of docs) {
      const { _id, _creationTime, name, paused, ...options } = doc;
      const pool = this.pools.get(name) ?? newPoolState(name, options);
      pool.options = options;
      pool.paused = paused === true;
      this.pools.set(name, pool);
    }
  }

  private dueKey(job: PoolJob): string | null {
    const index = this.store.catalog().index(POOL_JOBS, BY_DUE);
    return index === undefined ? null : Buffer.from(indexKey(index, job)).toString('hex');
  }

  /** Watches a queued job's key; `stored` is the job as the database has it. */
  private watchQueued(pool: PoolState, stored: PoolJob): void {
    const key = this.dueKey(stored) ?? '';
    pool.queued.set(stored._id, key);
    pool.queuedKeys.set(key, stored._id);
  }

  private unwatchQueued(pool: PoolState, id: string): void {
    const key = pool.queued.get(id);
    pool.queued.delete(id);
    if (key !== undefined) pool.queuedKeys.delete(key);
  }

  /**
   * A queued job was written under us (canceled, or given a dependent): it must not start as
   * it is. One the database still has pending is simply claimable again; one whose claim was
   * written is read again in the next cycle.
   */
  private dropQueued(pool: PoolState, id: string): void {
    const index = pool.queue.findIndex((job) => job._id === id);
    if (index < 0) return;
    pool.queue.splice(index, 1);
    this.unwatchQueued(pool, id);
    if (!pool.unclaimed.delete(id)) pool.recheck.add(id);
    else pool.readyAt.delete(id);
    this.askCycle(pool);
  }

  /**
   * Whether a job started here and its outcome is not recorded yet: running, or ended and
   * still pending in the database (an exclusive store records starts after the fact).
   */
  startedHere(jobId: string): boolean {
    for (const pool of this.pools.values()) {
      if (pool.running.has(jobId)) return true;
      if (pool.unclaimed.has(jobId) && !pool.queued.has(jobId)) return true;
    }
    return false;
  }

  /**
   * Held jobs another runner took back (this one stalled for longer than a lease): those still
   * queued never start here; those running finish, and their outcome is not recorded.
   */
  private forgetLost(pool: PoolState, ids: readonly string[], claimedAgain: Set<string>): void {
    this.log(
      `workpool "${pool.name}": ${ids.length} held job(s) were taken back (this runner was unresponsive for longer than its lease); they run again wherever they are claimed`,
    );
    const lost = new Set(ids);
    for (const job of pool.queue.filter((queued) => lost.has(queued._id))) {
      this.unwatchQueued(pool, job._id);
      if (!claimedAgain.has(job._id)) pool.readyAt.delete(job._id);
    }
    pool.queue = pool.queue.filter((queued) => !lost.has(queued._id));
  }

  /** Held jobs now recorded in the database (or no longer ours): no longer unclaimed. */
  private forgetUnclaimed(pool: PoolState, ids: Iterable<string>): void {
    for (const id of ids) pool.unclaimed.delete(id);
  }

  /** Asks for a cycle on the next turn, so attempts that end together are recorded together. */
  private askCycle(pool: PoolState): void {
    if (pool.cycleAsked) return;
    pool.cycleAsked = true;
    setImmediate(() => {
      pool.cycleAsked = false;
      this.cycle(pool);
    });
  }

  private cycle(pool: PoolState): void {
    if (!this.started || this.stopped || this.handingBack) return;
    if (pool.cycling) {
      pool.again = true;
      return;
    }
    pool.cycling = true;
    const run = (async () => {
      try {
        do {
          pool.again = false;
          await this.cycleOnce(pool);
        } while (pool.again);
      } catch (error) {
        const conflict = StorageError.is(error, 'conflict');
        if (!conflict)
          this.log(`workpool "${pool.name}": ${(error as Error).message}; trying again`);
        this.armTimer(pool, Date.now() + (conflict ? Math.random() * 20 : 1000));
      } finally {
        pool.cycling = false;
      }
    })();
    this.cycles.add(run);
    void run.finally(() => this.cycles.delete(run));
  }

  private armTimer(pool: PoolState, at: number | null): void {
    if (at === null || !this.active) return;
    if (pool.timer !== null && at >= pool.timerAt) return;
    if (pool.timer !== null) clearTimeout(pool.timer);
    pool.timerAt = at;
    pool.timer = setTimeout(() => {
      pool.timer = null;
      pool.timerAt = Infinity;
      // Timers may fire a millisecond early by Date.now(): look at delayed jobs regardless.
      pool.lookForDelayed = true;
      this.cycle(pool);
    }, delayUntil(at));
    pool.timer.unref();
  }

  private async cycleOnce(pool: PoolState): Promise<void> {
    const plan = planCycle(pool, this.claimant, this.active);
    if (plan === null) return;
    let result: CycleResult;
    try {
      ({ value: result } = await this.store.write((tx) =>
        runCycle(tx, pool, plan, this.claimant, () => this.host.nextCreationTime()),
      ));
    } catch (error) {
      unplanCycle(pool, plan);
      throw error;
    }
    // What this cycle recorded is in the database now: those jobs are no longer held pending.
    this.forgetUnclaimed(pool, plan.started.keys());
    this.forgetUnclaimed(
      pool,
      plan.ended.map(({ job }) => job._id),
    );
    for (const { job } of plan.ended) pool.ending.delete(job._id);
    // Before this cycle's claims are queued: it may have claimed some of them again.
    if (result.lost.length > 0) {
      this.forgetLost(pool, result.lost, new Set(result.claimed.map((job) => job._id)));
    }
    const keptIds = new Set(result.kept.map((job) => job._id));
    for (const id of plan.recheck) {
      if (keptIds.has(id)) continue;
      pool.readyAt.delete(id);
      pool.deadlines.forget(id);
    }
    for (const job of result.kept.reverse()) {
      pool.queue.unshift(job);
      this.watchQueued(pool, job);
    }
    if (result.logged !== null) {
      pool.deadlines.claimed(
        result.claimed.map((job) => job._id),
        result.logged,
      );
    }
    for (const [i, job] of result.claimed.entries()) {
      const stored = result.stored[i]!;
      pool.queue.push(job);
      this.watchQueued(pool, stored);
      // Pending in the database: claimed in memory (and, on a shared store, held).
      if (stored.state === 'pending') pool.unclaimed.add(job._id);
    }
    this.drain(pool);
    for (const job of result.completing) this.complete(pool, job);
    if (plan.lookForDelayed) pool.delayedDue = result.next ?? Infinity;
    // The next delayed job, or when a rate limit lets more start.
    this.armTimer(pool, result.next);
    if (pool.ended.length > 0 || pool.recheck.size > 0) pool.again = true;
  }

  /** Starts claimed jobs while the pool has free slots here. */
  private drain(pool: PoolState): void {
    // Paused, or perhaps paused (see reloadPools): what is queued waits here.
    if (pool.paused || this.poolsLoading > 0) return;
    // Rate-limited jobs too late for their claim's logged start: they wait for a later claim.
    const late: Array<{ job: PoolJob; due: number; stamp: number }> = [];
    // Stopping: what is queued stays pending, handed back, rather than starting in the grace
    // period and being cut off at its end.
    while (
      this.active &&
      pool.running.size < pool.options.maxParallelism &&
      pool.queue.length > 0
    ) {
      const job = pool.queue.shift()!;
      this.unwatchQueued(pool, job._id);
      const missed = pool.deadlines.missed(job._id, Date.now());
      if (missed === null) {
        this.launch(pool, job);
        continue;
      }
      late.push({ job, due: pool.readyAt.get(job._id) ?? job.enqueuedAt, stamp: missed.stamp });
      pool.readyAt.delete(job._id);
    }
    if (late.length > 0) this.handBack(pool, late);
  }

  private launch(pool: PoolState, job: PoolJob): void {
    const startedAt = job.startedAt ?? Date.now();
    if (job.startedAt === undefined) {
      pool.started.set(job._id, { at: startedAt, run: job.run ?? 0 });
      this.askCycle(pool);
    }
    const stats = this.host.poolStats;
    const readyAt = pool.readyAt.get(job._id) ?? job.enqueuedAt;
    pool.readyAt.delete(job._id);
    stats.started(job.pool, startedAt - readyAt, startedAt);
    const run = this.attempt(pool, { ...job, startedAt }).then(
      (outcome) => {
        // The slot is free at once; the attempt's record follows in the next cycle.
        pool.running.delete(job._id);
        this.drain(pool);
        if ('skipped' in outcome) {
          // No longer ours (canceled meanwhile): nothing to record.
          this.forgetUnclaimed(pool, [job._id]);
          this.askCycle(pool);
          return;
        }
        stats.ended(job.pool, outcome.ok);
        if (outcome.ok && job.kind === 'mutation') {
          // Recorded by the mutation's own transaction.
          this.forgetUnclaimed(pool, [job._id]);
          if (job.onComplete !== null) pool.lookForCompleting = true;
          this.askCycle(pool);
          return;
        }
        const result: RunResult = outcome.ok
          ? { kind: 'success', returnValue: outcome.value }
          : { kind: 'failed', error: outcome.error };
        pool.ending.add(job._id);
        pool.ended.push({ job, startedAt, result, retryable: outcome.ok || outcome.retryable });
        this.askCycle(pool);
      },
      (error: unknown) => {
        pool.running.delete(job._id);
        this.drain(pool);
        stats.ended(job.pool, false);
        pool.ending.add(job._id);
        pool.ended.push({
          job,
          startedAt,
          result: { kind: 'failed', error: `Sleigh could not run it: ${String(error)}` },
          retryable: true,
        });
        this.askCycle(pool);
      },
    );
    pool.running.set(job._id, run);
  }

  private async attempt(pool: PoolState, job: PoolJob): Promise<AttemptOutcome> {
    const hooks: TransactionHooks =
      job.kind === 'mutation'
        ? {
            before: async (tx) => {
              const current = await getPoolJob(tx, job._id);
              if (!this.claimant.isOurs(pool, current, job.run ?? 0)) throw new SkipRun();
            },
            after: async (tx, resultJson) => {
              const current = this.claimant.asClaimed((await getPoolJob(tx, job._id))!);
              const returnValue = JSON.parse(resultJson) as JSONValue;
              const now = Date.now();
              const done = afterAttempt(
                // Its start may not be recorded yet (starts are written in batches).
                current.startedAt === undefined && job.startedAt !== undefined
                  ? { ...current, startedAt: job.startedAt }
                  : current,
                { kind: 'success', returnValue: jsonToConvex(returnValue) },
                now,
                { retryable: false },
              );
              await saveJob(tx, done);
              await releaseDependents(tx, [done], now);
            },
          }
        : {};
    const heartbeatMs = job.kind === 'action' ? (job.heartbeatMs ?? null) : null;
    // Given up (too long, or no heartbeat in time), it counts as a failed attempt, retried.
    return this.host.attempts.run(
      job._id,
      { run: job.run ?? 0, timeoutMs: job.timeoutMs, heartbeatMs },
      () => this.host.runPoolJob(job, hooks),
      (error): AttemptOutcome => ({ ok: false, error, retryable: true }),
    );
  }

  /** Runs a job's onComplete; the same transaction moves it to finished. */
  private complete(pool: PoolState, job: PoolJob): void {
    pool.completing.add(job._id);
    const finished = (current: PoolJob): PoolJob => ended(current, Date.now());
    const hooks: TransactionHooks = {
      before: async (tx) => {
        const current = await getPoolJob(tx, job._id);
        if (current?.state !== 'completing') throw new SkipRun();
      },
      after: async (tx) => {
        await saveJob(tx, finished((await getPoolJob(tx, job._id))!));
      },
    };
    const args = convexToJson({
      workId: job._id,
      context: job.onComplete!.context,
      result: job.result as unknown as Value,
    });
    void this.host
      .runOnComplete(job, args, hooks)
      .then(async (outcome) => {
        if ('skipped' in outcome || outcome.ok) return;
        this.log(
          `onComplete of pool job ${job._id} (${job.onComplete!.fn}) failed: ${outcome.error}`,
        );
        await this.store.write(async (tx) => {
          const current = await getPoolJob(tx, job._id);
          if (current?.state === 'completing') {
            await saveJob(tx, {
              ...finished(current),
              onCompleteError: storedError(outcome.error),
            });
          }
        });
      })
      .catch((error: unknown) => this.log(`onComplete of pool job ${job._id}: ${String(error)}`))
      .finally(() => pool.completing.delete(job._id));
  }

  private upkeep(takeBackAll: boolean): Promise<void> {
    this.maintaining ??= this.maintain(takeBackAll).finally(() => (this.maintaining = null));
    return this.maintaining;
  }

  /**
   * Renews the leases of this runner's jobs, takes back jobs whose runner is gone (all others'
   * on an exclusive store at start), and deletes results whose ttl passed (pool-upkeep.ts).
   */
  private async maintain(takeBackAll: boolean): Promise<void> {
    if (!this.active) return;
    // Claims of enqueuing transactions that never committed.
    const stale = Date.now() - this.leaseMs;
    for (const [key, { readyAt }] of this.expected) if (readyAt < stale) this.expected.delete(key);
    // Cancels whose transaction never committed.
    for (const [key, { at }] of this.cancels) if (at < stale) this.cancels.delete(key);
    try {
      await this.abortCanceled();
    } catch (error) {
      this.log(`workpool: could not look for canceled jobs running here: ${String(error)}`);
    }
    for (const pool of this.pools.values()) {
      const holder: LeaseHolder = {
        owner: this.id,
        leaseMs: this.leaseMs,
        holds: (id) => pool.running.has(id) || pool.queued.has(id) || pool.ending.has(id),
        renewing: (job, renewed) => this.renewingQueued(pool, job, renewed),
      };
      try {
        if (!pool.placed) {
          await writeWithRetry(this.store, (tx) => placeUnranked(tx, pool.name));
          pool.placed = true;
        }
        await writeWithRetry(this.store, async (tx) => {
          const now = Date.now();
          await renewAndTakeBack(tx, pool.name, holder, takeBackAll, now);
          if (!this.exclusive) {
            await takeBackHoldings(tx, pool.name, this.id, now);
            await renewHoldings(tx, pool.name, this.id, pool.unclaimed, now, this.leaseMs);
          }
        });
        pool.lookForCompleting = true;
        this.cycle(pool);
      } catch (error) {
        this.log(`workpool "${pool.name}" upkeep failed: ${String(error)}`);
      } finally {
        this.renewing.clear();
      }
    }
    this.sweeping ??= this.sweep().finally(() => (this.sweeping = null));
  }

  /**
   * Deletes every result and dead letter whose ttl had passed when it began, page by page: as
   * fast as a busy pool fills them, never holding up lease renewals (a long sweep runs beside
   * the next upkeep, not in it).
   */
  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const pool of this.pools.values()) {
      try {
        while (this.active) {
          if (!(await writeWithRetry(this.store, (tx) => sweepExpired(tx, pool.name, now)))) break;
        }
      } catch (error) {
        this.log(`workpool "${pool.name}" could not delete expired results: ${String(error)}`);
      }
    }
  }

  /**
   * A queued job's lease is being renewed, which moves its key: the queue holds the renewed
   * job and watches its new key, and the commit moving it is not taken for a cancel.
   */
  private renewingQueued(pool: PoolState, job: PoolJob, renewed: PoolJob): void {
    const queuedAt = pool.queue.findIndex((queued) => queued._id === job._id);
    if (queuedAt < 0) return;
    for (const moved of [this.dueKey(job), this.dueKey(renewed)]) {
      if (moved !== null) this.renewing.add(moved);
    }
    this.unwatchQueued(pool, job._id);
    pool.queue[queuedAt] = renewed;
    this.watchQueued(pool, renewed);
  }
}
