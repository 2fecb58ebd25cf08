/**
 * The job runner: runs scheduled functions when they are due, in this process, up to
 * `parallelism` at once.
 *
 * - Waking. A commit that writes a pending job's index key wakes the runner at once (no
 *   polling); otherwise a single timer waits for the earliest pending job's time.
 * - Mutations run exactly once: the job's run is one transaction that checks the job is still
 *   pending, runs the handler and marks the job done, so a crash before the commit leaves the
 *   job pending and a second runner racing for it conflicts and then finds it done.
 * - Actions run at least once: a batch of due actions is claimed in one transaction
 *   (`inProgress`, this runner as `owner`, a lease), run, and completed in batches. Leases are
 *   renewed while the action runs; a job whose lease ran out (its process died) goes back to
 *   pending and runs again. On an exclusive store (SQLite: one process) jobs another runner left
 *   running are taken back at once on start.
 * - Stopping: no more claims; running jobs get `graceMs` to finish; actions still running are
 *   handed back (pending again) for the next start.
 *
 *   commit / timer ─▶ pump ─▶ scan due (pending, scheduledTime ≤ now) ─┬─ mutation ─▶ run+settle (1 tx)
 *                      ▲                                               └─ action ─▶ claim ─▶ run ─▶ complete (batched)
 *                      └────────────── a slot frees ◀──────────────────────────────────────────────┘
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  encodeKey,
  hasPrefix,
  keySuccessor,
  prefixEnd,
  type Commit,
  type IndexEntry,
  type ReadTransaction,
  type Store,
} from '@sleigh/storage';
import { convexToJson, type JSONValue } from 'convex/values';
import {
  BY_STATE_TIME,
  DEFAULT_RETENTION_MS,
  dueRange,
  getScheduled,
  SCHEDULED,
  settle,
  sweepCompleted,
  type JobState,
  type SweepPosition,
  type ScheduledFunction,
} from './scheduled.js';
import { readPastLeftWork } from './fleet-view.js';
import { delayUntil, LONGEST_WAIT_MS } from './timers.js';
import { writeWithRetry } from './write-retry.js';

/** What the runner needs from the engine. */
export interface JobHost {
  readonly store: Store;
  /** The kind of the function at `path`, or null when there is none. */
  kindOf(path: string): 'query' | 'mutation' | 'action' | null;
  /** Whether jobs of the function at `path` are left to other servers (jobs/fleet-view.ts). */
  leavesToOthers(path: string, sig: string | undefined): boolean;
  /** Runs a scheduled mutation: in one transaction with marking the job done. */
  runScheduledMutation(
    job: ScheduledFunction,
  ): Promise<{ ok: boolean; error?: string; skipped?: boolean }>;
  runScheduledAction(job: ScheduledFunction): Promise<{ ok: boolean; error?: string }>;
}

export interface JobRunnerOptions {
  /** Scheduled functions running at once in this process (default 16). */
  readonly parallelism?: number;
  /** How long a claimed action stays this runner's without renewal (default 30 s). */
  readonly leaseMs?: number;
  /**
   * How long a scheduled action may run before it is recorded as failed and its slot freed
   * (default 10 minutes, Convex's limit). It cannot be stopped; its later outcome is ignored.
   */
  readonly actionTimeoutMs?: number;
  /** This process is the store's only user: take back jobs another runner left running. */
  readonly exclusive?: boolean;
  /**
   * How long the records of finished, failed and canceled jobs stay in `_scheduled_functions`
   * (default 7 days, as Convex keeps them); older ones are deleted in the background.
   */
  readonly retentionMs?: number;
  /** Run the crons of crons.ts here too (default true). */
  readonly crons?: boolean;
  readonly log?: (message: string) => void;
}

const PENDING_PREFIX = encodeKey(['pending']);

interface Completion {
  readonly id: string;
  readonly state: JobState;
  readonly done: () => void;
}

export class JobRunner {
  /** This runner's name in the jobs it claims. */
  readonly id = `runner-${randomBytes(6).toString('hex')}`;
  private readonly parallelism: number;
  private readonly leaseMs: number;
  private readonly actionTimeoutMs: number;
  private readonly retentionMs: number;
  private readonly exclusive: boolean;
  private readonly log: (message: string) => void;
  /** Jobs running in this process, by id; actions are also in `actions`. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly actions = new Set<string>();
  private started = false;
  private stopping = false;
  private pumping = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private maintenance: NodeJS.Timeout | null = null;
  /** The sweep of old records under way, if any. */
  private sweeping: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private completions: Completion[] = [];
  private flushScheduled = false;

  constructor(
    private readonly host: JobHost,
    options: JobRunnerOptions = {},
  ) {
    this.parallelism = options.parallelism ?? 16;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.actionTimeoutMs = options.actionTimeoutMs ?? 10 * 60_000;
    this.retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.exclusive = options.exclusive ?? false;
    this.log = options.log ?? ((message) => console.error(`sleigh: ${message}`));
  }

  get isRunning(): boolean {
    return this.started && !this.stopping;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.host.store.onCommit(
      (commit) => {
        if (this.wakesUs(commit)) this.pump();
      },
      { unordered: true },
    );
    this.maintenance = setInterval(() => void this.maintain(false), this.leaseMs / 3);
    this.maintenance.unref();
    void this.maintain(this.exclusive).then(() => this.pump());
  }

  /**
   * Stops claiming, gives running jobs `graceMs` to finish, hands back actions still running
   * (pending again, for the next start), and resolves when nothing is left in flight.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.unsubscribe?.();
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.maintenance !== null) clearInterval(this.maintenance);
    // A sweep ends after its current page: the store must outlive it.
    const everything = Promise.allSettled([...this.running.values(), this.sweeping]);
    const timeout = sleep(graceMs, undefined, { ref: false });
    await Promise.race([everything, timeout]);
    const leftBehind = [...this.actions];
    if (leftBehind.length > 0) {
      await this.handBack(leftBehind).catch((error: unknown) =>
        this.log(`could not hand back ${leftBehind.length} running actions: ${String(error)}`),
      );
    }
  }

  private wakesUs(commit: Commit): boolean {
    if (commit.writesUnknown === true) return true;
    const index = this.host.store.catalog().index(SCHEDULED, BY_STATE_TIME);
    if (index === undefined) return false;
    return commit.writes.some(
      (write) => write.indexId === index.id && hasPrefix(write.key, PENDING_PREFIX),
    );
  }

  /** Looks for due jobs now (or again right after the pass in progress). */
  pump(): void {
    if (!this.isRunning) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again && this.isRunning);
      } catch (error) {
        if (this.isRunning) {
          this.log(`scheduled functions: ${(error as Error).message}; trying again in 1 s`);
          this.armTimer(Date.now() + 1000);
        }
      } finally {
        this.pumping = false;
      }
    })();
  }

  private armTimer(at: number | null): void {
    if (at === null || !this.isRunning) return;
    if (this.timer !== null && at >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.pump();
    }, delayUntil(at));
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    const free = this.parallelism - this.running.size;
    const now = Date.now();
    // On a shared store every server sees the same due jobs: each takes a random few of a wider
    // window rather than all the first ones, or every server would run the same mutations and
    // all but one of each would conflict (more servers draining slower, not faster).
    const window = this.exclusive ? free : free * SPREAD;
    const { due, next } = await this.host.store.read(async (tx) => {
      if (tx.catalog().table(SCHEDULED) === undefined) return { due: [], next: null };
      const range = dueRange('pending', now);
      const ready: ScheduledFunction[] = [];
      if (free > 0) {
        const page = window + this.running.size;
        await readPastLeftWork(
          scanScheduled(tx, range.start, range.end, page),
          (after) => scanScheduled(tx, after, range.end, page),
          (entry) => {
            const job = entry.document as ScheduledFunction;
            if (this.running.has(job._id)) return false;
            if (this.host.leavesToOthers(job.name, job.sig)) return true;
            ready.push(job);
            return false;
          },
          () => ready.length >= window,
        );
      }
      const [later] = await scanScheduled(tx, range.end, prefixEnd(range.start), 1);
      return {
        due: this.exclusive ? ready.slice(0, Math.max(0, free)) : pickRandom(ready, free),
        next: later === undefined ? null : (later.document as ScheduledFunction).scheduledTime,
      };
    });
    this.armTimer(next);
    if (due.length === 0) return;
    const actions: ScheduledFunction[] = [];
    for (const job of due) {
      if (this.host.kindOf(job.name) === 'action') actions.push(job);
      else this.launch(job._id, () => this.runMutation(job));
    }
    if (actions.length > 0) {
      for (const job of await this.claim(actions)) {
        this.actions.add(job._id);
        this.launch(job._id, () => this.runAction(job));
      }
    }
  }

  private launch(id: string, run: () => Promise<void>): void {
    const running = run()
      .catch((error: unknown) =>
        this.log(`scheduled function ${id} could not be recorded: ${String(error)}`),
      )
      .finally(() => {
        this.running.delete(id);
        this.actions.delete(id);
        this.pump();
      });
    this.running.set(id, running);
  }

  private async runMutation(job: ScheduledFunction): Promise<void> {
    const outcome = await this.host.runScheduledMutation(job);
    if (outcome.ok || outcome.skipped === true) return;
    // The mutation wrote nothing (it failed); record the failure on its own.
    await this.host.store.write(async (tx) => {
      const current = await getScheduled(tx, job._id);
      if (current?.state.kind === 'pending') {
        await settle(tx, current, { kind: 'failed', error: outcome.error ?? 'failed' }, Date.now());
      }
    });
  }

  /** Marks due actions as running here; returns those that were still pending. */
  private async claim(jobs: readonly ScheduledFunction[]): Promise<ScheduledFunction[]> {
    const { value } = await this.host.store.write(async (tx) => {
      const claimed: ScheduledFunction[] = [];
      const leaseUntil = Date.now() + this.leaseMs;
      for (const job of jobs) {
        const current = await getScheduled(tx, job._id);
        if (current?.state.kind !== 'pending') continue;
        const running: ScheduledFunction = {
          ...current,
          state: { kind: 'inProgress' },
          owner: this.id,
          leaseUntil,
        };
        await tx.replace(SCHEDULED, running);
        claimed.push(running);
      }
      return claimed;
    });
    return value;
  }

  private async runAction(job: ScheduledFunction): Promise<void> {
    const outcome = await this.withinTimeLimit(job, this.host.runScheduledAction(job));
    const state: JobState = outcome.ok
      ? { kind: 'success' }
      : { kind: 'failed', error: outcome.error ?? 'failed' };
    await new Promise<void>((done) => {
      this.completions.push({ id: job._id, state, done });
      this.scheduleFlush();
    });
  }

  /** The action's outcome, or a failure once it has run longer than the limit. */
  private async withinTimeLimit(
    job: ScheduledFunction,
    running: Promise<{ ok: boolean; error?: string }>,
  ): Promise<{ ok: boolean; error?: string }> {
    const limitMs = this.actionTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<{ ok: boolean; error: string }>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            error: `${job.name} did not finish within ${limitMs / 1000} s, the time limit of a scheduled action`,
          }),
        Math.min(limitMs, LONGEST_WAIT_MS),
      );
    });
    try {
      return await Promise.race([running, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Records finished actions, many per transaction; keeps them queued while the store is down. */
  private async flush(): Promise<void> {
    const batch = this.completions;
    this.completions = [];
    try {
      await this.host.store.write(async (tx) => {
        const now = Date.now();
        for (const completion of batch) {
          const current = await getScheduled(tx, completion.id);
          // Canceled meanwhile, or taken back after a lost lease: not ours to record.
          if (current?.state.kind !== 'inProgress' || current.owner !== this.id) continue;
          await settle(tx, current, completion.state, now);
        }
      });
      this.flushScheduled = false;
      for (const completion of batch) completion.done();
      if (this.completions.length > 0) this.scheduleFlush();
    } catch (error) {
      this.flushScheduled = false;
      if (!this.isRunning) {
        // Stopped: the jobs stay inProgress until their lease runs out, then run again.
        this.log(`could not record ${batch.length} finished actions: ${String(error)}`);
        for (const completion of batch) completion.done();
        return;
      }
      this.log(`recording ${batch.length} finished actions failed (${String(error)}); retrying`);
      this.completions.unshift(...batch);
      await sleep(500);
      this.scheduleFlush();
    }
  }

  /** Renews the leases of actions running here and takes back jobs whose runner is gone. */
  private async maintain(takeBackAll: boolean): Promise<void> {
    if (!this.isRunning) return;
    try {
      await this.host.store.write(async (tx) => {
        if (tx.catalog().table(SCHEDULED) === undefined) return;
        const now = Date.now();
        const range = dueRange('inProgress');
        let start = range.start;
        for (;;) {
          const entries = await scanScheduled(tx, start, range.end, 500);
          for (const entry of entries) {
            const job = entry.document as ScheduledFunction;
            if (job.owner === this.id) {
              if (this.actions.has(job._id)) {
                await tx.replace(SCHEDULED, { ...job, leaseUntil: now + this.leaseMs });
              }
            } else if (takeBackAll || (job.leaseUntil ?? 0) < now) {
              await settle(tx, job, { kind: 'pending' }, now);
            }
          }
          if (entries.length < 500) break;
          start = keySuccessor(entries[entries.length - 1]!.key);
        }
      });
    } catch (error) {
      this.log(`renewing scheduled actions' leases failed: ${String(error)}`);
    }
    this.sweeping ??= this.sweep().finally(() => (this.sweeping = null));
  }

  /**
   * Deletes the records of jobs that completed longer than the retention ago, a page per
   * transaction so other writes go between them; beside the upkeep, never holding it up.
   */
  private async sweep(): Promise<void> {
    // Infinity: kept for good.
    if (!Number.isFinite(this.retentionMs)) return;
    const cutoff = Date.now() - this.retentionMs;
    let at: SweepPosition | null = null;
    try {
      do {
        const from: SweepPosition | null = at;
        // Another process's runner may be sweeping the same page: one of them retries.
        at = await writeWithRetry(this.host.store, async (tx): Promise<SweepPosition | null> =>
          tx.catalog().table(SCHEDULED) === undefined ? null : sweepCompleted(tx, cutoff, from),
        );
      } while (at !== null && this.isRunning);
    } catch (error) {
      this.log(`deleting old scheduled function records failed: ${String(error)}`);
    }
  }

  private async handBack(ids: readonly string[]): Promise<void> {
    await this.host.store.write(async (tx) => {
      for (const id of ids) {
        const job = await getScheduled(tx, id);
        if (job?.state.kind === 'inProgress' && job.owner === this.id) {
          await settle(tx, job, { kind: 'pending' }, Date.now());
        }
      }
    });
  }
}

/** The arguments object of a job, as Convex-encoded JSON for the engine. */
export function jobArgs(job: ScheduledFunction): JSONValue {
  return convexToJson(job.args[0] ?? {});
}

/** How much wider than its free slots a runner on a shared store looks for due jobs. */
const SPREAD = 4;

/** Scheduled functions from `start` to `end` of `by_state_time` (state, then time), in order. */
function scanScheduled(
  tx: ReadTransaction,
  start: Uint8Array,
  end: Uint8Array,
  limit: number,
): Promise<IndexEntry[]> {
  return tx.scan({ table: SCHEDULED, index: BY_STATE_TIME, start, end, order: 'asc', limit });
}

/** Up to `count` of `items`, chosen at random, in their order. */
function pickRandom<T>(items: readonly T[], count: number): T[] {
  if (count <= 0) return [];
  if (items.length <= count) return [...items];
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(Math.random() * items.length));
  return [...chosen].sort((a, b) => a - b).map((i) => items[i]!);
}
