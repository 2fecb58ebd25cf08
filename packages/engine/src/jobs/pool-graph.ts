/**
 * Jobs that depend on jobs, and jobs that must not be enqueued twice.
 *
 * Dependencies are edges in `_pool_edges` (parent → child, indexed both ways). A child with
 * dependencies that have not succeeded waits (state `waiting`) and counts them in
 * `unmetDependencies`; every parent counts its `dependents`, so only jobs that have some look for
 * them when they end. When a parent ends, in the same transaction:
 *
 *   parent succeeded ──▶ each waiting child: one dependency fewer; none left ──▶ pending
 *   parent failed / canceled ──▶ each waiting child, per its onDependencyFailure:
 *        fail   ──▶ failed ("dependency <name> (<id>) failed: …")  ─┐
 *        cancel ──▶ canceled (with the same reason)                 ├─▶ and so on down its subtree
 *        run    ──▶ as if it had succeeded                          ─┘
 *
 * Edges stay after release, so "re-run from here" finds everything downstream of a job.
 *
 * Unique keys live in `_pool_unique`, one document per (pool, key) whose id is derived from
 * them: two transactions claiming one key insert the same primary key, and the database lets
 * only one commit (the other retries and sees it). The document names the job holding the key.
 */
import {
  derivedDocumentId,
  encodeKey,
  keySuccessor,
  newDocumentId,
  prefixEnd,
  type Document,
  type ReadTransaction,
  type WriteTransaction,
} from '@sleigh/storage';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import { SYSTEM_TABLES } from '../loader/schema.js';
import {
  BY_DUE,
  dueRange,
  finish,
  getPoolJob,
  isEnded,
  POOL_JOBS,
  saveJob,
  saveJobs,
  type DependencyFailurePolicy,
  type PoolJob,
  type RunResult,
} from './pool-jobs.js';

export const POOL_EDGES = '_pool_edges';
export const POOL_UNIQUE = '_pool_unique';

interface Edge extends Document {
  parent: string;
  child: string;
}

interface UniqueKey {
  _id: string;
  _creationTime: number;
  pool: string;
  key: string;
  /** The job holding the key. */
  job: string;
  /** Until when the key stays taken even after its job finished (a window), or null. */
  until: number | null;
}

function invalid(message: string): SyscallError {
  return new SyscallError(FunctionErrorCode.InvalidArguments, message);
}

const succeeded = (job: PoolJob) => isEnded(job) && job.result?.kind === 'success';

function describeJob(job: PoolJob): string {
  return job.name === job.fn ? `${job.fn} (${job._id})` : `"${job.name}" (${job._id})`;
}

/** The ids of the jobs `job` depends on, in the order it named them. */
export async function dependencyIds(tx: ReadTransaction, job: PoolJob): Promise<string[]> {
  if ((job.dependencies ?? 0) === 0) return [];
  return (await edgesOf(tx, 'child', job._id)).map((edge) => edge.parent);
}

/** Every edge whose `field` is `id`. */
async function edgesOf(
  tx: ReadTransaction,
  field: 'parent' | 'child',
  id: string,
): Promise<Edge[]> {
  const start = encodeKey([id]);
  const end = prefixEnd(start);
  const edges: Edge[] = [];
  for (let from = start; ;) {
    const page = await tx.scan({
      table: POOL_EDGES,
      index: field === 'parent' ? 'by_parent' : 'by_child',
      start: from,
      end,
      order: 'asc',
      limit: 1000,
    });
    edges.push(...page.map((entry) => entry.document as unknown as Edge));
    if (page.length < 1000) return edges;
    from = keySuccessor(page[page.length - 1]!.key);
  }
}

/** Parents are small enough to list their dependents inline up to this many. */
const INLINE_DEPENDENTS = 16;

/**
 * The links an enqueue call makes, written together once its jobs are all in: the edges in one
 * batch, and each parent once (a root with thousands of children is one write, not thousands).
 * It keeps what the call adds, never a copy of a parent: the call may end a parent meanwhile
 * (by replacing its unique key), and the counts go onto the parent as it is by then. Until
 * then no link is visible, so a parent ending meanwhile tells only the dependents it had; the
 * call's own hear of it when the links are written.
 */
export class ParentUpdates {
  private readonly edges: Edge[] = [];
  /** Per parent, the children linked to it, and those of them that wait for it to end. */
  private readonly added = new Map<string, { children: string[]; waiting: string[] }>();

  link(edge: Edge, waits: boolean): void {
    let added = this.added.get(edge.parent);
    if (added === undefined) this.added.set(edge.parent, (added = { children: [], waiting: [] }));
    this.edges.push(edge);
    added.children.push(edge.child);
    if (waits) added.waiting.push(edge.child);
  }

  async save(tx: WriteTransaction, now: number): Promise<void> {
    const ids = [...this.added.keys()];
    const parents = (await tx.getMany(POOL_JOBS, ids)) as Array<PoolJob | null>;
    const updates: PoolJob[] = [];
    const endedSince: Ending[] = [];
    for (const [i, parent] of parents.entries()) {
      if (parent === null) continue;
      const { children, waiting } = this.added.get(ids[i]!)!;
      updates.push(withDependents(parent, children));
      // Ended after they linked (this call replaced its unique key, or that of a job it
      // depends on): they were not written yet when it told its dependents.
      if (isEnded(parent) && waiting.length > 0) {
        endedSince.push({ job: parent, dependents: waiting });
      }
    }
    if (this.edges.length > 0) await tx.insertMany(POOL_EDGES, this.edges);
    await saveJobs(tx, updates, now);
    this.edges.length = 0;
    this.added.clear();
    await release(tx, endedSince, now);
  }
}

/** `parent` with `children` added to its dependents (listed inline while they are few). */
function withDependents(parent: PoolJob, children: readonly string[]): PoolJob {
  const before = parent.dependents ?? 0;
  const dependents = before + children.length;
  const { dependentIds: listed, ...rest } = parent;
  return dependents <= INLINE_DEPENDENTS && before === (listed?.length ?? 0)
    ? { ...rest, dependents, dependentIds: [...(listed ?? []), ...children] }
    : { ...rest, dependents };
}

/**
 * Links a new job to the jobs it depends on and decides how it starts: waiting (some have not
 * succeeded), pending (all have), or already ended (one failed or was canceled and its policy
 * says so). The edges and the parents' dependent counts go into `parents`, written by the
 * caller once the call's jobs are all in. Returns the job to insert.
 */
export async function linkDependencies(
  tx: WriteTransaction,
  job: PoolJob,
  parentIds: readonly string[],
  now: number,
  creationTime: () => number,
  parents: ParentUpdates,
): Promise<PoolJob> {
  const policy: DependencyFailurePolicy = job.onDependencyFailure ?? 'fail';
  let unmet = 0;
  let blockedBy: PoolJob | null = null;
  for (const id of new Set(parentIds)) {
    const parent = await getPoolJob(tx, id);
    if (parent === null) {
      throw invalid(
        `Workpool "${job.pool}": dependsOn names ${id}, which is not a pool job (or its result expired)`,
      );
    }
    const edge: Edge = {
      _id: newDocumentId(SYSTEM_TABLES._pool_edges.number),
      _creationTime: creationTime(),
      parent: id,
      child: job._id,
    };
    parents.link(edge, !isEnded(parent));
    if (succeeded(parent)) continue;
    if (isEnded(parent) && policy !== 'run') blockedBy ??= parent;
    else if (!isEnded(parent)) unmet++;
  }
  const linked: PoolJob = {
    ...job,
    dependencies: new Set(parentIds).size,
    unmetDependencies: unmet,
    onDependencyFailure: policy,
    runAt: job.due,
  };
  if (blockedBy !== null) return finish(linked, dependencyFailure(blockedBy, policy), now);
  return unmet > 0 ? { ...linked, state: 'waiting' } : linked;
}

function dependencyFailure(parent: PoolJob, policy: DependencyFailurePolicy): RunResult {
  const what =
    parent.result?.kind === 'failed'
      ? `failed: ${parent.result.error}`
      : `was canceled${parent.result?.kind === 'canceled' && parent.result.reason ? ` (${parent.result.reason})` : ''}`;
  const reason = `dependency ${describeJob(parent)} ${what}`;
  return policy === 'cancel' ? { kind: 'canceled', reason } : { kind: 'failed', error: reason };
}

/** A job's dependents: listed inline when few, else read from the edges. */
async function dependentsOf(tx: WriteTransaction, job: PoolJob): Promise<string[]> {
  if (job.dependentIds !== undefined && job.dependentIds.length === job.dependents) {
    return job.dependentIds;
  }
  return (await edgesOf(tx, 'parent', job._id)).map((edge) => edge.child);
}

/** A job that ended, and which of its dependents hear of it (all of them, unless listed). */
interface Ending {
  job: PoolJob;
  dependents?: readonly string[];
}

/**
 * Jobs that just ended (completing, finished or failed): their waiting dependents move on, and
 * those that end because of it pass it on down, all in this transaction.
 */
export async function releaseDependents(
  tx: WriteTransaction,
  ended: readonly PoolJob[],
  now: number,
): Promise<void> {
  const endings = ended.filter((job) => (job.dependents ?? 0) > 0 && isEnded(job));
  await release(
    tx,
    endings.map((job) => ({ job })),
    now,
  );
}

/** Each round reads the children of every job that ended at once, and writes each child once. */
async function release(
  tx: WriteTransaction,
  endings: readonly Ending[],
  now: number,
): Promise<void> {
  let round = endings;
  while (round.length > 0) {
    const effects = new Map<string, PoolJob[]>();
    for (const { job: parent, dependents } of round) {
      for (const child of dependents ?? (await dependentsOf(tx, parent))) {
        const list = effects.get(child);
        if (list === undefined) effects.set(child, [parent]);
        else list.push(parent);
      }
    }
    const ids = [...effects.keys()];
    const children = (await tx.getMany(POOL_JOBS, ids)) as Array<PoolJob | null>;
    const updates: PoolJob[] = [];
    const next: Ending[] = [];
    for (const [i, found] of children.entries()) {
      let child = found;
      if (child?.state !== 'waiting') continue;
      const policy = child.onDependencyFailure ?? 'fail';
      for (const parent of effects.get(ids[i]!)!) {
        if (child.state !== 'waiting') break;
        if (succeeded(parent) || policy === 'run') {
          const unmet = Math.max(0, (child.unmetDependencies ?? 1) - 1);
          child =
            unmet > 0
              ? { ...child, unmetDependencies: unmet }
              : {
                  ...child,
                  unmetDependencies: 0,
                  state: 'pending',
                  due: Math.max(child.runAt ?? now, now),
                };
        } else {
          child = finish(child, dependencyFailure(parent, policy), now);
        }
      }
      updates.push(child);
      if (isEnded(child) && (child.dependents ?? 0) > 0) next.push({ job: child });
    }
    await saveJobs(tx, updates, now);
    round = next;
  }
}

/**
 * Re-runs a job and everything downstream of it: each goes back to waiting (or pending, when
 * nothing it depends on is being re-run) with its attempts and result cleared, keeping its id.
 * Refused while one of them runs, or when something upstream of the job did not succeed.
 */
export async function rerunFrom(tx: WriteTransaction, id: string, now: number): Promise<number> {
  const root = await getPoolJob(tx, id);
  if (root === null)
    throw invalid(`Workpool rerun: ${id} is not a pool job (or its result expired)`);
  const downstream = new Map<string, PoolJob>([[root._id, root]]);
  for (const queue = [root]; queue.length > 0;) {
    const job = queue.shift()!;
    if ((job.dependents ?? 0) === 0) continue;
    for (const edge of await edgesOf(tx, 'parent', job._id)) {
      if (downstream.has(edge.child)) continue;
      const child = await getPoolJob(tx, edge.child);
      if (child === null) continue;
      downstream.set(child._id, child);
      queue.push(child);
    }
  }
  for (const job of downstream.values()) {
    if (job.state === 'running' || job.state === 'completing') {
      throw invalid(
        `Workpool rerun: ${describeJob(job)} ${job._id === id ? 'is' : `(downstream of ${id}) is`} ${job.state === 'running' ? 'running' : 'finishing'}; wait for it or cancel it first`,
      );
    }
    const holder = await otherKeyHolder(tx, job, now);
    if (holder !== null) {
      throw invalid(
        `Workpool rerun: ${describeJob(job)} has the unique key "${job.uniqueKey}", which ${describeJob(holder.job)} holds now${holder.until === null ? '' : ` (until ${new Date(holder.until).toISOString()})`}; wait for it or cancel it first`,
      );
    }
  }
  for (const job of downstream.values()) await retakeUniqueKey(tx, job, now);
  const updates: PoolJob[] = [];
  for (const job of downstream.values()) {
    let unmet = 0;
    for (const parentId of await dependencyIds(tx, job)) {
      if (downstream.has(parentId)) {
        unmet++;
        continue;
      }
      const parent = await getPoolJob(tx, parentId);
      if (parent === null || succeeded(parent)) continue;
      if (isEnded(parent) && (job.onDependencyFailure ?? 'fail') !== 'run') {
        throw invalid(
          `Workpool rerun: ${describeJob(job)} depends on ${describeJob(parent)}, which did not succeed; re-run that one instead`,
        );
      }
      if (!isEnded(parent)) unmet++;
    }
    const {
      result: _result,
      finishedAt: _finishedAt,
      startedAt: _startedAt,
      owner: _owner,
      onCompleteError: _onCompleteError,
      ...rest
    } = job;
    updates.push({
      ...rest,
      state: unmet > 0 ? 'waiting' : 'pending',
      due: now,
      runAt: now,
      attempt: 0,
      failures: [],
      unmetDependencies: unmet,
      run: (job.run ?? 0) + 1,
    });
  }
  await saveJobs(tx, updates);
  return updates.length;
}

/** A dead letter: a job that failed for good, as listed for people. */
export interface FailedJob {
  id: string;
  name: string;
  fn: string;
  error: string;
  attempts: number;
  failedAt: number;
}

/** The pool's jobs that failed for good, oldest first (at most `limit`). */
export async function listFailed(
  tx: WriteTransaction | ReadTransaction,
  pool: string,
  limit: number,
): Promise<FailedJob[]> {
  const entries = await tx.scan({
    table: POOL_JOBS,
    index: BY_DUE,
    ...dueRange(pool, 'failed'),
    order: 'asc',
    limit,
  });
  return entries.map((entry) => {
    const job = entry.document as PoolJob;
    return {
      id: job._id,
      name: job.name,
      fn: job.fn,
      error: job.result?.kind === 'failed' ? job.result.error : '',
      attempts: job.attempt,
      failedAt: job.finishedAt ?? 0,
    };
  });
}

/**
 * Runs dead letters again (the given ones, or the pool's oldest up to `limit`), each with
 * everything downstream of it. A job whose own dependency failed too is left to that one's
 * re-run. Resolves with how many jobs were restarted. Given ids must each be a failed job of
 * the pool, or downstream of another given one: anything else is refused, saying why.
 */
export async function retryFailed(
  tx: WriteTransaction,
  pool: string,
  ids: readonly string[] | null,
  limit: number,
  now: number,
): Promise<number> {
  const candidates = ids ?? (await listFailed(tx, pool, limit)).map((job) => job.id);
  if (ids !== null) await checkRetryable(tx, pool, ids);
  let restarted = 0;
  for (const id of candidates) {
    const job = await getPoolJob(tx, id);
    if (job === null) {
      if (ids !== null)
        throw invalid(`Workpool retryFailed: ${id} is not a pool job (or it expired)`);
      continue;
    }
    if (job.pool !== pool && ids !== null) {
      throw invalid(`Workpool retryFailed: ${id} belongs to pool "${job.pool}", not "${pool}"`);
    }
    // Already restarted with an ancestor retried just before.
    if (job.state !== 'failed') continue;
    const upstreamFailed = await hasFailedDependency(tx, job);
    if (upstreamFailed) continue;
    // Its unique key is another job's now: retried in bulk, it waits for a later retry.
    if (ids === null && (await otherKeyHolder(tx, job, now)) !== null) continue;
    restarted += await rerunFrom(tx, id, now);
  }
  return restarted;
}

/** A dead letter a retry left failed, and why. */
export interface SkippedJob {
  id: string;
  name: string;
  reason: string;
}

/** Where a retry of every dead letter goes on: after this key, of jobs failed by `since`. */
export interface RetryCursor {
  after: Uint8Array;
  since: number;
}

/**
 * Runs a page of a pool's dead letters again, for operators retrying them all (a page per
 * transaction): the next `limit` of them after `cursor`, oldest first. Unlike `retryFailed`, a
 * dead letter downstream of another of the pool is retried through that one (its root), whatever
 * the order they are met in; one that cannot be retried (what it depends on was canceled or
 * failed in another pool, or the re-run is refused) stays failed and is returned with the reason.
 * Jobs that failed after the first page began are left: this retry restarted them.
 */
export async function retryFailedPage(
  tx: WriteTransaction,
  pool: string,
  cursor: RetryCursor | null,
  limit: number,
  now: number,
): Promise<{ retried: number; skipped: SkippedJob[]; next: RetryCursor | null }> {
  const since = cursor?.since ?? now;
  const range = dueRange(pool, 'failed');
  const entries = await tx.scan({
    table: POOL_JOBS,
    index: BY_DUE,
    start: cursor === null ? range.start : keySuccessor(cursor.after),
    end: range.end,
    order: 'asc',
    limit,
  });
  let retried = 0;
  const skipped: SkippedJob[] = [];
  for (const entry of entries) {
    // Read again: retrying an earlier one of the page may have restarted it.
    const job = await getPoolJob(tx, entry.document._id);
    if (job === null || job.state !== 'failed' || (job.finishedAt ?? 0) > since) continue;
    let root = job;
    let reason: string | null = null;
    for (;;) {
      const parent = await failedDependency(tx, root);
      if (parent === null) break;
      if (parent.state !== 'failed' || parent.pool !== pool) {
        reason = `it depends on ${describeJob(parent)}, which ${parent.state !== 'failed' ? (parent.result?.kind === 'canceled' ? 'was canceled' : `is ${parent.state}`) : `failed in pool "${parent.pool}"`}; re-run that one (the dashboard's Re-run, or pool.rerun)`;
        break;
      }
      root = parent;
    }
    if (reason === null) {
      try {
        retried += await rerunFrom(tx, root._id, now);
        continue;
      } catch (error) {
        // Refused before it wrote anything (a job downstream running, say): say why.
        if (!(error instanceof SyscallError)) throw error;
        reason = error.message.replace(/^Workpool rerun: /, '');
      }
    }
    skipped.push({ id: job._id, name: job.name, reason });
  }
  const last = entries.at(-1);
  return {
    retried,
    skipped,
    next:
      entries.length === limit && last !== undefined
        ? { after: Uint8Array.from(last.key), since }
        : null,
  };
}

async function hasFailedDependency(tx: WriteTransaction, job: PoolJob): Promise<boolean> {
  return (await failedDependency(tx, job)) !== null;
}

/** A dependency of `job` that ended without succeeding, which its policy does not run past. */
async function failedDependency(tx: WriteTransaction, job: PoolJob): Promise<PoolJob | null> {
  if ((job.onDependencyFailure ?? 'fail') === 'run') return null;
  for (const parentId of await dependencyIds(tx, job)) {
    const parent = await getPoolJob(tx, parentId);
    if (parent !== null && isEnded(parent) && !succeeded(parent)) return parent;
  }
  return null;
}

/** Refuses, naming it, a given job that retryFailed would not retry. */
async function checkRetryable(
  tx: WriteTransaction,
  pool: string,
  ids: readonly string[],
): Promise<void> {
  const given = new Set(ids);
  for (const id of ids) {
    const job = await getPoolJob(tx, id);
    if (job === null)
      throw invalid(`Workpool retryFailed: ${id} is not a pool job (or it expired)`);
    if (job.pool !== pool) {
      throw invalid(`Workpool retryFailed: ${id} belongs to pool "${job.pool}", not "${pool}"`);
    }
    if (job.state !== 'failed') {
      throw invalid(
        `Workpool retryFailed: ${describeJob(job)} is ${job.state}, not failed (rerun runs any job that ended again)`,
      );
    }
    const parent = await failedDependency(tx, job);
    if (parent !== null && !given.has(parent._id)) {
      throw invalid(
        `Workpool retryFailed: ${describeJob(job)} depends on ${describeJob(parent)}, which did not succeed; retry or rerun that one, and this one runs after it`,
      );
    }
  }
}

export type DuplicatePolicy = 'skip' | 'replace';

/**
 * Takes `key` of `pool` for `job`, or says which job holds it. With `skip`, a key held by an
 * unfinished job (or within its window) keeps its holder; with `replace`, a holder that has not
 * started is canceled and the key moves to the new job (a running one finishes on its own).
 * `mayHaveStarted` says whether a job the database has pending may have started already: its
 * start is recorded after the fact, by this process's runner on an exclusive store, by the
 * runner holding it on a shared one.
 */
export async function takeUniqueKey(
  tx: WriteTransaction,
  job: PoolJob,
  key: string,
  policy: DuplicatePolicy,
  windowMs: number | null,
  now: number,
  creationTime: () => number,
  mayHaveStarted: (holder: PoolJob) => Promise<boolean>,
): Promise<{ holder: string } | null> {
  const id = uniqueKeyId(job.pool, key);
  const taken = (await tx.get(POOL_UNIQUE, id)) as unknown as UniqueKey | null;
  const next: UniqueKey = {
    _id: id,
    _creationTime: taken?._creationTime ?? creationTime(),
    pool: job.pool,
    key,
    job: job._id,
    until: windowMs === null ? null : now + windowMs,
  };
  if (taken === null) {
    await tx.insert(POOL_UNIQUE, next as never);
    return null;
  }
  const holder = await getPoolJob(tx, taken.job);
  const unfinished = holder !== null && !isEnded(holder);
  const inWindow = taken.until !== null && now < taken.until;
  if (unfinished || inWindow) {
    if (policy === 'skip') return { holder: taken.job };
    // Only a pending job may be claimed and started before the database says so.
    const notStarted =
      holder !== null &&
      (holder.state === 'waiting' ||
        holder.state === 'delayed' ||
        (holder.state === 'pending' && !(await mayHaveStarted(holder))));
    if (notStarted) {
      const replaced = finish(
        holder,
        { kind: 'canceled', reason: `replaced by ${job._id} (unique key "${key}")` },
        now,
      );
      await saveJob(tx, replaced);
      await releaseDependents(tx, [replaced], now);
    }
  }
  await tx.replace(POOL_UNIQUE, next as never);
  return null;
}

/**
 * The job other than `job` that holds `job`'s unique key now: unfinished, or finished within
 * the key's window. A job run again must not run beside it.
 */
async function otherKeyHolder(
  tx: WriteTransaction,
  job: PoolJob,
  now: number,
): Promise<{ job: PoolJob; until: number | null } | null> {
  if (job.uniqueKey === undefined) return null;
  const record = (await tx.get(
    POOL_UNIQUE,
    uniqueKeyId(job.pool, job.uniqueKey),
  )) as unknown as UniqueKey | null;
  if (record === null || record.job === job._id) return null;
  const holder = await getPoolJob(tx, record.job);
  const inWindow = record.until !== null && now < record.until;
  if (holder !== null && (!isEnded(holder) || inWindow)) {
    return { job: holder, until: inWindow ? record.until : null };
  }
  return null;
}

/** A job run again holds its unique key again (no other job does: otherKeyHolder). */
async function retakeUniqueKey(tx: WriteTransaction, job: PoolJob, now: number): Promise<void> {
  if (job.uniqueKey === undefined) return;
  const id = uniqueKeyId(job.pool, job.uniqueKey);
  const record = (await tx.get(POOL_UNIQUE, id)) as unknown as UniqueKey | null;
  if (record?.job === job._id) return;
  // Its window, if it had one, is not known here: the key is held while the job runs.
  const next: UniqueKey = {
    _id: id,
    _creationTime: record?._creationTime ?? now,
    pool: job.pool,
    key: job.uniqueKey,
    job: job._id,
    until: null,
  };
  if (record === null) await tx.insert(POOL_UNIQUE, next as never);
  else await tx.replace(POOL_UNIQUE, next as never);
}

/** The id of a pool's unique key's record: derived from both, so the primary key enforces it. */
function uniqueKeyId(pool: string, key: string): string {
  return derivedDocumentId(SYSTEM_TABLES._pool_unique.number, `${pool}\u0000${key}`);
}

/** Deletes a job's edges as the child (when the job itself is deleted after its ttl). */
export async function forgetEdges(tx: WriteTransaction, job: PoolJob): Promise<void> {
  if ((job.dependencies ?? 0) === 0) return;
  for (const edge of await edgesOf(tx, 'child', job._id)) await tx.delete(POOL_EDGES, edge._id);
}
