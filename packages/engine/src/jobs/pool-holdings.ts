/**
 * Holdings: how a runner on a shared store (PostgreSQL) claims a pool's jobs without writing
 * each one. A claimed action or query job stays `pending` in the database; the runner's one
 * `_pool_holdings` document for the pool lists it, with a lease. Other runners read the pool's
 * holdings where they count its running jobs and claim (the same serializable transaction), so
 * they skip held jobs and count them against `maxParallelism`. A job's writes are then its
 * outcome alone (and its start, when it outlives a cycle), as on SQLite, where claims stay in
 * memory and nothing needs to be shared.
 *
 *   (none) ──a cycle claims──▶ held: {pool, owner, jobs, due} ──a cycle records starts and
 *                                │       ▲                        outcomes, claims more──▶ held'
 *                                │       ╰── renewed by the owner's cycles and upkeep
 *                                ├── the owner stops, or holds nothing more ──▶ deleted
 *                                ╰── its lease ran out (the owner is gone) ──▶ taken back:
 *                                    deleted, each job still pending counts a take-back
 *
 * Mutation jobs are claimed as before (written `running`): their transaction checks the claim,
 * which must then be in the job itself. A runner that finds its own document gone (taken back
 * while it was stalled longer than a lease) no longer holds anything listed there.
 *
 * A job held and started counts a take-back if its runner goes, as a job whose written claim
 * had no recorded start does (pool-upkeep.ts): the third is charged as a failed attempt.
 */
import {
  derivedDocumentId,
  encodeKey,
  prefixEnd,
  type Document,
  type ReadTransaction,
  type WriteTransaction,
} from '@sleigh/storage';
import { SYSTEM_TABLES } from '../loader/schema.js';
import { leaseWorn, POOL_JOBS, saveJobs, type PoolJob } from './pool-jobs.js';
import { releaseDependents } from './pool-graph.js';
import { takenBack } from './pool-upkeep.js';

export const POOL_HOLDINGS = '_pool_holdings';
const BY_POOL = 'by_pool';

export interface Holdings extends Document {
  pool: string;
  /** The runner holding them. */
  owner: string;
  /**
   * Ids of the jobs held, pending in the database: at most maxParallelism (≤ 1,000) plus the
   * 500 claimed ahead, well inside a document's 8,192 array items.
   */
  jobs: string[];
  /** When the lease runs out, unless renewed. */
  due: number;
}

export function holdingsId(pool: string, owner: string): string {
  return derivedDocumentId(SYSTEM_TABLES._pool_holdings.number, `${pool}\u0000${owner}`);
}

/** Every runner's holdings of `pool` (one document each: a handful). */
export async function readHoldings(tx: ReadTransaction, pool: string): Promise<Holdings[]> {
  const entries = await tx.scan({
    table: POOL_HOLDINGS,
    index: BY_POOL,
    ...poolRange(pool),
    order: 'asc',
    limit: 10_000,
  });
  return entries.map((entry) => entry.document as Holdings);
}

function poolRange(pool: string): { start: Uint8Array; end: Uint8Array } {
  // Every key of `by_pool` (pool, owner) starts with the pool's.
  const start = encodeKey([pool]);
  return { start, end: prefixEnd(start) };
}

/**
 * Writes what `owner` holds of `pool` now (`current`: its document as read in this
 * transaction, or null). Nothing held: the document goes. Unchanged and not half way through
 * its lease: nothing is written.
 */
export async function writeHoldings(
  tx: WriteTransaction,
  pool: string,
  owner: string,
  current: Holdings | null,
  jobs: readonly string[],
  now: number,
  leaseMs: number,
  creationTime: () => number,
): Promise<void> {
  if (jobs.length === 0) {
    if (current !== null) await tx.delete(POOL_HOLDINGS, current._id);
    return;
  }
  if (current !== null && !leaseWorn(current.due, now, leaseMs) && sameIds(current.jobs, jobs)) {
    return;
  }
  const next: Holdings = {
    _id: current?._id ?? holdingsId(pool, owner),
    _creationTime: current?._creationTime ?? creationTime(),
    pool,
    owner,
    jobs: [...jobs],
    due: now + leaseMs,
  };
  if (current === null) await tx.insert(POOL_HOLDINGS, next);
  else await tx.replace(POOL_HOLDINGS, next);
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

/**
 * Takes back the holdings of `pool` whose lease ran out (their runner is gone, or stalled for
 * longer than a lease), except `owner`'s own: each job still pending counts a take-back, the
 * third one charged as a failed attempt (a job that kills every process that starts it).
 */
export async function takeBackHoldings(
  tx: WriteTransaction,
  pool: string,
  owner: string,
  now: number,
): Promise<number> {
  let taken = 0;
  for (const holdings of await readHoldings(tx, pool)) {
    if (holdings.owner === owner || holdings.due >= now) continue;
    await tx.delete(POOL_HOLDINGS, holdings._id);
    const jobs = (await tx.getMany(POOL_JOBS, holdings.jobs)) as Array<PoolJob | null>;
    const back = jobs
      .filter((job): job is PoolJob => job?.state === 'pending')
      // As if its claim had been written: a start not recorded, so not known to have started.
      .map((job) => takenBack({ ...job, state: 'running', attempt: job.attempt + 1 }, now));
    await saveJobs(tx, back, now);
    await releaseDependents(tx, back, now);
    taken += back.length;
  }
  return taken;
}

/**
 * Renews `owner`'s holdings of `pool` once a quarter of its lease is gone (its cycles renew it while it
 * claims; this is for a runner busy with long jobs). Only jobs it still holds stay listed.
 */
export async function renewHoldings(
  tx: WriteTransaction,
  pool: string,
  owner: string,
  holding: ReadonlySet<string>,
  now: number,
  leaseMs: number,
): Promise<void> {
  const current = (await tx.get(POOL_HOLDINGS, holdingsId(pool, owner))) as Holdings | null;
  // Gone: taken back, which the next cycle finds; there is nothing to renew.
  if (current === null) return;
  const jobs = current.jobs.filter((id) => holding.has(id));
  await writeHoldings(tx, pool, owner, current, jobs, now, leaseMs, () => current._creationTime);
}

/** Deletes `owner`'s holdings of `pool` (it stops: what it held is anyone's again). */
export async function dropHoldings(
  tx: WriteTransaction,
  pool: string,
  owner: string,
): Promise<void> {
  const id = holdingsId(pool, owner);
  if ((await tx.get(POOL_HOLDINGS, id)) !== null) await tx.delete(POOL_HOLDINGS, id);
}

/** Whether any runner holds `jobId` of `pool` (it may have started, unrecorded). */
export async function isHeld(tx: ReadTransaction, pool: string, jobId: string): Promise<boolean> {
  return (await readHoldings(tx, pool)).some((holdings) => holdings.jobs.includes(jobId));
}
