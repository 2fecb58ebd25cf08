/**
 * A pool's cycle: the one transaction in which a runner records what happened to its jobs since
 * the last one and claims more (pool-runner.ts decides when a cycle runs and what follows it).
 *
 *   planCycle (take the pool's ended / started / rechecked jobs, and how many may be claimed)
 *     ─▶ runCycle, one transaction:
 *          send its reads at once: ended, started and rechecked jobs, every runner's holdings
 *            of the pool (shared store), and (unless delayed jobs are promoted first) the
 *            claim's count and pending jobs
 *          let go of held jobs another runner took over (lostHoldings)
 *          record ended attempts (batched completion; dependents released)
 *          record starts of jobs claimed ahead that began since the last cycle
 *          read rechecked queued jobs again (kept: still ours, not started)
 *          promote delayed jobs that are due
 *          count the pool's claims (running jobs, and others' holdings), claim pending ones
 *            for the free slots (in memory; written for mutation jobs and limited pools)
 *          rewrite its holdings (shared store): what it holds once this commits
 *          find jobs whose onComplete must run
 *     ─▶ committed: the runner queues and starts what was claimed
 *     ─▶ failed (a conflict, say): unplanCycle puts the work back for the next cycle
 *
 * Counting the pool's claims in the cycle's own transaction is what makes `maxParallelism`
 * hold across every process on the database: two claimers conflict, and one retries.
 */
import type { IndexEntry, WriteTransaction } from '@sleigh/storage';
import {
  afterAttempt,
  BY_DUE,
  dueRange,
  failedUnstorable,
  POOL_JOBS,
  saveJobs,
  unstorable,
  type PoolJob,
} from './pool-jobs.js';
import { readPastLeftWork } from './fleet-view.js';
import { releaseDependents } from './pool-graph.js';
import { readHoldings, writeHoldings, type Holdings } from './pool-holdings.js';
import { isLimited, pickLimited, type Logged } from './pool-limits.js';
import type { Claimant, Ended, PoolState } from './pool-state.js';

/** How many jobs beyond its slots a runner claims ahead, while it holds every claim. */
const CLAIM_AHEAD = 500;

/** What one cycle was given to do, taken out of the pool's state. */
export interface CyclePlan {
  readonly ended: readonly Ended[];
  /** Jobs claimed ahead that started since the last cycle, with when. */
  readonly started: ReadonlyMap<string, { at: number; run: number }>;
  readonly recheck: readonly string[];
  /** This runner's jobs of the pool: running, queued, or read again now. */
  readonly holding: number;
  /** At most this many jobs are claimed (0: none). */
  readonly wanted: number;
  /** Whether the pool has group or rate limits (its claims are then its starts). */
  readonly limited: boolean;
  /**
   * Claims of an unlimited pool stay in memory (PoolState.unclaimed): on an exclusive store
   * nobody else needs to know; on a shared one the runner's holdings list them
   * (pool-holdings.ts), except mutation jobs', which are written.
   */
  readonly claimInMemory: boolean;
  readonly lookForCompleting: boolean;
  readonly lookForDelayed: boolean;
}

export interface CycleResult {
  /** Jobs claimed, as this runner runs them. */
  readonly claimed: PoolJob[];
  /** Each claimed job as the database has it now (its key is watched while queued). */
  readonly stored: PoolJob[];
  /** Rechecked jobs still ours and not started: they queue again. */
  readonly kept: PoolJob[];
  /** When the next delayed job comes due, or a rate limit lets more start (null: never). */
  readonly next: number | null;
  /** Jobs whose onComplete must run. */
  readonly completing: PoolJob[];
  /** Held jobs no longer this runner's: its holdings were taken back (it stalled too long). */
  readonly lost: readonly string[];
  /** A rate-limited claim: when it was logged, and by when its jobs must start. */
  readonly logged: Logged | null;
}

/**
 * Takes what the pool's next cycle has to do out of its state; null when there is nothing.
 * `active`: the runner still claims (it is not stopping).
 */
export function planCycle(pool: PoolState, claimant: Claimant, active: boolean): CyclePlan | null {
  const ended = pool.ended;
  pool.ended = [];
  const started = pool.started;
  pool.started = new Map();
  for (const { job } of ended) started.delete(job._id);
  const recheck = [...pool.recheck];
  pool.recheck.clear();
  const max = pool.options.maxParallelism;
  // On an exclusive store this runner sees every claim, so it may claim ahead (a local queue
  // started as slots free) without counting in the database; elsewhere it claims ahead only
  // while every claim of the pool is its own (see runCycle).
  const holding = pool.running.size + pool.queue.length + recheck.length;
  // Refill the local queue once it runs low. A pool with group or rate limits never claims
  // ahead: its claims must be its starts.
  const limited = isLimited(pool.options);
  const ahead = limited ? 0 : CLAIM_AHEAD;
  const wanted = active && !pool.paused && pool.queue.length <= max ? max + ahead - holding : 0;
  const lookForCompleting = pool.lookForCompleting && active;
  // Delayed jobs are looked at when one was written, or when the first of them comes due.
  const lookForDelayed = active && (pool.lookForDelayed || Date.now() >= pool.delayedDue);
  if (
    ended.length === 0 &&
    started.size === 0 &&
    recheck.length === 0 &&
    wanted <= 0 &&
    !lookForCompleting &&
    !lookForDelayed
  ) {
    return null;
  }
  pool.lookForCompleting = false;
  pool.lookForDelayed = false;
  return {
    ended,
    started,
    recheck,
    holding,
    wanted,
    limited,
    // Limited pools' claims are their starts, written with the start log.
    claimInMemory: !limited,
    lookForCompleting,
    lookForDelayed,
  };
}

/** Puts the work of a cycle that failed back into the pool's state, for the next cycle. */
export function unplanCycle(pool: PoolState, plan: CyclePlan): void {
  pool.ended.unshift(...plan.ended);
  for (const [id, at] of plan.started) if (!pool.started.has(id)) pool.started.set(id, at);
  for (const id of plan.recheck) pool.recheck.add(id);
  pool.lookForCompleting ||= plan.lookForCompleting;
  pool.lookForDelayed ||= plan.lookForDelayed;
}

/** The cycle's transaction; `nextCreationTime` is for rate-limit records. */
export async function runCycle(
  tx: WriteTransaction,
  pool: PoolState,
  plan: CyclePlan,
  claimant: Claimant,
  nextCreationTime: () => number,
): Promise<CycleResult> {
  const now = Date.now();
  // Every read the cycle can make up front goes out at once (one round trip on PostgreSQL), so
  // that afterwards this process prepares the completions and the claims while the database
  // writes the completions, instead of each side waiting for the other.
  const startedIds = [...plan.started.keys()];
  // On a shared store, every runner's holdings of the pool: its own to rewrite, and the
  // others' to count and skip.
  const holdingsRead = claimant.exclusive ? null : readHoldings(tx, pool.name);
  holdingsRead?.catch(() => undefined);
  const endedRead = readJobs(
    tx,
    plan.ended.map(({ job }) => job._id),
  );
  const othersRead = readJobs(tx, [...startedIds, ...plan.recheck]);
  // Claim reads go first unless something this cycle writes may add pending jobs (delayed
  // ones promoted): those the claim must see. Jobs released by completions are claimed by the
  // cycle that their commit asks for.
  const claimReads =
    plan.wanted > 0 && !plan.limited && !plan.lookForDelayed
      ? sendClaimReads(tx, pool, plan, claimant, plan.ended.length)
      : null;
  const holdings = holdingsRead === null ? null : await holdingsRead;
  const own = holdings?.find((held) => held.owner === claimant.id) ?? null;
  const lost = holdings === null ? [] : await lostHoldings(tx, pool, own, holdings);
  const recorded = await recordEnded(tx, pool, plan.ended, now, claimant, await endedRead);
  const currents = await othersRead;
  const starts: PoolJob[] = [];
  for (const [i, id] of startedIds.entries()) {
    const current = currents[i] ?? null;
    const { at, run } = plan.started.get(id)!;
    if (!claimant.isOurs(pool, current, run)) continue;
    // A start recorded after the fact: the job is running (and leased) from now on.
    const lease = current.state === 'pending' ? { due: now + claimant.leaseMs } : {};
    starts.push({ ...claimant.asClaimed(current), ...lease, startedAt: at });
  }
  await saveJobs(tx, starts, now);
  const kept = currents
    .slice(startedIds.length)
    .filter(
      (job): job is PoolJob =>
        job?.state === 'running' && job.owner === claimant.id && job.startedAt === undefined,
    );
  const next = plan.lookForDelayed ? await promoteDelayed(tx, pool, now) : null;
  const claims =
    plan.wanted > 0
      ? await claim(tx, pool, plan, claimant, now, nextCreationTime, {
          reads: claimReads ?? sendClaimReads(tx, pool, plan, claimant, 0),
          // Read before this cycle's completions: its own ended jobs were still running.
          endedRunning: claimReads === null ? 0 : recorded.endedRunning,
          others: holdings?.filter((held) => held.owner !== claimant.id) ?? null,
        })
      : { claimed: [], stored: [], retryAt: null, logged: null };
  if (holdings !== null) {
    // What it holds once this commits: less what this cycle recorded, plus its new claims.
    const recordedIds = new Set([...plan.started.keys(), ...plan.ended.map(({ job }) => job._id)]);
    const held = [...pool.unclaimed].filter((id) => !recordedIds.has(id));
    for (const job of claims.stored) if (job.state === 'pending') held.push(job._id);
    await writeHoldings(
      tx,
      pool.name,
      claimant.id,
      own,
      held,
      now,
      claimant.leaseMs,
      nextCreationTime,
    );
  }
  let completing: PoolJob[] = [];
  if (plan.lookForCompleting || recorded.completing) {
    const range = dueRange(pool.name, 'completing');
    completing = (
      await tx.scan({ table: POOL_JOBS, index: BY_DUE, ...range, order: 'asc', limit: 50 })
    )
      .map((entry) => entry.document as PoolJob)
      .filter((job) => !pool.completing.has(job._id) && claimant.completes(job));
  }
  const retryAt = claims.retryAt;
  return {
    claimed: claims.claimed,
    stored: claims.stored,
    kept,
    next: retryAt === null ? next : Math.min(next ?? Infinity, retryAt),
    completing,
    lost,
    logged: claims.logged,
  };
}

/**
 * On a shared store, the held jobs this runner lost: those its holdings no longer list (taken
 * back by another runner after this one stalled for longer than its lease) that are not
 * pending and free any more, claimed elsewhere. From here on they are not its own, in this
 * transaction too. The rest it simply holds again (this cycle lists them anew).
 */
async function lostHoldings(
  tx: WriteTransaction,
  pool: PoolState,
  own: Holdings | null,
  holdings: readonly Holdings[],
): Promise<string[]> {
  const listed = new Set(own?.jobs ?? []);
  const missing = [...pool.unclaimed].filter((id) => !listed.has(id));
  if (missing.length === 0) return [];
  const elsewhere = new Set(holdings.flatMap((held) => held.jobs));
  const currents = (await tx.getMany(POOL_JOBS, missing)) as Array<PoolJob | null>;
  const lost = missing.filter((id, i) => currents[i]?.state !== 'pending' || elsewhere.has(id));
  for (const id of lost) pool.unclaimed.delete(id);
  return lost;
}

/** Reads jobs by id; a failure (a conflict, say) surfaces where the result is awaited. */
function readJobs(tx: WriteTransaction, ids: readonly string[]): Promise<Array<PoolJob | null>> {
  const read = tx.getMany(POOL_JOBS, ids) as Promise<Array<PoolJob | null>>;
  // Awaited later, perhaps after another read failed first: never an unhandled rejection.
  read.catch(() => undefined);
  return read;
}

/** A claim's reads, sent before it needs them: the pool's running jobs and pending ones. */
interface ClaimReads {
  /** The running jobs, counted on a shared store (null: an exclusive one, which needn't). */
  readonly running: Promise<IndexEntry[]> | null;
  /** Pending jobs, when the claim will likely take them (unlimited pools, alone last time). */
  readonly pending: Promise<IndexEntry[]> | null;
}

/**
 * Sends a claim's reads. `ending`: jobs of this runner that the cycle records as ended, still
 * running in the database when read before their completions.
 */
function sendClaimReads(
  tx: WriteTransaction,
  pool: PoolState,
  plan: CyclePlan,
  claimant: Claimant,
  ending: number,
): ClaimReads {
  const max = pool.options.maxParallelism;
  // While this runner held every claim last time, it reads what it will likely claim together
  // with the count (one round trip, not two).
  const pending =
    !plan.limited && !claimant.exclusive && pool.alone ? scanPending(tx, pool, plan.wanted) : null;
  const running = claimant.exclusive
    ? null
    : tx.scan({
        table: POOL_JOBS,
        index: BY_DUE,
        ...dueRange(pool.name, 'running'),
        order: 'asc',
        limit: plan.holding + ending + max + 1,
      });
  // Their failures (a conflict) surface where they are awaited.
  pending?.catch(() => undefined);
  running?.catch(() => undefined);
  return { running, pending };
}

/**
 * Every pending job is ready: highest priority first, then oldest. Jobs held but still pending
 * here are in the range too, and skipped.
 */
function scanPending(
  tx: WriteTransaction,
  pool: PoolState,
  limit: number,
  after?: Uint8Array,
): Promise<IndexEntry[]> {
  const range = dueRange(pool.name, 'pending');
  return tx.scan({
    table: POOL_JOBS,
    index: BY_DUE,
    start: after ?? range.start,
    end: range.end,
    order: 'asc',
    limit: limit + pool.unclaimed.size,
  });
}

/**
 * Claims pending jobs for the pool's free slots. Claiming ahead is safe while every claimed
 * job of the pool is this runner's: it starts at most maxParallelism of them. Otherwise only
 * the pool's free slots may be claimed. Either way no more than maxParallelism run at once
 * across all runners. (On an exclusive store every claim is this runner's.)
 */
async function claim(
  tx: WriteTransaction,
  pool: PoolState,
  plan: CyclePlan,
  claimant: Claimant,
  now: number,
  nextCreationTime: () => number,
  sent: {
    reads: ClaimReads;
    endedRunning: number;
    /** Other runners' holdings of the pool (null: an exclusive store). */
    others: Holdings[] | null;
  },
): Promise<{
  claimed: PoolJob[];
  stored: PoolJob[];
  retryAt: number | null;
  logged: Logged | null;
}> {
  const { wanted, holding, limited } = plan;
  const max = pool.options.maxParallelism;
  let free = wanted;
  let early = sent.reads.pending;
  // Jobs other runners hold: pending in the database, but claimed.
  const othersHeld = new Set(sent.others?.flatMap((held) => held.jobs) ?? []);
  if (sent.reads.running !== null && plan.claimInMemory) {
    // Claims in memory on a shared store: every claim of the pool is a running job (a written
    // claim, or a recorded start) or a held one, and each says whose it is.
    const running = await sent.reads.running;
    const othersRunning = running.filter(
      (entry) => (entry.document as PoolJob).owner !== claimant.id,
    ).length;
    pool.alone = othersRunning === 0 && othersHeld.size === 0;
    if (!pool.alone) free = Math.min(wanted, max - holding - othersRunning - othersHeld.size);
    // Read assuming no other holdings: too few, perhaps, once theirs are skipped.
    if (othersHeld.size > 0 && early !== null) {
      await early;
      early = null;
    }
  } else if (sent.reads.running !== null) {
    // This runner's jobs in the database's running range: those it holds, and those whose
    // completion this cycle writes when the count was read before it.
    const ours = holding + sent.endedRunning;
    const busy = (await sent.reads.running).length;
    pool.alone = busy <= ours;
    if (busy > ours) free = Math.min(wanted, max - (busy - sent.endedRunning));
  }
  if (limited && !claimant.exclusive) free = Math.min(free, max - holding);
  if (free <= 0) {
    await early;
    return { claimed: [], stored: [], retryAt: null, logged: null };
  }
  let picked: PoolJob[];
  let retryAt: number | null = null;
  let logged: Logged | null = null;
  if (limited) {
    const limitedClaim = await pickLimited(
      tx,
      pool.name,
      pool.options,
      free,
      now,
      pool.nextGroup,
      nextCreationTime,
      pool.deadlines.withinMs,
      // A job whose function is left to other servers stays pending for them, uncounted.
      (job) => claimant.takes(job),
    );
    // A job run again while its canceled run goes on here waits for it (see below); a rate
    // limit counts the skipped start once, which errs on the safe side.
    picked = limitedClaim.jobs.filter((job) => !pool.running.has(job._id));
    pool.nextGroup = limitedClaim.nextGroup;
    retryAt = limitedClaim.retryAt;
    logged = limitedClaim.logged;
  } else {
    const taken: PoolJob[] = [];
    const page = free + othersHeld.size;
    await readPastLeftWork(
      early ?? scanPending(tx, pool, page),
      (after) => scanPending(tx, pool, page, after),
      (entry) => {
        const job = entry.document as PoolJob;
        if (pool.unclaimed.has(job._id) || othersHeld.has(job._id)) return false;
        // Canceled while it ran here and run again since: its new run waits for the old one
        // to end (this runner keeps its running jobs by id).
        if (pool.running.has(job._id)) return false;
        // Its function is one this server runs otherwise or not at all (fleet-view.ts).
        if (!claimant.takes(job)) return true;
        taken.push(job);
        return false;
      },
      () => taken.length === free,
    );
    picked = taken;
  }
  const claimed = picked.map((job) => {
    // When it became ready, before its due turns into the lease's end.
    pool.readyAt.set(job._id, job.due);
    return claimant.claimed(job, now);
  });
  if (plan.claimInMemory && claimant.exclusive) {
    return { claimed, stored: picked, retryAt, logged };
  }
  if (plan.claimInMemory) {
    // Held, except mutation jobs: their transaction checks the claim, so it is written.
    const saved = await saveJobs(
      tx,
      claimed.filter((job) => job.kind === 'mutation'),
      now,
    );
    const written = new Map(saved.map((job) => [job._id, job]));
    return {
      claimed: claimed.map((job) => written.get(job._id) ?? job),
      stored: picked.map((job) => written.get(job._id) ?? job),
      retryAt,
      logged,
    };
  }
  const stored = await saveJobs(tx, claimed, now);
  return { claimed: stored, stored, retryAt, logged };
}

/**
 * Records attempts that ended: each job's next state (retried, or done with its result), and
 * its dependents released. `currents`: the jobs as the database has them, when already read.
 * Resolves with whether one now waits for its onComplete, and how many of the jobs were still
 * running as this runner's (their completion moves them out of the running range).
 */
export async function recordEnded(
  tx: WriteTransaction,
  pool: PoolState,
  ended: readonly Ended[],
  now: number,
  claimant: Claimant,
  currents?: ReadonlyArray<PoolJob | null>,
): Promise<{ completing: boolean; endedRunning: number }> {
  let completing = false;
  let endedRunning = 0;
  // Read them all at once and write them all at once: a round trip each on PostgreSQL.
  const read =
    currents ??
    ((await tx.getMany(
      POOL_JOBS,
      ended.map(({ job }) => job._id),
    )) as Array<PoolJob | null>);
  const updates: PoolJob[] = [];
  for (const [i, { job, startedAt, result, retryable }] of ended.entries()) {
    const current = read[i] ?? null;
    // Canceled meanwhile (and perhaps run again), or taken back after a lost lease: not ours.
    if (!claimant.isOurs(pool, current, job.run ?? 0)) continue;
    if (current.state === 'running') endedRunning++;
    const ran = claimant.asClaimed(current, startedAt);
    let next = afterAttempt(ran, result, now, { retryable });
    const problem = unstorable(next);
    if (problem !== null) next = failedUnstorable(ran, problem, now);
    completing ||= next.state === 'completing';
    updates.push(next);
  }
  await saveJobs(tx, updates);
  await releaseDependents(tx, updates, now);
  return { completing, endedRunning };
}

/**
 * Moves the pool's delayed jobs that are due to pending (the claims that follow in the same
 * transaction see them); resolves with when the next one comes due, or null.
 */
async function promoteDelayed(
  tx: WriteTransaction,
  pool: PoolState,
  now: number,
): Promise<number | null> {
  const batch = 1000;
  const entries = await tx.scan({
    table: POOL_JOBS,
    index: BY_DUE,
    ...dueRange(pool.name, 'delayed'),
    order: 'asc',
    limit: batch + 1,
  });
  const jobs = entries.map((entry) => entry.document as PoolJob);
  const due = jobs.filter((job) => job.due <= now).slice(0, batch);
  await saveJobs(tx, due, now);
  if (due.length === batch) return now;
  return jobs.find((job) => job.due > now)?.due ?? null;
}
