/**
 * What functions ask of workpools (through the `sleigh/pool/*` syscalls that @sleigh/workpool
 * makes): enqueue (with dependencies and unique keys), status, result, cancel, waiting for a
 * result, re-runs, dead letters, heartbeats and abort signals. Inside a mutation each is
 * part of its transaction (an enqueue commits or rolls back with the mutation); inside an
 * action each is a transaction of its own; inside a query only reads are allowed, and they are
 * recorded in the query's read set, so a client subscribed to a job's status is pushed changes.
 */
import {
  BY_ID,
  checkDocument,
  encodeKey,
  LIMITS,
  StorageError,
  idKey,
  prefixEnd,
  sameBytes,
  type Catalog,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { convexToJson, jsonToConvex, type JSONValue } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import {
  countWrite,
  type Execution,
  type FunctionKind,
  type TransactionState,
} from '../runtime/context.js';
import {
  cancelJob,
  dueRange,
  getPoolJob,
  isPoolJobId,
  newPoolId,
  newPoolJobId,
  insertJob,
  placed,
  insertJobs,
  POOL_JOBS,
  POOLS,
  BY_DUE,
  statusOf,
  type PoolDocument,
  type PoolJob,
  type PoolOptions,
  type RetryBehavior,
  type Status,
} from './pool-jobs.js';
import {
  dependencyIds,
  linkDependencies,
  ParentUpdates,
  listFailed,
  releaseDependents,
  retryFailed,
  rerunFrom,
  takeUniqueKey,
} from './pool-graph.js';
import type { RunningAttempts } from './attempts.js';
import {
  enqueueOrder,
  invalid,
  isRecord,
  MAX_ENQUEUE_PER_CALL,
  parseGroup,
  parseIds,
  parseLinks,
  parsePool,
  parseRetry,
  positiveNumber,
  type EnqueueItem,
} from './pool-requests.js';
import { writeWithRetry } from './write-retry.js';
import { tooFarOff } from './timers.js';
import { isHeld } from './pool-holdings.js';

/** How the engine resolves and checks a function for a job. */
export interface PoolFunctions {
  /** The kind of the function at `path`; throws a FunctionError naming what is wrong. */
  resolve(path: string, kind: FunctionKind | null): { path: string; kind: FunctionKind };
  checkArgs(path: string, args: JSONValue, catalog: Catalog): void;
  /**
   * Checks one field of the arguments `path` will be called with (onComplete's `context`)
   * against that field's validator, when its validator is an object declaring the field.
   */
  checkArgField(path: string, field: string, value: JSONValue, catalog: Catalog): void;
  /** The function's signature here, recorded on its jobs (null: one of Sleigh's own). */
  signatureOf(path: string): string | null;
}

/** What enqueueing asks of this process's pool runner, while one runs. */
export interface LocalRunner {
  /**
   * Offers to claim `job` (pending, about to be inserted by `tx`) when it may start now: the
   * job to insert instead, or null. A job enqueued alone into a pool idle here starts as that
   * transaction commits, without waiting for a claim of its own (a transaction and its round
   * trips, on PostgreSQL).
   */
  claim(tx: WriteTransaction, job: PoolJob, now: number): PoolJob | null;
  /** Whether a job started here and its outcome is not recorded yet. */
  startedHere(jobId: string): boolean;
  /** `job` is being canceled (as written): an attempt of it running here is told to stop. */
  canceling(job: PoolJob): void;
}

export class PoolService {
  /** Pools whose stored options this process knows to match, by name: no read needed. */
  private readonly known = new Map<string, string>();
  /**
   * Pools whose document each transaction wrote itself: until it commits, finding the document
   * there proves nothing (a transaction that retried after a conflict would otherwise skip the
   * write, and runners would never hear of the pool).
   */
  private readonly writtenIn = new WeakMap<WriteTransaction, Set<string>>();
  /** Set while this process runs pool jobs. */
  runner: LocalRunner | null = null;

  constructor(
    private readonly store: Store,
    private readonly functions: PoolFunctions,
    private readonly creationTime: () => number,
    private readonly attempts: RunningAttempts,
  ) {}

  private runningJob(execution: Execution, what: string): string {
    if (execution.poolJobId === null || execution.kind !== 'action') {
      throw new SyscallError(
        FunctionErrorCode.Forbidden,
        `Workpool ${what}: ${execution.path} is not running as a pool job's action (call it from the job's own function)`,
      );
    }
    return execution.poolJobId;
  }

  /** Keeps the running attempt alive; false when it was already given up (timed out). */
  heartbeat(execution: Execution): boolean {
    return this.attempts.beat(this.runningJob(execution, 'heartbeat'));
  }

  /** Resolves with why the running attempt was aborted, or null once it ended. */
  whenAborted(execution: Execution): Promise<string | null> {
    return this.attempts.whenAborted(this.runningJob(execution, 'signal'));
  }

  private inTransaction<T>(
    execution: Execution,
    what: string,
    run: (tx: WriteTransaction) => Promise<T>,
  ): Promise<T> {
    if (execution.kind === 'query') {
      throw new SyscallError(
        FunctionErrorCode.Forbidden,
        `Workpool ${what} is not available in a query (${execution.path}): call it from a mutation or an action`,
      );
    }
    const state = execution.transaction;
    if (state !== null) return run(state.tx as WriteTransaction);
    return writeWithRetry(this.store, run);
  }

  /** Keeps the pool's options in `_pools` up to date; the runner reads them from there. */
  private async ensurePool(
    tx: WriteTransaction,
    name: string,
    options: PoolOptions,
  ): Promise<void> {
    const text = JSON.stringify(options);
    if (this.known.get(name) === text) return;
    const written = this.writtenIn.get(tx);
    const existing = await poolDocument(tx, name);
    if (existing !== undefined) {
      const { _id, _creationTime, name: _name, paused, ...stored } = existing;
      if (JSON.stringify(stored) === text) {
        // Only a stored document says so for good; one this transaction wrote may roll back.
        if (written?.has(name) !== true) this.known.set(name, text);
        return;
      }
      await tx.replace(POOLS, {
        _id,
        _creationTime,
        name,
        ...options,
        ...(paused === true ? { paused } : {}),
      });
    } else {
      await tx.insert(POOLS, {
        _id: newPoolId(),
        _creationTime: this.creationTime(),
        name,
        ...options,
      });
    }
    if (written === undefined) this.writtenIn.set(tx, new Set([name]));
    else written.add(name);
  }

  async enqueue(
    execution: Execution,
    poolName: unknown,
    poolOptions: unknown,
    items: unknown,
  ): Promise<string[]> {
    const { write, sizes } = this.prepareCall(poolName, poolOptions, items);
    // A mutation's new jobs are its writes, held to its transaction's limits.
    const state = execution.transaction;
    if (state !== null) for (const size of sizes) countWrite(state, size);
    return this.inTransaction(execution, 'enqueue', write);
  }

  /**
   * Startup jobs (`startupJobs()` exports): enqueued once per deploy, so each node's unique key
   * names the code (`codeHash`) and its declaration; servers starting the same code together
   * enqueue them once between them.
   */
  async enqueueStartup(
    declarations: ReadonlyArray<{ name: string; pool: unknown; options: unknown; items: unknown }>,
    codeHash: string,
  ): Promise<void> {
    const forever = 100 * 365 * 24 * 60 * 60 * 1000;
    for (const declaration of declarations) {
      if (!Array.isArray(declaration.items)) {
        throw invalid(`${declaration.name}: startupJobs needs its jobs`);
      }
      const items = (declaration.items as EnqueueItem[]).map((item, i) => ({
        ...item,
        uniqueKey: `startup:${codeHash}:${declaration.name}:${item.node ?? i}`,
        onDuplicate: 'skip' as const,
        uniqueForMs: forever,
      }));
      await writeWithRetry(
        this.store,
        this.prepareCall(declaration.pool, declaration.options, items).write,
      );
    }
  }

  /**
   * Checks a call's jobs and returns what writes them, in dependency order, in a transaction,
   * and each new job's size.
   */
  private prepareCall(
    poolName: unknown,
    poolOptions: unknown,
    items: unknown,
  ): { write: (tx: WriteTransaction) => Promise<string[]>; sizes: number[] } {
    const { name: pool, options } = parsePool(poolName, poolOptions);
    if (!Array.isArray(items)) throw invalid('Workpool enqueue: expected a list of jobs');
    if (items.length > MAX_ENQUEUE_PER_CALL) {
      throw invalid(
        `Workpool "${pool}": ${items.length} jobs in one call is more than ${MAX_ENQUEUE_PER_CALL}; split the batch`,
      );
    }
    const now = Date.now();
    const list = items as EnqueueItem[];
    const sizes: number[] = [];
    const jobs = list.map((item) => {
      const job = this.prepare(pool, options, item, now);
      sizes.push(fitsWithRoom(job));
      return job;
    });
    const links = list.map((item, i) => parseLinks(pool, item, i, list.length));
    const order = enqueueOrder(pool, list, links);
    const write = async (tx: WriteTransaction) => {
      await this.ensurePool(tx, pool, options);
      const ids: string[] = new Array<string>(list.length);
      const parents = new ParentUpdates();
      // Jobs with nothing to look up are inserted together, in one statement where the database
      // allows; the batch is written before anything reads (a unique key, a parent in it).
      let batch: PoolJob[] = [];
      const insertBatch = async () => {
        if (batch.length > 0) await insertJobs(tx, batch);
        batch = [];
      };
      for (const i of order) {
        let job = jobs[i]!;
        const { dependsOn, onDependencyFailure, unique } = links[i]!;
        if (onDependencyFailure !== undefined) job = { ...job, onDependencyFailure };
        if (list.length > 1 && unique === null && dependsOn.length === 0) {
          batch.push({ ...job, _creationTime: this.creationTime() });
          ids[i] = job._id;
          continue;
        }
        await insertBatch();
        if (unique !== null) {
          const taken = await takeUniqueKey(
            tx,
            job,
            unique.key,
            unique.policy,
            unique.windowMs,
            now,
            this.creationTime,
            async (holder) =>
              (this.runner?.startedHere(holder._id) ?? false) ||
              (await isHeld(tx, holder.pool, holder._id)),
          );
          // A duplicate: the caller gets the job holding the key (and so do its dependents).
          if (taken !== null) {
            ids[i] = taken.holder;
            continue;
          }
          job = { ...job, uniqueKey: unique.key };
        }
        if (dependsOn.length > 0) {
          const parentIds = dependsOn.map((ref) =>
            typeof ref === 'string' ? ref : ids[ref.item]!,
          );
          job = await linkDependencies(tx, job, parentIds, now, this.creationTime, parents);
        }
        const ready = placed({ ...job, _creationTime: this.creationTime() }, now);
        const claimed =
          list.length === 1 && ready.state === 'pending'
            ? this.runner?.claim(tx, ready, now)
            : null;
        await insertJob(tx, claimed ?? ready, now);
        ids[i] = job._id;
      }
      await insertBatch();
      await parents.save(tx, now);
      return ids;
    };
    return { write, sizes };
  }

  /** The pool's dead letters (jobs that failed for good), oldest first. */
  async failed(execution: Execution, poolName: unknown, limit: unknown): Promise<JSONValue> {
    const { name: pool } = parsePool(poolName, {});
    const most = limit === undefined ? 100 : positiveNumber(limit, 'failedJobs: limit', true);
    return this.read(execution, async (tx) => {
      const jobs = await listFailed(tx, pool, most);
      return jobs as unknown as JSONValue;
    });
  }

  /** Runs dead letters again (given ids, or the oldest up to `limit`); resolves with how many. */
  async retryFailed(
    execution: Execution,
    poolName: unknown,
    ids: unknown,
    limit: unknown,
  ): Promise<number> {
    const { name: pool } = parsePool(poolName, {});
    const list = parseIds(ids, 'retryFailed');
    const most = limit === undefined ? 1000 : positiveNumber(limit, 'retryFailed: limit', true);
    return this.inTransaction(execution, 'retryFailed', (tx) =>
      retryFailed(tx, pool, list, most, Date.now()),
    );
  }

  /** The jobs the running pool job depends on, in order, with their results. */
  async dependencies(execution: Execution): Promise<JSONValue> {
    const id = execution.poolJobId;
    if (id === null) {
      throw new SyscallError(
        FunctionErrorCode.Forbidden,
        `Workpool dependencies: ${execution.path} is not running as a pool job (call it from the job's own function)`,
      );
    }
    return this.read(execution, async (tx, state) => {
      const job = await this.job(tx, state, id);
      const out: JSONValue[] = [];
      for (const parentId of job === null ? [] : await dependencyIds(tx, job)) {
        const parent = await this.job(tx, state, parentId);
        out.push({ id: parentId, name: parent?.name ?? null, result: resultJson(parent) });
      }
      return out;
    });
  }

  /** Re-runs a job and everything downstream of it; resolves with how many jobs that is. */
  async rerun(execution: Execution, id: unknown): Promise<number> {
    if (typeof id !== 'string' || !isPoolJobId(id)) {
      throw invalid(`Workpool rerun: ${JSON.stringify(id)} is not the id of a pool job`);
    }
    return this.inTransaction(execution, 'rerun', (tx) => rerunFrom(tx, id, Date.now()));
  }

  private prepare(pool: string, options: PoolOptions, item: EnqueueItem, now: number): PoolJob {
    if (!isRecord(item) || typeof item.fn !== 'string') {
      throw invalid(`Workpool "${pool}": each job needs a function reference`);
    }
    const { path, kind } = this.functions.resolve(item.fn, item.kind === 'auto' ? null : item.kind);
    if (item.kind === 'auto' && kind === 'query') {
      throw invalid(
        `Workpool "${pool}": the pool's scheduler runs mutations and actions; ${path} is a query`,
      );
    }
    this.functions.checkArgs(path, item.args, this.store.catalog());
    let retry: RetryBehavior | null = null;
    if (item.retry === true) retry = options.defaultRetryBehavior;
    else if (isRecord(item.retry)) retry = parseRetry(item.retry, `Workpool "${pool}": retry`);
    else if (item.retry === undefined && kind === 'action' && options.retryActionsByDefault) {
      retry = options.defaultRetryBehavior;
    } else if (item.retry !== undefined && item.retry !== false && item.retry !== null) {
      throw invalid(
        `Workpool "${pool}": retry must be true, false or { maxAttempts, initialBackoffMs, base }, not ${JSON.stringify(item.retry)}`,
      );
    }
    if (
      item.name !== undefined &&
      (typeof item.name !== 'string' || item.name.length > MAX_JOB_NAME)
    ) {
      throw invalid(
        `Workpool "${pool}": a job's name must be a string of at most ${MAX_JOB_NAME} characters, not ${describeName(item.name)}`,
      );
    }
    let onComplete: PoolJob['onComplete'] = null;
    if (item.onComplete !== undefined) {
      const target = this.functions.resolve(item.onComplete.fn, 'mutation');
      // Checked now, as the job's own arguments are, rather than failing once the job is done.
      if (item.onComplete.context !== undefined) {
        this.functions.checkArgField(
          target.path,
          'context',
          item.onComplete.context,
          this.store.catalog(),
        );
      }
      onComplete = {
        fn: target.path,
        context:
          item.onComplete.context === undefined ? null : jsonToConvex(item.onComplete.context),
      };
      const sig = this.functions.signatureOf(target.path);
      if (sig !== null) onComplete.sig = sig;
    }
    const runAt =
      item.runAt === undefined ? now : positiveNumber(item.runAt, `Workpool "${pool}": runAt`);
    // Earlier than now is now; later must be within Convex's scheduling limit.
    const far = tooFarOff(runAt, now, false);
    if (far !== null) {
      throw invalid(
        `Workpool "${pool}": cannot run a job at ${far}: jobs are scheduled within 5 years of now`,
      );
    }
    if (
      item.priority !== undefined &&
      (typeof item.priority !== 'number' || !Number.isFinite(item.priority))
    ) {
      throw invalid(
        `Workpool "${pool}": priority must be a finite number, not ${JSON.stringify(item.priority)}`,
      );
    }
    const job: PoolJob = {
      _id: newPoolJobId(),
      _creationTime: 0,
      pool,
      fn: path,
      kind,
      args: jsonToConvex(item.args),
      name: item.name !== undefined && item.name !== '' ? item.name : path,
      state: 'pending',
      due: runAt,
      enqueuedAt: now,
      attempt: 0,
      retry,
      timeoutMs: kind === 'action' ? options.actionTimeoutMs : null,
      ...(kind === 'action' && options.heartbeatTimeoutMs !== null
        ? { heartbeatMs: options.heartbeatTimeoutMs }
        : {}),
      ttlMs: options.ttlMs,
      failedTtlMs: options.failedTtlMs,
      onComplete,
      failures: [],
      ...(item.priority === undefined || item.priority === 0 ? {} : { priority: item.priority }),
      ...(item.group === undefined ? {} : { group: parseGroup(pool, item.group) }),
    };
    const sig = this.functions.signatureOf(path);
    if (sig !== null) job.sig = sig;
    return job;
  }

  /** Reads a job for a function: in its transaction (recorded in the read set) or a fresh one. */
  private async read<T>(
    execution: Execution,
    run: (tx: ReadTransaction, state: TransactionState | null) => Promise<T>,
  ): Promise<T> {
    const state = execution.transaction;
    if (state !== null) return run(state.tx, state);
    return this.store.read((tx) => run(tx, null));
  }

  private async job(
    tx: ReadTransaction,
    state: TransactionState | null,
    id: unknown,
  ): Promise<PoolJob | null> {
    if (typeof id !== 'string' || !isPoolJobId(id)) {
      throw invalid(`Workpool: ${JSON.stringify(id)} is not the id of a pool job`);
    }
    if (state !== null) {
      const byId = tx.catalog().index(POOL_JOBS, BY_ID);
      if (byId !== undefined) state.readSet.addPoint(byId.id, idKey(id));
      state.metrics.documentsRead += 1;
    }
    return getPoolJob(tx, id);
  }

  async status(execution: Execution, ids: unknown): Promise<Status[]> {
    if (!Array.isArray(ids)) throw invalid('Workpool status: expected a list of ids');
    return this.read(execution, async (tx, state) => {
      const out: Status[] = [];
      for (const id of ids) out.push(statusOf(await this.job(tx, state, id)));
      return out;
    });
  }

  /** The job's result once it finished (also while its onComplete runs), else null. */
  async result(execution: Execution, id: unknown): Promise<JSONValue> {
    return this.read(execution, async (tx, state) => resultJson(await this.job(tx, state, id)));
  }

  /** Cancels jobs by id; given `poolName`, each must be a job of that pool. */
  async cancel(execution: Execution, ids: unknown, poolName?: unknown): Promise<JSONValue> {
    if (!Array.isArray(ids)) throw invalid('Workpool cancel: expected a list of ids');
    const pool = poolName === undefined ? null : parsePool(poolName, {}).name;
    const now = Date.now();
    return this.inTransaction(execution, 'cancel', async (tx) => {
      let canceled = 0;
      for (const id of ids) {
        if (typeof id !== 'string')
          throw invalid(`Workpool cancel: ${JSON.stringify(id)} is not an id`);
        const current = await getPoolJob(tx, id);
        if (pool !== null && current !== null && current.pool !== pool) {
          throw invalid(
            `Workpool "${pool}": cannot cancel job ${id}, which belongs to pool "${current.pool}"`,
          );
        }
        const job = await cancelJob(tx, id, now);
        if (job === null) continue;
        this.runner?.canceling(job);
        canceled++;
        await releaseDependents(tx, [job], now);
      }
      return canceled;
    });
  }

  /**
   * Pauses or resumes a pool: while paused, none of its jobs start (running ones go on, and
   * enqueuing still works). `options` are the caller's pool options, for a pool paused before
   * its first job; null (the dashboard) refuses a pool that does not exist. Resolves with
   * whether the pool was paused before.
   */
  async setPaused(
    execution: Execution,
    poolName: unknown,
    poolOptions: unknown,
    paused: unknown,
  ): Promise<boolean> {
    if (typeof paused !== 'boolean') {
      throw invalid(`pause/resume: paused must be true or false, not ${JSON.stringify(paused)}`);
    }
    const known = poolOptions !== null;
    const { name, options } = parsePool(poolName, known ? poolOptions : {});
    return this.inTransaction(execution, paused ? 'pause' : 'resume', async (tx) => {
      if (known) await this.ensurePool(tx, name, options);
      return writePaused(tx, name, paused);
    });
  }

  /** Cancels up to `limit` unfinished jobs of a pool; resolves with how many. */
  async cancelAll(execution: Execution, poolName: unknown, limit: unknown): Promise<number> {
    const { name: pool } = parsePool(poolName, {});
    const most = limit === undefined ? 10_000 : positiveNumber(limit, 'cancelAll: limit', true);
    const now = Date.now();
    return this.inTransaction(execution, 'cancelAll', async (tx) => {
      let canceled = 0;
      for (const state of ['waiting', 'delayed', 'pending', 'running'] as const) {
        const range = dueRange(pool, state);
        const entries = await tx.scan({
          table: POOL_JOBS,
          index: BY_DUE,
          start: range.start,
          end: range.end,
          order: 'asc',
          limit: most - canceled,
        });
        for (const entry of entries) {
          const job = await cancelJob(tx, (entry.document as PoolJob)._id, now);
          if (job === null) continue;
          this.runner?.canceling(job);
          canceled++;
          await releaseDependents(tx, [job], now);
        }
        if (canceled >= most) break;
      }
      return canceled;
    });
  }

  /**
   * Waits (in an action) until the job finished and resolves with its result: woken by commits
   * that write the job, with a slow check as a backstop.
   */
  async wait(execution: Execution, id: unknown, timeoutMs: unknown): Promise<JSONValue> {
    if (execution.kind !== 'action') {
      throw new SyscallError(
        FunctionErrorCode.Forbidden,
        `Workpool pollResult waits, so it is only available in actions (${execution.path}); in a query, read pool.result() and subscribe to it`,
      );
    }
    if (typeof id !== 'string' || !isPoolJobId(id)) {
      throw invalid(`Workpool: ${JSON.stringify(id)} is not the id of a pool job`);
    }
    const deadline =
      timeoutMs === undefined || timeoutMs === null
        ? Infinity
        : Date.now() + positiveNumber(timeoutMs, 'pollResult: timeoutMs');
    const key = idKey(id);
    for (;;) {
      let wake: () => void = () => undefined;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      const unsubscribe = this.store.onCommit(
        (commit) => {
          const byId = this.store.catalog().index(POOL_JOBS, BY_ID);
          if (commit.writesUnknown === true) wake();
          if (commit.writes.some((w) => w.indexId === byId?.id && sameBytes(w.key, key))) wake();
        },
        { unordered: true },
      );
      try {
        const result = await this.store.read(async (tx) => resultJson(await getPoolJob(tx, id)));
        if (result !== null) return result;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new SyscallError(
            FunctionErrorCode.Thrown,
            `Workpool pollResult: job ${id} did not finish within ${String(timeoutMs)} ms`,
          );
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          woken,
          new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.min(left, 1000)))),
        ]);
        clearTimeout(timer);
      } finally {
        unsubscribe();
      }
    }
  }
}

/** A job's name is a label for people (logs, the dashboard), not a payload. */
const MAX_JOB_NAME = 1024;

function describeName(name: unknown): string {
  return typeof name === 'string' ? `one of ${name.length} characters` : JSON.stringify(name);
}

function resultJson(job: PoolJob | null): JSONValue {
  if (job === null) return { kind: 'failed', error: 'the job is unknown, or its result expired' };
  if (job.result === undefined) return null;
  return convexToJson(job.result);
}

/**
 * Pauses or resumes a pool that exists (see PoolService.setPaused); resolves with whether it
 * was paused before.
 */
export async function writePaused(
  tx: WriteTransaction,
  name: string,
  paused: boolean,
): Promise<boolean> {
  const doc = tx.catalog().table(POOLS) === undefined ? undefined : await poolDocument(tx, name);
  if (doc === undefined) throw invalid(`There is no workpool named "${name}"`);
  const before = doc.paused === true;
  if (before === paused) return before;
  const { paused: _paused, ...rest } = doc;
  await tx.replace(POOLS, paused ? { ...rest, paused: true } : rest);
  return before;
}

/** The `_pools` document of a pool, if it has one (the table must exist). */
async function poolDocument(tx: ReadTransaction, name: string): Promise<PoolDocument | undefined> {
  const [entry] = await tx.scan({
    table: POOLS,
    index: 'by_name',
    start: encodeName(name),
    end: encodeNameEnd(name),
    order: 'asc',
    limit: 1,
  });
  return entry?.document as PoolDocument | undefined;
}

function encodeName(name: string): Uint8Array {
  return encodeKey([name]);
}

function encodeNameEnd(name: string): Uint8Array {
  return prefixEnd(encodeKey([name]));
}

/**
 * What a new job may take of its document (1 MiB): the rest is kept for what its attempts add,
 * so that a failure can always be recorded (its latest error, cut to 8 KiB, twice) rather than
 * leaving a job no write of its pool can store.
 */
export const MAX_NEW_JOB_BYTES = LIMITS.maxDocumentBytes - 32 * 1024;

/**
 * Refuses a job too large to leave room for its outcome, naming its size and the limit;
 * returns its size.
 */
function fitsWithRoom(job: PoolJob): number {
  let size: number;
  try {
    ({ size } = checkDocument(POOL_JOBS, job));
  } catch (error) {
    if (!StorageError.is(error)) throw error;
    throw invalid(
      `Workpool "${job.pool}": the job for ${job.fn} cannot be stored: ${error.message}`,
    );
  }
  if (size > MAX_NEW_JOB_BYTES) {
    throw invalid(
      `Workpool "${job.pool}": the job for ${job.fn} is ${size} bytes (its arguments, mostly); a new job may take at most ${MAX_NEW_JOB_BYTES} bytes, leaving room in its 1 MiB document for its result and errors`,
    );
  }
  return size;
}
