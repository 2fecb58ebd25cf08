/**
 * Workpools for Sleigh functions, in the interface of the Convex Workpool component: named
 * pools with their own parallelism, retries with backoff, results, onComplete, cancellation and
 * a pool-bound ctx. Jobs are kept and run by the Sleigh engine (its `_pool_jobs` table and pool
 * runner); this class only speaks to it through Sleigh's `sleigh/pool/*` syscalls, inside the
 * function that calls it — so an enqueue in a mutation commits or rolls back with the mutation.
 *
 * The `ctx` argument is optional: Sleigh finds the calling function by itself, so both
 * `pool.enqueueAction(ctx, fn, args)` (the Convex component's form) and
 * `pool.enqueueAction(fn, args)` work.
 */
import { getFunctionName, type FunctionReference, type FunctionReturnType } from 'convex/server';
import { convexToJson, jsonToConvex, v, type JSONValue, type Value } from 'convex/values';

/** A job's id (a document of Sleigh's `_pool_jobs` table). */
export type WorkId = string & { __isWorkId: true };

export interface RetryBehavior {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Wait before the first retry. */
  initialBackoffMs: number;
  /** Each retry waits `base` times longer than the one before (with jitter). */
  base: number;
}

export interface WorkpoolOptions {
  /** Jobs of this pool running at once, across all servers (default 10, at most 1000). */
  maxParallelism?: number;
  /**
   * Fairness: at most this many jobs of one `group` (a tenant, say) running at once, so one
   * group's flood never starves the others; groups take turns for free slots.
   */
  groupParallelism?: number;
  /** At most `count` jobs start per `periodMs` in the pool (a sliding window, fleet-wide). */
  rateLimit?: { count: number; periodMs: number };
  /** The same, per group. */
  groupRateLimit?: { count: number; periodMs: number };
  /** An action running longer counts as a failed attempt (default: no limit). */
  actionTimeoutMs?: number;
  /**
   * Actions must call `pool.heartbeat()` at least this often: one that goes quiet longer is
   * given up (its signal aborts) and retried per its policy, like a timeout.
   */
  heartbeatTimeoutMs?: number;
  /**
   * How long results are kept after a job finished, in ms (default one day). 0 keeps none: a
   * job is deleted as it finishes, as graphile-worker does (its onComplete still gets the
   * result; `status` says finished, `pollResult` that the result expired). Jobs with
   * dependencies or a unique key, and canceled ones, are deleted by the sweep a moment later.
   */
  ttl?: number;
  /**
   * How long jobs that failed for good are kept, to be listed and retried (default 7 days);
   * 0 keeps none, as `ttl`.
   */
  failedTtl?: number;
  /** Retry failed actions with `defaultRetryBehavior` unless a call says otherwise. */
  retryActionsByDefault?: boolean;
  defaultRetryBehavior?: RetryBehavior;
}

export type RunResult<T = Value> =
  | { kind: 'success'; returnValue: T }
  | { kind: 'failed'; error: string }
  /** `reason` says why Sleigh canceled it (a dependency, a replacing duplicate). */
  | { kind: 'canceled'; reason?: string };

export type Status =
  | { state: 'pending'; previousAttempts: number }
  | { state: 'running'; previousAttempts: number }
  | { state: 'finished' };

/** A job that failed for good, as `failedJobs` lists it. */
export interface FailedJob {
  id: WorkId;
  name: string;
  /** The function it ran. */
  fn: string;
  /** Its last error. */
  error: string;
  attempts: number;
  /** When it failed for good (ms since the epoch). */
  failedAt: number;
}

/** What an onComplete mutation receives. */
export interface OnCompleteArgs<Context = Value> {
  workId: WorkId;
  context: Context;
  result: RunResult;
}

export const vResultValidator = v.union(
  v.object({ kind: v.literal('success'), returnValue: v.any() }),
  v.object({ kind: v.literal('failed'), error: v.string() }),
  v.object({ kind: v.literal('canceled'), reason: v.optional(v.string()) }),
);

/** The `args` of an onComplete mutation: `{ workId, context, result }`. */
export function vOnCompleteArgs<C extends Parameters<typeof v.object>[0][string]>(context?: C) {
  return {
    workId: v.string(),
    context: (context ?? v.any()) as C extends undefined ? ReturnType<typeof v.any> : C,
    result: vResultValidator,
  };
}

export interface EnqueueOptions {
  /** A mutation run once the job is done for good, with `{ workId, context, result }`. */
  onComplete?: FunctionReference<'mutation', 'public' | 'internal'> | null;
  context?: Value;
  /** `true`: the pool's default retry behavior; `false`: no retries; or a behavior. */
  retry?: boolean | RetryBehavior;
  /** Start no earlier than this time (ms since the epoch)... */
  runAt?: number;
  /** ...or after this delay (ms). */
  runAfter?: number;
  /** A label for the job (shown in status lists and the dashboard); defaults to the function. */
  name?: string;
  /** Among jobs ready to start, those of higher priority start first (default 0); ties go oldest first. */
  priority?: number;
  /** The job's fairness group (see groupParallelism and groupRateLimit). */
  group?: string;
  /**
   * Start only once these jobs (of any pool) have succeeded. The job can read their results
   * with `pool.result(ctx, id)`.
   */
  dependsOn?: WorkId[];
  /**
   * When a job this one depends on fails for good or is canceled: `fail` this one too
   * (default), `cancel` it, or `run` it anyway. Its result names the dependency, and the same
   * goes on down the graph.
   */
  onDependencyFailure?: 'fail' | 'cancel' | 'run';
  /**
   * At most one unfinished job with this key in the pool, enforced by the database (it holds
   * across servers). A duplicate resolves with the id of the job holding the key.
   */
  uniqueKey?: string;
  /**
   * What a duplicate does while the key's job is pending or running: `skip` (default: the
   * existing job stays), or `replace` (a job that has not started is canceled, this one takes
   * the key; a running one finishes on its own).
   */
  onDuplicate?: 'skip' | 'replace';
  /** Keep the key taken this long after its job was enqueued, even once it finished: at most one job per window. */
  uniqueForMs?: number;
}

/** One job of `enqueueGraph`: its function and arguments, options, and what it waits for. */
export type GraphNode = Omit<EnqueueOptions, 'dependsOn'> & {
  /** Keys of other nodes of the graph, or ids of jobs enqueued before. */
  dependsOn?: Array<string | WorkId>;
} & (
    | { action: FunctionReference<'action', 'public' | 'internal'>; args?: Record<string, Value> }
    | {
        mutation: FunctionReference<'mutation', 'public' | 'internal'>;
        args?: Record<string, Value>;
      }
    | { query: FunctionReference<'query', 'public' | 'internal'>; args?: Record<string, Value> }
  );

/**
 * An error that stops retries: throw it from a job's function when trying again cannot help
 * (bad input, a permanent refusal).
 */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

interface ConvexGlobal {
  asyncSyscall(op: string, args: string): Promise<string>;
}

async function syscall(
  op: string,
  args: Record<string, JSONValue | undefined>,
): Promise<JSONValue> {
  const convex = (globalThis as { Convex?: ConvexGlobal }).Convex;
  if (convex === undefined) {
    throw new Error('Workpool calls work only inside a function run by Sleigh');
  }
  return JSON.parse(
    await convex.asyncSyscall(`sleigh/pool/${op}`, JSON.stringify(args, keepNonFinite)),
  ) as JSONValue;
}

/**
 * JSON turns NaN and ±Infinity into null; sent as "NaN" or "Infinity" instead, the server's
 * error names the value the caller gave.
 */
function keepNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

type AnyRef = FunctionReference<'query' | 'mutation' | 'action', 'public' | 'internal'>;
type Kind = 'query' | 'mutation' | 'action' | 'auto';

/** A function's ctx: anything with `runQuery` (queries, mutations and actions all have it). */
interface AnyCtx {
  runQuery: (...args: never[]) => unknown;
}

function isCtx(value: unknown): value is AnyCtx {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { runQuery?: unknown }).runQuery === 'function'
  );
}

/** Drops a leading ctx, if there is one. */
function withoutCtx<T extends unknown[]>(args: unknown[]): T {
  return (isCtx(args[0]) ? args.slice(1) : args) as T;
}

type Args<F extends AnyRef> = F['_args'];

/** What `startupJobs` declares: Sleigh finds it among a module's exports when code loads. */
export interface StartupJobs {
  readonly isStartupJobs: true;
  readonly pool: string;
  readonly options: JSONValue;
  readonly items: JSONValue[];
}

/** A graph's nodes as enqueue items, their dependencies on each other by index. */
function graphItems(nodes: Record<string, GraphNode>): JSONValue[] {
  const keys = Object.keys(nodes);
  const index = new Map(keys.map((key, i) => [key, i]));
  return keys.map((key) => {
    const node = nodes[key]!;
    const [kind, fn] =
      'action' in node
        ? (['action', node.action] as const)
        : 'mutation' in node
          ? (['mutation', node.mutation] as const)
          : (['query', node.query] as const);
    const { dependsOn, ...options } = node;
    return {
      ...item(kind, fn, node.args ?? {}, { ...options, name: options.name ?? key }),
      node: key,
      dependsOn: (dependsOn ?? []).map((ref) => (index.has(ref) ? { item: index.get(ref)! } : ref)),
    };
  });
}

/** A function reference's name, or an error saying what was passed instead. */
function functionName(ref: unknown, what: string): string {
  if (ref === undefined || ref === null) {
    throw new Error(
      `Workpool: ${what} is ${String(ref)}; pass a function reference such as internal.emails.send (is its import from _generated/api right?)`,
    );
  }
  try {
    return getFunctionName(ref as AnyRef);
  } catch (error) {
    throw new Error(`Workpool: ${what}: ${(error as Error).message}`);
  }
}

/** One job as the `sleigh/pool/enqueue` syscall takes it. */
function item(
  kind: Kind,
  fn: AnyRef,
  args: Record<string, Value>,
  options: Omit<EnqueueOptions, 'dependsOn'> & { dependsOn?: WorkId[] },
): Record<string, JSONValue> {
  for (const [what, time] of [
    ['runAt', options.runAt],
    ['runAfter', options.runAfter],
  ] as const) {
    if (time !== undefined && (typeof time !== 'number' || !Number.isFinite(time))) {
      throw new Error(`Workpool: ${what} must be a finite number of ms, not ${String(time)}`);
    }
  }
  // A delay below zero means now, as ctx.scheduler.runAfter takes it.
  const runAt =
    options.runAt ??
    (options.runAfter === undefined ? undefined : Date.now() + Math.max(0, options.runAfter));
  const optional: Record<string, JSONValue | undefined> = {
    name: options.name,
    priority: options.priority,
    group: options.group,
    runAt,
    retry: options.retry as JSONValue | undefined,
    dependsOn: options.dependsOn,
    onDependencyFailure: options.onDependencyFailure,
    uniqueKey: options.uniqueKey,
    onDuplicate: options.onDuplicate,
    uniqueForMs: options.uniqueForMs,
    onComplete:
      options.onComplete === undefined || options.onComplete === null
        ? undefined
        : {
            fn: functionName(options.onComplete, 'onComplete'),
            context: convexToJson(options.context ?? null),
          },
  };
  const out: Record<string, JSONValue> = {
    fn: functionName(fn, 'the function to run'),
    kind,
    args: convexToJson(args),
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) out[key] = value;
  return out;
}

export class Workpool {
  private readonly settings: JSONValue;

  constructor(
    readonly name: string,
    options: WorkpoolOptions = {},
  ) {
    this.settings = JSON.parse(JSON.stringify(options, keepNonFinite)) as JSONValue;
  }

  private async enqueue(
    kind: Kind,
    fn: AnyRef,
    argsList: Array<Record<string, Value>>,
    options: EnqueueOptions = {},
  ): Promise<WorkId[]> {
    const items = argsList.map((args) => item(kind, fn, args, options));
    return (await syscall('enqueue', {
      pool: this.name,
      options: this.settings,
      items,
    })) as WorkId[];
  }

  /**
   * Enqueues a graph of jobs atomically (in a mutation, with it), each starting once the jobs it
   * depends on succeeded; resolves with each node's id. A cycle is refused, naming it.
   *
   *   const ids = await pool.enqueueGraph(ctx, {
   *     fetch: { action: internal.feed.fetch, args: { url } },
   *     parse: { action: internal.feed.parse, args: {}, dependsOn: ['fetch'] },
   *     store: { mutation: internal.feed.store, args: {}, dependsOn: ['parse'] },
   *   });
   */
  enqueueGraph<K extends string>(
    ctx: AnyCtx,
    nodes: Record<K, GraphNode>,
  ): Promise<Record<K, WorkId>>;
  enqueueGraph<K extends string>(nodes: Record<K, GraphNode>): Promise<Record<K, WorkId>>;
  async enqueueGraph(...all: unknown[]): Promise<Record<string, WorkId>> {
    const [nodes] = withoutCtx<[Record<string, GraphNode>]>(all);
    const keys = Object.keys(nodes);
    const ids = (await syscall('enqueue', {
      pool: this.name,
      options: this.settings,
      items: graphItems(nodes),
    })) as WorkId[];
    return Object.fromEntries(keys.map((key, i) => [key, ids[i]!]));
  }

  /**
   * Jobs declared in code and enqueued once per deploy: export the result from a module, and
   * every time new code starts (the first server of a fleet to start it), the graph is enqueued;
   * restarts of the same code, and the other servers, find it already there.
   *
   *   export const warmUp = pool.startupJobs({
   *     fetchAppList: { action: internal.steam.fetchAppList, args: {} },
   *     processAppList: { action: internal.steam.process, args: {}, dependsOn: ['fetchAppList'] },
   *   });
   */
  startupJobs(nodes: Record<string, GraphNode>): StartupJobs {
    return {
      isStartupJobs: true,
      pool: this.name,
      options: this.settings,
      items: graphItems(nodes),
    };
  }

  /**
   * Inside a pool job's action: keeps its attempt alive in a pool with `heartbeatTimeoutMs`
   * (resolves false when the attempt was already given up: stop working).
   */
  heartbeat(ctx?: AnyCtx): Promise<boolean>;
  async heartbeat(): Promise<boolean> {
    return (await syscall('heartbeat', {})) as boolean;
  }

  /**
   * Inside a pool job's action: an AbortSignal that fires when the attempt times out
   * (`actionTimeoutMs`), misses its heartbeat, or its job is canceled; its reason says which.
   * Pass it to fetch and the like, or check `signal.aborted` between steps.
   */
  signal(ctx?: AnyCtx): AbortSignal;
  signal(): AbortSignal {
    const controller = new AbortController();
    void syscall('whenAborted', {}).then(
      (reason) => {
        if (typeof reason === 'string') controller.abort(new Error(reason));
      },
      (error: unknown) => controller.abort(error),
    );
    return controller.signal;
  }

  /** The pool's jobs that failed for good (dead letters), oldest first. */
  failedJobs(ctx: AnyCtx, options?: { limit?: number }): Promise<FailedJob[]>;
  failedJobs(options?: { limit?: number }): Promise<FailedJob[]>;
  async failedJobs(...all: unknown[]): Promise<FailedJob[]> {
    const [options] = withoutCtx<[{ limit?: number }?]>(all);
    return (await syscall('failed', {
      pool: this.name,
      limit: options?.limit,
    })) as unknown as FailedJob[];
  }

  /**
   * Runs dead letters again (the given ids, or the oldest up to `limit`), each with everything
   * downstream of it; resolves with how many jobs were restarted.
   */
  retryFailed(ctx: AnyCtx, options?: { ids?: WorkId[]; limit?: number }): Promise<number>;
  retryFailed(options?: { ids?: WorkId[]; limit?: number }): Promise<number>;
  async retryFailed(...all: unknown[]): Promise<number> {
    const [options] = withoutCtx<[{ ids?: WorkId[]; limit?: number }?]>(all);
    return (await syscall('retryFailed', {
      pool: this.name,
      ids: options?.ids,
      limit: options?.limit,
    })) as number;
  }

  /**
   * Inside a pool job's own function: the jobs it depends on, in `dependsOn` order, with their
   * names and results (all succeeded, unless its onDependencyFailure is `run`).
   */
  dependencies(ctx: AnyCtx): Promise<Array<{ id: WorkId; name: string; result: RunResult }>>;
  dependencies(): Promise<Array<{ id: WorkId; name: string; result: RunResult }>>;
  async dependencies(): Promise<Array<{ id: WorkId; name: string; result: RunResult }>> {
    const list = (await syscall('dependencies', {})) as Array<{
      id: WorkId;
      name: string;
      result: JSONValue;
    }>;
    return list.map((entry) => ({ ...entry, result: jsonToConvex(entry.result) as RunResult }));
  }

  /**
   * Runs a finished job again, and everything downstream of it (its dependents, theirs, …),
   * keeping their ids; resolves with how many jobs that is. Refused while one of them runs.
   */
  rerun(ctx: AnyCtx, id: WorkId): Promise<number>;
  rerun(id: WorkId): Promise<number>;
  async rerun(...all: unknown[]): Promise<number> {
    const [id] = withoutCtx<[WorkId]>(all);
    return (await syscall('rerun', { id })) as number;
  }

  enqueueAction<F extends FunctionReference<'action', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  enqueueAction<F extends FunctionReference<'action', 'public' | 'internal'>>(
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  async enqueueAction(...all: unknown[]): Promise<WorkId> {
    const [fn, args, options] = withoutCtx<[AnyRef, Record<string, Value>, EnqueueOptions?]>(all);
    return (await this.enqueue('action', fn, [args], options))[0]!;
  }

  enqueueMutation<F extends FunctionReference<'mutation', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  enqueueMutation<F extends FunctionReference<'mutation', 'public' | 'internal'>>(
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  async enqueueMutation(...all: unknown[]): Promise<WorkId> {
    const [fn, args, options] = withoutCtx<[AnyRef, Record<string, Value>, EnqueueOptions?]>(all);
    return (await this.enqueue('mutation', fn, [args], options))[0]!;
  }

  enqueueQuery<F extends FunctionReference<'query', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  enqueueQuery<F extends FunctionReference<'query', 'public' | 'internal'>>(
    fn: F,
    args: Args<F>,
    options?: EnqueueOptions,
  ): Promise<WorkId>;
  async enqueueQuery(...all: unknown[]): Promise<WorkId> {
    const [fn, args, options] = withoutCtx<[AnyRef, Record<string, Value>, EnqueueOptions?]>(all);
    return (await this.enqueue('query', fn, [args], options))[0]!;
  }

  /** Enqueues one job per arguments object, in one transaction; resolves with their ids. */
  enqueueActionBatch<F extends FunctionReference<'action', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueActionBatch<F extends FunctionReference<'action', 'public' | 'internal'>>(
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueActionBatch(...all: unknown[]): Promise<WorkId[]> {
    const [fn, list, options] =
      withoutCtx<[AnyRef, Array<Record<string, Value>>, EnqueueOptions?]>(all);
    return this.enqueue('action', fn, list, options);
  }

  enqueueMutationBatch<F extends FunctionReference<'mutation', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueMutationBatch<F extends FunctionReference<'mutation', 'public' | 'internal'>>(
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueMutationBatch(...all: unknown[]): Promise<WorkId[]> {
    const [fn, list, options] =
      withoutCtx<[AnyRef, Array<Record<string, Value>>, EnqueueOptions?]>(all);
    return this.enqueue('mutation', fn, list, options);
  }

  enqueueQueryBatch<F extends FunctionReference<'query', 'public' | 'internal'>>(
    ctx: AnyCtx,
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueQueryBatch<F extends FunctionReference<'query', 'public' | 'internal'>>(
    fn: F,
    argsList: Array<Args<F>>,
    options?: EnqueueOptions,
  ): Promise<WorkId[]>;
  enqueueQueryBatch(...all: unknown[]): Promise<WorkId[]> {
    const [fn, list, options] =
      withoutCtx<[AnyRef, Array<Record<string, Value>>, EnqueueOptions?]>(all);
    return this.enqueue('query', fn, list, options);
  }

  /** Where a job is: pending or running (with its failed attempts so far), or finished. */
  status(ctx: AnyCtx, id: WorkId): Promise<Status>;
  status(id: WorkId): Promise<Status>;
  async status(...all: unknown[]): Promise<Status> {
    const [id] = withoutCtx<[WorkId]>(all);
    return (await this.statusBatch(id))[0]!;
  }

  statusBatch(...all: unknown[]): Promise<Status[]> {
    const ids = withoutCtx<WorkId[]>(all).flat();
    return syscall('status', { ids }) as Promise<Status[]>;
  }

  /**
   * The job's result once it finished, else null. In a query this is reactive: a client
   * subscribed to the query is pushed the result when the job finishes.
   */
  result(ctx: AnyCtx, id: WorkId): Promise<RunResult | null>;
  result(id: WorkId): Promise<RunResult | null>;
  async result(...all: unknown[]): Promise<RunResult | null> {
    const [id] = withoutCtx<[WorkId]>(all);
    const json = await syscall('result', { id });
    return json === null ? null : (jsonToConvex(json) as RunResult);
  }

  /** Waits until the job finished and resolves with its result (in actions). */
  pollResult(ctx: AnyCtx, id: WorkId, options?: { timeoutMs?: number }): Promise<RunResult>;
  pollResult(id: WorkId, options?: { timeoutMs?: number }): Promise<RunResult>;
  async pollResult(...all: unknown[]): Promise<RunResult> {
    const [id, options] = withoutCtx<[WorkId, { timeoutMs?: number }?]>(all);
    return jsonToConvex(
      await syscall('wait', { id, timeoutMs: options?.timeoutMs ?? null }),
    ) as RunResult;
  }

  /**
   * Cancels a job that has not finished: it will not start, or its outcome is dropped. A
   * running action's `signal()` fires (reason "the job was canceled"): at once when the cancel
   * commits in the process running it, within a third of a lease from another process. Its
   * slot stays taken until its function returns, so `maxParallelism` holds for code that
   * ignores the signal.
   */
  cancel(ctx: AnyCtx, id: WorkId): Promise<void>;
  cancel(id: WorkId): Promise<void>;
  async cancel(...all: unknown[]): Promise<void> {
    const [id] = withoutCtx<[WorkId]>(all);
    await syscall('cancel', { ids: [id], pool: this.name });
  }

  /** Cancels every unfinished job of the pool (up to `limit`); resolves with how many. */
  cancelAll(ctx: AnyCtx, options?: { limit?: number }): Promise<number>;
  cancelAll(options?: { limit?: number }): Promise<number>;
  async cancelAll(...all: unknown[]): Promise<number> {
    const [options] = withoutCtx<[{ limit?: number }?]>(all);
    return (await syscall('cancelAll', { pool: this.name, limit: options?.limit })) as number;
  }

  /**
   * Pauses the pool, fleet-wide: none of its jobs start until `resume` (jobs already running
   * go on, and enqueuing still works). From a mutation it takes effect when the mutation
   * commits; a job a server was starting at that moment may still start. Resolves with whether
   * the pool was paused already. The dashboard's Pools page pauses and resumes too.
   */
  pause(ctx?: AnyCtx): Promise<boolean>;
  pause(): Promise<boolean> {
    return this.setPaused(true);
  }

  /** Lets a paused pool's jobs start again; resolves with whether it was paused. */
  resume(ctx?: AnyCtx): Promise<boolean>;
  resume(): Promise<boolean> {
    return this.setPaused(false);
  }

  private async setPaused(paused: boolean): Promise<boolean> {
    const options = this.settings;
    return (await syscall('setPaused', { pool: this.name, options, paused })) as boolean;
  }

  /**
   * A ctx whose `runMutation`, `runAction` and `scheduler` go through this pool (in actions):
   * calls wait for their job and return its value or throw its error.
   */
  ctx<Ctx extends AnyCtx>(ctx: Ctx): Ctx & PoolCtx {
    const run = async (kind: 'mutation' | 'action', fn: AnyRef, args?: Record<string, Value>) => {
      const [id] = await this.enqueue(kind, fn, [args ?? {}]);
      const result = await this.pollResult(id!);
      if (result.kind === 'success') return result.returnValue;
      throw new Error(
        result.kind === 'canceled'
          ? `${getFunctionName(fn)} was canceled in pool "${this.name}"`
          : `${getFunctionName(fn)} failed in pool "${this.name}": ${result.error}`,
      );
    };
    const pool: PoolCtx = {
      runMutation: (fn: AnyRef, args?: Record<string, Value>) => run('mutation', fn, args),
      runAction: (fn: AnyRef, args?: Record<string, Value>) => run('action', fn, args),
      scheduler: {
        runAfter: async (delayMs: number, fn: AnyRef, args?: Record<string, Value>) =>
          (await this.enqueue('auto', fn, [args ?? {}], { runAfter: delayMs }))[0]!,
        runAt: async (time: number | Date, fn: AnyRef, args?: Record<string, Value>) =>
          (
            await this.enqueue('auto', fn, [args ?? {}], {
              runAt: typeof time === 'number' ? time : time.getTime(),
            })
          )[0]!,
        cancel: (id: WorkId) => this.cancel(id),
      } as PoolCtx['scheduler'],
    };
    return { ...ctx, ...pool };
  }
}

/** The parts of an action ctx that `pool.ctx(ctx)` routes through the pool. */
export interface PoolCtx {
  runMutation<F extends FunctionReference<'mutation', 'public' | 'internal'>>(
    fn: F,
    args?: Args<F>,
  ): Promise<FunctionReturnType<F>>;
  runAction<F extends FunctionReference<'action', 'public' | 'internal'>>(
    fn: F,
    args?: Args<F>,
  ): Promise<FunctionReturnType<F>>;
  scheduler: {
    runAfter<F extends FunctionReference<'mutation' | 'action', 'public' | 'internal'>>(
      delayMs: number,
      fn: F,
      args?: Args<F>,
    ): Promise<WorkId>;
    runAt<F extends FunctionReference<'mutation' | 'action', 'public' | 'internal'>>(
      time: number | Date,
      fn: F,
      args?: Args<F>,
    ): Promise<WorkId>;
    cancel(id: WorkId): Promise<void>;
  };
}
