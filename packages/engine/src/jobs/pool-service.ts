/**
 * What functions ask of workpools (through the `sleigh/pool/*` syscalls that @sleigh/workpool
 * makes): enqueue, status, result, cancel, and waiting for a result. Inside a mutation each is
 * part of its transaction (an enqueue commits or rolls back with the mutation); inside an
 * action each is a transaction of its own; inside a query only reads are allowed, and they are
 * recorded in the query's read set, so a client subscribed to a job's status is pushed changes.
 */
import {
  BY_ID,
  encodeKey,
  idKey,
  prefixEnd,
  type Catalog,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { convexToJson, jsonToConvex, type JSONValue } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import type { Execution, FunctionKind, TransactionState } from '../runtime/context.js';
import {
  cancelJob,
  DEFAULT_RETRY,
  DEFAULT_FAILED_TTL_MS,
  DEFAULT_TTL_MS,
  dueRange,
  getPoolJob,
  isPoolJobId,
  newPoolId,
  newPoolJobId,
  insertJob,
  POOL_JOBS,
  POOLS,
  BY_DUE,
  statusOf,
  type PoolDocument,
  type PoolJob,
  type DependencyFailurePolicy,
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
  type DuplicatePolicy,
} from './pool-graph.js';
import type { RunningAttempts } from './attempts.js';
import { writeWithRetry } from './write-retry.js';

/** How the engine resolves and checks a function for a job. */
export interface PoolFunctions {
  /** The kind of the function at `path`; throws a FunctionError naming what is wrong. */
  resolve(path: string, kind: FunctionKind | null): { path: string; kind: FunctionKind };
  checkArgs(path: string, args: JSONValue, catalog: Catalog): void;
}

export interface EnqueueItem {
  fn: string;
  /** `auto` takes the function's own kind (pool.ctx's scheduler). */
  kind: FunctionKind | 'auto';
  args: JSONValue;
  name?: string;
  runAt?: number;
  retry?: boolean | RetryBehavior;
  onComplete?: { fn: string; context?: JSONValue };
  /** Jobs to wait for: ids, or `{ item }`, the index of another job of this call. */
  dependsOn?: Array<string | { item: number }>;
  onDependencyFailure?: 'fail' | 'cancel' | 'run';
  uniqueKey?: string;
  onDuplicate?: DuplicatePolicy;
  uniqueForMs?: number;
  /** What to call the job in errors about the call (a graph's node key). */
  node?: string;
  priority?: number;
  group?: string;
}

/** What an item asks beyond the job itself: its dependencies and its unique key. */
interface Links {
  readonly dependsOn: Array<string | { item: number }>;
  readonly onDependencyFailure: DependencyFailurePolicy | undefined;
  readonly unique: { key: string; policy: DuplicatePolicy; windowMs: number | null } | null;
}

/** Most jobs one call may enqueue. */
export const MAX_ENQUEUE_PER_CALL = 10_000;

function invalid(message: string): SyscallError {
  return new SyscallError(FunctionErrorCode.InvalidArguments, message);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function positiveNumber(value: unknown, what: string, integer = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${what} must be a number ≥ 0, not ${JSON.stringify(value)}`);
  }
  if (integer && !Number.isInteger(value))
    throw invalid(`${what} must be a whole number, not ${value}`);
  return value;
}

function parseRetry(value: unknown, what: string): RetryBehavior {
  if (!isRecord(value)) throw invalid(`${what} must be { maxAttempts, initialBackoffMs, base }`);
  const maxAttempts = positiveNumber(value.maxAttempts, `${what}.maxAttempts`, true);
  if (maxAttempts < 1) throw invalid(`${what}.maxAttempts must be at least 1`);
  const initialBackoffMs = positiveNumber(value.initialBackoffMs, `${what}.initialBackoffMs`);
  const base = positiveNumber(value.base, `${what}.base`);
  if (base < 1) throw invalid(`${what}.base must be at least 1`);
  return { maxAttempts, initialBackoffMs, base };
}

/** A pool's name and options as the Workpool constructor gave them, checked. */
export function parsePool(name: unknown, options: unknown): { name: string; options: PoolOptions } {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
    throw invalid(
      `A workpool's name must be 1 to 64 letters, digits or _ . : -, not ${JSON.stringify(name)}`,
    );
  }
  const o = isRecord(options) ? options : {};
  const maxParallelism =
    o.maxParallelism === undefined
      ? 10
      : positiveNumber(o.maxParallelism, `Workpool "${name}": maxParallelism`, true);
  if (maxParallelism < 1 || maxParallelism > 1000) {
    throw invalid(`Workpool "${name}": maxParallelism must be between 1 and 1000`);
  }
  const positiveWhole = (value: unknown, what: string): number | null => {
    if (value === undefined || value === null) return null;
    const n = positiveNumber(value, `Workpool "${name}": ${what}`, true);
    if (n < 1) throw invalid(`Workpool "${name}": ${what} must be at least 1`);
    return n;
  };
  const rate = (value: unknown, what: string): { count: number; periodMs: number } | null => {
    if (value === undefined || value === null) return null;
    if (!isRecord(value)) throw invalid(`Workpool "${name}": ${what} must be { count, periodMs }`);
    const count = positiveWhole(value.count, `${what}.count`)!;
    const periodMs = positiveNumber(value.periodMs, `Workpool "${name}": ${what}.periodMs`);
    if (count === null || periodMs <= 0) {
      throw invalid(`Workpool "${name}": ${what} needs a count ≥ 1 and a periodMs > 0`);
    }
    return { count, periodMs };
  };
  return {
    name,
    options: {
      maxParallelism,
      groupParallelism: positiveWhole(o.groupParallelism, 'groupParallelism'),
      rateLimit: rate(o.rateLimit, 'rateLimit'),
      groupRateLimit: rate(o.groupRateLimit, 'groupRateLimit'),
      actionTimeoutMs:
        o.actionTimeoutMs === undefined || o.actionTimeoutMs === null
          ? null
          : positiveNumber(o.actionTimeoutMs, `Workpool "${name}": actionTimeoutMs`),
      heartbeatTimeoutMs: positiveWhole(o.heartbeatTimeoutMs, 'heartbeatTimeoutMs'),
      ttlMs:
        o.ttl === undefined ? DEFAULT_TTL_MS : positiveNumber(o.ttl, `Workpool "${name}": ttl`),
      failedTtlMs:
        o.failedTtl === undefined
          ? DEFAULT_FAILED_TTL_MS
          : positiveNumber(o.failedTtl, `Workpool "${name}": failedTtl`),
      retryActionsByDefault: o.retryActionsByDefault === true,
      defaultRetryBehavior:
        o.defaultRetryBehavior === undefined
          ? DEFAULT_RETRY
          : parseRetry(o.defaultRetryBehavior, `Workpool "${name}": defaultRetryBehavior`),
    },
  };
}

export class PoolService {
  /** Pools whose stored options this process knows to match, by name: no read needed. */
  private readonly known = new Map<string, string>();

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
    const [entry] = await tx.scan({
      table: POOLS,
      index: 'by_name',
      start: encodeName(name),
      end: encodeNameEnd(name),
      order: 'asc',
      limit: 1,
    });
    const existing = entry?.document as PoolDocument | undefined;
    if (existing !== undefined) {
      const { _id, _creationTime, name: _name, ...stored } = existing;
      if (JSON.stringify(stored) === text) {
        this.known.set(name, text);
        return;
      }
      await tx.replace(POOLS, { _id, _creationTime, name, ...options });
    } else {
      await tx.insert(POOLS, {
        _id: newPoolId(),
        _creationTime: this.creationTime(),
        name,
        ...options,
      });
    }
  }

  async enqueue(
    execution: Execution,
    poolName: unknown,
    poolOptions: unknown,
    items: unknown,
  ): Promise<string[]> {
    const run = this.prepareCall(poolName, poolOptions, items);
    return this.inTransaction(execution, 'enqueue', run);
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
        this.prepareCall(declaration.pool, declaration.options, items),
      );
    }
  }

  /** Checks a call's jobs and returns what writes them, in dependency order, in a transaction. */
  private prepareCall(
    poolName: unknown,
    poolOptions: unknown,
    items: unknown,
  ): (tx: WriteTransaction) => Promise<string[]> {
    const { name: pool, options } = parsePool(poolName, poolOptions);
    if (!Array.isArray(items)) throw invalid('Workpool enqueue: expected a list of jobs');
    if (items.length > MAX_ENQUEUE_PER_CALL) {
      throw invalid(
        `Workpool "${pool}": ${items.length} jobs in one call is more than ${MAX_ENQUEUE_PER_CALL}; split the batch`,
      );
    }
    const now = Date.now();
    const list = items as EnqueueItem[];
    const jobs = list.map((item) => this.prepare(pool, options, item, now));
    const links = list.map((item, i) => parseLinks(pool, item, i, list.length));
    const order = enqueueOrder(pool, list, links);
    return async (tx) => {
      await this.ensurePool(tx, pool, options);
      const ids: string[] = new Array<string>(list.length);
      const parents = new ParentUpdates();
      for (const i of order) {
        let job = jobs[i]!;
        const { dependsOn, onDependencyFailure, unique } = links[i]!;
        if (unique !== null) {
          const taken = await takeUniqueKey(
            tx,
            job,
            unique.key,
            unique.policy,
            unique.windowMs,
            now,
            this.creationTime,
          );
          // A duplicate: the caller gets the job holding the key (and so do its dependents).
          if (taken !== null) {
            ids[i] = taken.holder;
            continue;
          }
          job = { ...job, uniqueKey: unique.key };
        }
        if (onDependencyFailure !== undefined) job = { ...job, onDependencyFailure };
        if (dependsOn.length > 0) {
          const parentIds = dependsOn.map((ref) =>
            typeof ref === 'string' ? ref : ids[ref.item]!,
          );
          job = await linkDependencies(tx, job, parentIds, now, this.creationTime, parents);
        }
        await insertJob(tx, { ...job, _creationTime: this.creationTime() });
        ids[i] = job._id;
      }
      await parents.save(tx, now);
      return ids;
    };
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
    }
    let onComplete: PoolJob['onComplete'] = null;
    if (item.onComplete !== undefined) {
      const target = this.functions.resolve(item.onComplete.fn, 'mutation');
      onComplete = {
        fn: target.path,
        context:
          item.onComplete.context === undefined ? null : jsonToConvex(item.onComplete.context),
      };
    }
    const runAt =
      item.runAt === undefined ? now : positiveNumber(item.runAt, `Workpool "${pool}": runAt`);
    if (
      item.priority !== undefined &&
      (typeof item.priority !== 'number' || !Number.isFinite(item.priority))
    ) {
      throw invalid(
        `Workpool "${pool}": priority must be a finite number, not ${JSON.stringify(item.priority)}`,
      );
    }
    return {
      _id: newPoolJobId(),
      _creationTime: 0,
      pool,
      fn: path,
      kind,
      args: jsonToConvex(item.args),
      name: typeof item.name === 'string' && item.name !== '' ? item.name : path,
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

  async cancel(execution: Execution, ids: unknown): Promise<JSONValue> {
    if (!Array.isArray(ids)) throw invalid('Workpool cancel: expected a list of ids');
    const now = Date.now();
    return this.inTransaction(execution, 'cancel', async (tx) => {
      let canceled = 0;
      for (const id of ids) {
        if (typeof id !== 'string')
          throw invalid(`Workpool cancel: ${JSON.stringify(id)} is not an id`);
        const job = await cancelJob(tx, id, now);
        if (job === null) continue;
        canceled++;
        await releaseDependents(tx, [job], now);
      }
      return canceled;
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

function resultJson(job: PoolJob | null): JSONValue {
  if (job === null) return { kind: 'failed', error: 'the job is unknown, or its result expired' };
  if (job.result === undefined) return null;
  return convexToJson(job.result);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function encodeName(name: string): Uint8Array {
  return encodeKey([name]);
}

function encodeNameEnd(name: string): Uint8Array {
  return prefixEnd(encodeKey([name]));
}

const MAX_UNIQUE_KEY = 256;

function parseLinks(pool: string, item: EnqueueItem, index: number, count: number): Links {
  const what = `Workpool "${pool}"`;
  const dependsOn: Links['dependsOn'] = [];
  if (item.dependsOn !== undefined) {
    if (!Array.isArray(item.dependsOn))
      throw invalid(`${what}: dependsOn must be a list of job ids`);
    for (const ref of item.dependsOn) {
      if (typeof ref === 'string' && isPoolJobId(ref)) dependsOn.push(ref);
      else if (isRecord(ref) && Number.isInteger(ref.item) && ref.item >= 0 && ref.item < count) {
        if (ref.item === index) throw invalid(`${what}: a job cannot depend on itself`);
        dependsOn.push({ item: ref.item });
      } else {
        throw invalid(`${what}: dependsOn: ${JSON.stringify(ref)} is not the id of a pool job`);
      }
    }
  }
  const policy = item.onDependencyFailure;
  if (policy !== undefined && policy !== 'fail' && policy !== 'cancel' && policy !== 'run') {
    throw invalid(
      `${what}: onDependencyFailure must be "fail", "cancel" or "run", not ${JSON.stringify(policy)}`,
    );
  }
  let unique: Links['unique'] = null;
  if (item.uniqueKey !== undefined) {
    if (
      typeof item.uniqueKey !== 'string' ||
      item.uniqueKey === '' ||
      item.uniqueKey.length > MAX_UNIQUE_KEY
    ) {
      throw invalid(`${what}: uniqueKey must be a string of 1 to ${MAX_UNIQUE_KEY} characters`);
    }
    const duplicate = item.onDuplicate ?? 'skip';
    if (duplicate !== 'skip' && duplicate !== 'replace') {
      throw invalid(
        `${what}: onDuplicate must be "skip" or "replace", not ${JSON.stringify(duplicate)}`,
      );
    }
    unique = {
      key: item.uniqueKey,
      policy: duplicate,
      windowMs:
        item.uniqueForMs === undefined
          ? null
          : positiveNumber(item.uniqueForMs, `${what}: uniqueForMs`),
    };
  } else if (item.onDuplicate !== undefined || item.uniqueForMs !== undefined) {
    throw invalid(`${what}: onDuplicate and uniqueForMs need a uniqueKey`);
  }
  return { dependsOn, onDependencyFailure: policy, unique };
}

/**
 * The order to insert a call's jobs in: each after the jobs of the call it depends on. A cycle
 * is refused, naming it.
 */
function enqueueOrder(
  pool: string,
  items: readonly EnqueueItem[],
  links: readonly Links[],
): number[] {
  const label = (i: number) => items[i]?.node ?? items[i]?.name ?? `job #${i}`;
  const order: number[] = [];
  const state = new Array<'new' | 'visiting' | 'done'>(items.length).fill('new');
  const path: number[] = [];
  const visit = (i: number): void => {
    if (state[i] === 'done') return;
    if (state[i] === 'visiting') {
      const cycle = [...path.slice(path.indexOf(i)), i].map(label).join(' → ');
      throw invalid(`Workpool "${pool}": the jobs depend on each other in a cycle: ${cycle}`);
    }
    state[i] = 'visiting';
    path.push(i);
    for (const ref of links[i]!.dependsOn) if (typeof ref !== 'string') visit(ref.item);
    path.pop();
    state[i] = 'done';
    order.push(i);
  };
  for (let i = 0; i < items.length; i++) visit(i);
  return order;
}

function parseGroup(pool: string, group: unknown): string {
  if (typeof group !== 'string' || group === '' || group.length > 256) {
    throw invalid(`Workpool "${pool}": group must be a string of 1 to 256 characters`);
  }
  return group;
}

/** A list of pool job ids, or null when none was given. */
export function parseIds(ids: unknown, what: string): string[] | null {
  if (ids === undefined || ids === null) return null;
  if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string' || !isPoolJobId(id))) {
    throw invalid(`Workpool ${what}: ids must be a list of pool job ids`);
  }
  return ids as string[];
}
